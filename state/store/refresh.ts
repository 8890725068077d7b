/**
 * Refresh the cache of a published store (cache.ts): observe (a conditional GET of index.json,
 * then of every package file when the index changed), decide (plan.ts decideRefresh: only a
 * complete set that the local loader accepts replaces the cache), apply (swing `current`, record
 * the validators; or record the failure, the cached set untouched).
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { storeFileUrl } from '../../crds/store-url.js';
import type { Problem } from '../../crds/types.js';
import type { ManifestPolicy } from '../../crds/validate-manifest.js';
import { writeFileAtomic } from '../atomic-write.js';
import { loadCatalog } from '../catalog.js';
import { currentGeneration, pruneGenerations, readStoreMeta, storeCacheDir, storeCatalogDir, switchGeneration, writeStoreMeta, type StoreFailure, type StoreMeta } from './cache.js';
import { fetchStoreFile, StoreFetchError, type FetchCounters, type FetchedFile, type Validators } from './http.js';
import { decideRefresh, listedHash, packageFiles, readFetchedIndex, unlistedHashes, type FetchEntry, type PackageFile, type RefreshObservation } from './plan.js';
import { readPackageZip } from './zip.js';

export interface StoreLimits {
  /** index.json and each package file (the local loader's limit for one file, too). */
  maxFileBytes: number;
  /** A package archive. */
  maxArchiveBytes: number;
  /** Services in an index. */
  maxServices: number;
  timeoutMs: number;
  /** Package requests in flight at once. */
  concurrency: number;
}

export const DEFAULT_STORE_LIMITS: StoreLimits = { maxFileBytes: 1024 * 1024, maxArchiveBytes: 4 * 1024 * 1024, maxServices: 2000, timeoutMs: 15_000, concurrency: 6 };

/** A check of the index against a detached signature or a bundle: by which key, or why not. */
export type IndexSignatureCheck = { ok: true; keyId: string; keyFile: string } | { ok: false; message: string };

/** What the Cell asks of the index's signature. */
export interface SignaturePolicy {
  /** spec.store.requireSignature: an unsigned index is refused. */
  require: boolean;
  /** Checks with the Cell's image keys; undefined when the Cell names none. */
  verify?: (index: Buffer, signature: { kind: 'sig' | 'bundle'; bytes: Buffer }) => IndexSignatureCheck;
}

export const SIGNATURE_FILE = 'index.json.sig';
export const BUNDLE_FILE = 'index.json.sigstore.json';

export interface RefreshOptions {
  stateRoot: string;
  /** The store's base URL as crds/store-url.ts checkStoreUrl returned it. */
  url: URL;
  /** The policy every package is checked with, as the cell checks a local catalog. */
  policy: ManifestPolicy;
  clock?: () => Date;
  limits?: Partial<StoreLimits>;
  signature?: SignaturePolicy;
}

export interface RefreshReport {
  url: string;
  /** updated: a new set is in use; unchanged: the store said 304; failed: the cache (if any) stays. */
  outcome: 'updated' | 'unchanged' | 'failed';
  failure?: StoreFailure;
  /** The catalog folder the loader reads (it exists only once a refresh succeeded). */
  catalogDir: string;
  /** When the set in use was fetched; undefined without a cache. */
  fetchedAt?: string;
  /** The key file that signed the index in use; undefined when it was not signed (or not checked). */
  signedBy?: string;
  requests: number;
  bytes: number;
  /** Files, links and records written into the state directory. */
  writes: number;
}

interface Fetched {
  file: PackageFile;
  /** Bytes to write below the generation folder, by path below it. */
  contents: Map<string, Buffer>;
  validators?: Validators;
}

export async function refreshStore(options: RefreshOptions): Promise<RefreshReport> {
  const limits = { ...DEFAULT_STORE_LIMITS, ...options.limits };
  const clock = options.clock ?? (() => new Date());
  const base = options.url;
  const cacheDir = storeCacheDir(options.stateRoot, base.href);
  const catalogDir = storeCatalogDir(options.stateRoot, base.href);
  await fs.mkdir(cacheDir, { recursive: true, mode: 0o700 });
  const meta = await readStoreMeta(cacheDir, base.href);
  const generation = await currentGeneration(cacheDir);
  const counters: FetchCounters = { requests: 0, bytes: 0 };
  let writes = 0;
  const report = (outcome: RefreshReport['outcome'], failure?: StoreFailure, fetchedAt = generation ? meta.fetchedAt : undefined, signedBy = generation ? meta.signedBy : undefined): RefreshReport => ({
    url: base.href,
    outcome,
    ...(failure ? { failure } : {}),
    catalogDir,
    ...(fetchedAt ? { fetchedAt } : {}),
    ...(signedBy ? { signedBy } : {}),
    requests: counters.requests,
    bytes: counters.bytes,
    writes,
  });
  const recordFailure = async (url: string, message: string): Promise<RefreshReport> => {
    const now = clock().toISOString();
    const same = meta.lastFailure && meta.lastFailure.url === url && meta.lastFailure.message === message;
    const failure: StoreFailure = { url, message, since: same ? meta.lastFailure!.since : now };
    if (!same) {
      await writeStoreMeta(cacheDir, { ...meta, lastFailure: failure });
      writes++;
    }
    return report('failed', failure);
  };

  // Observe: the index, conditionally when a cached set is there to fall back on.
  const indexUrl = new URL('index.json', base);
  let index: FetchedFile;
  try {
    // A cached index that is not signed is not confirmed by a 304 once a signature is required.
    const confirmable = generation !== undefined && !(options.signature?.require && meta.signedBy === undefined);
    index = await fetchStoreFile(indexUrl, confirmable ? meta.files['index.json'] : undefined, { maxBytes: limits.maxFileBytes, timeoutMs: limits.timeoutMs }, counters);
  } catch (err) {
    return recordFailure(indexUrl.href, failureText(err));
  }
  if (index.status === 'missing') return recordFailure(indexUrl.href, 'answered 404 Not Found: no index.json below this URL');
  let entries: FetchEntry[] = [];
  let observed: RefreshObservation;
  if (index.status === 'not-modified') {
    observed = { index: 'not-modified' };
  } else {
    const read = readFetchedIndex(index.body, index.contentType, base);
    if (read.problem === undefined && read.entries!.length > limits.maxServices) read.problem = `lists ${read.entries!.length} services, more than the ${limits.maxServices} allowed`;
    observed = { index: 'fetched', ...(read.problem !== undefined ? { problem: read.problem } : {}) };
    entries = read.entries ?? [];
  }
  const first = decideRefresh(observed, generation !== undefined);
  if (first.action === 'unchanged') {
    if (meta.lastFailure) {
      const { lastFailure: _cleared, ...rest } = meta;
      await writeStoreMeta(cacheDir, rest);
      writes++;
    }
    return report('unchanged');
  }
  if (first.action === 'keep') return recordFailure(indexUrl.href, first.problem);
  const indexBody = (index as Extract<FetchedFile, { status: 'ok' }>).body;

  // The signature beside the index, when one is published (or required).
  let signedBy: string | undefined;
  try {
    const signature = await fetchSignature(base, limits, counters);
    if (signature) {
      const verify = options.signature?.verify;
      if (!verify) {
        if (options.signature?.require) return await recordFailure(signature.url, 'is published, but the Cell names no image keys to check it with (spec.imageVerification.publicKey/publicKeys), and spec.store.requireSignature is true');
      } else {
        const check = verify(indexBody, signature);
        if (!check.ok) return await recordFailure(signature.url, `${check.message}; the index is refused`);
        signedBy = check.keyFile;
        const unlisted = unlistedHashes(entries);
        if (unlisted) return await recordFailure(indexUrl.href, unlisted);
      }
    } else if (options.signature?.require) {
      return await recordFailure(indexUrl.href, `is not signed (no ${SIGNATURE_FILE} or ${BUNDLE_FILE} beside it), and spec.store.requireSignature is true`);
    }
  } catch (err) {
    const url = err instanceof StoreFetchError ? err.url : indexUrl.href;
    return recordFailure(url, failureText(err));
  }

  // Every package file, conditionally when the cached set holds it.
  const previous = generation ? path.join(cacheDir, generation) : undefined;
  let fetched: Fetched[];
  try {
    const files = entries.flatMap((entry) => packageFiles(entry).map((file) => ({ file, expected: signedBy !== undefined ? (listedHash(entry, file) ?? null) : undefined })));
    fetched = await mapLimited(files, limits.concurrency, ({ file, expected }) => fetchPackageFile(file, expected, base, meta, previous, limits, counters));
  } catch (err) {
    const url = err instanceof StoreFetchError ? err.url : indexUrl.href;
    return recordFailure(url, err instanceof StoreFetchError ? err.reason : failureText(err));
  }

  // Write the new set beside the cached one and check it with the local loader.
  const name = `gen-${clock().toISOString().replace(/[-:.]/g, '')}-${randomBytes(4).toString('hex')}`;
  const staging = path.join(cacheDir, `.${name}`);
  const writeIn = async (relative: string, data: Buffer) => {
    await writeFileAtomic(path.join(staging, relative), data);
    writes++;
  };
  try {
    await writeIn('index.json', indexBody);
    // Each file is synced before the link swings to the set (a crash must not leave the link
    // durable and a file empty); the syncs of many small files overlap.
    await mapLimited(fetched.flatMap((f) => [...f.contents]), limits.concurrency, ([relative, data]) => writeIn(relative, data));
    const catalog = await loadCatalog(staging, options.policy);
    if (catalog.problems.length > 0) {
      await fs.rm(staging, { recursive: true, force: true });
      const problem = catalog.problems[0]!;
      return await recordFailure(remoteOf(problem, staging, base, fetched), `${problem.pointer ? `${problem.pointer}: ` : ''}${problem.message}${catalog.problems.length > 1 ? ` (and ${catalog.problems.length - 1} more problem${catalog.problems.length > 2 ? 's' : ''})` : ''}; the cached catalog stays in use`);
    }
    await fs.rename(staging, path.join(cacheDir, name));
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true });
    throw err;
  }

  // Apply: the new set is complete and checked; swing the link, record its validators.
  await switchGeneration(cacheDir, name);
  writes++;
  const files: Record<string, Validators> = { 'index.json': (index as Extract<FetchedFile, { status: 'ok' }>).validators };
  for (const f of fetched) if (f.validators) files[f.file.remote] = f.validators;
  const fetchedAt = clock().toISOString();
  const { lastFailure: _gone, signedBy: _before, ...kept } = meta;
  const next: StoreMeta = { ...kept, generation: name, fetchedAt, files, ...(signedBy ? { signedBy } : {}) };
  await writeStoreMeta(cacheDir, next);
  writes++;
  await pruneGenerations(cacheDir, [name, ...(generation ? [generation] : [])]);
  return report('updated', undefined, fetchedAt, signedBy);
}

/** The signature published beside the index (a bundle first), or undefined when there is none. */
async function fetchSignature(base: URL, limits: StoreLimits, counters: FetchCounters): Promise<{ kind: 'sig' | 'bundle'; bytes: Buffer; url: string } | undefined> {
  for (const [kind, name] of [['bundle', BUNDLE_FILE], ['sig', SIGNATURE_FILE]] as const) {
    const url = new URL(name, base);
    const answer = await fetchStoreFile(url, undefined, { maxBytes: 64 * 1024, timeoutMs: limits.timeoutMs }, counters);
    if (answer.status === 'ok') return { kind, bytes: answer.body, url: url.href };
  }
  return undefined;
}

const sha256Of = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * One package file (or archive) fetched, or taken from the cached set on a 304. `expected`: the
 * sha256 a signed index lists for it (null: it lists none, so the file must not be there);
 * undefined for an index that is not signed.
 */
async function fetchPackageFile(file: PackageFile, expected: string | null | undefined, base: URL, meta: StoreMeta, previous: string | undefined, limits: StoreLimits, counters: FetchCounters): Promise<Fetched> {
  const url = storeFileUrl(base, file.remote);
  if (!url) throw new StoreFetchError(base.href + file.remote, 'is not below the store URL');
  const vouched = (sha256: string | undefined) => {
    if (expected === undefined) return;
    if (expected === null) throw new StoreFetchError(url.href, 'is published but the signed index lists no sha256 for it');
    if (sha256 !== expected) throw new StoreFetchError(url.href, `has sha256 ${sha256 ?? 'unknown'}, but the signed index lists ${expected}: the file was changed after the index was signed`);
  };
  // Validators are sent only when the cached set has the file(s) to fall back on.
  const cached = previous ? await cachedContents(previous, file) : undefined;
  const validators = cached ? meta.files[file.remote] : undefined;
  const answer = await fetchStoreFile(url, validators, { maxBytes: file.archive ? limits.maxArchiveBytes : limits.maxFileBytes, timeoutMs: limits.timeoutMs }, counters);
  if (answer.status === 'not-modified') {
    if (!cached) throw new StoreFetchError(url.href, 'answered 304 Not Modified to a request that named no cached copy');
    vouched(file.archive ? validators?.sha256 : sha256Of(cached.get(file.local)!));
    return { file, contents: cached, ...(validators ? { validators } : {}) };
  }
  if (answer.status === 'missing') {
    if (!file.optional) throw new StoreFetchError(url.href, 'answered 404 Not Found; the index lists the service, so its package must be there');
    if (typeof expected === 'string') throw new StoreFetchError(url.href, 'answered 404 Not Found, but the signed index lists its sha256');
    return { file, contents: new Map() };
  }
  const sha256 = sha256Of(answer.body);
  vouched(sha256);
  answer.validators.sha256 = sha256;
  if (!file.archive) return { file, contents: new Map([[file.local, answer.body]]), validators: answer.validators };
  const zip = await readPackageZip(answer.body, { maxEntryBytes: limits.maxFileBytes, maxEntries: 16 });
  if (zip.problem) throw new StoreFetchError(url.href, `${zip.problem}; the archive is refused whole and nothing of it is written`);
  return { file, contents: new Map([...zip.files!].map(([entry, data]) => [`${file.local}/${entry}`, data])), validators: answer.validators };
}

/** The cached file(s) of `file` in the previous generation, or undefined when any is missing. */
async function cachedContents(previous: string, file: PackageFile): Promise<Map<string, Buffer> | undefined> {
  try {
    if (!file.archive) return new Map([[file.local, await fs.readFile(path.join(previous, file.local))]]);
    const folder = path.join(previous, file.local);
    const names = await fs.readdir(folder);
    const contents = new Map<string, Buffer>();
    for (const n of names) contents.set(`${file.local}/${n}`, await fs.readFile(path.join(folder, n)));
    return contents;
  } catch {
    return undefined;
  }
}

/** The URL a problem of the staged set is about: its file below the base, or the archive it came from. */
function remoteOf(problem: Problem, staging: string, base: URL, fetched: Fetched[]): string {
  if (!problem.file.startsWith(staging + path.sep)) return new URL('index.json', base).href;
  const relative = problem.file.slice(staging.length + 1).split(path.sep).join('/');
  const archive = fetched.find((f) => f.file.archive && (relative === f.file.local || relative.startsWith(`${f.file.local}/`)));
  if (archive) return `${new URL(archive.file.remote, base).href}${relative.startsWith(`${archive.file.local}/`) ? `!/${relative.slice(archive.file.local.length + 1)}` : ''}`;
  return new URL(relative, base).href;
}

function failureText(err: unknown): string {
  if (err instanceof StoreFetchError) return err.reason;
  return (err as Error).message ?? String(err);
}

async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await work(items[i]!);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed as Error;
  return results;
}
