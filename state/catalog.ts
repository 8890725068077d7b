import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import semver from 'semver';
import { validateManifest, type ManifestPolicy } from '../crds/validate-manifest.js';
import { boundProblems, cut, quoted } from '../crds/problem-limit.js';
import type { Manifest, Problem } from '../crds/types.js';
import { byText } from '../crds/values.js';
import { readComposeTemplate, readPackageTemplate, type ComposeTemplate } from './compose-template.js';
import { FileMemo } from './file-memo.js';
import { parseJsonText } from './yaml-documents.js';

export const MANIFEST_FILE = 'manifest.json';
export const TEMPLATE_FILE = 'compose-template.yml';
/**
 * A package's own installer script: kept with the admitted package and run once per admitted version
 * in a sandboxed helper container (reconcilers/containers/install-script.ts), never on the host.
 */
export const INSTALL_SCRIPT_FILE = 'install.sh';
const MAX_PACKAGE_FILE_BYTES = 1024 * 1024;

/** A service package from the catalog that passed every check. */
export interface CatalogService {
  id: string;
  dir: string;
  manifestFile: string;
  templateFile: string;
  manifest: Manifest;
  template: string;
  /** `template` as readComposeTemplate read it, once (catalogService), for every render of the package; shared, never changed. */
  composeTemplate: ComposeTemplate;
  /** Whether the package folder holds an install.sh (a regular file; a link makes the package invalid). */
  installScript?: boolean;
  /** For a kept package: its install.sh as admitted, checked against its recorded sha256. */
  installScriptText?: string;
}

export interface Catalog {
  dir: string;
  services: Map<string, CatalogService>;
  /** Services present in the catalog whose package failed a check, with why. */
  invalid: Map<string, Problem[]>;
  problems: Problem[];
}

/**
 * A package as pic holds it, from its files' contents: the template read here, once, for every
 * render of the package. Every CatalogService is made by this (the catalog, the admitted packages,
 * a held document's package).
 */
export function catalogService(fields: Omit<CatalogService, 'composeTemplate'>, composeTemplate = readComposeTemplate(fields.template, fields.templateFile)): CatalogService {
  return { ...fields, composeTemplate };
}

function symlinkProblem(file: string): Problem {
  return { file, pointer: '', message: 'is a symbolic link; a catalog holds regular files and folders only, so pic does not follow it (copy the file into the catalog instead)' };
}

function errorText(err: unknown): string {
  return cut(String((err as Error).message ?? err).split('\n')[0] ?? '', 200);
}

/** The real path of a folder, or a problem naming it. */
function realFolder(dir: string): { real?: string; problem?: Problem } {
  try {
    return { real: realpathSync(dir) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { problem: { file: dir, pointer: '', message: code === 'ENOENT' ? 'missing' : `cannot be resolved: ${errorText(err)}` } };
  }
}

/** A problem when `p` (a folder inside the catalog) resolves outside the catalog's real root. */
function outsideRoot(p: string, root: string): Problem | undefined {
  const { real, problem } = realFolder(p);
  if (problem) return problem;
  if (real === root || real!.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) return undefined;
  return { file: p, pointer: '', message: `resolves to ${cut(real!, 200)}, outside the catalog ${cut(root, 200)}; pic reads nothing outside it` };
}

/**
 * A small file of the catalog, read synchronously (for the reason state/yaml-documents.ts
 * readYamlFile gives) and never through a symbolic link: the file is refused when it is one or
 * when its folder resolves outside `root` (the catalog's real path), and read through a
 * descriptor opened with O_NOFOLLOW, so a link swapped in after the check is refused too.
 */
function readCatalogFile(file: string, root: string): { text?: string; problem?: Problem } {
  let fd: number | undefined;
  try {
    const link = lstatSync(file);
    if (link.isSymbolicLink()) return { problem: symlinkProblem(file) };
    if (!link.isFile()) return { problem: { file, pointer: '', message: 'not a regular file' } };
    const outside = outsideRoot(path.dirname(file), root);
    if (outside) return { problem: outside };
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const stat = fstatSync(fd);
    if (!stat.isFile()) return { problem: { file, pointer: '', message: 'not a regular file' } };
    if (stat.size > MAX_PACKAGE_FILE_BYTES) return { problem: { file, pointer: '', message: `file is ${stat.size} bytes, more than the ${MAX_PACKAGE_FILE_BYTES} allowed` } };
    return { text: readFileSync(fd, 'utf8') };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { problem: symlinkProblem(file) };
    return { problem: { file, pointer: '', message: code === 'ENOENT' ? 'missing' : `cannot read: ${errorText(err)}` } };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A package folder's install.sh as text, read as every catalog file is (no link, size limit); undefined when it has none. */
export function readInstallScript(dir: string): { text?: string; problem?: Problem } {
  const file = path.join(dir, INSTALL_SCRIPT_FILE);
  if (!lstatSync(file, { throwIfNoEntry: false })) return {};
  const { real, problem } = realFolder(dir);
  if (problem) return { problem };
  return readCatalogFile(file, real!);
}

function isRegularFile(file: string): boolean {
  try {
    return lstatSync(file).isFile();
  } catch {
    return false;
  }
}

/** Every entry of a package folder that is a symbolic link (install.sh or any other), as problems. */
function symlinkedEntries(dir: string): Problem[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isSymbolicLink())
      .map((entry) => symlinkProblem(path.join(dir, entry.name)))
      .sort(byText((p) => p.file));
  } catch {
    return [];
  }
}

/**
 * Load one service package folder (manifest.json + compose-template.yml) and check its manifest.
 * The template is checked where it is rendered (reconcilers/containers), not here. Nothing is
 * read through a symbolic link or from outside `root` (the catalog folder; the package folder
 * itself when it is validated alone).
 */
export async function loadServicePackage(dir: string, policy: ManifestPolicy, root?: string, memo?: FileMemo<PackageRead>): Promise<PackageRead> {
  const manifestFile = path.join(dir, MANIFEST_FILE);
  const templateFile = path.join(dir, TEMPLATE_FILE);
  const read = (): PackageRead => {
    let real = root;
    if (real === undefined) {
      const resolved = realFolder(dir);
      if (resolved.problem) return { problems: [resolved.problem] };
      real = resolved.real!;
    }
    return readServicePackage(dir, manifestFile, templateFile, policy, real);
  };
  // The folder is part of the key: a link planted beside the two files changes its times.
  return memo ? memo.get([dir, manifestFile, templateFile], JSON.stringify([policy, root ?? null]), read) : read();
}

/**
 * A manifest.json named on its own (`pic validate path/manifest.json`): the same size limit, the
 * same refusal of symbolic links, as one read from a catalog.
 */
export function readManifestFile(file: string): { value?: unknown; problems: Problem[] } {
  const folder = realFolder(path.dirname(file));
  if (folder.problem) return { problems: [folder.problem] };
  const read = readCatalogFile(file, folder.real!);
  if (read.problem) return { problems: [read.problem] };
  return parseJsonText(read.text!, file);
}

/** A package read and checked: the service, or why not. */
export interface PackageRead {
  service?: CatalogService;
  problems: Problem[];
}

function readServicePackage(dir: string, manifestFile: string, templateFile: string, policy: ManifestPolicy, root: string): PackageRead {
  const outside = outsideRoot(dir, root);
  if (outside) return { problems: [outside] };
  const problems: Problem[] = symlinkedEntries(dir).filter((p) => p.file !== manifestFile && p.file !== templateFile);
  const manifestRead = readCatalogFile(manifestFile, root);
  const templateRead = readCatalogFile(templateFile, root);
  if (manifestRead.problem) problems.push(manifestRead.problem);
  if (templateRead.problem) problems.push(templateRead.problem);
  if (manifestRead.text === undefined) return { problems };

  const parsed = parseJsonText(manifestRead.text, manifestFile);
  problems.push(...parsed.problems);
  if (parsed.value === undefined) return { problems };
  const manifestProblems = validateManifest(parsed.value, manifestFile, policy);
  problems.push(...manifestProblems);
  if (manifestProblems.length > 0 || templateRead.text === undefined) return { problems };

  // The template is read as YAML by the same reader as documents, so that a template nested too
  // deeply, or not YAML at all, is refused with a short message before any renderer walks it; and,
  // from the same parse, as Compose reads it (merge keys), for every render of the package.
  const templateReading = readPackageTemplate(templateRead.text, templateFile);
  problems.push(...templateReading.documentProblems);
  const manifest = parsed.value as Manifest;
  if (problems.length > 0) return { problems };
  return {
    service: catalogService({ id: manifest.id, dir, manifestFile, templateFile, manifest, template: templateRead.text, installScript: isRegularFile(path.join(dir, INSTALL_SCRIPT_FILE)) }, templateReading.template),
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
      if (typeof entry[key] !== 'string' || entry[key] === '') problems.push({ file, pointer: `/${i}/${key}`, message: `${quoted(key)} is required and must be a non-empty string` });
    }
    if (typeof entry.id !== 'string') return;
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(entry.id)) {
      problems.push({ file, pointer: `/${i}/id`, message: `${quoted(entry.id)} is not a valid service id (lowercase letters, digits and dashes, starting with a letter)` });
      return;
    }
    if (typeof entry.version === 'string' && !semver.valid(entry.version)) {
      problems.push({ file, pointer: `/${i}/version`, message: `${quoted(entry.version)} is not a semantic version (for example 1.0.0)` });
    }
    if (seen.has(entry.id)) {
      problems.push({ file, pointer: `/${i}/id`, message: `service ${quoted(entry.id)} is listed twice` });
      return;
    }
    seen.add(entry.id);
    entries.push({ id: entry.id, name: entry.name as string | undefined, version: entry.version as string | undefined });
  });
  return { entries, problems: boundProblems(problems, file) };
}

/**
 * Load a catalog folder: `index.json` and `services/<id>/`. Index entries, folder names and the
 * manifests' ids and versions must agree; a package that fails is kept out of `services` and its
 * problems are listed under `invalid` so documents that name it can say why. Inside
 * withCatalogMemo, a folder already read there is not read again; with `packages` (the operator's,
 * kept from one reading to the next), a package whose files did not change is not read again.
 */
export async function loadCatalog(dir: string, policy: ManifestPolicy, packages?: FileMemo<PackageRead>): Promise<Catalog> {
  const memo = catalogMemo.getStore();
  if (!memo) return readCatalog(dir, policy, packages);
  const key = catalogKey(dir, policy);
  let loading = memo.get(key);
  if (!loading) {
    loading = readCatalog(dir, policy, packages);
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

async function readCatalog(dir: string, policy: ManifestPolicy, packages: FileMemo<PackageRead> | undefined): Promise<Catalog> {
  const catalog: Catalog = { dir, services: new Map(), invalid: new Map(), problems: [] };
  const indexFile = path.join(dir, 'index.json');
  const servicesDir = path.join(dir, 'services');
  const rootRead = realFolder(dir);
  if (rootRead.problem) {
    catalog.problems.push(rootRead.problem);
    return catalog;
  }
  const root = rootRead.real!;
  const indexRead = readCatalogFile(indexFile, root);
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

  const folders: string[] = [];
  /** Service folders that are symbolic links: refused, never followed. */
  const linked: string[] = [];
  try {
    if (lstatSync(servicesDir).isSymbolicLink()) {
      catalog.problems.push(symlinkProblem(servicesDir));
    } else {
      for (const d of readdirSync(servicesDir, { withFileTypes: true })) {
        if (d.name.startsWith('.')) continue;
        if (d.isSymbolicLink()) linked.push(d.name);
        else if (d.isDirectory()) folders.push(d.name);
      }
      folders.sort();
      linked.sort();
    }
  } catch (err) {
    catalog.problems.push({ file: servicesDir, pointer: '', message: `cannot list the service folders: ${errorText(err)}` });
  }

  const indexed = new Map(entries.map((e, i) => [e.id, { entry: e, position: i }]));
  for (const folder of folders) {
    if (!indexed.has(folder)) {
      catalog.problems.push({ file: indexFile, pointer: '', message: `services/${folder}/ has no entry in the index; add one or remove the folder` });
    }
  }
  for (const name of linked) {
    const problem = symlinkProblem(path.join(servicesDir, name));
    catalog.problems.push(problem);
    if (indexed.has(name)) catalog.invalid.set(name, [problem]);
  }
  const folderSet = new Set([...folders, ...linked]);
  for (const [id, { position }] of indexed) {
    if (!folderSet.has(id)) catalog.problems.push({ file: indexFile, pointer: `/${position}/id`, message: `${quoted(id)} is listed but services/${id}/ does not exist` });
  }

  const loaded = await Promise.all(
    folders.filter((f) => indexed.has(f)).map(async (folder) => ({ folder, result: await loadServicePackage(path.join(servicesDir, folder), policy, root, packages) })),
  );
  for (const { folder, result } of loaded) {
    const problems = [...result.problems];
    const { entry, position } = indexed.get(folder)!;
    const service = result.service;
    if (service) {
      if (service.manifest.id !== folder) {
        problems.push({ file: service.manifestFile, pointer: '/id', message: `id ${quoted(service.manifest.id)} does not match its folder services/${folder}/` });
      }
      if (entry.version !== undefined && entry.version !== service.manifest.version) {
        problems.push({ file: indexFile, pointer: `/${position}/version`, message: `index says version ${quoted(entry.version)} but services/${folder}/manifest.json says ${quoted(service.manifest.version)}` });
      }
      if (entry.name !== undefined && entry.name !== service.manifest.name) {
        problems.push({ file: indexFile, pointer: `/${position}/name`, message: `index says name ${quoted(entry.name)} but the manifest says ${quoted(service.manifest.name)}` });
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
