/**
 * Where a published store is cached in the state directory, and what is recorded of it.
 *
 * The cache IS a catalog folder: `<state>/store/<key>/current` is a symbolic link to a
 * generation folder (`gen-…/index.json` + `services/<id>/…`) that the one local loader
 * (state/catalog.ts loadCatalog) reads exactly as it reads a folder the admin keeps. A refresh
 * builds a new generation beside it, has that same loader check it, and only then swings the
 * link (a rename, atomic): a reader sees the old set or the new one, never a mix, and nothing
 * fetched reaches the loader by any other road. `meta.json` records the validators (ETag,
 * Last-Modified) of every file of the current generation, when it was fetched, and the last
 * failure, if the last refresh failed.
 */
import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { readJsonFile, writeFileAtomic } from '../atomic-write.js';
import type { Validators } from './http.js';

export const STORE_FOLDER = 'store';
const CURRENT = 'current';
const META_FILE = 'meta.json';

export interface StoreFailure {
  /** The URL the failure is about (the index, a package file). */
  url: string;
  message: string;
  /** When a refresh first failed this way, and when it last did. */
  since: string;
}

export interface StoreMeta {
  formatVersion: 1;
  url: string;
  /** The generation folder `current` points at, and when its files were fetched. */
  generation?: string;
  fetchedAt?: string;
  /** Validators of the current generation's files, by path below the base URL. */
  files: Record<string, Validators>;
  /** Whether the index in use was signed, and by which key (step 5 of issue 22). */
  signedBy?: string;
  lastFailure?: StoreFailure;
}

/** The cache folder of one store URL (its base, normalised to end in /). */
export function storeCacheDir(stateRoot: string, baseUrl: string): string {
  const key = createHash('sha256').update(baseUrl).digest('hex').slice(0, 16);
  return path.join(stateRoot, STORE_FOLDER, key);
}

/** The catalog folder the loader reads for a store URL (a link to the current generation). */
export function storeCatalogDir(stateRoot: string, baseUrl: string): string {
  return path.join(storeCacheDir(stateRoot, baseUrl), CURRENT);
}

export async function readStoreMeta(cacheDir: string, baseUrl: string): Promise<StoreMeta> {
  const meta = await readJsonFile<StoreMeta | undefined>(path.join(cacheDir, META_FILE), undefined);
  if (!meta || meta.formatVersion !== 1 || meta.url !== baseUrl || typeof meta.files !== 'object' || meta.files === null) return { formatVersion: 1, url: baseUrl, files: {} };
  return meta;
}

export async function writeStoreMeta(cacheDir: string, meta: StoreMeta): Promise<void> {
  await writeFileAtomic(path.join(cacheDir, META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
}

/** The generation `current` points at, when it is there. */
export async function currentGeneration(cacheDir: string): Promise<string | undefined> {
  try {
    const target = await fs.readlink(path.join(cacheDir, CURRENT));
    if (target.includes('/')) return undefined;
    await fs.access(path.join(cacheDir, target, 'index.json'));
    return target;
  } catch {
    return undefined;
  }
}

/** Point `current` at `generation` (a rename of a fresh link over the old one: atomic). */
export async function switchGeneration(cacheDir: string, generation: string): Promise<void> {
  const tmp = path.join(cacheDir, `.${CURRENT}.${process.pid}.${Date.now()}.tmp`);
  await fs.symlink(generation, tmp);
  try {
    await fs.rename(tmp, path.join(cacheDir, CURRENT));
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  const dir = await fs.open(cacheDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/** Remove generation folders other than `keep` (the current one and the one before it, which a reader may still be in). */
export async function pruneGenerations(cacheDir: string, keep: readonly string[]): Promise<void> {
  for (const name of await fs.readdir(cacheDir)) {
    if ((name.startsWith('gen-') || name.startsWith('.gen-')) && !keep.includes(name)) await fs.rm(path.join(cacheDir, name), { recursive: true, force: true });
  }
}

/** Whole minutes, hours or days since `since`, for a person. Pure. */
function ageText(since: string, now: Date): string {
  const seconds = Math.max(0, Math.floor((now.getTime() - Date.parse(since)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

/**
 * One sentence on a published store's cache: where the catalog in use comes from, when it was
 * fetched (with `now`, how long ago), and why the last refresh failed (with the URL), for the
 * Cell's status (no age: a stored sentence would go stale) and `pic catalog`. Pure.
 */
export function storeStateLine(meta: Pick<StoreMeta, 'url' | 'fetchedAt' | 'lastFailure' | 'signedBy'>, now?: Date): string {
  const age = meta.fetchedAt && now ? ` (${ageText(meta.fetchedAt, now)} ago)` : '';
  const signed = meta.signedBy ? `, signed by ${meta.signedBy}` : ', unsigned';
  const cache = meta.fetchedAt ? `the catalog of ${meta.url} in use was fetched ${meta.fetchedAt}${age}${signed}` : `no catalog of ${meta.url} is cached yet`;
  if (!meta.lastFailure) return cache;
  const f = meta.lastFailure;
  return `${cache}; refreshing it fails since ${f.since}: ${f.url}: ${f.message}`;
}

/** The cache's record read synchronously (the catalog's loader is synchronous), or undefined. */
export function readStoreMetaSync(cacheDir: string, baseUrl: string): StoreMeta | undefined {
  try {
    const meta = JSON.parse(readFileSync(path.join(cacheDir, META_FILE), 'utf8')) as StoreMeta;
    return meta.formatVersion === 1 && meta.url === baseUrl ? meta : undefined;
  } catch {
    return undefined;
  }
}
