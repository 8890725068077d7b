/**
 * The operator's side of backups: the sweep of what a killed backup or restore left behind, the
 * Cell's schedule (a timer, checked again on every resync; the last snapshot times come from the
 * snapshot store, so a restart changes nothing), retention after each scheduled snapshot, the
 * last verified snapshot per service for the statuses, and the hold a running backup or restore
 * has on a service (its journal), which keeps the reconcile off that service's containers.
 */
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { CellDocument, ServiceInstallDocument } from '../crds/types.js';
import { createSnapshot, sweep, type BackupEnv, type Progress, type ServiceTarget } from '../reconcilers/backup/index.js';
import type { HelperSettings } from '../reconcilers/backup/helper.js';
import { planRetention } from '../reconcilers/backup/retention.js';
import { backupDue, backupFactsOf, nextSlot, type BackupFacts } from '../reconcilers/backup/schedule.js';
import type { SnapshotManifest } from '../reconcilers/backup/types.js';
import { LABEL } from '../reconcilers/containers/labels.js';
import type { LoadedCell } from '../state/cell.js';
import type { HeldCell } from '../state/hold.js';
import { serviceKey } from '../state/document-keys.js';
import { FileMemo } from '../state/file-memo.js';
import { SnapshotStore, snapshotRoot, type JournalFile } from '../state/snapshots.js';
import { isProcessAlive } from '../state/state-dir.js';
import type { OperatorContext } from './context.js';
import type { BackupStatusStore } from './backup-status.js';

/**
 * The helper settings of this cell, and the one reader of the backup's environment variables:
 * PIC_BACKUP_HELPER_IMAGE (the helper image, else one built here), PIC_BACKUP_NAME_PREFIX (the
 * start of helper names) and PIC_BUSYBOX (the static busybox a built helper holds).
 */
export function helperSettings(cellName: string, env: NodeJS.ProcessEnv = process.env): HelperSettings {
  return {
    labels: { [LABEL.cell]: cellName },
    ...(env.PIC_BACKUP_HELPER_IMAGE ? { image: env.PIC_BACKUP_HELPER_IMAGE } : {}),
    ...(env.PIC_BACKUP_NAME_PREFIX ? { namePrefix: env.PIC_BACKUP_NAME_PREFIX } : {}),
    ...(env.PIC_BUSYBOX ? { busybox: env.PIC_BUSYBOX } : {}),
  };
}

/** What every backup of this cell works with, whoever runs it: Docker, the snapshot store, the data directory and the helper. */
export function cellBackupEnv(docker: Dockerode, stateRoot: string, cellDir: string, cell: CellDocument): Pick<BackupEnv, 'docker' | 'store' | 'helper' | 'cellName' | 'dataDir'> {
  return {
    docker,
    store: new SnapshotStore(cellSnapshotRoot(stateRoot, cellDir, cell)),
    helper: helperSettings(cell.metadata.name),
    cellName: cell.metadata.name,
    dataDir: cellDataDir(stateRoot, cell),
  };
}

/** The cell's data directory: the Cell's spec.dataDir, else data/ in the state directory. */
export function cellDataDir(stateRoot: string, cell: CellDocument): string {
  return cell.spec.dataDir ? path.posix.normalize(cell.spec.dataDir) : path.join(stateRoot, 'data');
}

/** Where the cell's snapshots live. */
export function cellSnapshotRoot(stateRoot: string, cellDir: string, cell: CellDocument | undefined): string {
  return snapshotRoot(stateRoot, cellDir, cell?.spec.backup?.path);
}

/**
 * What a backup of one installed service takes, or why its package is not known. `cell` is loaded
 * with the admitted packages (loadRunningCell, or the operator's own load), so the manifest is
 * the one the service runs, whatever the catalog holds now.
 */
export function serviceTarget(cell: LoadedCell, doc: { doc: ServiceInstallDocument; file: string }, dataDir: string): ServiceTarget | { problem: string } {
  const id = doc.doc.metadata.name;
  const manifest = cell.catalog?.services.get(id)?.manifest;
  if (!manifest) return { problem: `ServiceInstall/${id} (${doc.file}): the catalog has no valid package "${id}", so what to back up is not known; run pic validate ${cell.dir}` };
  return { id, version: manifest.version, manifest, consistency: doc.doc.spec.backup?.consistency ?? 'pause', dataDir };
}

function declaresData(target: ServiceTarget): boolean {
  const b = target.manifest.backup;
  return b !== undefined && (b.volumes.length > 0 || b.config_paths.length > 0);
}

export interface BackupSchedulerOptions {
  ctx: OperatorContext;
  stateRoot: string;
  cellDir: string;
  /** The operator's current snapshot of the cell folder. */
  cell: () => HeldCell | undefined;
  statusStore: BackupStatusStore;
  /** Enqueue a key (a service held by a run that is gone, once it has been put right). */
  enqueue: (key: string) => void;
  /** Resolves when the reconcile loop has settled (the services' statuses say whether they are Ready). */
  settled?: () => Promise<void>;
  /** The clock of every time the scheduler keeps: slots, the wait after a failed run, progress logs. */
  now?: () => Date;
  /** After a scheduled backup failed, or found no service ready, wait this long before trying again. */
  retryMs?: number;
  /** How often the journals are looked at for a run that died (default 5 s). */
  journalPollMs?: number;
}

/** A run (its pid and what it does) holding a service still. */
export interface BackupHold {
  pid: number;
  operation: string;
}

export class BackupScheduler {
  private running?: Promise<void>;
  private sweeping?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private poller?: NodeJS.Timeout;
  private retryAt = 0;
  private stopped = false;
  private readonly now: () => Date;
  /** The journal folder as last read, kept while it is unchanged (a run writes its journal by renames). */
  private readonly journalFiles = new FileMemo<JournalFile[]>(4);

  constructor(private readonly opts: BackupSchedulerOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  private cellDoc(): CellDocument | undefined {
    const cell = this.opts.cell();
    return cell?.cell && !cell.frozen ? cell.cell : undefined;
  }

  private store(cell: CellDocument): SnapshotStore {
    return new SnapshotStore(cellSnapshotRoot(this.opts.stateRoot, this.opts.cellDir, cell));
  }

  private env(cell: CellDocument): BackupEnv {
    const { ctx } = this.opts;
    let lastLog = 0;
    return {
      ...cellBackupEnv(ctx.docker, this.opts.stateRoot, this.opts.cellDir, cell),
      now: this.now,
      notify: (n) => ctx.event(n.key, n.type, n.reason, n.message),
      onProgress: (p: Progress) => {
        const t = this.now().getTime();
        if (!p.done && t - lastLog < 10_000) return;
        lastLog = t;
        ctx.logger.info(`${p.phase} ${p.service}: ${p.archive} ${p.bytes} bytes (service ${p.serviceBytes} bytes)${p.done ? ', done' : ''}`, { key: serviceKey(p.service) });
      },
    };
  }

  /**
   * Put right what a killed backup or restore left (paused or stopped containers, a swap under
   * way, helpers, scratch and staged volumes, partial folders). One sweep at a time.
   */
  async sweep(): Promise<void> {
    const cell = this.cellDoc();
    if (!cell) return;
    this.sweeping ??= (async () => {
      const env = this.env(cell);
      const { dead } = await env.store.journals();
      const held = new Set(dead.flatMap((j) => j.holding ?? []));
      const report = await sweep(env);
      const touched = report.resumed.length + report.finishedSwaps.length + report.removedContainers + report.removedVolumes.length + report.removedFolders.length;
      if (touched > 0) this.opts.ctx.logger.info(`backup sweep: resumed ${report.resumed.length} container(s), finished ${report.finishedSwaps.length} swap(s), removed ${report.removedContainers} helper(s), ${report.removedVolumes.length} volume(s), ${report.removedFolders.length} partial folder(s)`);
      for (const service of held) this.opts.enqueue(serviceKey(service));
    })().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /**
   * The live run holding `service` still, if any. A run that holds it but is gone is swept first
   * (its pauses undone, its swap finished), so the reconcile that follows sees the service as the
   * run should have left it.
   */
  async holdOf(service: string): Promise<BackupHold | undefined> {
    const cell = this.cellDoc();
    if (!cell) return undefined;
    // Asked before every reconcile of every service: the folder is read again only when it changed.
    const store = this.store(cell);
    const { live, dead } = await store.journals(isProcessAlive, this.journalFiles.get([store.journalDir], '', () => store.readJournalFiles()));
    const holder = live.find((j) => (j.holding ?? []).includes(service));
    if (holder) return { pid: holder.pid, operation: holder.operation ?? 'backup' };
    if (dead.length > 0) await this.sweep();
    return undefined;
  }

  /** Sweep, then keep an eye on the journals and the schedule (not for `pic run --once`). */
  async start(watch: boolean): Promise<void> {
    // A sweep that fails is tried again before each held service is reconciled (holdOf), so the
    // operator starts anyway and no service it concerns is touched before it succeeds.
    await this.sweep().catch((err: Error) => this.opts.ctx.logger.error(`cannot put right what a killed backup or restore left: ${err.message}`));
    if (!watch) return;
    const poll = async () => {
      const cell = this.cellDoc();
      if (!cell || this.stopped) return;
      const { dead } = await this.store(cell).journals();
      if (dead.length > 0) await this.sweep();
    };
    this.poller = setInterval(() => {
      poll().catch((err: Error) => this.opts.ctx.logger.warn(`backup journals: ${err.message}`));
    }, this.opts.journalPollMs ?? 5000);
    this.poller.unref();
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.poller) clearInterval(this.poller);
    return this.running ?? Promise.resolve();
  }

  /**
   * Bring the services' backup facts up to date and, when the schedule asks for a snapshot and
   * none is running, take one (in the background). Called after each resync and by its own timer.
   */
  async check(): Promise<void> {
    if (this.stopped) return;
    const cell = this.cellDoc();
    if (!cell) return;
    const now = this.now();
    const { snapshots } = await this.store(cell).list();
    await this.publishFacts(cell, snapshots, now);
    const schedule = cell.spec.backup?.schedule;
    if (!schedule) return;
    const lastScheduled = snapshots.filter((s) => s.reason === 'scheduled').map((s) => new Date(s.createdAt)).sort((a, b) => b.getTime() - a.getTime())[0];
    if (!this.running && backupDue(schedule, lastScheduled, now) && now.getTime() >= this.retryAt) {
      this.running = this.take(cell).finally(() => {
        this.running = undefined;
        this.check().catch((err: Error) => this.opts.ctx.logger.warn(`backup schedule: ${err.message}`));
      });
      return;
    }
    if (this.running) return;
    // Due but waiting out a failure: look again when the wait is over; else at the next slot.
    const due = backupDue(schedule, lastScheduled, now);
    this.arm((due ? this.retryAt : nextSlot(schedule, now).getTime()) - now.getTime());
  }

  private arm(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    // setTimeout holds at most ~24.8 days; a weekly slot is within it.
    this.timer = setTimeout(() => {
      this.check().catch((err: Error) => this.opts.ctx.logger.warn(`backup schedule: ${err.message}`));
    }, Math.min(Math.max(delayMs, 1000), 2 ** 31 - 1));
    this.timer.unref();
  }

  /** The scheduled snapshot of every ready service that declares data, verified, then retention. */
  private async take(cell: CellDocument): Promise<void> {
    const { ctx } = this.opts;
    await this.opts.settled?.();
    const loaded = this.opts.cell();
    if (!loaded || this.stopped) return;
    const env = this.env(cell);
    const dataDir = cellDataDir(this.opts.stateRoot, cell);
    const targets: ServiceTarget[] = [];
    for (const doc of loaded.docs.services) {
      const key = serviceKey(doc.doc.metadata.name);
      if (loaded.held.has(key)) continue;
      const target = serviceTarget(loaded, doc, dataDir);
      if ('problem' in target) {
        ctx.event(key, 'Warning', 'BackupSkipped', `the scheduled backup skips it: ${target.problem}`);
        continue;
      }
      if (!declaresData(target)) continue;
      const status = await ctx.status.lastKnown(key);
      if (!status?.conditions.some((c) => c.type === 'Ready' && c.status === 'True')) {
        ctx.event(key, 'Warning', 'BackupSkipped', 'the scheduled backup skips it: it is not Ready (its containers are not all running)');
        continue;
      }
      targets.push(target);
    }
    const retryMs = this.opts.retryMs ?? 15 * 60_000;
    // The wait is on the clock `check` compares it with (the injected one), never the host's.
    const retryLater = () => (this.retryAt = this.now().getTime() + retryMs);
    if (targets.length === 0) {
      retryLater();
      return;
    }
    try {
      ctx.logger.info(`scheduled backup of ${targets.map((t) => t.id).join(', ')}`);
      const { manifest, warnings } = await createSnapshot(env, targets, { reason: 'scheduled', verify: true });
      for (const w of warnings) ctx.logger.warn(w);
      this.retryAt = 0;
      if (!manifest.verification?.ok) retryLater();
      await this.prune(cell, env.store);
    } catch (err) {
      retryLater();
      ctx.event('backup', 'Warning', 'ScheduledBackupFailed', `the scheduled backup failed; next try in ${Math.round(retryMs / 60_000)} min: ${(err as Error).message}`);
    }
  }

  private async prune(cell: CellDocument, store: SnapshotStore): Promise<void> {
    const rule = cell.spec.backup?.retention;
    if (!rule) return;
    const { snapshots } = await store.list();
    const plan = planRetention(snapshots.map((s) => ({ id: s.id, createdAt: s.createdAt, verified: s.verification?.ok === true })), rule);
    for (const id of plan.delete) {
      await store.delete(id);
      this.opts.ctx.event('backup', 'Normal', 'BackupPruned', `snapshot ${id} deleted: the Cell's spec.backup.retention keeps no slot for it`);
    }
  }

  private async publishFacts(cell: CellDocument, snapshots: readonly SnapshotManifest[], now: Date): Promise<void> {
    const loaded = this.opts.cell();
    const services = (loaded?.docs.services ?? []).map((s) => s.doc.metadata.name);
    const facts = new Map<string, BackupFacts>();
    const schedule = cell.spec.backup?.schedule;
    for (const service of services) {
      const f = backupFactsOf(service, snapshots, schedule, now);
      // A cell that takes no backups says nothing about them.
      if (schedule || f.last) facts.set(service, f);
    }
    await this.opts.statusStore.setBackupFacts(facts);
  }
}
