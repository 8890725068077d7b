import { promises as fs } from 'node:fs';
import path from 'node:path';
import { formatProblem, type ImageVerificationMode, type Problem } from '../../crds/types.js';
import { DEFAULT_MANIFEST_POLICY, validateManifest, type ManifestPolicy } from '../../crds/validate-manifest.js';
import { checkServicePackage, type TrialInstall } from '../../reconcilers/containers/check-package.js';
import { loadCatalog, loadServicePackage, MANIFEST_FILE, readManifestFile, TEMPLATE_FILE, withCatalogMemo, type CatalogService } from '../../state/catalog.js';
import { allProblems, checkDesiredState } from '../../state/check-desired.js';
import { loadCell } from '../../state/cell.js';
import { CELL_FILE, loadDocumentFiles } from '../../state/desired.js';
import { InternalError, type Command } from './command.js';
import { safeLine } from '../safe-text.js';
import { UsageError } from './usage.js';

export type PathKind = 'manifest' | 'service' | 'catalog' | 'cell' | 'documents' | 'missing' | 'unknown';

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Decide what a path given to `pic validate` is, by what it holds. */
export async function classifyPath(p: string): Promise<PathKind> {
  let stat;
  try {
    stat = await fs.stat(p);
  } catch {
    return 'missing';
  }
  if (stat.isFile()) {
    if (path.basename(p) === MANIFEST_FILE || p.endsWith('.json')) return 'manifest';
    if (/\.ya?ml$/i.test(p)) return 'documents';
    return 'unknown';
  }
  if (!stat.isDirectory()) return 'unknown';
  if (await exists(path.join(p, CELL_FILE))) return 'cell';
  if (await exists(path.join(p, MANIFEST_FILE))) return 'service';
  if ((await exists(path.join(p, 'index.json'))) || (await exists(path.join(p, 'services')))) return 'catalog';
  return 'unknown';
}

/** Service folders already trial-rendered in this run (a catalog named directly and as a cell's store). */
type Checked = Set<string>;

/** What a run of `pic validate` looked at, for the summary line of a valid run. */
export interface Counts {
  services: Set<string>;
  peers: Set<string>;
  connections: Set<string>;
  cells: Set<string>;
  /** Catalog packages (service folders or manifests), by folder. */
  packages: Set<string>;
  /** Facts that are not problems (a file that holds no document): printed, not counted. */
  notices: Problem[];
}

export function emptyCounts(): Counts {
  return { services: new Set(), peers: new Set(), connections: new Set(), cells: new Set(), packages: new Set(), notices: [] };
}

function countDocuments(counts: Counts, docs: { cells: { file: string; doc: { metadata: { name: string } } }[]; services: { file: string; doc: { metadata: { name: string } } }[]; peers: { file: string; doc: { metadata: { name: string } } }[]; connections: { file: string; doc: { metadata: { name: string } } }[] }): void {
  for (const d of docs.cells) counts.cells.add(`${d.file}#${d.doc.metadata.name}`);
  for (const d of docs.services) counts.services.add(`${d.file}#${d.doc.metadata.name}`);
  for (const d of docs.peers) counts.peers.add(`${d.file}#${d.doc.metadata.name}`);
  for (const d of docs.connections) counts.connections.add(`${d.file}#${d.doc.metadata.name}`);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `1 cell, 3 services, 2 peers, 5 packages: valid` (kinds with none left out, packages always shown). */
export function summaryLine(counts: Counts): string {
  const parts = [
    [counts.cells.size, 'cell'],
    [counts.services.size, 'service'],
    [counts.peers.size, 'peer'],
    [counts.connections.size, 'connection'],
  ] as const;
  const shown = parts.filter(([n]) => n > 0).map(([n, w]) => plural(n, w));
  shown.push(plural(counts.packages.size, 'package'));
  return `${shown.join(', ')}: valid`;
}

function templateProblems(service: CatalogService, policy: ManifestPolicy, checked: Checked = new Set(), install?: TrialInstall): Problem[] {
  // A folder is one folder however the paths given spell it (examples/store, examples/cell/../store).
  const key = `${path.resolve(service.dir)}\0${policy.allowedImagePrefix}\0${policy.imageVerification}${install ? `\0${JSON.stringify(install)}` : ''}`;
  if (checked.has(key)) return [];
  checked.add(key);
  return checkServicePackage(service.manifest, service.composeTemplate, { manifestFile: service.manifestFile, templateFile: service.templateFile, policy, ...(install ? { install } : {}) });
}

/**
 * The cell's packages: each installed service rendered as its ServiceInstall asks (its config, the
 * ports it consents to publish, the Cell's core ports), the catalog's other services as packages.
 */
export function cellTemplateProblems(cell: Awaited<ReturnType<typeof loadCell>>, checked: Checked): Problem[] {
  const problems: Problem[] = [];
  const installs = new Map(cell.docs.services.map((s) => [s.doc.metadata.name, s.doc]));
  for (const id of [...(cell.catalog?.services.keys() ?? [])].sort()) {
    const service = cell.catalog!.services.get(id)!;
    const doc = installs.get(id);
    const config = cell.checked.configs.get(id);
    const install = cell.cell && doc && config ? { cell: cell.cell, config, publish: doc.spec.publish ?? [] } : undefined;
    problems.push(...templateProblems(service, cell.policy, checked, install));
  }
  return problems;
}

/** Validate one path of any kind; returns its problems (never throws for bad input). */
export async function validatePath(p: string, override?: ImageVerificationMode, checked: Checked = new Set(), counts: Counts = emptyCounts(), stateRoot?: string): Promise<Problem[]> {
  const policy: ManifestPolicy = { ...DEFAULT_MANIFEST_POLICY, ...(override ? { imageVerification: override } : {}) };
  switch (await classifyPath(p)) {
    case 'missing':
      return [{ file: p, pointer: '', message: 'no such file or folder' }];
    case 'unknown':
      return [{ file: p, pointer: '', message: `not something pic validates: expected ${MANIFEST_FILE}, a service folder, a catalog folder (index.json + services/), a cell folder (${CELL_FILE}) or YAML documents` }];
    case 'manifest': {
      // The catalog's own rules: no symbolic link, at most 1 MiB, duplicate keys refused.
      const parsed = readManifestFile(p);
      if (parsed.value === undefined) return parsed.problems;
      const problems = validateManifest(parsed.value, p, policy);
      counts.packages.add(path.resolve(path.dirname(p)));
      const template = path.join(path.dirname(p), TEMPLATE_FILE);
      if (problems.length === 0 && path.basename(p) === MANIFEST_FILE && (await exists(template))) {
        const loaded = await loadServicePackage(path.dirname(p), policy);
        if (loaded.service) problems.push(...templateProblems(loaded.service, policy));
      }
      return problems;
    }
    case 'service': {
      const loaded = await loadServicePackage(p, policy);
      counts.packages.add(path.resolve(p));
      return loaded.service ? templateProblems(loaded.service, policy) : loaded.problems;
    }
    case 'catalog': {
      const catalog = await loadCatalog(p, policy);
      for (const id of catalog.services.keys()) counts.packages.add(path.resolve(catalog.services.get(id)!.dir));
      const problems = [...catalog.problems];
      for (const id of [...catalog.services.keys()].sort()) problems.push(...templateProblems(catalog.services.get(id)!, policy, checked));
      return problems;
    }
    case 'cell': {
      // stateRoot (pic run --git): a published store is read from that operator's cache.
      const cell = await loadCell(p, { ...(override ? { imageVerification: override } : {}), ...(stateRoot ? { stateRoot } : {}) });
      countDocuments(counts, cell.docs);
      for (const service of cell.catalog?.services.values() ?? []) counts.packages.add(path.resolve(service.dir));
      // Without a valid Cell there is no catalog to check services against: report the Cell's own
      // problems and what needs no catalog, not a false "no service X in the catalog" for each.
      const checkedCell = cell.cell ? cell.checked : checkDesiredState(cell.docs);
      counts.notices.push(...checkedCell.generalNotices);
      return [...allProblems(checkedCell), ...cellTemplateProblems(cell, checked)];
    }
    case 'documents': {
      const docs = await loadDocumentFiles([p]);
      countDocuments(counts, docs);
      // Documents outside a cell folder are checked on their own: schema, and what needs no catalog.
      const checkedDocs = checkDesiredState(docs);
      counts.notices.push(...checkedDocs.generalNotices);
      return allProblems(checkedDocs);
    }
  }
}

export interface ValidateResult {
  lines: string[];
  /** `notice: FILE: message` lines, once each: facts worth telling that do not make the run invalid. */
  notices: string[];
  exitCode: 0 | 1;
  /** The one-line summary of a valid run: `3 services, 2 peers, 5 packages: valid`. */
  summary: string;
}

/**
 * `pic validate PATH...`: every problem of every path, one line each. A catalog folder is read
 * and checked once per run even when a cell names it again (`pic validate STORE CELL`), and its
 * problems are reported once, under the first path that reached it.
 */
export async function runValidate(paths: string[], override?: ImageVerificationMode): Promise<ValidateResult> {
  return withCatalogMemo(async () => {
    const lines: string[] = [];
    const checked: Checked = new Set();
    const counts = emptyCounts();
    // One line per problem for the whole run: a catalog named directly and again as a cell's store
    // (under the cell's policy) reports a problem both find once, under the first path.
    const seen = new Set<string>();
    for (const p of paths) {
      for (const problem of await validatePath(p, override, checked, counts)) {
        // Once per file, however the paths given spell it.
        const identity = `${path.resolve(problem.file)}\0${problem.pointer}\0${problem.message}`;
        if (seen.has(identity)) continue;
        seen.add(identity);
        lines.push(safeLine(formatProblem(problem)));
      }
    }
    const notices = [...new Set(counts.notices.map((n) => safeLine(`notice: ${formatProblem(n)}`)))];
    return { lines, notices, exitCode: lines.length > 0 ? 1 : 0, summary: summaryLine(counts) };
  });
}

const VERIFICATION_MODES: readonly ImageVerificationMode[] = ['off', 'warn', 'enforce'];

export const validateCommand: Command = {
  name: 'validate',
  summary: 'Check manifests, service folders, catalogs, cell folders or YAML documents',
  args: 'PATH...',
  description:
    'One line per problem: FILE: /json/pointer: message. A valid run prints one summary line ' +
    '("3 services, 2 peers, 5 packages: valid"). Exit 0 valid, 1 problems found, 2 usage error, ' +
    '3 internal error (a bug in pic). --image-verification overrides the mode of every cell and ' +
    'the default (enforce) for packages given alone: warn and off admit images pinned by tag.',
  flags: [{ name: 'image-verification', type: 'string', value: 'enforce|warn|off', help: 'the verification mode to check images under (default: the cell\'s, else enforce)', complete: VERIFICATION_MODES }],
  examples: ['pic validate examples/store examples/cell', 'pic validate --image-verification warn examples/store/services/notes'],
  completeArgs: 'file',
  async run(parsed, ctx) {
    const mode = parsed.values['image-verification'];
    if (typeof mode === 'string' && !VERIFICATION_MODES.includes(mode as ImageVerificationMode)) {
      throw new UsageError(`--image-verification must be one of ${VERIFICATION_MODES.join(', ')}, not "${safeLine(mode)}"`);
    }
    if (parsed.positionals.length === 0) throw new UsageError('pic validate needs at least one PATH');
    let result: ValidateResult;
    try {
      result = await runValidate(parsed.positionals, mode as ImageVerificationMode | undefined);
    } catch (err) {
      // validate turns every fault of its input into a problem line; anything thrown is pic's own.
      throw new InternalError(`validating ${parsed.positionals.join(' ')} failed: ${(err as Error).message ?? String(err)}`, { cause: err });
    }
    result.lines.forEach((l) => ctx.io.out(l));
    result.notices.forEach((l) => ctx.io.err(l));
    if (result.exitCode !== 0) ctx.io.err(`${result.lines.length} problem${result.lines.length === 1 ? '' : 's'} found`);
    else ctx.io.out(result.summary);
    return result.exitCode;
  },
};
