/**
 * `pic catalog list|show ID`: the store's services, their versions and updates, and for one of
 * them what installing it would open on the cell (names, host ports, peer ports, egress,
 * accounts, capabilities, volumes); `pic catalog refresh`: fetch a published store now. The
 * catalog is the Cell's `spec.store` (`--cell`) or a folder or URL given with `--store`; either
 * way it is read by the one loader, state/catalog.ts loadCatalog (a published store from its
 * cache, state/store/). list and show only read; refresh writes the cache alone.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { formatProblem, type Problem } from '../../crds/types.js';
import { DEFAULT_MANIFEST_POLICY, type ManifestPolicy } from '../../crds/validate-manifest.js';
import { byText } from '../../crds/values.js';
import { trialServicePlan, type TrialInstall } from '../../reconcilers/containers/check-package.js';
import { corePortsOf } from '../../reconcilers/containers/desired.js';
import { loadCatalog, withCatalogMemo, type Catalog, type CatalogService } from '../../state/catalog.js';
import { catalogLocation, loadCell, type LoadedCell } from '../../state/cell.js';
import { readStoreMeta, storeCacheDir, storeCatalogDir, storeStateLine } from '../../state/store/cache.js';
import { refreshStore } from '../../state/store/refresh.js';
import { signStoreFolder } from '../../state/store/sign.js';
import { checkStoreUrl } from '../../crds/store-url.js';
import { nameInKey, serviceKey } from '../../state/document-keys.js';
import { PackageStore } from '../../state/packages.js';
import { openStateDirForReading } from '../../state/state-dir.js';
import { safeLine } from '../safe-text.js';
import { storeSignaturePolicy } from '../store-refresh.js';
import { catalogRows, renderCatalogList, renderExposure, renderRefreshReport, serviceExposure } from './catalog-views.js';
import { CELL_FLAG, STATE_DIR_FLAG, stringFlag, type Command, type Parsed } from './command.js';
import { parseOutput } from './output.js';
import { requireFolder } from './run.js';
import { chooseStateDir } from './state-location.js';
import { UsageError, type Io } from './usage.js';

const OUTPUTS = ['table', 'json', 'yaml'] as const;

/** The catalog a command reads, and the cell it is read for (when one is given). */
interface CatalogSource {
  catalog: Catalog;
  cell?: LoadedCell & { cell: NonNullable<LoadedCell['cell']> };
  policy: ManifestPolicy;
  /** A published store: its base URL and the state directory its cache is in. */
  remote?: { url: URL; stateRoot: string };
}

function folderFlag(parsed: Parsed, name: 'cell' | 'store'): string | undefined {
  const value = stringFlag(parsed, name);
  if (value !== undefined && value.trim() === '') throw new UsageError(`--${name} needs a folder, not an empty string`);
  return value;
}

/** `--store` given as a URL rather than a folder. */
function storeUrlFlag(storeFlag: string | undefined): URL | undefined {
  if (storeFlag === undefined || !/^[a-z][a-z0-9+.-]*:\/\//i.test(storeFlag)) return undefined;
  const checked = checkStoreUrl(storeFlag);
  if (checked.url === undefined) throw new UsageError(`--store ${safeLine(storeFlag)}: ${checked.problem}`);
  return checked.url;
}

/** The cell of `--cell`, read with the state directory that holds its store's cache, or why not. */
async function openCell(cellFlag: string, stateRoot: string, io: Io): Promise<CatalogSource['cell'] | undefined> {
  await requireFolder(cellFlag);
  const loaded = await loadCell(path.resolve(cellFlag), { stateRoot });
  if (!loaded.cell) {
    io.err(`pic: ${safeLine(loaded.dir)} has no valid Cell document, so its catalog is not known; run pic validate ${safeLine(loaded.dir)}, or give the catalog with --store DIR`);
    return undefined;
  }
  return loaded as CatalogSource['cell'];
}

/**
 * The catalog of `--store DIR|URL`, else the one the cell's Cell names, read through loadCatalog
 * (a published store: its cache in the state directory, a catalog folder too); the cell (its
 * installs, domain and core ports) when `--cell` is given. Undefined, with the reason printed,
 * when there is nothing to read.
 */
async function openCatalog(cellFlag: string | undefined, storeFlag: string | undefined, stateFlag: string | undefined, io: Io): Promise<CatalogSource | undefined> {
  const stateRoot = (await chooseStateDir({ stateDir: stateFlag, cell: cellFlag })).dir;
  const cell = cellFlag !== undefined ? await openCell(cellFlag, stateRoot, io) : undefined;
  if (cellFlag !== undefined && !cell) return undefined;
  const policy = cell?.policy ?? DEFAULT_MANIFEST_POLICY;
  const storeUrl = storeUrlFlag(storeFlag);
  let dir: string;
  let remote: CatalogSource['remote'];
  if (storeUrl) {
    dir = storeCatalogDir(stateRoot, storeUrl.href);
    remote = { url: storeUrl, stateRoot };
  } else if (storeFlag !== undefined) {
    dir = storeFlag;
  } else {
    const location = catalogLocation(cell!.dir, cell!.cell, stateRoot, cell!.cellFile);
    if (location.dir === undefined) {
      io.err(`pic: ${safeLine(formatProblem(location.problem!))}`);
      return undefined;
    }
    dir = location.dir;
    if (location.url !== undefined) remote = { url: new URL(location.url), stateRoot };
  }
  if (remote && !existsSync(dir)) {
    io.err(`pic: the store ${safeLine(remote.url.href)} has no cached copy in ${safeLine(remote.stateRoot)} yet; run pic catalog refresh${cellFlag !== undefined ? ` --cell ${safeLine(cellFlag)}` : ` --store ${safeLine(remote.url.href)}`}`);
    return undefined;
  }
  const catalog = await loadCatalog(dir, policy);
  if (catalog.services.size === 0 && catalog.invalid.size === 0 && catalog.problems.length > 0) {
    io.err(`pic: the catalog ${safeLine(dir)} cannot be read:`);
    for (const p of catalog.problems) io.err(`  ${safeLine(formatProblem(p))}`);
    return undefined;
  }
  if (remote) await reportCache(remote, io);
  return { catalog, ...(cell ? { cell } : {}), policy, ...(remote ? { remote } : {}) };
}

/** A line on stderr: where a published store's catalog comes from, how old it is, why the last refresh failed. */
async function reportCache(remote: NonNullable<CatalogSource['remote']>, io: Io): Promise<void> {
  const meta = await readStoreMeta(storeCacheDir(remote.stateRoot, remote.url.href), remote.url.href);
  io.err(`pic: ${safeLine(storeStateLine(meta, new Date()))}`);
}

/**
 * The admitted version of each service, from the state directory given (`--state-dir`,
 * `$PIC_STATE_DIR`) or recorded by the cell's operator; undefined when none is known (the
 * default /var/lib/pic is not assumed for a command that may run anywhere).
 */
async function admittedVersions(stateFlag: string | undefined, cellDir: string | undefined, io: Io): Promise<Map<string, string> | undefined> {
  const choice = await chooseStateDir({ stateDir: stateFlag, cell: cellDir });
  if (choice.source === 'the default') return undefined;
  const state = await openStateDirForReading(choice.dir, choice.source);
  const kept = await new PackageStore(state.root).load();
  for (const [service, problem] of [...kept.problems].sort(byText(([service]) => service))) io.err(`pic: warning: the admitted package of ${safeLine(service)} cannot be read: ${safeLine(problem)}`);
  return new Map([...kept.admitted].map(([service, pkg]) => [service, pkg.version]));
}

/** Services the cell has a ServiceInstall for, a rejected one included: the admin wrote it. */
function installedServices(cell: LoadedCell): Set<string> {
  const installed = new Set(cell.docs.services.map((s) => s.doc.metadata.name));
  for (const name of cell.docs.rejected.flatMap((r) => nameInKey(r.key, 'ServiceInstall') ?? [])) installed.add(name);
  return installed;
}

/** Problems of the catalog that belong to no listed package (a folder missing, an index entry without one). */
function generalProblems(catalog: Catalog): Problem[] {
  const owned = new Set([...catalog.invalid.values()].flat());
  return catalog.problems.filter((p) => !owned.has(p));
}

async function listCatalog(source: CatalogSource, stateFlag: string | undefined, format: (typeof OUTPUTS)[number], io: Io): Promise<number> {
  const admitted = await admittedVersions(stateFlag, source.cell?.dir, io);
  const rows = catalogRows(source.catalog, { ...(source.cell ? { installed: installedServices(source.cell) } : {}), ...(admitted ? { admitted } : {}) });
  for (const p of generalProblems(source.catalog)) io.err(`pic: warning: ${safeLine(formatProblem(p))}`);
  if (rows.length === 0 && format === 'table') io.out(`No services in the catalog ${safeLine(source.catalog.dir)}.`);
  else io.out(renderCatalogList(rows, format));
  return 0;
}

/** The install's consent and config, as `pic validate` renders an installed service. */
function trialInstallOf(cell: NonNullable<CatalogSource['cell']>, id: string): { install?: TrialInstall; problems: Problem[] } {
  const doc = cell.docs.services.find((s) => s.doc.metadata.name === id)?.doc;
  if (!doc) return { problems: [] };
  const config = cell.checked.configs.get(id) ?? {};
  return { install: { cell: cell.cell, config, publish: doc.spec.publish ?? [] }, problems: cell.checked.byDocument.get(serviceKey(id)) ?? [] };
}

async function showService(source: CatalogSource, id: string, format: (typeof OUTPUTS)[number], io: Io): Promise<number> {
  const { catalog } = source;
  const service: CatalogService | undefined = catalog.services.get(id);
  if (!service) {
    const broken = catalog.invalid.get(id);
    if (broken) {
      io.err(`pic: the package "${safeLine(id)}" of the catalog ${safeLine(catalog.dir)} is invalid, so there is nothing trustworthy to show:`);
      for (const p of broken) io.err(`  ${safeLine(formatProblem(p))}`);
      return 1;
    }
    const offered = [...new Set([...catalog.services.keys(), ...catalog.invalid.keys()])].sort();
    io.err(`pic: no service "${safeLine(id)}" in the catalog ${safeLine(catalog.dir)}; it offers ${offered.length > 0 ? safeLine(offered.join(', ')) : 'none'}`);
    return 1;
  }
  const { install, problems: documentProblems } = source.cell ? trialInstallOf(source.cell, id) : { problems: [] };
  const where = { manifestFile: service.manifestFile, templateFile: service.templateFile, policy: source.policy, ...(install ? { install } : {}) };
  // Rendered twice: as the cell would (its problems), and with ports left undecided (every port
  // the template publishes, each then judged on its own).
  const checked = trialServicePlan(service.manifest, service.composeTemplate, where);
  const undecided = trialServicePlan(service.manifest, service.composeTemplate, { ...where, portsUndecided: true });
  const exposure = serviceExposure({
    manifest: service.manifest,
    installScript: service.installScript === true,
    ...(undecided.plan ? { plan: undecided.plan } : {}),
    problems: [...documentProblems, ...checked.problems],
    catalogDir: catalog.dir,
    ...(source.cell ? { cell: { domain: source.cell.cell.spec.domain } } : {}),
    corePorts: corePortsOf(source.cell?.cell),
    ...(install ? { install: { publish: install.publish } } : {}),
  });
  io.out(renderExposure(exposure, format));
  return 0;
}

/** `pic catalog refresh`: fetch the published store into the cache now (conditionally), and say what happened. */
async function refreshCatalog(cellFlag: string | undefined, storeFlag: string | undefined, stateFlag: string | undefined, format: (typeof OUTPUTS)[number], io: Io): Promise<number> {
  const stateRoot = (await chooseStateDir({ stateDir: stateFlag, cell: cellFlag })).dir;
  const cell = cellFlag !== undefined ? await openCell(cellFlag, stateRoot, io) : undefined;
  if (cellFlag !== undefined && !cell) return 1;
  let url = storeUrlFlag(storeFlag);
  if (!url && storeFlag !== undefined) {
    io.err(`pic: --store ${safeLine(storeFlag)} is a folder; a folder is read as it is, there is nothing to refresh`);
    return 1;
  }
  if (!url) {
    const location = catalogLocation(cell!.dir, cell!.cell, stateRoot, cell!.cellFile);
    if (location.url === undefined) {
      io.err(location.problem ? `pic: ${safeLine(formatProblem(location.problem))}` : `pic: the Cell's store is the folder ${safeLine(location.dir ?? '')}; a folder is read as it is, there is nothing to refresh`);
      return 1;
    }
    url = new URL(location.url);
  }
  await openStateDirForReading(stateRoot, stateFlag !== undefined ? '--state-dir' : 'the state directory');
  const signature = cell ? await storeSignaturePolicy(cell.cell, cell.dir) : { require: false };
  const report = await refreshStore({ stateRoot, url, policy: cell?.policy ?? DEFAULT_MANIFEST_POLICY, signature });
  io.out(renderRefreshReport(report, format));
  return report.outcome === 'failed' ? 1 : 0;
}

/** `pic catalog sign --store DIR [--key FILE]`: the maintainer's side of a signed store. */
async function signCatalog(storeFlag: string | undefined, keyFlag: string | undefined, io: Io): Promise<number> {
  if (storeFlag === undefined || storeUrlFlag(storeFlag)) throw new UsageError('pic catalog sign needs --store DIR, the store folder to publish');
  await requireFolder(storeFlag);
  const key = keyFlag !== undefined ? { pem: await readFile(keyFlag, 'utf8').catch((err: NodeJS.ErrnoException) => { throw new UsageError(`--key ${safeLine(keyFlag)}: cannot be read (${err.code ?? err.message})`); }), file: keyFlag } : undefined;
  const result = await signStoreFolder(storeFlag, key);
  io.out(`${safeLine(result.indexFile)}: the sha256 of the files of ${result.services} service${result.services === 1 ? '' : 's'} written`);
  if (result.signatureFile) io.out(`${safeLine(result.signatureFile)}: signed with ${safeLine(keyFlag!)}`);
  else io.out(`now sign it: cosign sign-blob --key cosign.key --output-signature ${safeLine(path.join(storeFlag, 'index.json.sig'))} ${safeLine(result.indexFile)}`);
  return 0;
}

async function runCatalog(parsed: Parsed, io: Io): Promise<number> {
  const [sub, ...args] = parsed.positionals;
  if (sub !== 'list' && sub !== 'show' && sub !== 'refresh' && sub !== 'sign') throw new UsageError(sub === undefined ? 'pic catalog needs a subcommand: list, show ID, refresh or sign' : `unknown catalog subcommand "${safeLine(sub)}"; use list, show ID, refresh or sign`);
  if ((sub === 'list' || sub === 'refresh' || sub === 'sign') && args.length > 0) throw new UsageError(`pic catalog ${sub} takes no arguments`);
  if (sub === 'sign') return signCatalog(folderFlag(parsed, 'store'), stringFlag(parsed, 'key'), io);
  if (sub === 'show' && args.length !== 1) throw new UsageError('pic catalog show takes one service ID, e.g. pic catalog show notes --cell DIR');
  const output = parseOutput(stringFlag(parsed, 'output'), OUTPUTS, 'pic catalog');
  const format = output.format as (typeof OUTPUTS)[number];
  const cellFlag = folderFlag(parsed, 'cell');
  const storeFlag = folderFlag(parsed, 'store');
  const stateFlag = stringFlag(parsed, 'state-dir');
  if (stateFlag !== undefined && stateFlag.trim() === '') throw new UsageError('--state-dir needs a folder, not an empty string');
  if (cellFlag === undefined && storeFlag === undefined) throw new UsageError('pic catalog needs --cell DIR (the catalog its Cell names) or --store DIR|URL (a catalog folder or a published store)');
  if (sub === 'refresh') return refreshCatalog(cellFlag, storeFlag, stateFlag, format, io);
  // The cell names its catalog again: one read of it for the whole command.
  return withCatalogMemo(async () => {
    const source = await openCatalog(cellFlag, storeFlag, stateFlag, io);
    if (!source) return 1;
    return sub === 'list' ? listCatalog(source, stateFlag, format, io) : showService(source, args[0]!, format, io);
  });
}

export const catalogCommand: Command = {
  name: 'catalog',
  summary: "The store's services, their versions and updates; what installing one would open",
  args: 'list|show [ID]|refresh|sign',
  description:
    'The catalog is the one the Cell names (--cell) or a catalog folder (--store); with both, the folder is previewed against the cell. ' +
    'list: one row per service (a broken package with its first problem); ADMITTED and UPDATE need the state directory (--state-dir, $PIC_STATE_DIR or the one the cell\'s operator recorded), else "-". ' +
    'show ID: the manifest\'s facts and what installing it opens: subdomains, host ports (each consented, needing spec.publish, or refused), peer ports, egress, accounts, capabilities, volumes, images, install.sh, render problems. ' +
    'refresh: fetch a published store (spec.store.url, or --store URL) into the cache in the state directory now, with conditional requests; the cached copy is replaced only by a complete set that passes every check. ' +
    'sign (a store maintainer, before publishing --store DIR): write the sha256 of every package file into index.json and, with --key, sign it into index.json.sig (cosign sign-blob format; without --key, run cosign sign-blob yourself). ' +
    'Exit 0 shown (refresh: updated or unchanged), 1 not in the catalog, unreadable or refresh failed (the cache stays), 2 usage error.',
  flags: [
    CELL_FLAG,
    { name: 'store', type: 'string', value: 'DIR|URL', help: 'a catalog folder (index.json + services/), or a published store\'s URL, instead of the one the Cell names', complete: 'dir' },
    STATE_DIR_FLAG,
    { name: 'key', type: 'string', value: 'FILE', help: 'sign: the PEM private key that signs index.json (index.json.sig, as cosign sign-blob writes it)', complete: 'file' },
    { name: 'output', short: 'o', type: 'string', value: 'table|json|yaml', help: 'a table (show: text), JSON or YAML', complete: OUTPUTS },
  ],
  examples: ['pic catalog list --cell examples/cell', 'pic catalog show notes --cell examples/cell', 'pic catalog list --store examples/store -o json', 'pic catalog refresh --cell examples/cell'],
  completeArgs: ['list', 'show', 'refresh', 'sign'],
  run: (parsed, ctx) => runCatalog(parsed, ctx.io),
};
