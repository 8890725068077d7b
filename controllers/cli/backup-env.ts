/**
 * What `pic backup` and `pic data` share: the cell they act on, where its snapshots live, the
 * engine's environment (Docker, helper settings, progress on the terminal, events), and the
 * services a backup takes with their manifests.
 */
import path from 'node:path';
import type { BackupEnv, BackupNotice, Progress, ServiceTarget } from '../../reconcilers/backup/index.js';
import type { HelperSettings } from '../../reconcilers/backup/helper.js';
import { loadRunningCell, type LoadedCell } from '../../state/cell.js';
import { EventLog } from '../../state/events.js';
import { SnapshotStore } from '../../state/snapshots.js';
import { StateDir, resolveStateDir } from '../../state/state-dir.js';
import { cellDataDir as dataDirOf, cellSnapshotRoot, helperSettings, serviceTarget } from '../backup-schedule.js';
import { dockerClient } from '../docker-client.js';
import { formatBytes } from './status-views.js';
import { UsageError, type Io } from './usage.js';

export const BACKUP_OPTIONS = {
  cell: { type: 'string' },
  'state-dir': { type: 'string' },
  output: { type: 'string', short: 'o' },
} as const;

/** Where snapshots live: the Cell's spec.backup.path (relative to the cell folder), else <state dir>/backups. */
export function backupRoot(state: StateDir, cell?: LoadedCell): string {
  return cellSnapshotRoot(state.root, cell?.dir ?? '.', cell?.cell);
}

/** The cell as its operator (state directory `stateRoot`) runs it: each service at its admitted package. */
export async function loadCellOrFail(dir: string | undefined, stateRoot: string, command: string): Promise<LoadedCell & { cell: NonNullable<LoadedCell['cell']> }> {
  if (!dir) throw new UsageError(`pic ${command} needs --cell DIR (the services, their manifests and the cell's name)`);
  const cell = await loadRunningCell(path.resolve(dir), stateRoot);
  if (!cell.cell) throw new Error(`${cell.dir} has no valid Cell document; run pic validate ${cell.dir}`);
  return cell as LoadedCell & { cell: NonNullable<LoadedCell['cell']> };
}


/**
 * Progress on stderr: rewritten in place on a terminal, one line per finished archive otherwise
 * (so a log or a pipe gets no flood). Never on stdout, which -o json keeps for the answer.
 */
export function terminalProgress(io: Io, isTty: boolean = process.stderr.isTTY === true): (p: Progress) => void {
  let lastDraw = 0;
  return (p) => {
    const line = `${p.phase} ${p.service}: ${p.archive} ${formatBytes(p.bytes)} (service ${formatBytes(p.serviceBytes)})`;
    if (isTty) {
      const now = Date.now();
      if (!p.done && now - lastDraw < 200) return;
      lastDraw = now;
      process.stderr.write(`\r\x1b[K${line}${p.done ? '\n' : ''}`);
    } else if (p.done) {
      io.err(line);
    }
  };
}

export interface CommandEnv {
  env: BackupEnv;
  state: StateDir;
  events: EventLog;
}

/**
 * The engine's environment. PIC_BACKUP_HELPER_IMAGE and PIC_BACKUP_NAME_PREFIX name the helper
 * image and the start of helper names (defaults: built from busybox, `pic-backup`).
 */
export async function commandEnv(values: { 'state-dir'?: string | undefined }, cellName: string, root: string, io: Io, cell?: LoadedCell): Promise<CommandEnv> {
  const state = new StateDir(resolveStateDir(values['state-dir']));
  const dataDir = cellDataDir(state, cell);
  const events = new EventLog(state.paths.events);
  const helper: HelperSettings = helperSettings(cellName);
  const notify = (n: BackupNotice) => {
    events.record(n).catch((err: Error) => io.err(`pic: cannot record event: ${err.message}`));
  };
  const env: BackupEnv = {
    docker: await dockerClient(),
    store: new SnapshotStore(root),
    helper,
    cellName,
    now: () => new Date(),
    notify,
    ...(dataDir !== undefined ? { dataDir } : {}),
    onProgress: terminalProgress(io),
  };
  return { env, state, events };
}

/** The cell's data directory, as the operator derives it (state/state-dir.ts, Cell spec.dataDir). */
export function cellDataDir(state: StateDir, cell?: LoadedCell): string | undefined {
  return cell?.cell ? dataDirOf(state.root, cell.cell) : undefined;
}

/** The installed services to back up (all when `names` is empty), with their manifests. */
export function serviceTargets(cell: LoadedCell & { cell: NonNullable<LoadedCell['cell']> }, state: StateDir, names: readonly string[]): ServiceTarget[] {
  const installed = new Map(cell.docs.services.map((s) => [s.doc.metadata.name, s]));
  const unknown = names.filter((n) => !installed.has(n));
  if (unknown.length > 0) throw new UsageError(`no ServiceInstall ${unknown.join(', ')} in ${cell.dir}; installed: ${[...installed.keys()].sort().join(', ') || 'none'}`);
  const chosen = (names.length > 0 ? [...new Set(names)] : [...installed.keys()]).sort();
  const dataDir = cellDataDir(state, cell) as string;
  return chosen.map((id) => {
    const target = serviceTarget(cell, installed.get(id)!, dataDir);
    if ('problem' in target) throw new Error(target.problem);
    return target;
  });
}
