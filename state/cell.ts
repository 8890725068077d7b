import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MANIFEST_POLICY, type ManifestPolicy } from '../crds/validate-manifest.js';
import type { CellDocument, ImageVerificationMode, Problem } from '../crds/types.js';
import type { VersionDecision } from './admission.js';
import { loadCatalog, type Catalog, type CatalogService, type PackageRead } from './catalog.js';
import { checkDesiredState, type CatalogView, type CheckedDesired } from './check-desired.js';
import { loadCellFolder, type CheckedFile, type DesiredDocuments } from './desired.js';
import { FileMemo, RACY_WINDOW_NS } from './file-memo.js';
import { PackageStore, type AdmittedPackages } from './packages.js';
import { picVersion } from './pic-version.js';
import { notAStateDir, recordedStateDir } from './state-dir.js';
import { readStoreMetaSync, storeCacheDir, storeCatalogDir } from './store/cache.js';
import { checkStoreUrl } from '../crds/store-url.js';
import { SnapshotMemo } from './snapshot-memo.js';

export interface LoadedCell {
  dir: string;
  docs: DesiredDocuments;
  /** The one valid Cell document, when there is exactly one. */
  cell?: CellDocument;
  cellFile?: string;
  /**
   * The catalog, with `services` holding what each installed service runs or goes to: its admitted
   * package, or the catalog's for a first install or an upgrade. `offered` is the catalog as read.
   */
  catalog?: Catalog & { offered: ReadonlyMap<string, CatalogService> };
  policy: ManifestPolicy;
  checked: CheckedDesired;
  /** The admitted packages the checks were made against (undefined: none known, as for pic validate). */
  admission?: AdmittedPackages;
  /** What passes derive from this snapshot (rendered plans, secret names), kept as long as it is the one in force. */
  memo: SnapshotMemo;
}

/**
 * The files of a cell folder and its catalog as read and checked, each kept while it does not
 * change, for a reader that reads the same folder again and again (the operator owns one): a
 * reading after one edit then parses and checks that one file.
 */
export class CellReadMemo {
  readonly documents = new FileMemo<CheckedFile>();
  readonly packages = new FileMemo<PackageRead>();
}

/** What the checks are told of a catalog and of the admitted packages. */
export function catalogView(catalog: Catalog | undefined, admission: AdmittedPackages | undefined, location?: string): CatalogView {
  const offered = (catalog as { offered?: ReadonlyMap<string, CatalogService> } | undefined)?.offered ?? catalog?.services ?? new Map<string, CatalogService>();
  return {
    location: location ?? catalog?.dir ?? '(no catalog: the Cell document is missing or invalid)',
    manifests: new Map([...offered].map(([id, s]) => [id, s.manifest])),
    manifestFiles: new Map([...offered].map(([id, s]) => [id, s.manifestFile])),
    invalid: catalog?.invalid ?? new Map(),
    ...(admission ? { admitted: admission.admitted, admittedProblems: admission.problems, picVersion: picVersion() } : { picVersion: picVersion() }),
  };
}

/**
 * The package each service runs under its version decision: the admitted one (also while an
 * upgrade is asked for: the new one runs only once the upgrade switches, and routes and accounts
 * follow it only once it succeeded), or the catalog's at a first install. Catalog services no
 * document names stay as the catalog has them.
 */
export function effectiveServices(offered: ReadonlyMap<string, CatalogService>, admission: AdmittedPackages | undefined, versions: ReadonlyMap<string, VersionDecision>): Map<string, CatalogService> {
  const services = new Map(offered);
  for (const [name, decision] of versions) {
    const kept = admission?.admitted.get(name);
    if ((decision.kind === 'admitted' || decision.kind === 'upgrade-failed' || decision.kind === 'upgrade') && kept) services.set(name, kept.service);
  }
  return services;
}

/** The manifest policy a cell applies: its allowed prefix and verification mode, unless overridden. */
export function cellPolicy(cell: CellDocument | undefined, override?: ImageVerificationMode): ManifestPolicy {
  return {
    ...DEFAULT_MANIFEST_POLICY,
    ...(cell ? { allowedImagePrefix: cell.spec.allowedImagePrefix ?? DEFAULT_MANIFEST_POLICY.allowedImagePrefix, imageVerification: cell.spec.imageVerification?.mode ?? 'enforce' } : {}),
    ...(override ? { imageVerification: override } : {}),
  };
}

/**
 * Where the catalog a Cell names is read from: its folder, or for a published store the cache
 * in the state directory (state/store/cache.ts), which is a catalog folder too. `problem` when
 * there is none to read (a URL pic may not fetch, no state directory known).
 */
export interface CatalogLocation {
  dir?: string;
  /** The store's base URL, for a published store. */
  url?: string;
  problem?: Problem;
}

export function catalogLocation(dir: string, cell: CellDocument, stateRoot: string | undefined, cellFile = path.join(dir, 'cell.yaml')): CatalogLocation {
  const store = cell.spec.store;
  if (store.path !== undefined) return { dir: resolveCellPath(dir, store.path) };
  const checked = checkStoreUrl(store.url ?? '');
  if (checked.url === undefined) return { problem: { file: cellFile, pointer: '/spec/store/url', message: checked.problem } };
  const url = checked.url.href;
  if (stateRoot === undefined) return { url, problem: { file: url, pointer: '', message: 'the store is cached in the state directory of the cell\'s operator, and none is known here: set $PIC_STATE_DIR (pic run records its state directory in the cell folder, where later commands find it)' } };
  if (store.requireSignature === true) {
    const meta = readStoreMetaSync(storeCacheDir(stateRoot, url), url);
    if (meta?.fetchedAt !== undefined && meta.signedBy === undefined) {
      return { url, problem: { file: url, pointer: '', message: 'the cached catalog is not signed, and spec.store.requireSignature is true: it is not used until a signed index is fetched' } };
    }
  }
  return { url, dir: storeCatalogDir(stateRoot, url) };
}

/**
 * For a command not told a state directory, the one whose cache of a published store it may read:
 * $PIC_STATE_DIR, else the one the cell's operator recorded, when it is a state directory an
 * operator made (the rule of controllers/cli/state-location.ts).
 */
async function knownStateDir(cellDir: string): Promise<string | undefined> {
  const fromEnv = process.env.PIC_STATE_DIR;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return path.resolve(fromEnv);
  const recorded = await recordedStateDir(cellDir);
  return recorded !== undefined && (await notAStateDir(recorded)) === undefined ? recorded : undefined;
}

/** Resolve a path written in a cell document relative to the cell folder. */
export function resolveCellPath(dir: string, p: string): string {
  return path.resolve(dir, p);
}

/**
 * Read a cell folder whole: its documents, the catalog its Cell names, and every check across
 * them. Never throws for bad input; every problem is in `checked`.
 */
/**
 * The cell as the operator with state directory `stateRoot` renders it: each service from the
 * package it was admitted with (what runs), not from whatever the catalog holds now. For every
 * command that reads a running cell (plan, credentials, backup).
 */
export async function loadRunningCell(dir: string, stateRoot: string): Promise<LoadedCell> {
  return loadCell(dir, { admission: await new PackageStore(stateRoot).load(), stateRoot });
}

export async function loadCell(dir: string, options: { imageVerification?: ImageVerificationMode; admission?: AdmittedPackages; reads?: CellReadMemo; stateRoot?: string } = {}): Promise<LoadedCell> {
  const docs = await loadCellFolder(dir, options.reads?.documents);
  const cellSource = docs.cells.length === 1 ? docs.cells[0] : undefined;
  const cell = cellSource?.doc;
  const policy = cellPolicy(cell, options.imageVerification);
  let catalog: Catalog | undefined;
  const extra: Problem[] = [];
  if (cell) {
    const location = catalogLocation(dir, cell, options.stateRoot ?? (cell.spec.store.url !== undefined ? await knownStateDir(dir) : undefined), cellSource.file);
    catalog = location.dir !== undefined ? await loadCatalog(location.dir, policy, options.reads?.packages) : { dir: location.url ?? '(no catalog)', services: new Map(), invalid: new Map(), problems: [] };
    if (location.url !== undefined && location.dir !== undefined && !existsSync(location.dir)) {
      catalog.problems = [{ file: location.url, pointer: '', message: `not fetched yet: no cached copy in ${path.dirname(location.dir)}; the operator fetches it when it starts (or run pic catalog refresh)` }];
    }
    if (location.problem) catalog.problems.push(location.problem);
    extra.push(...catalog.problems);
  }
  const checked = checkDesiredState(docs, catalogView(catalog, options.admission));
  checked.general.push(...extra.filter((p) => !checked.general.includes(p)));
  const effective = catalog ? { ...catalog, offered: catalog.services, services: effectiveServices(catalog.services, options.admission, checked.versions) } : undefined;
  return { dir, docs, ...(cell ? { cell, cellFile: cellSource.file } : {}), ...(effective ? { catalog: effective } : {}), policy, checked, ...(options.admission ? { admission: options.admission } : {}), memo: new SnapshotMemo() };
}

/**
 * A fingerprint of every file and folder a `loadCell` of `dir` reads: the cell folder's documents
 * and, when given, the catalog folder — each entry's path, inode, size, mtime and ctime. Equal
 * fingerprints mean the same bytes, so the operator's periodic pass need not parse them all
 * again. Like Git's index, an entry changed within the last two seconds makes the fingerprint
 * undefined (its timestamps could hide a second edit in the same tick): the caller then reads.
 */
export function cellFilesSignature(dir: string, storeDir: string | undefined, nowMs = Date.now()): string | undefined {
  const parts: string[] = [];
  const now = BigInt(Math.round(nowMs)) * 1_000_000n;
  let racy = false;
  const visit = (p: string, depth: number): void => {
    let st;
    try {
      st = statSync(p, { bigint: true });
    } catch (err) {
      parts.push(`${p}:${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      return;
    }
    if (now - st.mtimeNs < RACY_WINDOW_NS || now - st.ctimeNs < RACY_WINDOW_NS) racy = true;
    parts.push(`${p}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`);
    if (!st.isDirectory() || depth === 0) return;
    let names: string[];
    try {
      names = readdirSync(p).sort();
    } catch (err) {
      parts.push(`${p}/:${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      return;
    }
    for (const name of names) visit(path.join(p, name), depth - 1);
  };
  // cell.yaml and services/ peers/ connections/ below the cell folder; index.json and
  // services/<id>/<file> below the catalog.
  visit(dir, 2);
  if (storeDir) visit(storeDir, 3);
  return racy ? undefined : parts.join('\n');
}
