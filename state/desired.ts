import { promises as fs } from 'node:fs';
import path from 'node:path';
import { applyDocumentDefaults, validateDocument } from '../crds/validate-documents.js';
import type {
  CellDocument,
  CellObject,
  ConnectionDocument,
  PeerAccountDocument,
  Problem,
  ServiceInstallDocument,
  Sourced,
} from '../crds/types.js';
import { claimedKey } from './document-keys.js';
import type { FileMemo } from './file-memo.js';
import { readYamlFile } from './yaml-documents.js';

/** The folders of a cell directory that hold documents, besides cell.yaml at its top. */
export const DOCUMENT_FOLDERS = ['services', 'peers', 'connections'] as const;
export const CELL_FILE = 'cell.yaml';

/** Documents of a cell folder that passed their own schema, grouped by kind. */
export interface DesiredDocuments {
  dir: string;
  cells: Sourced<CellDocument>[];
  services: Sourced<ServiceInstallDocument>[];
  peers: Sourced<PeerAccountDocument>[];
  connections: Sourced<ConnectionDocument>[];
  /** Documents refused by their schema; `key` ("Kind/name") when the document says who it is. */
  rejected: { key?: string; file: string; problems: Problem[] }[];
  /** Problems of files as a whole: unreadable, not YAML, too large. */
  problems: Problem[];
  /**
   * Files that could not be read whole: unreadable, too large, not YAML in any of their documents,
   * or holding no document at all. What such a file declared before is not known to be gone, so
   * the operator holds it (state/hold.ts) instead of taking it for a deletion.
   */
  unreadable: { file: string; problems: Problem[] }[];
  /** Facts about files that are not errors: a file that holds no document, for example. */
  notices: Problem[];
  /** Every file read, for change detection (relative path → content signature). */
  files: string[];
}

/**
 * Editors and Git write files in several steps; these names are their scratch files, never
 * documents: vim swap files, emacs lock and backup files, `.tmp`/`.part` files, hidden files.
 */
export function isDocumentFileName(name: string): boolean {
  if (name.startsWith('.') || name.startsWith('#') || name.endsWith('~')) return false;
  return /\.(ya?ml)$/i.test(name);
}

async function listDocumentFiles(dir: string): Promise<{ files: string[]; problems: Problem[]; unreadable: DesiredDocuments['unreadable'] }> {
  const files: string[] = [];
  const problems: Problem[] = [];
  const unreadable: DesiredDocuments['unreadable'] = [];
  const cellFile = path.join(dir, CELL_FILE);
  try {
    await fs.access(cellFile);
    files.push(cellFile);
  } catch {
    problems.push({ file: cellFile, pointer: '', message: `missing: a cell folder needs ${CELL_FILE} with exactly one Cell document` });
  }
  for (const folder of DOCUMENT_FOLDERS) {
    const sub = path.join(dir, folder);
    let entries;
    try {
      entries = await fs.readdir(sub, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      const problem = { file: sub, pointer: '', message: `cannot list: ${(err as Error).message}` };
      problems.push(problem);
      unreadable.push({ file: sub, problems: [problem] });
      continue;
    }
    for (const e of entries) {
      if ((e.isFile() || e.isSymbolicLink()) && isDocumentFileName(e.name)) files.push(path.join(sub, e.name));
    }
  }
  files.sort();
  return { files, problems, unreadable };
}

/**
 * Read every document of a cell folder and check each against its kind's schema. With `memo`
 * (the operator's, kept from one reading to the next), a file that did not change is not read again.
 */
export async function loadCellFolder(dir: string, memo?: FileMemo<CheckedFile>): Promise<DesiredDocuments> {
  const listed = await listDocumentFiles(dir);
  const docs = collectDocuments(dir, listed.files, listed.problems, memo);
  docs.unreadable.push(...listed.unreadable);
  return docs;
}

/** Check the documents of YAML files that may not form a cell folder (pic validate FILE). */
export async function loadDocumentFiles(files: string[]): Promise<DesiredDocuments> {
  return collectDocuments('', files, []);
}

/** What one file holds, each document checked against its kind's schema (defaults applied). */
export interface CheckedFile {
  problems: Problem[];
  /** Problems of documents that were accepted all the same (a Cell read as failing closed). */
  warnings: Problem[];
  notices: Problem[];
  documents: ({ valid: Sourced<CellObject> } | { rejected: DesiredDocuments['rejected'][number] })[];
}

/** A file parsed and checked; from `memo` while the file does not change (state/file-memo.ts). */
function checkFile(file: string, memo: FileMemo<CheckedFile> | undefined): CheckedFile {
  return memo ? memo.get([file], '', () => readCheckedFile(file)) : readCheckedFile(file);
}

function readCheckedFile(file: string): CheckedFile {
  const parsed = readYamlFile(file);
  const out: CheckedFile = { problems: parsed.problems, warnings: [], notices: parsed.notices, documents: [] };
  for (const document of parsed.documents) {
    const docProblems = validateDocument(document.value, document.label);
    const closed = docProblems.length > 0 ? failClosedCell(document.value, docProblems) : undefined;
    if (closed && validateDocument(closed, document.label).length === 0) {
      // ADR 001: a verification setting that cannot be read means enforce; the rest of the Cell holds.
      for (const p of docProblems) out.warnings.push({ ...p, message: `${p.message}; image verification is taken as "enforce" until this is fixed` });
      out.documents.push({ valid: { file: document.label, index: document.index, doc: applyDocumentDefaults(closed) as CellObject } });
      continue;
    }
    if (docProblems.length > 0) {
      const key = claimedKey(document.value);
      out.documents.push({ rejected: { ...(key ? { key } : {}), file: document.label, problems: docProblems } });
      continue;
    }
    const doc = applyDocumentDefaults(document.value) as CellObject;
    out.documents.push({ valid: { file: document.label, index: document.index, doc } });
  }
  return out;
}

/**
 * A Cell whose only problems are in spec.imageVerification, with that section replaced by
 * `enforce` and whatever keys it names that can be read; undefined for any other document.
 */
function failClosedCell(value: unknown, problems: Problem[]): unknown {
  if (!problems.every((p) => p.pointer === '/spec/imageVerification' || p.pointer.startsWith('/spec/imageVerification/'))) return undefined;
  const v = value as { kind?: unknown; spec?: { imageVerification?: unknown } };
  if (v?.kind !== 'Cell' || typeof v.spec !== 'object' || v.spec === null) return undefined;
  const section = v.spec.imageVerification as { publicKey?: unknown; publicKeys?: unknown } | undefined;
  const keys: Record<string, unknown> = {};
  if (typeof section === 'object' && section !== null) {
    if (typeof section.publicKey === 'string') keys.publicKey = section.publicKey;
    if (Array.isArray(section.publicKeys) && section.publicKeys.every((k) => typeof k === 'string')) keys.publicKeys = section.publicKeys;
  }
  return { ...v, spec: { ...v.spec, imageVerification: { ...keys, mode: 'enforce' } } };
}

function collectDocuments(dir: string, files: string[], problems: Problem[], memo?: FileMemo<CheckedFile>): DesiredDocuments {
  const out: DesiredDocuments = { dir, cells: [], services: [], peers: [], connections: [], rejected: [], problems: [...problems], notices: [], unreadable: [], files };
  for (const file of files) {
    const checked = checkFile(file, memo);
    out.problems.push(...checked.problems, ...checked.warnings);
    out.notices.push(...checked.notices);
    if (checked.problems.length > 0) out.unreadable.push({ file, problems: checked.problems });
    else if (checked.documents.length === 0) {
      out.unreadable.push({ file, problems: [{ file, pointer: '', message: 'holds no document; to uninstall what it declared, delete the file' }] });
    }
    for (const document of checked.documents) {
      if ('rejected' in document) {
        out.rejected.push(document.rejected);
        continue;
      }
      const sourced = document.valid;
      switch (sourced.doc.kind) {
        case 'Cell':
          out.cells.push(sourced as Sourced<CellDocument>);
          break;
        case 'ServiceInstall':
          out.services.push(sourced as Sourced<ServiceInstallDocument>);
          break;
        case 'PeerAccount':
          out.peers.push(sourced as Sourced<PeerAccountDocument>);
          break;
        case 'Connection':
          out.connections.push(sourced as Sourced<ConnectionDocument>);
          break;
      }
    }
  }
  return out;
}
