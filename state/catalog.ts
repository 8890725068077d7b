import { AsyncLocalStorage } from 'node:async_hooks';
import { promises as fs, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { validateManifest, type ManifestPolicy } from '../crds/validate-manifest.js';
import type { Manifest, Problem } from '../crds/types.js';
import { FileMemo } from './file-memo.js';
import { parseJsonText } from './yaml-documents.js';

export const MANIFEST_FILE = 'manifest.json';
export const TEMPLATE_FILE = 'compose-template.yml';
const MAX_PACKAGE_FILE_BYTES = 1024 * 1024;

/** A service package from the catalog that passed every check. */
export interface CatalogService {
  id: string;
  dir: string;
  manifestFile: string;
  templateFile: string;
  manifest: Manifest;
  template: string;
}

export interface Catalog {
  dir: string;
  services: Map<string, CatalogService>;
  /** Services present in the catalog whose package failed a check, with why. */
  invalid: Map<string, Problem[]>;
  problems: Problem[];
}

/** Small files, read synchronously for the same reason as state/yaml-documents.ts readYamlFile. */
function readSmallFile(file: string): { text?: string; problem?: Problem } {
  try {
    const stat = statSync(file);
    if (!stat.isFile()) return { problem: { file, pointer: '', message: 'not a regular file' } };
    if (stat.size > MAX_PACKAGE_FILE_BYTES) return { problem: { file, pointer: '', message: `file is ${stat.size} bytes, more than the ${MAX_PACKAGE_FILE_BYTES} allowed` } };
    return { text: readFileSync(file, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { problem: { file, pointer: '', message: code === 'ENOENT' ? 'missing' : `cannot read: ${(err as Error).message}` } };
  }
}

/**
 * Load one service package folder (manifest.json + compose-template.yml) and check its manifest.
 * The template is checked where it is rendered (reconcilers/containers), not here.
 */
export async function loadServicePackage(
  dir: string,
  policy: ManifestPolicy,
): Promise<{ service?: CatalogService; problems: Problem[] }> {
  const manifestFile = path.join(dir, MANIFEST_FILE);
  const templateFile = path.join(dir, TEMPLATE_FILE);
  return checkedPackages.get([manifestFile, templateFile], JSON.stringify(policy), () => readServicePackage(dir, manifestFile, templateFile, policy));
}

/** Packages read and checked, kept while their two files do not change (state/file-memo.ts). */
const checkedPackages = new FileMemo<{ service?: CatalogService; problems: Problem[] }>();

function readServicePackage(dir: string, manifestFile: string, templateFile: string, policy: ManifestPolicy): { service?: CatalogService; problems: Problem[] } {
  const manifestRead = readSmallFile(manifestFile);
  const templateRead = readSmallFile(templateFile);
  const problems: Problem[] = [];
  if (manifestRead.problem) problems.push(manifestRead.problem);
  if (templateRead.problem) problems.push(templateRead.problem);
  if (manifestRead.text === undefined) return { problems };

  const parsed = parseJsonText(manifestRead.text, manifestFile);
  problems.push(...parsed.problems);
  if (parsed.value === undefined) return { problems };
  const manifestProblems = validateManifest(parsed.value, manifestFile, policy);
  problems.push(...manifestProblems);
  if (manifestProblems.length > 0 || templateRead.text === undefined) return { problems };

  const manifest = parsed.value as Manifest;
  if (problems.length > 0) return { problems };
  return {
    service: { id: manifest.id, dir, manifestFile, templateFile, manifest, template: templateRead.text },
    problems,
  };
}

interface IndexEntry {
  id: string;
  name?: string;
  version?: string;
}

function readIndexEntries(value: unknown, file: string): { entries: IndexEntry[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const entries: IndexEntry[] = [];
  if (!Array.isArray(value)) {
    return { entries, problems: [{ file, pointer: '', message: 'the catalog index must be a JSON array of {id, name, description, version, author}' }] };
  }
  const seen = new Set<string>();
  value.forEach((raw, i) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      problems.push({ file, pointer: `/${i}`, message: 'an index entry must be an object' });
      return;
    }
    const entry = raw as Record<string, unknown>;
    for (const key of ['id', 'name', 'description', 'version', 'author']) {
      if (typeof entry[key] !== 'string' || entry[key] === '') problems.push({ file, pointer: `/${i}/${key}`, message: `"${key}" is required and must be a non-empty string` });
    }
    if (typeof entry.id !== 'string') return;
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(entry.id)) {
      problems.push({ file, pointer: `/${i}/id`, message: `"${entry.id}" is not a valid service id (lowercase letters, digits and dashes, starting with a letter)` });
      return;
    }
    if (typeof entry.version === 'string' && !semver.valid(entry.version)) {
      problems.push({ file, pointer: `/${i}/version`, message: `"${entry.version}" is not a semantic version (for example 1.0.0)` });
    }
    if (seen.has(entry.id)) {
      problems.push({ file, pointer: `/${i}/id`, message: `service "${entry.id}" is listed twice` });
      return;
    }
    seen.add(entry.id);
    entries.push({ id: entry.id, name: entry.name as string | undefined, version: entry.version as string | undefined });
  });
  return { entries, problems };
}

/**
 * Load a catalog folder: `index.json` and `services/<id>/`. Index entries, folder names and the
 * manifests' ids and versions must agree; a package that fails is kept out of `services` and its
 * problems are listed under `invalid` so documents that name it can say why. Inside
 * withCatalogMemo, a folder already read there is not read again.
 */
export async function loadCatalog(dir: string, policy: ManifestPolicy): Promise<Catalog> {
  const memo = catalogMemo.getStore();
  if (!memo) return readCatalog(dir, policy);
  const key = catalogKey(dir, policy);
  let loading = memo.get(key);
  if (!loading) {
    loading = readCatalog(dir, policy);
    memo.set(key, loading);
  }
  return loading;
}

/** Catalogs already read in the current withCatalogMemo scope, by real path and policy. */
const catalogMemo = new AsyncLocalStorage<Map<string, Promise<Catalog>>>();

function catalogKey(dir: string, policy: ManifestPolicy): string {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    real = path.resolve(dir);
  }
  return JSON.stringify([real, policy.allowedImagePrefix, policy.imageVerification, policy.projectRoot ?? null]);
}

/**
 * Run `work` with every loadCatalog inside it reading and checking a catalog folder once per
 * real path and policy: later calls get the same Catalog (its paths spelt as the first call
 * spelt them, and the very same Problem objects, so a caller can report them once). For one
 * command such as `pic validate STORE CELL`, where the cell names STORE again; never for the
 * operator, which must see each edit.
 */
export function withCatalogMemo<T>(work: () => Promise<T>): Promise<T> {
  return catalogMemo.run(new Map(), work);
}

async function readCatalog(dir: string, policy: ManifestPolicy): Promise<Catalog> {
  const catalog: Catalog = { dir, services: new Map(), invalid: new Map(), problems: [] };
  const indexFile = path.join(dir, 'index.json');
  const servicesDir = path.join(dir, 'services');
  const indexRead = readSmallFile(indexFile);
  let entries: IndexEntry[] = [];
  if (indexRead.problem) {
    catalog.problems.push(indexRead.problem);
  } else {
    const parsed = parseJsonText(indexRead.text!, indexFile);
    catalog.problems.push(...parsed.problems);
    if (parsed.value !== undefined) {
      const read = readIndexEntries(parsed.value, indexFile);
      entries = read.entries;
      catalog.problems.push(...read.problems);
    }
  }

  let folders: string[] = [];
  try {
    folders = (await fs.readdir(servicesDir, { withFileTypes: true }))
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name)
      .sort();
  } catch (err) {
    catalog.problems.push({ file: servicesDir, pointer: '', message: `cannot list the service folders: ${(err as Error).message}` });
  }

  const indexed = new Map(entries.map((e, i) => [e.id, { entry: e, position: i }]));
  for (const folder of folders) {
    if (!indexed.has(folder)) {
      catalog.problems.push({ file: indexFile, pointer: '', message: `services/${folder}/ has no entry in the index; add one or remove the folder` });
    }
  }
  const folderSet = new Set(folders);
  for (const [id, { position }] of indexed) {
    if (!folderSet.has(id)) catalog.problems.push({ file: indexFile, pointer: `/${position}/id`, message: `"${id}" is listed but services/${id}/ does not exist` });
  }

  const loaded = await Promise.all(
    folders.filter((f) => indexed.has(f)).map(async (folder) => ({ folder, result: await loadServicePackage(path.join(servicesDir, folder), policy) })),
  );
  for (const { folder, result } of loaded) {
    const problems = [...result.problems];
    const { entry, position } = indexed.get(folder)!;
    const service = result.service;
    if (service) {
      if (service.manifest.id !== folder) {
        problems.push({ file: service.manifestFile, pointer: '/id', message: `id "${service.manifest.id}" does not match its folder services/${folder}/` });
      }
      if (entry.version !== undefined && entry.version !== service.manifest.version) {
        problems.push({ file: indexFile, pointer: `/${position}/version`, message: `index says version ${entry.version} but services/${folder}/manifest.json says ${service.manifest.version}` });
      }
      if (entry.name !== undefined && entry.name !== service.manifest.name) {
        problems.push({ file: indexFile, pointer: `/${position}/name`, message: `index says name "${entry.name}" but the manifest says "${service.manifest.name}"` });
      }
    }
    if (problems.length === 0 && service) {
      catalog.services.set(folder, service);
    } else {
      catalog.invalid.set(folder, problems);
      catalog.problems.push(...problems);
    }
  }
  return catalog;
}
