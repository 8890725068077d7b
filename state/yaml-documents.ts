import { promises as fs } from 'node:fs';
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
  const nonEmpty = list.filter((d) => d.contents !== null || d.errors.length > 0);
  if (nonEmpty.length > MAX_DOCUMENTS_PER_FILE) {
    return { documents: [], problems: [{ file, pointer: '', message: `more than ${MAX_DOCUMENTS_PER_FILE} documents in one file` }] };
  }
  const documents: ParsedDocument[] = [];
  nonEmpty.forEach((doc, index) => {
    const label = documentLabel(file, index, nonEmpty.length);
    if (doc.errors.length > 0) {
      for (const e of doc.errors) problems.push({ file: label, pointer: '', message: `not valid YAML: ${oneLine(e.message)}` });
      return;
    }
    try {
      documents.push({ label, index, value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) });
    } catch (err) {
      problems.push({ file: label, pointer: '', message: `cannot be read: ${oneLine((err as Error).message)}` });
    }
  });
  return { documents, problems };
}

function oneLine(message: string): string {
  const first = message.split('\n')[0] ?? message;
  return first.trim();
}

/** Read a YAML file from disk, refusing oversize files before reading them whole. */
export async function readYamlFile(file: string, label = file): Promise<ParsedFile> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) return { documents: [], problems: [{ file: label, pointer: '', message: 'not a regular file' }] };
    if (stat.size > MAX_DOCUMENT_FILE_BYTES) {
      return { documents: [], problems: [{ file: label, pointer: '', message: `file is ${stat.size} bytes, more than the ${MAX_DOCUMENT_FILE_BYTES} allowed` }] };
    }
    return parseYamlDocuments(await fs.readFile(file, 'utf8'), label);
  } catch (err) {
    return { documents: [], problems: [{ file: label, pointer: '', message: `cannot read: ${(err as Error).message}` }] };
  }
}

/** Parse JSON text, reporting a syntax error with its line and column. */
export function parseJsonText(text: string, file: string): { value?: unknown; problems: Problem[] } {
  try {
    return { value: JSON.parse(text), problems: [] };
  } catch (err) {
    const message = (err as Error).message;
    const match = /position (\d+)/.exec(message);
    let where = '';
    if (match) {
      const pos = Number(match[1]);
      const before = text.slice(0, pos);
      const line = before.split('\n').length;
      const column = pos - before.lastIndexOf('\n');
      where = ` at line ${line}, column ${column}`;
    }
    return { problems: [{ file, pointer: '', message: `not valid JSON${where}: ${message}` }] };
  }
}
