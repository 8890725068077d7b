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

/**
 * Parse YAML text that may hold several documents. Never throws: syntax errors, duplicate keys,
 * alias bombs and oversize input come back as problems naming the file and the line.
 */
export function parseYamlDocuments(text: string, file: string): ParsedFile {
  const problems: Problem[] = [];
  if (Buffer.byteLength(text, 'utf8') > MAX_DOCUMENT_FILE_BYTES) {
    return { documents: [], problems: [{ file, pointer: '', message: `file is larger than ${MAX_DOCUMENT_FILE_BYTES} bytes; refusing to parse it` }] };
  }
  let docs;
  try {
    docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true, strict: true });
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
export async function readYamlFile(file: string, label = file): Promise<ParsedFile> {
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
