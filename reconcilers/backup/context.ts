/**
 * What every step of the backup engine is given (Docker, the snapshot store, the helper settings,
 * the clock, progress and event sinks), its error for bad input, the journal of what a run has
 * paused, stopped or is swapping, and the progress counter per service.
 */
import type Dockerode from 'dockerode';
import type { Manifest } from '../../crds/types.js';
import { processStartTime, type BackupJournal, type SnapshotStore } from '../../state/snapshots.js';
import type { HelperSettings } from './helper.js';

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
  /** The stability window a restored service must pass (its spec.minReadySeconds); 10 s by default. */
  minReadySeconds?: number;
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

export class Journal {
  readonly state: BackupJournal;
  constructor(
    private readonly store: SnapshotStore,
    operation: 'backup' | 'restore',
    startedAt: Date,
  ) {
    const procStart = processStartTime(process.pid);
    this.state = { pid: process.pid, ...(procStart ? { procStart } : {}), startedAt: startedAt.toISOString(), operation, holding: [], paused: [], stopped: [], swaps: [], moves: [], renames: [] };
  }
  async save(): Promise<void> {
    await this.store.writeJournal(this.state);
  }
  /** Say (before touching it) that this run holds a service still; the operator keeps off it. */
  async hold(service: string): Promise<void> {
    const holding = this.state.holding ?? [];
    if (holding.includes(service)) return;
    this.state.holding = [...holding, service];
    await this.save();
  }
  async release(service: string): Promise<void> {
    this.state.holding = (this.state.holding ?? []).filter((s) => s !== service);
    await this.save();
  }
  async close(): Promise<void> {
    await this.store.removeJournal(this.state.pid);
  }
}

export function progressReporter(env: BackupEnv, phase: BackupPhase, service: string) {
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

