/**
 * The backup engine: take a snapshot (pause or stop each service for the moment of its own
 * archives, always resuming it), verify a snapshot by a test restore into scratch volumes, restore
 * a snapshot staged (into new volumes, checked, then swapped in while the service is stopped,
 * keeping the previous contents until it is Ready), and sweep what a crashed run left behind.
 *
 * Decisions are in plan.ts and entries.ts; Docker and file I/O in archive.ts, helper.ts and
 * observe.ts; snapshot folders and journals in state/snapshots.ts. This module orders the steps.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { Manifest } from '../../crds/types.js';
import { isProcessAlive } from '../../state/state-dir.js';
import { snapshotId, type BackupJournal, type SnapshotStore } from '../../state/snapshots.js';
import { archiveContainerPath, listContainerPath, putArchiveFile, readArchiveFile } from './archive.js';
import { compareEntries, countFiles, entryListDigest, sortEntries } from './entries.js';
import { createHelper, createVolume, ensureHelperImage, listLeftovers, removeContainer, removeVolume, runHelper, SWAP_SCRIPT, UNSWAP_SCRIPT, type HelperMount, type HelperSettings } from './helper.js';
import { BACKUP_LABEL } from './labels.js';
import { observeServiceContainers, volumeLabels } from './observe.js';
import { planKeptVolumeArchives, planServiceArchives, type BackupContainer, type PlannedArchive } from './plan.js';
import type { ArchiveRecord, FileEntry, ServiceSnapshot, SnapshotManifest, Verification } from './types.js';

export type BackupPhase = 'backup' | 'verify' | 'restore';

export interface Progress {
  phase: BackupPhase;
  service: string;
  archive: string;
  /** Bytes of this archive so far, and of the service so far (including finished archives). */
  bytes: number;
  serviceBytes: number;
  done: boolean;
}

/** Something worth an event: the document it concerns, and what happened. */
export interface BackupNotice {
  key: string;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export interface BackupEnv {
  docker: Dockerode;
  store: SnapshotStore;
  helper: HelperSettings;
  cellName: string;
  now: () => Date;
  onProgress?: (p: Progress) => void;
  notify?: (n: BackupNotice) => void;
  /** The cell's data directory: host folders a restore writes must resolve inside it. */
  dataDir?: string;
  /** How long a restore waits for the service to be Ready before keeping the previous data. */
  readyTimeoutMs?: number;
}

export interface ServiceTarget {
  id: string;
  version: string;
  manifest: Pick<Manifest, 'backup'>;
  /** pause (default) or stop the service while its archives are taken. */
  consistency: 'pause' | 'stop';
  dataDir: string;
}

/** A problem with input (a document, a snapshot): not retried, names what to fix. */
export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupError';
  }
}

function ownerKey(service: string): string {
  return `ServiceInstall/${service}`;
}

class Journal {
  readonly state: BackupJournal = { pid: process.pid, paused: [], stopped: [], swaps: [], renames: [] };
  constructor(private readonly store: SnapshotStore) {}
  async save(): Promise<void> {
    await this.store.writeJournal(this.state);
  }
  async close(): Promise<void> {
    await this.store.removeJournal(this.state.pid);
  }
}

function progressReporter(env: BackupEnv, phase: BackupPhase, service: string) {
  let before = 0;
  return {
    service,
    start(archive: string) {
      let last = 0;
      const report = (bytes: number, done: boolean) => {
        last = bytes;
        env.onProgress?.({ phase, service, archive, bytes, serviceBytes: before + bytes, done });
      };
      return {
        onBytes: (bytes: number) => report(bytes, false),
        finish: () => {
          report(last, true);
          before += last;
        },
      };
    },
    total: () => before,
  };
}

// ---------------------------------------------------------------------------------------------
// Consistency: pause or stop, and always resume.

async function quiesce(env: BackupEnv, journal: Journal, containers: readonly BackupContainer[], mode: 'pause' | 'stop'): Promise<() => Promise<void>> {
  const touched: { id: string; how: 'paused' | 'stopped' }[] = [];
  const resume = async () => {
    const failures: string[] = [];
    for (const t of [...touched].reverse()) {
      try {
        if (t.how === 'paused') await env.docker.getContainer(t.id).unpause();
        else await env.docker.getContainer(t.id).start();
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code !== 304 && code !== 404 && !/is not paused|already started/i.test((err as Error).message)) failures.push(`${t.id.slice(0, 12)}: ${(err as Error).message}`);
      }
      journal.state.paused = journal.state.paused.filter((id) => id !== t.id);
      journal.state.stopped = journal.state.stopped.filter((id) => id !== t.id);
    }
    touched.length = 0;
    await journal.save();
    if (failures.length > 0) throw new Error(`could not resume every container: ${failures.join('; ')}`);
  };
  try {
    for (const c of containers) {
      if (!c.running) continue;
      // Journal first: a crash between the two leaves a note about a container that still runs.
      if (mode === 'pause') journal.state.paused.push(c.id);
      else journal.state.stopped.push(c.id);
      await journal.save();
      if (mode === 'pause') await env.docker.getContainer(c.id).pause();
      else await env.docker.getContainer(c.id).stop();
      touched.push({ id: c.id, how: mode === 'pause' ? 'paused' : 'stopped' });
    }
  } catch (err) {
    await resume().catch(() => undefined);
    throw err;
  }
  return resume;
}

// ---------------------------------------------------------------------------------------------
// Reading sources.

function sourceMount(source: ArchiveRecord['source'], target: string, readOnly: boolean): HelperMount {
  return source.type === 'volume' ? { type: 'volume', source: source.volume, target, readOnly } : { type: 'bind', source: source.hostPath, target, readOnly };
}

async function writeEntries(file: string, entries: readonly FileEntry[]): Promise<void> {
  await fs.writeFile(file, sortEntries(entries).map((e) => JSON.stringify(e)).join('\n') + '\n', { mode: 0o600 });
}

async function readEntries(file: string): Promise<FileEntry[]> {
  const text = await fs.readFile(file, 'utf8');
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as FileEntry);
}

async function takeArchive(env: BackupEnv, image: string, dir: string, planned: PlannedArchive, progress: ReturnType<typeof progressReporter>): Promise<ArchiveRecord> {
  const helper = await createHelper(env.docker, image, env.helper, [sourceMount(planned.source, '/d', true)]);
  const file = path.join(dir, planned.file);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const p = progress.start(planned.name);
  try {
    const subpath = planned.source.subpath === '.' ? '' : `/${planned.source.subpath}`;
    const written = await archiveContainerPath(env.docker, helper.id, `/d${subpath}`, file, p.onBytes);
    p.finish();
    env.notify?.({ key: ownerKey(progress.service), type: 'Normal', reason: 'BackupProgress', message: `${planned.file}: ${written.tarBytes} bytes read, ${written.size} bytes archived (service so far: ${progress.total()} bytes)` });
    const entriesFile = `${planned.file.replace(/\.tar\.gz$/, '')}.files.jsonl`;
    await writeEntries(path.join(dir, entriesFile), written.entries);
    const source = planned.source.type === 'volume' ? { ...planned.source, labels: (await volumeLabels(env.docker, planned.source.volume)) ?? {} } : planned.source;
    return {
      kind: planned.kind,
      name: planned.name,
      file: planned.file,
      ...(planned.container !== undefined ? { container: planned.container } : {}),
      ...(planned.path !== undefined ? { path: planned.path } : {}),
      source,
      sha256: written.sha256,
      size: written.size,
      ...countFiles(written.entries),
      entriesSha256: entryListDigest(written.entries),
      entriesFile,
    };
  } finally {
    await removeContainer(env.docker, helper.id);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a host path is not safely inside `folder`, or undefined: every existing part of it must
 * resolve inside the folder and the path itself must not be a symlink. A service can write under
 * the data directory through its bind mounts, so a symlink there could point anywhere.
 */
async function leavesFolder(p: string, folder: string): Promise<string | undefined> {
  let root: string;
  try {
    root = await fs.realpath(folder);
  } catch {
    return `the data directory ${folder} cannot be resolved`;
  }
  let existing = p;
  for (;;) {
    try {
      const stat = await fs.lstat(existing);
      if (existing === p && stat.isSymbolicLink()) return `${p} is a symlink; pic reads and writes only real folders under ${folder}`;
      break;
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return `${p} has no existing folder above it`;
      existing = parent;
    }
  }
  const real = await fs.realpath(existing);
  if (real !== root && !real.startsWith(`${root}/`)) return `${p} resolves to ${real}, outside the data directory ${folder}`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Create.

export interface CreateOptions {
  reason?: SnapshotManifest['reason'];
  verify?: boolean;
}

export interface CreateResult {
  manifest: SnapshotManifest;
  warnings: string[];
}

export async function createSnapshot(env: BackupEnv, targets: readonly ServiceTarget[], options: CreateOptions = {}): Promise<CreateResult> {
  await sweep(env);
  const planned: { target: ServiceTarget; containers: BackupContainer[]; archives: PlannedArchive[] }[] = [];
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const target of targets) {
    const containers = await observeServiceContainers(env.docker, target.id, env.cellName);
    const plan = planServiceArchives(target.id, target.manifest, containers, target.dataDir);
    problems.push(...plan.problems.map((p) => `ServiceInstall/${p.service}: manifest ${p.pointer}: ${p.message}`));
    const archives: PlannedArchive[] = [];
    for (const a of plan.archives) {
      if (a.kind === 'config' && a.source.type === 'bind') {
        if (!(await exists(a.source.hostPath))) {
          warnings.push(`ServiceInstall/${target.id}: config path ${a.name} does not exist (${a.source.hostPath}); nothing to archive for it`);
          continue;
        }
        const outside = await leavesFolder(a.source.hostPath, target.dataDir);
        if (outside) {
          problems.push(`ServiceInstall/${target.id}: manifest /backup/config_paths: ${a.name}: ${outside}`);
          continue;
        }
        if (!(await fs.stat(a.source.hostPath)).isDirectory()) {
          problems.push(`ServiceInstall/${target.id}: manifest /backup/config_paths: ${a.name} (${a.source.hostPath}) is not a folder; pic archives config folders, so name the folder that holds the file`);
          continue;
        }
      }
      archives.push(a);
    }
    if (archives.length === 0 && plan.problems.length === 0) warnings.push(`ServiceInstall/${target.id}: its manifest declares nothing to back up (backup.volumes, backup.config_paths)`);
    planned.push({ target, containers, archives });
  }
  if (problems.length > 0) throw new BackupError(`nothing was backed up:\n  ${problems.join('\n  ')}`);
  return takeSnapshot(env, planned, options, warnings);
}

/** A final snapshot of a service without containers: each kept volume whole. */
export async function createKeptDataSnapshot(env: BackupEnv, service: string, volumes: readonly string[]): Promise<CreateResult> {
  await sweep(env);
  const target: ServiceTarget = { id: service, version: '', manifest: {}, consistency: 'pause', dataDir: '/' };
  return takeSnapshot(env, [{ target, containers: [], archives: planKeptVolumeArchives(service, volumes) }], { reason: 'final', verify: true }, []);
}

async function takeSnapshot(
  env: BackupEnv,
  planned: readonly { target: ServiceTarget; containers: BackupContainer[]; archives: PlannedArchive[] }[],
  options: CreateOptions,
  warnings: string[],
): Promise<CreateResult> {
  const image = await ensureHelperImage(env.docker, env.helper);
  const createdAt = env.now();
  const id = snapshotId(createdAt, randomBytes(2).toString('hex'));
  const journal = new Journal(env.store);
  const dir = await env.store.begin(id);
  journal.state.partial = dir;
  await journal.save();
  const services: ServiceSnapshot[] = [];
  try {
    for (const { target, containers, archives } of planned) {
      const images: Record<string, string> = {};
      for (const c of containers) images[c.name] = c.image;
      const progress = progressReporter(env, 'backup', target.id);
      const records: ArchiveRecord[] = [];
      const started = Date.now();
      const resume = archives.length > 0 ? await quiesce(env, journal, containers, target.consistency) : async () => undefined;
      let downtimeMs = 0;
      try {
        for (const a of archives) records.push(await takeArchive(env, image, dir, a, progress));
      } finally {
        try {
          await resume();
        } finally {
          downtimeMs = Date.now() - started;
        }
      }
      const affected = containers.some((c) => c.running);
      services.push({ service: target.id, version: target.version, images, consistency: affected && archives.length > 0 ? target.consistency : 'none', downtimeMs: affected ? downtimeMs : 0, archives: records });
      env.notify?.({
        key: ownerKey(target.id),
        type: 'Normal',
        reason: 'BackupTaken',
        message: `snapshot ${id}: ${records.length} archive(s), ${progress.total()} bytes read${affected ? `, ${target.consistency === 'stop' ? 'stopped' : 'paused'} for ${downtimeMs} ms` : ''}`,
      });
    }
    const manifest: SnapshotManifest = { formatVersion: 1, id, cell: env.cellName, createdAt: createdAt.toISOString(), reason: options.reason ?? 'manual', services };
    await env.store.commit(id, manifest);
    delete journal.state.partial;
    await journal.save();
    if (options.verify !== false) manifest.verification = await verifySnapshot(env, id);
    return { manifest, warnings };
  } catch (err) {
    await env.store.abandon(id).catch(() => undefined);
    for (const { target } of planned) env.notify?.({ key: ownerKey(target.id), type: 'Warning', reason: 'BackupFailed', message: `snapshot ${id} was not taken: ${(err as Error).message}` });
    throw err;
  } finally {
    await journal.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Verify.

interface ArchiveCheck {
  record: ArchiveRecord;
  service: string;
  file: string;
  problems: string[];
}

/** Read an archive file back: hash, size, what it holds against its record, whether it may be restored. */
async function checkArchiveFile(env: BackupEnv, id: string, service: string, record: ArchiveRecord, progress: ReturnType<typeof progressReporter>): Promise<ArchiveCheck> {
  const dir = env.store.dir(id);
  const file = path.join(dir, record.file);
  const label = `${service}/${record.file.split('/').pop()}`;
  const problems: string[] = [];
  const p = progress.start(record.name);
  try {
    const read = await readArchiveFile(file, p.onBytes);
    if (read.sha256 !== record.sha256 || read.size !== record.size) problems.push(`${label}: the file's sha256 (${read.sha256.slice(0, 12)}…, ${read.size} bytes) is not the one recorded (${record.sha256.slice(0, 12)}…, ${record.size} bytes): it was changed or corrupted`);
    for (const r of read.refused) problems.push(`${label}: refused: ${r}`);
    if (entryListDigest(read.entries) !== record.entriesSha256) problems.push(`${label}: holds other files than were archived`);
  } catch (err) {
    problems.push(`${label}: cannot be read (${(err as Error).message}): it is corrupted or truncated`);
  } finally {
    p.finish();
  }
  return { record, service, file, problems };
}

async function restoreInto(env: BackupEnv, image: string, mount: HelperMount, check: ArchiveCheck, onBytes: (n: number) => void): Promise<string[]> {
  const helper = await createHelper(env.docker, image, env.helper, [mount]);
  try {
    await putArchiveFile(env.docker, helper.id, mount.target, check.file, onBytes);
    const restored = await listContainerPath(env.docker, helper.id, mount.target);
    if (entryListDigest(restored.entries) === check.record.entriesSha256) return [];
    const archived = await readEntries(path.join(path.dirname(check.file), path.basename(check.record.entriesFile)));
    const label = `${check.service}/${check.record.file.split('/').pop()}`;
    return compareEntries(archived, restored.entries).map((d) => `${label}: restored tree differs: ${d}`);
  } finally {
    await removeContainer(env.docker, helper.id);
  }
}

/**
 * Restore every archive of a snapshot into scratch volumes and compare file list, sizes and
 * content hashes with what was archived; record the outcome in the snapshot's manifest.
 */
export async function verifySnapshot(env: BackupEnv, id: string): Promise<Verification> {
  const manifest = await env.store.read(id);
  const image = await ensureHelperImage(env.docker, env.helper);
  const problems: string[] = [];
  for (const s of manifest.services) {
    const progress = progressReporter(env, 'verify', s.service);
    for (const record of s.archives) {
      const check = await checkArchiveFile(env, id, s.service, record, progress);
      problems.push(...check.problems);
      if (check.problems.length > 0) continue;
      const scratch = await createVolume(env.docker, env.helper, 'scratch', s.service, { [BACKUP_LABEL.snapshot]: id });
      try {
        problems.push(...(await restoreInto(env, image, { type: 'volume', source: scratch, target: '/d', readOnly: false }, check, () => undefined)));
      } finally {
        await removeVolume(env.docker, scratch);
      }
    }
    env.notify?.({
      key: ownerKey(s.service),
      type: problems.length > 0 ? 'Warning' : 'Normal',
      reason: problems.length > 0 ? 'BackupVerificationFailed' : 'BackupVerified',
      message: problems.length > 0 ? `snapshot ${id}: ${problems.join('; ')}` : `snapshot ${id}: every archive restored into a scratch volume matches what was archived`,
    });
  }
  const verification: Verification = { ok: problems.length === 0, at: env.now().toISOString(), ...(problems.length > 0 ? { problems } : {}) };
  await env.store.write({ ...manifest, verification });
  return verification;
}

// ---------------------------------------------------------------------------------------------
// Restore.

export interface RestoreReport {
  snapshot: string;
  services: { service: string; archives: number; downtimeMs: number; ready: boolean; previousKept: string[] }[];
}

interface Staged {
  check: ArchiveCheck;
  /** A staged volume, or a staged host folder. */
  volume?: string;
  folder?: string;
  target?: string;
}

async function waitReady(env: BackupEnv, service: string): Promise<boolean> {
  const deadline = Date.now() + (env.readyTimeoutMs ?? 120_000);
  for (;;) {
    const containers = await observeServiceContainers(env.docker, service, env.cellName);
    let ready = containers.length > 0;
    for (const c of containers) {
      const inspect = await env.docker.getContainer(c.id).inspect();
      const health = inspect.State.Health?.Status;
      if (!inspect.State.Running || inspect.State.Paused || (health !== undefined && health !== 'healthy')) ready = false;
    }
    if (ready) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function restoreSnapshot(env: BackupEnv, id: string, only: readonly string[] = []): Promise<RestoreReport> {
  await sweep(env);
  const manifest = await env.store.read(id);
  if (manifest.cell !== env.cellName) throw new BackupError(`snapshot ${id} is of the cell "${manifest.cell}", not of "${env.cellName}": its volumes are named for that cell; nothing was changed`);
  const unknown = only.filter((s) => !manifest.services.some((x) => x.service === s));
  if (unknown.length > 0) throw new BackupError(`snapshot ${id} holds no service ${unknown.join(', ')}; it holds ${manifest.services.map((s) => s.service).join(', ') || 'none'}`);
  const chosen = manifest.services.filter((s) => only.length === 0 || only.includes(s.service));

  // 1. Every archive read and checked before anything is written anywhere.
  const checks: ArchiveCheck[] = [];
  for (const s of chosen) {
    const progress = progressReporter(env, 'verify', s.service);
    for (const record of s.archives) checks.push(await checkArchiveFile(env, id, s.service, record, progress));
  }
  const refused = checks.flatMap((c) => c.problems);
  if (refused.length > 0) throw new BackupError(`snapshot ${id} is not restored; nothing was changed:\n  ${refused.join('\n  ')}`);

  const image = await ensureHelperImage(env.docker, env.helper);
  const journal = new Journal(env.store);
  const report: RestoreReport = { snapshot: id, services: [] };
  try {
    for (const s of chosen) {
      const mine = checks.filter((c) => c.service === s.service);
      const progress = progressReporter(env, 'restore', s.service);
      // 2. Staged: into new volumes (or folders beside the bind targets), then checked.
      const staged: Staged[] = [];
      try {
        for (const check of mine) {
          const p = progress.start(check.record.name);
          const src = check.record.source;
          let problems: string[];
          if (src.type === 'volume') {
            const volume = await createVolume(env.docker, env.helper, 'staged', s.service, { [BACKUP_LABEL.snapshot]: id });
            staged.push({ check, volume });
            problems = await restoreInto(env, image, { type: 'volume', source: volume, target: '/d', readOnly: false }, check, p.onBytes);
          } else {
            const target = path.join(src.hostPath, src.subpath);
            if (env.dataDir === undefined) throw new BackupError(`${s.service}/${check.record.file} restores into the host folder ${target}, and the cell's data directory is not known to check it against`);
            const outside = await leavesFolder(target, env.dataDir);
            if (outside) throw new BackupError(`snapshot ${id} is not restored; nothing was changed: ${s.service}/${check.record.file}: ${outside}`);
            const folder = `${target}.pic-staged-${id}`;
            await fs.rm(folder, { recursive: true, force: true });
            await fs.mkdir(folder, { recursive: true, mode: 0o700 });
            staged.push({ check, folder, target });
            problems = await restoreInto(env, image, { type: 'bind', source: folder, target: '/d', readOnly: false }, check, p.onBytes);
          }
          p.finish();
          env.notify?.({ key: ownerKey(s.service), type: 'Normal', reason: 'RestoreProgress', message: `${check.record.file}: staged and checked (service so far: ${progress.total()} bytes)` });
          if (problems.length > 0) throw new BackupError(`snapshot ${id} is not restored; the service was not touched:\n  ${problems.join('\n  ')}`);
        }

        // 3. Stop, swap, start.
        const containers = await observeServiceContainers(env.docker, s.service, env.cellName);
        const started = Date.now();
        for (const c of containers.filter((x) => x.running || x.paused)) {
          journal.state.stopped.push(c.id);
          await journal.save();
          if (c.paused) await env.docker.getContainer(c.id).unpause();
          await env.docker.getContainer(c.id).stop();
        }
        const previousKept: string[] = [];
        for (const st of staged) {
          const src = st.check.record.source;
          if (st.volume && src.type === 'volume') {
            if ((await volumeLabels(env.docker, src.volume)) === undefined) {
              await env.docker.createVolume({ Name: src.volume, Labels: (src as { labels?: Record<string, string> }).labels ?? {} });
            }
            const previous = await createVolume(env.docker, env.helper, 'previous', s.service, { [BACKUP_LABEL.previousOf]: src.volume, [BACKUP_LABEL.snapshot]: id });
            previousKept.push(previous);
            const swap = { live: src.volume, subpath: src.subpath, staged: st.volume, previous };
            journal.state.swaps.push(swap);
            await journal.save();
            await swapVolume(env, image, swap);
          } else if (st.folder && st.target) {
            const previous = `${st.target}.pic-previous-${id}`;
            const rename = { target: st.target, staged: st.folder, previous };
            journal.state.renames.push(rename);
            await journal.save();
            await swapFolder(rename);
            previousKept.push(previous);
          }
        }
        // Started again: what ran before the restore (a stopped service stays stopped).
        const wasRunning = containers.filter((x) => x.running || x.paused);
        for (const c of wasRunning) await env.docker.getContainer(c.id).start().catch((err: Error & { statusCode?: number }) => {
          if (err.statusCode !== 304) throw err;
        });
        journal.state.stopped = [];
        journal.state.swaps = [];
        journal.state.renames = [];
        await journal.save();
        const downtimeMs = Date.now() - started;
        // 4. The previous contents go once the service is Ready again; else they stay for the admin.
        const ready = wasRunning.length === 0 ? false : await waitReady(env, s.service);
        if (ready) {
          for (const p of previousKept) {
            if (p.startsWith('/')) await fs.rm(p, { recursive: true, force: true });
            else await removeVolume(env.docker, p);
          }
        }
        report.services.push({ service: s.service, archives: mine.length, downtimeMs, ready, previousKept: ready ? [] : previousKept });
        env.notify?.({
          key: ownerKey(s.service),
          type: ready ? 'Normal' : 'Warning',
          reason: ready ? 'BackupRestored' : 'BackupRestoredNotReady',
          message: ready
            ? `snapshot ${id} restored (${mine.length} archive(s), stopped for ${downtimeMs} ms)`
            : `snapshot ${id} restored, but the service is not Ready; the previous data is kept in ${previousKept.join(', ')}`,
        });
      } finally {
        for (const st of staged) {
          if (st.volume) await removeVolume(env.docker, st.volume).catch(() => undefined);
          if (st.folder) await fs.rm(st.folder, { recursive: true, force: true }).catch(() => undefined);
        }
      }
    }
  } catch (err) {
    // A swap that failed halfway is undone from the previous copy, then the service this run
    // stopped is started again, on the data it had.
    const undone: string[] = [];
    for (const swap of journal.state.swaps) {
      const image = await ensureHelperImage(env.docker, env.helper).catch(() => undefined);
      if (image && (await unswapVolume(env, image, swap).then(() => true, () => false))) undone.push(swap.live);
    }
    for (const r of journal.state.renames) {
      if (await exists(r.previous)) {
        await fs.rm(r.target, { recursive: true, force: true }).catch(() => undefined);
        await fs.rename(r.previous, r.target).catch(() => undefined);
        undone.push(r.target);
      }
    }
    for (const cid of journal.state.stopped) await env.docker.getContainer(cid).start().catch(() => undefined);
    if (undone.length > 0) (err as Error).message += ` (the previous data was put back into ${undone.join(', ')})`;
    throw err;
  } finally {
    await journal.close();
  }
  return report;
}

async function swapVolume(env: BackupEnv, image: string, swap: BackupJournal['swaps'][number]): Promise<void> {
  const result = await runHelper(
    env.docker,
    image,
    env.helper,
    [
      { type: 'volume', source: swap.live, target: '/live', readOnly: false },
      { type: 'volume', source: swap.staged, target: '/staged', readOnly: true },
      { type: 'volume', source: swap.previous, target: '/previous', readOnly: false },
    ],
    ['sh', '-c', SWAP_SCRIPT, 'swap', swap.subpath],
  );
  if (result.exitCode !== 0) throw new Error(`swapping the restored data into volume ${swap.live} failed (exit ${result.exitCode}): ${result.output}`);
}

async function unswapVolume(env: BackupEnv, image: string, swap: BackupJournal['swaps'][number]): Promise<void> {
  const result = await runHelper(
    env.docker,
    image,
    env.helper,
    [
      { type: 'volume', source: swap.live, target: '/live', readOnly: false },
      { type: 'volume', source: swap.previous, target: '/previous', readOnly: true },
    ],
    ['sh', '-c', UNSWAP_SCRIPT, 'unswap', swap.subpath],
  );
  if (result.exitCode !== 0) throw new Error(`putting the previous data back into volume ${swap.live} failed (exit ${result.exitCode}): ${result.output}`);
}

async function swapFolder(r: BackupJournal['renames'][number]): Promise<void> {
  if ((await exists(r.target)) && !(await exists(r.previous))) await fs.rename(r.target, r.previous);
  if (await exists(r.staged)) {
    await fs.rm(r.target, { recursive: true, force: true });
    await fs.rename(r.staged, r.target);
  }
}

// ---------------------------------------------------------------------------------------------
// Sweep: what a run killed halfway left behind.

export interface SweepReport {
  resumed: string[];
  finishedSwaps: string[];
  removedContainers: number;
  removedVolumes: string[];
  removedFolders: string[];
}

export async function sweep(env: BackupEnv, isAlive: (pid: number) => boolean = isProcessAlive): Promise<SweepReport> {
  const report: SweepReport = { resumed: [], finishedSwaps: [], removedContainers: 0, removedVolumes: [], removedFolders: [] };
  const journals = await env.store.deadJournals(isAlive);
  {
    const leftovers = await listLeftovers(env.docker, env.helper.labels, isAlive);
    for (const id of leftovers.containers) {
      await removeContainer(env.docker, id);
      report.removedContainers++;
    }
    for (const j of journals) {
      if (j.swaps.length > 0) {
        const image = await ensureHelperImage(env.docker, env.helper);
        for (const swap of j.swaps) {
          await swapVolume(env, image, swap);
          report.finishedSwaps.push(swap.live);
        }
      }
      for (const r of j.renames) {
        await swapFolder(r);
        report.finishedSwaps.push(r.target);
      }
      for (const cid of j.paused) {
        try {
          const state = (await env.docker.getContainer(cid).inspect()).State;
          if (state.Paused) {
            await env.docker.getContainer(cid).unpause();
            report.resumed.push(cid);
          }
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        }
      }
      for (const cid of j.stopped) {
        try {
          const state = (await env.docker.getContainer(cid).inspect()).State;
          if (state.Paused) await env.docker.getContainer(cid).unpause();
          else if (!state.Running) await env.docker.getContainer(cid).start();
          report.resumed.push(cid);
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        }
      }
      await env.store.removeJournal(j.pid);
      env.notify?.({ key: 'backup', type: 'Warning', reason: 'BackupRecovered', message: `a backup or restore (pid ${j.pid}) ended without finishing; resumed ${report.resumed.length} container(s), finished ${report.finishedSwaps.length} swap(s)` });
    }
    for (const v of leftovers.volumes) {
      await removeVolume(env.docker, v.name);
      report.removedVolumes.push(v.name);
    }
  }
  report.removedFolders = await env.store.removeAbandoned(await env.store.livePartials(isAlive));
  return report;
}
