/**
 * The packages pic admitted, kept in the state directory so a catalog update changes nothing that
 * runs: `<state>/packages/<service>/<version>/` holds the manifest and compose template as they
 * were admitted with their sha256 (package.json); `<service>/admitted.json` names the admitted
 * version (and a failed upgrade, not retried until the document changes); `<service>/upgrade.json`
 * records an upgrade in progress, so an operator restarted midway finishes it or rolls it back.
 * Owner-only, every file written atomically.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Manifest } from '../crds/types.js';
import type { AdmittedView, FailedUpgrade } from './admission.js';
import { readJsonFile, writeFileAtomic } from './atomic-write.js';
import { catalogService, INSTALL_SCRIPT_FILE, MANIFEST_FILE, readInstallScript, TEMPLATE_FILE, type CatalogService } from './catalog.js';

export const PACKAGES_FOLDER = 'packages';
const META_FILE = 'package.json';
const ADMITTED_FILE = 'admitted.json';
const UPGRADE_FILE = 'upgrade.json';
const INSTALL_RECORD_FILE = 'install-script.json';
const SERVICE_NAME = /^[a-z][a-z0-9-]{0,30}$/;
const VERSION_NAME = /^[0-9A-Za-z.+-]{1,64}$/;

export function packagesDir(stateRoot: string): string {
  return path.join(stateRoot, PACKAGES_FOLDER);
}

/** A kept package, read back and checked against its recorded hashes. */
export interface AdmittedPackage extends AdmittedView {
  service: CatalogService;
  manifestSha256: string;
  templateSha256: string;
  admittedAt: string;
}

interface PackageMeta {
  formatVersion: 1;
  service: string;
  version: string;
  manifestSha256: string;
  templateSha256: string;
  /** The package's install.sh, when it ships one (kept beside the manifest as install.sh). */
  installSha256?: string;
  /** The catalog folder it was copied from, for the record. */
  source: string;
  storedAt: string;
}

/**
 * The last run of a package's install.sh (`<service>/install-script.json`): for which admitted
 * version, under which generation of the ServiceInstall, and how it ended. A success is not run
 * again for that version; a failure is not retried until the version or the document changes.
 */
export interface InstallScriptRecord {
  formatVersion: 1;
  version: string;
  generation: string;
  result: 'succeeded' | 'failed';
  at: string;
  exitCode: number;
  timedOut?: boolean;
  /** The tail of its output, bounded and with control characters escaped. */
  output: string;
}

interface AdmittedFile {
  formatVersion: 1;
  version: string;
  admittedAt: string;
  failed?: FailedUpgrade;
}

/** The steps of an upgrade, in order; a restarted operator resumes from the one recorded. */
export type UpgradeStep = 'snapshot' | 'switch' | 'rollback';

export interface UpgradeProgress {
  formatVersion: 1;
  service: string;
  from: string;
  to: string;
  generation: string;
  step: UpgradeStep;
  startedAt: string;
  /** When the new version was switched to; its deadline counts from here. */
  switchedAt?: string;
  deadlineMs: number;
  /** The stability window the new version must pass (seconds); the default when absent. */
  minReadySeconds?: number;
  /**
   * The containers of the new version, once it was started: from then on the switch only watches
   * them (starting them again would hide a container that exited).
   */
  started?: string[];
  /** The verified snapshot taken before the switch. */
  snapshot?: string;
  /** Why the rollback runs. */
  reason?: string;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** What the kept packages hold, and the services whose kept package cannot be trusted. */
export interface AdmittedPackages {
  admitted: Map<string, AdmittedPackage>;
  problems: Map<string, string>;
}

export class PackageStore {
  readonly root: string;
  /** Per service, the upgrade record last read or written (null: none); see `progress`. */
  private readonly progressKnown = new Map<string, UpgradeProgress | null>();
  constructor(stateRoot: string) {
    this.root = packagesDir(stateRoot);
  }

  private serviceDir(service: string): string {
    if (!SERVICE_NAME.test(service)) throw new Error(`"${service}" is not a service id`);
    return path.join(this.root, service);
  }

  private versionDir(service: string, version: string): string {
    if (!VERSION_NAME.test(version)) throw new Error(`"${version}" is not a version pic keeps a package for`);
    return path.join(this.serviceDir(service), version);
  }

  /** Every admitted package. A package whose files differ from their hashes is a problem, never used. */
  async load(): Promise<AdmittedPackages> {
    const out: AdmittedPackages = { admitted: new Map(), problems: new Map() };
    let names: string[];
    try {
      names = (await fs.readdir(this.root, { withFileTypes: true })).filter((d) => d.isDirectory() && SERVICE_NAME.test(d.name)).map((d) => d.name).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw err;
    }
    for (const service of names) {
      try {
        const record = await readJsonFile<AdmittedFile | undefined>(path.join(this.serviceDir(service), ADMITTED_FILE), undefined);
        if (!record) continue;
        if (record.formatVersion !== 1 || typeof record.version !== 'string') throw new Error(`${path.join(this.serviceDir(service), ADMITTED_FILE)} is not an admission record of this version of pic; restore it or the state directory`);
        const pkg = await this.read(service, record.version);
        out.admitted.set(service, { ...pkg, admittedAt: record.admittedAt, ...(record.failed ? { failed: record.failed } : {}) });
      } catch (err) {
        out.problems.set(service, (err as Error).message);
      }
    }
    return out;
  }

  /** One kept package, checked against the hashes recorded when it was stored. */
  async read(service: string, version: string): Promise<Omit<AdmittedPackage, 'admittedAt' | 'failed'>> {
    const dir = this.versionDir(service, version);
    const meta = await readJsonFile<PackageMeta | undefined>(path.join(dir, META_FILE), undefined);
    if (!meta || meta.formatVersion !== 1) throw new Error(`the kept package ${dir} has no ${META_FILE}; reinstall the service (delete and re-add its ServiceInstall) or restore the state directory`);
    const manifestFile = path.join(dir, MANIFEST_FILE);
    const templateFile = path.join(dir, TEMPLATE_FILE);
    const manifestText = await fs.readFile(manifestFile, 'utf8');
    const template = await fs.readFile(templateFile, 'utf8');
    for (const [file, text, expected] of [[manifestFile, manifestText, meta.manifestSha256], [templateFile, template, meta.templateSha256]] as const) {
      if (sha256(text) !== expected) throw new Error(`${file} does not match the sha256 recorded when it was admitted (${expected.slice(0, 12)}…); pic does not run a changed package — restore the file or the state directory`);
    }
    let installScriptText: string | undefined;
    if (meta.installSha256 !== undefined) {
      const installFile = path.join(dir, INSTALL_SCRIPT_FILE);
      installScriptText = await fs.readFile(installFile, 'utf8');
      if (sha256(installScriptText) !== meta.installSha256) throw new Error(`${installFile} does not match the sha256 recorded when it was admitted (${meta.installSha256.slice(0, 12)}…); pic does not run a changed package — restore the file or the state directory`);
    }
    const manifest = JSON.parse(manifestText) as Manifest;
    return {
      version,
      manifest,
      manifestSha256: meta.manifestSha256,
      templateSha256: meta.templateSha256,
      service: catalogService({ id: service, dir, manifestFile, templateFile, manifest, template, installScript: installScriptText !== undefined, ...(installScriptText !== undefined ? { installScriptText } : {}) }),
    };
  }

  /** Keep a copy of a catalog package (idempotent: an identical copy is left as it is). */
  async store(service: string, pkg: CatalogService, now: Date): Promise<void> {
    const version = pkg.manifest.version;
    const dir = this.versionDir(service, version);
    const manifestText = `${JSON.stringify(pkg.manifest, null, 2)}\n`;
    const install = installScriptOf(pkg);
    const meta: PackageMeta = { formatVersion: 1, service, version, manifestSha256: sha256(manifestText), templateSha256: sha256(pkg.template), ...(install !== undefined ? { installSha256: sha256(install) } : {}), source: pkg.dir, storedAt: now.toISOString() };
    const existing = await readJsonFile<PackageMeta | undefined>(path.join(dir, META_FILE), undefined).catch(() => undefined);
    if (existing && existing.manifestSha256 === meta.manifestSha256 && existing.templateSha256 === meta.templateSha256 && existing.installSha256 === meta.installSha256) {
      const intact = await this.read(service, version).then(() => true, () => false);
      if (intact) return;
    }
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(path.join(dir, MANIFEST_FILE), manifestText);
    await writeFileAtomic(path.join(dir, TEMPLATE_FILE), pkg.template);
    if (install !== undefined) await writeFileAtomic(path.join(dir, INSTALL_SCRIPT_FILE), install);
    else await fs.rm(path.join(dir, INSTALL_SCRIPT_FILE), { force: true });
    // The record last: a package without it is not one pic reads.
    await writeFileAtomic(path.join(dir, META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
  }

  /** Admit `pkg`: keep it and make it the version that runs. */
  async admit(service: string, pkg: CatalogService, now: Date): Promise<void> {
    await this.store(service, pkg, now);
    await this.setAdmitted(service, pkg.manifest.version, now);
  }

  async setAdmitted(service: string, version: string, now: Date, failed?: FailedUpgrade): Promise<void> {
    const record: AdmittedFile = { formatVersion: 1, version, admittedAt: now.toISOString(), ...(failed ? { failed } : {}) };
    const file = path.join(this.serviceDir(service), ADMITTED_FILE);
    const before = await readJsonFile<AdmittedFile | undefined>(file, undefined).catch(() => undefined);
    if (before && before.version === version && JSON.stringify(before.failed ?? null) === JSON.stringify(failed ?? null)) return;
    await writeFileAtomic(file, `${JSON.stringify(before && before.version === version ? { ...record, admittedAt: before.admittedAt } : record, null, 2)}\n`);
  }

  /**
   * The upgrade under way for `service`, as this store last read or wrote it: the file is read the
   * first time only. Upgrade records have one writer, the operator, under its lock on the state
   * directory; it keeps one store (OperatorContext.packages), so a pass does not read a file per
   * service to learn that no upgrade is under way. A store made for one command reads afresh.
   */
  async progress(service: string): Promise<UpgradeProgress | undefined> {
    const known = this.progressKnown.get(service);
    if (known !== undefined) return known === null ? undefined : structuredClone(known);
    const p = await readJsonFile<UpgradeProgress | undefined>(path.join(this.serviceDir(service), UPGRADE_FILE), undefined);
    const value = p?.formatVersion === 1 ? p : undefined;
    this.progressKnown.set(service, value ? structuredClone(value) : null);
    return value;
  }

  async writeProgress(progress: UpgradeProgress): Promise<void> {
    this.progressKnown.delete(progress.service);
    await writeFileAtomic(path.join(this.serviceDir(progress.service), UPGRADE_FILE), `${JSON.stringify(progress, null, 2)}\n`);
    this.progressKnown.set(progress.service, structuredClone(progress));
  }

  async clearProgress(service: string): Promise<void> {
    this.progressKnown.delete(service);
    await fs.rm(path.join(this.serviceDir(service), UPGRADE_FILE), { force: true });
    this.progressKnown.set(service, null);
  }

  /** The last run of the service's install.sh, if any. */
  async installRecord(service: string): Promise<InstallScriptRecord | undefined> {
    const r = await readJsonFile<InstallScriptRecord | undefined>(path.join(this.serviceDir(service), INSTALL_RECORD_FILE), undefined);
    return r?.formatVersion === 1 ? r : undefined;
  }

  async writeInstallRecord(service: string, record: InstallScriptRecord): Promise<void> {
    await writeFileAtomic(path.join(this.serviceDir(service), INSTALL_RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`);
  }

  /** An uninstalled service: its kept packages, admission and any unfinished upgrade go (its data stays). */
  async forget(service: string): Promise<boolean> {
    const dir = this.serviceDir(service);
    this.progressKnown.delete(service);
    const existed = await fs.stat(dir).then(() => true, () => false);
    if (existed) await fs.rm(dir, { recursive: true, force: true });
    this.progressKnown.set(service, null);
    return existed;
  }

  /** Remove every kept version of `service` except `keep`. Returns the versions removed. */
  async prune(service: string, keep: readonly string[]): Promise<string[]> {
    let entries;
    try {
      entries = await fs.readdir(this.serviceDir(service), { withFileTypes: true });
    } catch {
      return [];
    }
    const removed: string[] = [];
    for (const e of entries) {
      if (!e.isDirectory() || keep.includes(e.name) || !VERSION_NAME.test(e.name)) continue;
      await fs.rm(path.join(this.serviceDir(service), e.name), { recursive: true, force: true });
      removed.push(e.name);
    }
    return removed.sort();
  }
}

/** A package's install.sh as text: the kept copy, or read from its catalog folder; undefined when it ships none. */
function installScriptOf(pkg: CatalogService): string | undefined {
  if (pkg.installScriptText !== undefined) return pkg.installScriptText;
  if (pkg.installScript !== true) return undefined;
  const read = readInstallScript(pkg.dir);
  if (read.problem) throw new Error(`the package's install.sh cannot be kept: ${read.problem.file}: ${read.problem.message}`);
  return read.text;
}
