/**
 * Pure rules about tar entries: their names, what an archive may contain to be restored at all
 * (nothing that writes outside its volume), and how two trees are compared.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { compareText } from '../../crds/values.js';
import type { FileEntry } from './types.js';

/** A tar header as tar-stream reports it (the fields pic reads). */
export interface TarHeader {
  name: string;
  type?: string | null;
  size?: number | null;
  mode?: number | null;
  uid?: number | null;
  gid?: number | null;
  linkname?: string | null;
}

/** `./a/b/` → `a/b`; `./` and `.` → `.`. Absolute names and `..` are left for checkEntry to refuse. */
export function entryPath(name: string): string {
  let p = name;
  while (p.startsWith('./')) p = p.slice(2);
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p === '' || p === '.' ? '.' : p;
}

const TYPES: Record<string, FileEntry['type']> = {
  file: 'file',
  'contiguous-file': 'file',
  directory: 'directory',
  symlink: 'symlink',
  link: 'link',
  fifo: 'fifo',
};

/**
 * Why an entry may not be restored, or undefined when it may. `symlinks` holds the paths of the
 * symlinks met so far in the archive: nothing may be written through one.
 */
export function checkEntry(header: TarHeader, symlinks: ReadonlySet<string>): string | undefined {
  const raw = header.name;
  const name = entryPath(raw);
  const type = header.type ?? 'file';
  if (raw.startsWith('/')) return `"${raw}" is an absolute name`;
  if (name.includes('\0')) return `"${raw}" holds a NUL byte`;
  const segments = name.split('/');
  if (segments.includes('..')) return `"${raw}" climbs out with ..`;
  if (type === 'character-device' || type === 'block-device') return `"${raw}" is a device file (${type})`;
  if (!(type in TYPES)) return `"${raw}" has the tar type ${type}, which pic does not restore`;
  for (let i = 1; i < segments.length; i++) {
    const ancestor = segments.slice(0, i).join('/');
    if (symlinks.has(ancestor)) return `"${raw}" would be written through the symlink "${ancestor}"`;
  }
  if (type === 'symlink' || type === 'link') {
    const target = header.linkname ?? '';
    if (target === '') return `"${raw}" is a link without a target`;
    if (target.startsWith('/')) return `"${raw}" links to the absolute path "${target}"`;
    if (type === 'link') {
      const t = entryPath(target);
      if (t.split('/').includes('..')) return `"${raw}" is a hard link to "${target}", outside the archive`;
      const tSegments = t.split('/');
      for (let i = 1; i <= tSegments.length; i++) {
        if (symlinks.has(tSegments.slice(0, i).join('/'))) return `"${raw}" is a hard link through the symlink "${tSegments.slice(0, i).join('/')}"`;
      }
      return undefined;
    }
    // Only `..` at the start of a target is followed lexically: `a/l/..` would depend on what a/l is.
    const normal = path.posix.normalize(target).replace(/\/$/, '');
    const trimmed = target.replace(/\/+$/, '').replace(/^(\.\/)+/, '');
    if (normal !== trimmed && !(normal === '.' && (trimmed === '' || trimmed === '.'))) return `"${raw}" links to "${target}", which is not a plain path`;
    const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(name), target));
    if (resolved === '..' || resolved.startsWith('../')) return `"${raw}" links to "${target}", outside its volume`;
  }
  return undefined;
}

/** The record of one entry (the content hash is filled in by whoever reads the content). */
export function toFileEntry(header: TarHeader): FileEntry {
  const type = TYPES[header.type ?? 'file'] ?? 'file';
  const entry: FileEntry = {
    path: entryPath(header.name),
    type,
    size: type === 'file' ? (header.size ?? 0) : 0,
    mode: (header.mode ?? 0) & 0o7777,
    uid: header.uid ?? 0,
    gid: header.gid ?? 0,
  };
  if ((type === 'symlink' || type === 'link') && header.linkname) entry.target = type === 'link' ? entryPath(header.linkname) : header.linkname;
  return entry;
}

/** One canonical line per entry: the same tree gives the same lines, whatever order tar used. */
export function entryLine(e: FileEntry): string {
  return JSON.stringify([e.path, e.type, e.size, e.mode, e.uid, e.gid, e.target ?? null, e.sha256 ?? null]);
}

export function sortEntries(entries: readonly FileEntry[]): FileEntry[] {
  return [...entries].sort((a, b) => compareText(a.path, b.path));
}

/**
 * The digest a tree is compared by. The root directory's own record is left out: it is the volume's
 * mount point, whose mode and owner belong to the volume rather than to the data.
 */
export function entryListDigest(entries: readonly FileEntry[]): string {
  const hash = createHash('sha256');
  for (const e of sortEntries(entries)) if (e.path !== '.') hash.update(`${entryLine(e)}\n`);
  return hash.digest('hex');
}

/** What differs between two trees, as sentences naming paths; empty when equal. At most `limit`. */
export function compareEntries(archived: readonly FileEntry[], restored: readonly FileEntry[], limit = 5): string[] {
  const a = new Map(archived.filter((e) => e.path !== '.').map((e) => [e.path, e]));
  const b = new Map(restored.filter((e) => e.path !== '.').map((e) => [e.path, e]));
  const out: string[] = [];
  for (const p of [...new Set([...a.keys(), ...b.keys()])].sort(compareText)) {
    if (out.length >= limit) break;
    const x = a.get(p);
    const y = b.get(p);
    if (!y) out.push(`${p}: archived but not restored`);
    else if (!x) out.push(`${p}: restored but not in the archive's record`);
    else if (entryLine(x) !== entryLine(y)) {
      const fields = (['type', 'size', 'mode', 'uid', 'gid', 'target', 'sha256'] as const).filter((f) => x[f] !== y[f]);
      out.push(`${p}: ${fields.map((f) => `${f} ${String(x[f])} → ${String(y[f])}`).join(', ')}`);
    }
  }
  return out;
}

/** Regular files and the sum of their sizes. */
export function countFiles(entries: readonly FileEntry[]): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of entries) if (e.type === 'file') {
    files++;
    bytes += e.size;
  }
  return { files, bytes };
}
