import { readFileSync, statSync } from 'node:fs';
import { parse as parseJsonc, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { parseAllDocuments } from 'yaml';
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
 * Parse YAML text that may hold several documents. Never throws: syntax errors, duplicate keys,
 * alias bombs and oversize input come back as problems naming the file and the line.
 */
export function parseYamlDocuments(text: string, file: string): ParsedFile {
  const problems: Problem[] = [];
  if (Buffer.byteLength(text, 'utf8') > MAX_DOCUMENT_FILE_BYTES) {
    return { documents: [], problems: [{ file, pointer: '', message: `file is larger than ${MAX_DOCUMENT_FILE_BYTES} bytes; refusing to parse it` }] };
  }
  const plain = plainDocumentValue(text);
  if (plain !== undefined) return { documents: [{ label: file, index: 0, value: plain }], problems: [] };
  let docs;
  try {
    docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false, strict: true });
    // Line and column in messages cost a line counter for every file; only a failed one needs them.
    if (docs.some((doc) => doc.errors.length > 0)) docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true, strict: true });
  } catch (err) {
    return { documents: [], problems: [{ file, pointer: '', message: `not valid YAML: ${(err as Error).message}` }] };
  }
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length > MAX_DOCUMENTS_PER_FILE) {
    return { documents: [], problems: [{ file, pointer: '', message: `more than ${MAX_DOCUMENTS_PER_FILE} documents in one file` }] };
  }
  // Convert first, then label: an empty document (a trailing `---`, a file of comments) is no document.
  const converted: ({ value: unknown } | { problems: string[] })[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0) {
      converted.push({ problems: doc.errors.map((e) => `not valid YAML: ${oneLine(e.message)}`) });
      continue;
    }
    try {
      const value: unknown = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
      if (value !== null && value !== undefined) converted.push({ value });
    } catch (err) {
      converted.push({ problems: [`cannot be read: ${oneLine((err as Error).message)}`] });
    }
  }
  const documents: ParsedDocument[] = [];
  converted.forEach((entry, index) => {
    const label = documentLabel(file, index, converted.length);
    if ('problems' in entry) for (const message of entry.problems) problems.push({ file: label, pointer: '', message });
    else documents.push({ label, index, value: entry.value });
  });
  return { documents, problems };
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
    if (!stat.isFile()) return { documents: [], problems: [{ file: label, pointer: '', message: 'not a regular file' }] };
    if (stat.size > MAX_DOCUMENT_FILE_BYTES) {
      return { documents: [], problems: [{ file: label, pointer: '', message: `file is ${stat.size} bytes, more than the ${MAX_DOCUMENT_FILE_BYTES} allowed` }] };
    }
    return parseYamlDocuments(readFileSync(file, 'utf8'), label);
  } catch (err) {
    return { documents: [], problems: [{ file: label, pointer: '', message: `cannot read: ${(err as Error).message}` }] };
  }
}

/** Parse JSON text, reporting a syntax error with its line and column. */
export function parseJsonText(text: string, file: string): { value?: unknown; problems: Problem[] } {
  try {
    return { value: JSON.parse(text), problems: [] };
  } catch (err) {
    // JSON.parse does not always say where; a strict jsonc-parser pass finds the offset.
    const errors: ParseError[] = [];
    parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
    const first = errors[0];
    if (!first) return { problems: [{ file, pointer: '', message: `not valid JSON: ${oneLine((err as Error).message)}` }] };
    const before = text.slice(0, first.offset);
    const line = before.split('\n').length;
    const column = first.offset - before.lastIndexOf('\n');
    return { problems: [{ file, pointer: '', message: `not valid JSON at line ${line}, column ${column}: ${printParseErrorCode(first.error)}` }] };
  }
}
