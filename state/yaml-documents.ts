import { readFileSync, statSync } from 'node:fs';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { Composer, Parser, type Document, type DocumentOptions, type ParseOptions, type SchemaOptions } from 'yaml';
import { boundProblems, cut, MAX_NESTING_DEPTH, MAX_PROBLEMS_PER_FILE, moreProblems, nestingDepthExceeds } from '../crds/problem-limit.js';
import type { Problem } from '../crds/types.js';

/** Inputs larger than this are refused before parsing: no admin document comes close. */
export const MAX_DOCUMENT_FILE_BYTES = 1024 * 1024;
/** Aliases are legitimate in YAML but an alias bomb expands exponentially; this bounds it. */
const MAX_ALIAS_COUNT = 100;
const MAX_DOCUMENTS_PER_FILE = 1000;

export interface ParsedDocument {
  /** The file label to put in problems: the path, plus the document number in a multi-document file. */
  label: string;
  index: number;
  value: unknown;
}

export interface ParsedFile {
  documents: ParsedDocument[];
  problems: Problem[];
  /** Facts about the file that are not errors: it holds no document at all, for example. */
  notices: Problem[];
}

/** Label of the index-th document of a file holding `count` documents. */
function documentLabel(file: string, index: number, count: number): string {
  return count > 1 ? `${file} (document ${index + 1})` : file;
}

// ---------------------------------------------------------------------------------------------
// The plainest documents, read without the yaml package.

type PlainMapping = Record<string, unknown>;

const PLAIN_KEY = '[A-Za-z][A-Za-z0-9_-]{0,62}';
/**
 * Words of letters, digits and `_ . / -`, separated by single spaces, not starting with `-`: no
 * YAML indicator can appear (relative paths such as ../store included).
 */
const PLAIN_SCALAR_RE = /^[A-Za-z0-9_./][A-Za-z0-9_./-]*(?: [A-Za-z0-9_./-]+)*$/;
const MAX_PLAIN_SCALAR_LENGTH = 1024;
/** A comment: `#` and printable characters (no tab, no control or format characters, no surrogates). */
const COMMENT_RE = /^#[ -~\u00A0-\uD7FF\uE000-\uFEFE\uFF00-\uFFFD]*$/;
/** The start of a mapping entry: indentation, key and colon; the rest of the line is read by hand. */
const KEY_RE = new RegExp(`^( *)(${PLAIN_KEY}):`);
const FLOW_PAIR_RE = new RegExp(`^(${PLAIN_KEY}): (.+)$`);
const SMALL_DECIMAL_RE = /^(?:0|[1-9][0-9]{0,14})$/;
/**
 * The tests by which YAML 1.2's core schema (yaml's src/schema/core) reads a plain scalar as
 * null, a boolean, an integer or a float; a plain scalar that passes none is a string.
 */
const CORE_NON_STRING_RES = [
  /^(?:~|[Nn]ull|NULL)?$/,
  /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/,
  /^0o[0-7]+$/,
  /^[-+]?[0-9]+$/,
  /^0x[0-9a-fA-F]+$/,
  /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/,
];

const CORE_NON_STRING_RE = new RegExp(CORE_NON_STRING_RES.map((re) => `(?:${re.source})`).join('|'));

function isCoreString(text: string): boolean {
  return !CORE_NON_STRING_RE.test(text);
}

/** A plain scalar of the subset: a string YAML reads as a string, true, false or a small decimal integer. */
function plainScalar(text: string): string | number | boolean | undefined {
  if (text.length > MAX_PLAIN_SCALAR_LENGTH || !PLAIN_SCALAR_RE.test(text)) return undefined;
  if (SMALL_DECIMAL_RE.test(text)) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  return isCoreString(text) ? text : undefined;
}

/** How many spaces `text` has from `from` on. */
function spacesFrom(text: string, from: number): number {
  let n = 0;
  while (text.charCodeAt(from + n) === 32) n++;
  return n;
}

/**
 * A line as `{ indent, key, value }` (value undefined for a key alone), `'skip'` for a blank or
 * comment line, or undefined when it is not in the subset. Read by hand rather than by one
 * regular expression, whose backtracking over long runs of spaces would be quadratic.
 */
function readLine(line: string): { indent: number; key: string; value: string | undefined } | 'skip' | undefined {
  const hash = line.indexOf('#');
  const content = hash === -1 ? line : line.slice(0, hash);
  if (hash !== -1) {
    // A comment starts the line (after spaces) or follows a space; a `#` inside a word is not one.
    if ((hash > 0 && line.charCodeAt(hash - 1) !== 32) || !COMMENT_RE.test(line.slice(hash))) return undefined;
  }
  let end = content.length;
  while (end > 0 && content.charCodeAt(end - 1) === 32) end--;
  if (end === 0) return 'skip';
  const head = KEY_RE.exec(content);
  if (!head) return undefined;
  const afterColon = head[0].length;
  if (afterColon === end) return { indent: head[1]!.length, key: head[2]!, value: undefined };
  const gap = spacesFrom(content, afterColon);
  if (gap === 0) return undefined;
  return { indent: head[1]!.length, key: head[2]!, value: content.slice(afterColon + gap, end) };
}

function setNewKey(map: PlainMapping, key: string, value: unknown): boolean {
  if (!isCoreString(key) || Object.prototype.hasOwnProperty.call(map, key)) return false;
  map[key] = value;
  return true;
}

/** A block value of the subset: a plain scalar or a one-line flow list or mapping of them. */
function plainValue(text: string): unknown {
  const open = text[0];
  if (open === '[' || open === '{') {
    if (text[text.length - 1] !== (open === '[' ? ']' : '}')) return undefined;
    const inner = text.slice(1, -1);
    const items = inner === '' ? [] : inner.split(', ');
    if (open === '[') {
      const list: unknown[] = [];
      for (const item of items) {
        const value = plainScalar(item);
        if (value === undefined) return undefined;
        list.push(value);
      }
      return list;
    }
    const map: PlainMapping = {};
    for (const item of items) {
      const pair = FLOW_PAIR_RE.exec(item);
      const value = pair ? plainScalar(pair[2]!) : undefined;
      if (value === undefined || !setNewKey(map, pair![1]!, value)) return undefined;
    }
    return map;
  }
  return plainScalar(text);
}

/**
 * The value of a document in the plainest YAML, or undefined to leave it to the yaml package:
 * one block mapping (after an optional `---` line) whose keys are identifiers, nested by
 * indentation with spaces, whose values are plain words (single spaces between them), true,
 * false, small decimal integers, dotted versions or addresses, or one-line flow lists and
 * mappings of those; whole-line and trailing comments. That is the shape of nearly every cell
 * document and of all that tools generate, and reading it this way skips the yaml package's
 * general machinery, whose warm-up dominated a cold `pic validate` of a large cell.
 *
 * Anything else — quotes, anchors, aliases, tags, block lists, multi-line or empty values,
 * other words YAML reads as null, booleans or numbers, a repeated key, tabs, carriage returns,
 * irregular indentation, several documents — returns undefined, and yaml parses the text as
 * before, with its errors and limits. tests/unit/yaml-documents.test.ts checks on generated
 * documents that whatever this reads, yaml reads to the same value without an error or warning.
 */
export function plainDocumentValue(text: string): PlainMapping | undefined {
  if (text.includes('\r')) return undefined;
  const lines = text.split('\n');
  const root: PlainMapping = {};
  /** Open mappings, innermost last; indent -1 until the first line of a new mapping sets it. */
  const open: { indent: number; map: PlainMapping }[] = [{ indent: 0, map: root }];
  let keys = 0;
  for (let i = lines[0] === '---' ? 1 : 0; i < lines.length; i++) {
    const line = readLine(lines[i]!);
    if (line === 'skip') continue;
    if (line === undefined) return undefined;
    const indent = line.indent;
    let top = open[open.length - 1]!;
    if (top.indent === -1) {
      if (indent <= open[open.length - 2]!.indent) return undefined;
      top.indent = indent;
    } else {
      while (indent < top.indent) {
        open.pop();
        top = open[open.length - 1]!;
      }
      if (indent !== top.indent) return undefined;
    }
    const key = line.key;
    if (line.value === undefined) {
      const child: PlainMapping = {};
      if (!setNewKey(top.map, key, child)) return undefined;
      open.push({ indent: -1, map: child });
    } else {
      const value = plainValue(line.value);
      if (value === undefined || !setNewKey(top.map, key, value)) return undefined;
    }
    keys++;
  }
  if (keys === 0 || open[open.length - 1]!.indent === -1) return undefined;
  return root;
}

// ---------------------------------------------------------------------------------------------

/**
 * yaml's options: YAML 1.2's core schema only, no YAML 1.1 tags (!!binary, !!omap, !!set, !!timestamp).
 * Silent: yaml would print a Node warning of its own for a key that is a list or a map; such a key
 * is reported as a problem of the file instead (it matches no field).
 */
const YAML_OPTIONS = { uniqueKeys: true, prettyErrors: false, strict: true, schema: 'core', resolveKnownTags: false, logLevel: 'silent' } as const;

/** Line and column (from 1) of offsets in one text: the line starts are found once, then searched. */
function lineLocator(text: string): (offset: number) => { line: number; column: number } {
  let starts: number[] | undefined;
  return (offset) => {
    if (!starts) {
      starts = [0];
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
    }
    const at = Math.min(Math.max(offset, 0), text.length);
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: at - starts[lo]! + 1 };
  };
}

function isBreakOrSpace(code: number | undefined): boolean {
  return code === undefined || Number.isNaN(code) || code === 32 || code === 9 || code === 10 || code === 13;
}

/**
 * The line at which a YAML text nests flow collections (`[[[[`) or compact block entries
 * (`- - - -`) deeper than MAX_NESTING_DEPTH, found in one pass without parsing, or undefined.
 * The yaml package composes nodes recursively; refusing such input first keeps its stack, its
 * time and its error printer out of reach. Quotes and comments are skipped as YAML reads them;
 * where a quote cannot be told from a plain character the scan may count too little, never
 * refuse a shallow document: the depth check on the parsed value stands behind it.
 */
export function yamlNestingTooDeep(text: string, limit = MAX_NESTING_DEPTH): number | undefined {
  let depth = 0;
  let line = 1;
  let quote = 0;
  /** Block indicators (`- `, `? `, `: `) since the start of the line, before any other character. */
  let indicators = 0;
  let lineHead = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      line++;
      indicators = 0;
      lineHead = true;
      continue;
    }
    if (quote === 34) {
      if (c === 92) i++;
      else if (c === 34) quote = 0;
      continue;
    }
    if (quote === 39) {
      if (c === 39) {
        if (text.charCodeAt(i + 1) === 39) i++;
        else quote = 0;
      }
      continue;
    }
    const before = i === 0 ? undefined : text.charCodeAt(i - 1);
    if (c === 35 && isBreakOrSpace(before)) {
      const end = text.indexOf('\n', i);
      if (end === -1) break;
      i = end - 1;
      continue;
    }
    if (c === 32 || c === 9) continue;
    if (lineHead && (c === 45 || c === 63 || c === 58) && isBreakOrSpace(text.charCodeAt(i + 1))) {
      if (++indicators > limit) return line;
      continue;
    }
    lineHead = false;
    if ((c === 34 || c === 39) && (isBreakOrSpace(before) || before === 91 || before === 123 || before === 44 || before === 58)) quote = c;
    else if (c === 91 || c === 123) {
      if (++depth > limit) return line;
    } else if ((c === 93 || c === 125) && depth > 0) depth--;
  }
  return undefined;
}

function tooDeep(file: string, line?: number): Problem {
  return { file, pointer: '', message: `nests lists or mappings more than ${MAX_NESTING_DEPTH} levels deep${line ? ` (at line ${line})` : ''}; no pic document needs that, refusing to read it` };
}

/** A message of the yaml package as one short line: its first line, cut, never a code frame. */
function yamlMessage(message: string): string {
  return cut(oneLine(message), 200);
}

export interface YamlIssue {
  message: string;
  code?: string;
  pos?: [number, number];
}

/** yaml issues turned into problems per document; a hostile file can make yaml report thousands. */
const MAX_ISSUES = MAX_PROBLEMS_PER_FILE;

/** The message for an error or warning yaml reports at `pos`, with the line and column we count. */
function yamlProblemMessage(locate: ReturnType<typeof lineLocator>, issue: YamlIssue, warning: boolean): string {
  const where = issue.pos ? locate(issue.pos[0]) : undefined;
  const at = where ? ` at line ${where.line}, column ${where.column}` : '';
  if (!warning) return `not valid YAML${at}: ${yamlMessage(issue.message)}`;
  if (issue.code === 'TAG_RESOLVE_FAILED') {
    const tag = issue.message.replace(/^Unresolved tag: /, '').replace(/^tag:yaml\.org,2002:/, '!!');
    return `the tag ${cut(oneLine(tag), 80)}${at} is not accepted: only the tags of YAML's core schema are (!!str, !!int, !!float, !!bool, !!null, !!seq, !!map); write the value plainly`;
  }
  return `not accepted${at}: ${yamlMessage(issue.message)}`;
}

/** The problems of one document's errors and warnings: the first MAX_ISSUES, then a count of the rest. */
function issueProblems(locate: ReturnType<typeof lineLocator>, label: string, errors: readonly YamlIssue[], warnings: readonly YamlIssue[]): Problem[] {
  const all = [...errors.slice(0, MAX_ISSUES).map((e) => ({ issue: e, warning: false })), ...warnings.slice(0, MAX_ISSUES).map((w) => ({ issue: w, warning: true }))];
  const problems = all.slice(0, MAX_ISSUES).map(({ issue, warning }) => ({ file: label, pointer: '', message: yamlProblemMessage(locate, issue, warning) }));
  const rest = errors.length + warnings.length - problems.length;
  if (rest > 0) problems.push(moreProblems(label, rest));
  return problems;
}

/**
 * The errors and warnings yaml reported for `text` (parsed with prettyErrors off), as problems of
 * `label` with the line and column counted here: never a code frame quoting the file, at most
 * MAX_ISSUES of them. For YAML read elsewhere (compose templates).
 */
export function yamlIssuesAsProblems(text: string, label: string, errors: readonly YamlIssue[], warnings: readonly YamlIssue[]): Problem[] {
  return issueProblems(lineLocator(text), label, errors, warnings);
}

/** The problem of text nested deeper than any pic document or template needs. */
export function nestingProblem(file: string, line?: number): Problem {
  return tooDeep(file, line);
}

/** yaml's options for one reading of a text (parseYamlStreams). */
export type YamlReadOptions = ParseOptions & DocumentOptions & SchemaOptions;

/**
 * What yaml's parseAllDocuments gives for `text`, under each of `optionSets`: the documents (an
 * empty list carries the stream's own errors and warnings, as parseAllDocuments gives them), or
 * what it threw. The text is lexed and parsed once, and each token is handed to one composer per
 * option set as it comes, as parseAllDocuments hands it to its one: a text read two ways (a
 * package's template: as a document, and as Compose reads it) costs one parse. Without pretty
 * errors (no option set may ask for them: their line counter would need the parser's help).
 */
export function parseYamlStreams(text: string, optionSets: readonly YamlReadOptions[]): ({ docs: Document.Parsed[] } | { thrown: unknown })[] {
  const composers = optionSets.map((options) => new Composer(options));
  const out: ({ docs: Document.Parsed[] } | { thrown: unknown })[] = optionSets.map(() => ({ docs: [] }));
  const feed = (i: number, step: () => Iterable<Document.Parsed>): void => {
    const read = out[i]!;
    if ('thrown' in read) return;
    try {
      for (const doc of step()) read.docs.push(doc);
    } catch (err) {
      out[i] = { thrown: err };
    }
  };
  try {
    for (const token of new Parser().parse(text)) composers.forEach((composer, i) => feed(i, () => composer.next(token)));
  } catch (err) {
    // The parser's own failure: every reading still going would have met it.
    return out.map((read) => ('thrown' in read ? read : { thrown: err }));
  }
  composers.forEach((composer, i) => feed(i, () => composer.end()));
  out.forEach((read, i) => {
    if ('docs' in read && read.docs.length === 0) Object.assign(read.docs, { empty: true }, composers[i]!.streamInfo());
  });
  return out;
}

/** The options the document reader parses with (parseYamlDocuments). */
export const DOCUMENT_YAML_OPTIONS: YamlReadOptions = YAML_OPTIONS;

/**
 * What parseYamlDocuments decides before yaml parses `text`: the file, when its size, the plain
 * subset or its nesting settle it; undefined when yaml must parse it (with DOCUMENT_YAML_OPTIONS).
 */
export function yamlDocumentsUnparsed(text: string, file: string): ParsedFile | undefined {
  if (Buffer.byteLength(text, 'utf8') > MAX_DOCUMENT_FILE_BYTES) {
    return { documents: [], problems: [{ file, pointer: '', message: `file is larger than ${MAX_DOCUMENT_FILE_BYTES} bytes; refusing to parse it` }], notices: [] };
  }
  const plain = plainDocumentValue(text);
  if (plain !== undefined && !nestingDepthExceeds(plain)) return { documents: [{ label: file, index: 0, value: plain }], problems: [], notices: [] };
  const deepLine = yamlNestingTooDeep(text);
  if (deepLine !== undefined) return { documents: [], problems: [tooDeep(file, deepLine)], notices: [] };
  return undefined;
}

/**
 * Parse YAML text that may hold several documents. Never throws: syntax errors, duplicate keys,
 * tags outside the core schema, alias bombs, deep nesting and oversize input come back as
 * problems naming the file and the line; a file with no document at all comes back as a notice.
 */
export function parseYamlDocuments(text: string, file: string): ParsedFile {
  return yamlDocumentsUnparsed(text, file) ?? yamlDocumentsOf(parseYamlStreams(text, [DOCUMENT_YAML_OPTIONS])[0]!, text, file);
}

/** The file parseYamlDocuments reads from what yaml gave for `text` under DOCUMENT_YAML_OPTIONS. */
export function yamlDocumentsOf(stream: { docs: Document.Parsed[] } | { thrown: unknown }, text: string, file: string): ParsedFile {
  if ('thrown' in stream) {
    return { documents: [], problems: [{ file, pointer: '', message: `not valid YAML: ${yamlMessage((stream.thrown as Error).message)}` }], notices: [] };
  }
  const list = stream.docs;
  const locate = lineLocator(text);
  // A stream of no document can still carry errors and warnings of its own (a broken directive).
  const streamIssues = list as unknown as { errors?: YamlIssue[]; warnings?: YamlIssue[] };
  if (list.length === 0 && ((streamIssues.errors?.length ?? 0) > 0 || (streamIssues.warnings?.length ?? 0) > 0)) {
    return { documents: [], problems: issueProblems(locate, file, streamIssues.errors ?? [], streamIssues.warnings ?? []), notices: [] };
  }
  if (list.length > MAX_DOCUMENTS_PER_FILE) {
    return { documents: [], problems: [{ file, pointer: '', message: `more than ${MAX_DOCUMENTS_PER_FILE} documents in one file` }], notices: [] };
  }
  // Convert first, then label: an empty document (a trailing `---`, a file of comments) is no document.
  const converted: ({ value: unknown } | { problems: (label: string) => Problem[] })[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0 || doc.warnings.length > 0) {
      converted.push({ problems: (label) => issueProblems(locate, label, doc.errors, doc.warnings) });
      continue;
    }
    try {
      const value: unknown = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
      if (value === null || value === undefined) continue;
      if (nestingDepthExceeds(value)) converted.push({ problems: (label) => [tooDeep(label)] });
      else converted.push({ value });
    } catch (err) {
      converted.push({ problems: (label) => [{ file: label, pointer: '', message: `cannot be read: ${yamlMessage((err as Error).message)}` }] });
    }
  }
  const documents: ParsedDocument[] = [];
  const problems: Problem[] = [];
  converted.forEach((entry, index) => {
    const label = documentLabel(file, index, converted.length);
    if ('problems' in entry) {
      for (const problem of entry.problems(label)) problems.push(problem);
    } else documents.push({ label, index, value: entry.value });
  });
  const notices: Problem[] = converted.length === 0 ? [{ file, pointer: '', message: 'holds no document (it is empty or only comments); nothing in it is applied' }] : [];
  return { documents, problems: boundProblems(problems, file), notices };
}

function oneLine(message: string): string {
  const first = message.split('\n')[0] ?? message;
  return first.trim();
}

/**
 * Read a YAML file from disk, refusing oversize files before reading them whole. Document files
 * are small and many: synchronous reads cost a few microseconds each, where a round trip through
 * libuv's thread pool per open/stat/read/close made loading 2,000 documents I/O-bound.
 */
export function readYamlFile(file: string, label = file): ParsedFile {
  try {
    const stat = statSync(file);
    if (!stat.isFile()) return { documents: [], problems: [{ file: label, pointer: '', message: 'not a regular file' }], notices: [] };
    if (stat.size > MAX_DOCUMENT_FILE_BYTES) {
      return { documents: [], problems: [{ file: label, pointer: '', message: `file is ${stat.size} bytes, more than the ${MAX_DOCUMENT_FILE_BYTES} allowed` }], notices: [] };
    }
    return parseYamlDocuments(readFileSync(file, 'utf8'), label);
  } catch (err) {
    return { documents: [], problems: [{ file: label, pointer: '', message: `cannot read: ${cut(oneLine((err as Error).message), 200)}` }], notices: [] };
  }
}

/** JSON files larger than this (manifests, catalog indexes) are refused before parsing. */
export const MAX_JSON_FILE_BYTES = 1024 * 1024;

/**
 * The first key repeated within one JSON object, with its line, or undefined. One pass over text
 * JSON.parse already accepted, with an explicit stack: JSON.parse keeps the last of two equal
 * keys silently, which would let a reviewed value be shadowed by a later one.
 */
export function duplicateJsonKey(text: string): { key: string; line: number } | undefined {
  const stack: (Set<string> | null)[] = [];
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) line++;
    else if (c === 123) stack.push(new Set());
    else if (c === 91) stack.push(null);
    else if (c === 125 || c === 93) stack.pop();
    else if (c === 34) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34) break;
      }
      let j = i + 1;
      while (j < text.length && isBreakOrSpace(text.charCodeAt(j))) j++;
      const keys = stack[stack.length - 1];
      if (text.charCodeAt(j) !== 58 || !keys) continue;
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      if (keys.has(key)) return { key, line };
      keys.add(key);
    }
  }
  return undefined;
}

/**
 * Parse JSON text, reporting a syntax error with its line and column, and refusing what JSON.parse
 * would accept but a reviewer would misread: a text over the size limit, a key given twice in one
 * object, nesting deeper than any manifest needs.
 */
export function parseJsonText(text: string, file: string): { value?: unknown; problems: Problem[] } {
  if (text.length > MAX_JSON_FILE_BYTES || Buffer.byteLength(text, 'utf8') > MAX_JSON_FILE_BYTES) {
    return { problems: [{ file, pointer: '', message: `file is larger than ${MAX_JSON_FILE_BYTES} bytes; refusing to parse it` }] };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // JSON.parse does not always say where; a strict jsonc-parser pass finds the offset.
    const errors: ParseError[] = [];
    if (jsonNestingTooDeep(text) === undefined) parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
    const first = errors[0];
    if (!first) return { problems: [{ file, pointer: '', message: `not valid JSON: ${cut(oneLine((err as Error).message).replace(/, "[\s\S]*$/, ''), 120)}` }] };
    const { line, column } = lineLocator(text)(first.offset);
    return { problems: [{ file, pointer: '', message: `not valid JSON at line ${line}, column ${column}: ${printParseErrorCode(first.error)}` }] };
  }
  const deep = jsonNestingTooDeep(text);
  if (deep !== undefined || nestingDepthExceeds(value)) return { problems: [tooDeep(file, deep)] };
  const duplicate = duplicateJsonKey(text);
  if (duplicate) {
    return { problems: [{ file, pointer: '', message: `the key ${JSON.stringify(cut(duplicate.key))} appears twice in one object (line ${duplicate.line}); JSON readers keep only one of them, so write each key once` }] };
  }
  return { value, problems: [] };
}

/** The line where JSON text nests `[` and `{` deeper than the limit (strings skipped), or undefined. */
function jsonNestingTooDeep(text: string, limit = MAX_NESTING_DEPTH): number | undefined {
  let depth = 0;
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) line++;
    else if (c === 34) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34 || d === 10) break;
      }
    } else if (c === 91 || c === 123) {
      if (++depth > limit) return line;
    } else if ((c === 93 || c === 125) && depth > 0) depth--;
  }
  return undefined;
}
