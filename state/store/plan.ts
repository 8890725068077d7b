/**
 * The pure decisions of a store refresh: whether an index body is an index at all, which files
 * each of its entries needs, and what a refresh does to the cache. No I/O; refresh.ts does it.
 */
import { storeFileUrl } from '../../crds/store-url.js';

/** A service as the fetched index lists it: only what the fetch needs; the loader checks the rest. */
export interface FetchEntry {
  id: string;
  /** A package archive (`<id>-<version>.zip`) below the base URL, instead of the loose files. */
  package?: string;
  /**
   * The sha256 (hex) of the package's files, by name (`manifest.json`, `compose-template.yml`,
   * `install.sh`), or of its archive: what a signed index vouches for.
   */
  sha256?: string | Record<string, string>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

const SERVICE_ID = /^[a-z][a-z0-9-]{0,30}$/;

/**
 * The entries of a fetched index, or why the body is not one (an HTML page answered with 200, a
 * truncated or garbled JSON text, not an array, an entry without a usable id or package path).
 */
export function readFetchedIndex(body: Buffer, contentType: string | undefined, base: URL): { entries?: FetchEntry[]; problem?: string } {
  const text = body.toString('utf8');
  const start = text.trimStart().slice(0, 1);
  if ((contentType !== undefined && /html/i.test(contentType)) || start === '<') {
    return { problem: 'answered an HTML page, not the JSON index (is the URL the raw base of the store, the folder that holds index.json?)' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { problem: `is not valid JSON (truncated or garbled): ${(err as Error).message}` };
  }
  if (!Array.isArray(value)) return { problem: 'is not a JSON array of {id, name, description, version, author}' };
  const entries: FetchEntry[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of value.entries()) {
    const entry = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
    if (typeof entry.id !== 'string' || !SERVICE_ID.test(entry.id)) return { problem: `entry ${i} has no valid id (lowercase letters, digits and dashes, starting with a letter)` };
    if (seen.has(entry.id)) return { problem: `lists service ${JSON.stringify(entry.id)} twice` };
    seen.add(entry.id);
    const hashes = entry.sha256;
    const hashProblem = `entry ${JSON.stringify(entry.id)} has a sha256 that is not ${entry.package !== undefined ? 'the archive\'s sha256 (64 lowercase hex digits)' : 'a map of its file names (manifest.json, compose-template.yml, install.sh) to sha256 hex digests'}`;
    if (hashes !== undefined) {
      const valid = entry.package !== undefined
        ? typeof hashes === 'string' && SHA256_HEX.test(hashes)
        : typeof hashes === 'object' && hashes !== null && !Array.isArray(hashes) && Object.entries(hashes).every(([name, h]) => ['manifest.json', 'compose-template.yml', 'install.sh'].includes(name) && typeof h === 'string' && SHA256_HEX.test(h));
      if (!valid) return { problem: hashProblem };
    }
    const sha256 = hashes !== undefined ? { sha256: hashes as string | Record<string, string> } : {};
    if (entry.package !== undefined) {
      if (typeof entry.package !== 'string' || !entry.package.endsWith('.zip') || !storeFileUrl(base, entry.package)) {
        return { problem: `entry ${JSON.stringify(entry.id)} names a package ${JSON.stringify(typeof entry.package === 'string' ? entry.package.slice(0, 200) : entry.package)} that is not a .zip path below the store's URL` };
      }
      entries.push({ id: entry.id, package: entry.package, ...sha256 });
    } else {
      entries.push({ id: entry.id, ...sha256 });
    }
  }
  return { entries };
}

/** One file of a package below the base URL, with whether a 404 is allowed (install.sh). */
export interface PackageFile {
  /** Below the base URL: `services/<id>/manifest.json`, or the entry's `package`. */
  remote: string;
  /** Below the cache's catalog folder. For an archive: the folder its files go to. */
  local: string;
  optional: boolean;
  archive: boolean;
}

/** The files to fetch for an entry. */
export function packageFiles(entry: FetchEntry): PackageFile[] {
  const folder = `services/${entry.id}`;
  if (entry.package) return [{ remote: entry.package, local: folder, optional: false, archive: true }];
  return [
    { remote: `${folder}/manifest.json`, local: `${folder}/manifest.json`, optional: false, archive: false },
    { remote: `${folder}/compose-template.yml`, local: `${folder}/compose-template.yml`, optional: false, archive: false },
    { remote: `${folder}/install.sh`, local: `${folder}/install.sh`, optional: true, archive: false },
  ];
}

/** What a refresh found, as far as the decision needs it. */
export type RefreshObservation =
  | { index: 'failed'; problem: string }
  | { index: 'not-modified' }
  | { index: 'fetched'; problem?: string };

/** What a refresh does to the cache. */
export type RefreshDecision =
  /** Nothing to write: the store answered that the cached index is current. */
  | { action: 'unchanged' }
  /** The fetched set replaces the cached one (it is complete and passed every check). */
  | { action: 'replace' }
  /** The cache stays as it is (or stays empty); the failure is recorded. */
  | { action: 'keep'; problem: string };

/**
 * The rule that makes a refresh never worse than the cache: only a complete set that passed every
 * check replaces it; a failure, a garbled answer or a refused package keeps it. A 304 without a
 * cache to confirm cannot happen (no validators are sent then) and is refused as a fault.
 */
export function decideRefresh(observed: RefreshObservation, hasCache: boolean): RefreshDecision {
  if (observed.index === 'failed') return { action: 'keep', problem: observed.problem };
  if (observed.index === 'not-modified') return hasCache ? { action: 'unchanged' } : { action: 'keep', problem: 'answered 304 Not Modified, but pic has no cached copy to keep' };
  if (observed.problem !== undefined) return { action: 'keep', problem: observed.problem };
  return { action: 'replace' };
}

/** The sha256 a signed index lists for one package file (or archive), if any. */
export function listedHash(entry: FetchEntry, file: PackageFile): string | undefined {
  if (file.archive) return typeof entry.sha256 === 'string' ? entry.sha256 : undefined;
  if (typeof entry.sha256 !== 'object') return undefined;
  return entry.sha256[file.remote.slice(file.remote.lastIndexOf('/') + 1)];
}

/**
 * A signature over the index alone would leave the packages open to tampering: a signed index
 * must list the sha256 of every package's required files (or of its archive). Pure.
 */
export function unlistedHashes(entries: readonly FetchEntry[]): string | undefined {
  for (const entry of entries) {
    for (const file of packageFiles(entry)) {
      if (!file.optional && listedHash(entry, file) === undefined) {
        return `is signed but entry ${JSON.stringify(entry.id)} lists no sha256 for ${file.archive ? 'its archive' : file.remote.slice(file.remote.lastIndexOf('/') + 1)}; a signed store lists the sha256 of every package file (pic catalog sign writes them)`;
      }
    }
  }
  return undefined;
}
