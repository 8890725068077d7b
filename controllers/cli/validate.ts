import { promises as fs } from 'node:fs';
import path from 'node:path';
import { formatProblem, type ImageVerificationMode, type Problem } from '../../crds/types.js';
import { DEFAULT_MANIFEST_POLICY, validateManifest, type ManifestPolicy } from '../../crds/validate-manifest.js';
import { checkServicePackage } from '../../reconcilers/containers/check-package.js';
import { loadCatalog, loadServicePackage, MANIFEST_FILE, TEMPLATE_FILE, withCatalogMemo, type CatalogService } from '../../state/catalog.js';
import { allProblems, checkDesiredState } from '../../state/check-desired.js';
import { loadCell } from '../../state/cell.js';
import { CELL_FILE, loadDocumentFiles } from '../../state/desired.js';
import { parseJsonText } from '../../state/yaml-documents.js';

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

function templateProblems(service: CatalogService, policy: ManifestPolicy, checked: Checked = new Set()): Problem[] {
  const key = `${service.dir}\0${policy.allowedImagePrefix}\0${policy.imageVerification}`;
  if (checked.has(key)) return [];
  checked.add(key);
  return checkServicePackage(service.manifest, service.template, { manifestFile: service.manifestFile, templateFile: service.templateFile, policy });
}

/** Validate one path of any kind; returns its problems (never throws for bad input). */
export async function validatePath(p: string, override?: ImageVerificationMode, checked: Checked = new Set()): Promise<Problem[]> {
  const policy: ManifestPolicy = { ...DEFAULT_MANIFEST_POLICY, ...(override ? { imageVerification: override } : {}) };
  switch (await classifyPath(p)) {
    case 'missing':
      return [{ file: p, pointer: '', message: 'no such file or folder' }];
    case 'unknown':
      return [{ file: p, pointer: '', message: `not something pic validates: expected ${MANIFEST_FILE}, a service folder, a catalog folder (index.json + services/), a cell folder (${CELL_FILE}) or YAML documents` }];
    case 'manifest': {
      const text = await fs.readFile(p, 'utf8');
      const parsed = parseJsonText(text, p);
      if (parsed.value === undefined) return parsed.problems;
      const problems = validateManifest(parsed.value, p, policy);
      const template = path.join(path.dirname(p), TEMPLATE_FILE);
      if (problems.length === 0 && path.basename(p) === MANIFEST_FILE && (await exists(template))) {
        const loaded = await loadServicePackage(path.dirname(p), policy);
        if (loaded.service) problems.push(...templateProblems(loaded.service, policy));
      }
      return problems;
    }
    case 'service': {
      const loaded = await loadServicePackage(p, policy);
      return loaded.service ? templateProblems(loaded.service, policy) : loaded.problems;
    }
    case 'catalog': {
      const catalog = await loadCatalog(p, policy);
      const problems = [...catalog.problems];
      for (const id of [...catalog.services.keys()].sort()) problems.push(...templateProblems(catalog.services.get(id)!, policy, checked));
      return problems;
    }
    case 'cell': {
      const cell = await loadCell(p, override ? { imageVerification: override } : {});
      const problems = allProblems(cell.checked);
      for (const id of [...(cell.catalog?.services.keys() ?? [])].sort()) problems.push(...templateProblems(cell.catalog!.services.get(id)!, cell.policy, checked));
      return problems;
    }
    case 'documents': {
      const docs = await loadDocumentFiles([p]);
      // Documents outside a cell folder are checked on their own: schema, and what needs no catalog.
      return allProblems(checkDesiredState(docs));
    }
  }
}

export interface ValidateResult {
  lines: string[];
  exitCode: 0 | 1;
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
    const reported = new Set<Problem>();
    for (const p of paths) {
      const problems = (await validatePath(p, override, checked)).filter((problem) => !reported.has(problem));
      for (const problem of problems) reported.add(problem);
      lines.push(...dedupe(problems).map(formatProblem));
    }
    return { lines, exitCode: lines.length > 0 ? 1 : 0 };
  });
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const line = formatProblem(p);
    if (seen.has(line)) return false;
    seen.add(line);
    return true;
  });
}
