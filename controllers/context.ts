import path from 'node:path';
import type Dockerode from 'dockerode';
import type winston from 'winston';
import type { CellDocument } from '../crds/types.js';
import { cellContextOf, type CellContext } from '../reconcilers/containers/desired.js';
import { computeConditions, phaseOf } from '../state/conditions.js';
import { ImageVerifier } from '../reconcilers/images/index.js';
import type { EventLog } from '../state/events.js';
import { parsePool, type IpAllocationStore } from '../state/ip-allocation.js';
import { dynamicRangeFor } from '../reconcilers/containers/network.js';
import type { SecretsStore } from '../state/secrets.js';
import { PackageStore } from '../state/packages.js';
import type { StatusStore } from '../state/status-store.js';
import type { DocumentStatus, OperatorEvent } from '../state/status-types.js';

import { TerminalError } from '../reconcilers/errors.js';

export interface StatusUpdate {
  file?: string;
  generation: string;
  /** 'Unknown' when the operator has no verdict to give (a kind it only validates). */
  ready: boolean | 'Unknown';
  readyReason?: string;
  message?: string;
  reconciling?: { reason: string; message: string };
  stalled?: { reason: string; message: string };
  facts?: DocumentStatus['facts'];
}

/**
 * The one rule that turns a failed reconcile into conditions: a terminal error (bad input, a
 * refusal) is Stalled with its reason and is not retried; any other error is Reconciling, retried
 * with back-off.
 */
export function failureConditions(err: unknown): Pick<StatusUpdate, 'stalled' | 'reconciling'> & { ready: false } {
  const message = err instanceof Error ? err.message : String(err);
  return err instanceof TerminalError ? { ready: false, stalled: { reason: err.reason, message } } : { ready: false, reconciling: { reason: 'RetryingAfterError', message } };
}

/** Everything a reconciler may touch, passed in (no module-level singletons). */
export class OperatorContext {
  constructor(
    readonly docker: Dockerode,
    readonly ips: IpAllocationStore,
    readonly secrets: SecretsStore,
    readonly status: StatusStore,
    readonly events: EventLog,
    readonly logger: winston.Logger,
    readonly dataDir: string,
    readonly clock: () => Date = () => new Date(),
  ) {
    this.stateRoot = path.dirname(dataDir);
    this.imageVerifier = new ImageVerifier(this.stateRoot);
    this.packages = new PackageStore(this.stateRoot);
  }

  /** The kept packages and upgrade records; one store, which remembers the records it read and wrote. */
  readonly packages: PackageStore;

  /** The state directory: the data directory is <state dir>/data (state/state-dir.ts). */
  readonly stateRoot: string;

  /** Signature checks of images: its cache (in the state directory), clients and tokens. */
  readonly imageVerifier: ImageVerifier;

  cellName = '';
  network: { name: string; subnet: string; ipRange?: string } = { name: 'cell-network', subnet: '172.20.0.0/16' };

  /** Remember the cell the operator serves; container listings and labels are scoped to it. */
  useCell(cell: CellDocument): void {
    this.cellName = cell.metadata.name;
    const { name, subnet, servicePool } = cell.spec.network;
    let ipRange: string | undefined;
    try {
      const pool = parsePool(servicePool, subnet);
      ipRange = dynamicRangeFor(subnet, pool.start, pool.end);
    } catch {
      ipRange = undefined; // an invalid pool is reported by validation; the network just gets no range
    }
    this.network = { name, subnet, ...(ipRange ? { ipRange } : {}) };
  }

  cellContext(cell: CellDocument): CellContext {
    return cellContextOf(cell, this.dataDir);
  }


  /** Record an event and log it; failures to record never fail a reconcile. */
  event(key: string, type: OperatorEvent['type'], reason: string, message: string): void {
    const level = type === 'Warning' ? 'warn' : 'info';
    this.logger.log(level, message, { key, reason });
    this.events.record({ key, type, reason, message }).catch((err: Error) => this.logger.warn(`cannot record event: ${err.message}`, { key }));
  }

  /** Write a document's status; a no-op when nothing but the time would change. */
  async writeStatus(key: string, update: StatusUpdate): Promise<void> {
    const [kind = '', name = ''] = key.split('/');
    const previous = await this.status.lastKnown(key);
    const now = this.clock().toISOString();
    const conditions = computeConditions(
      previous?.conditions,
      {
        ready: update.ready === 'Unknown'
          ? { status: 'Unknown', reason: update.readyReason ?? 'Unknown', message: update.message ?? 'no verdict' }
          : update.ready
          ? { status: 'True', reason: update.readyReason ?? 'Ready', message: update.message ?? 'ready' }
          : { status: 'False', reason: update.stalled?.reason ?? update.reconciling?.reason ?? 'NotReady', message: update.stalled?.message ?? update.reconciling?.message ?? update.message ?? 'not ready' },
        ...(update.reconciling ? { reconciling: update.reconciling } : {}),
        ...(update.stalled ? { stalled: update.stalled } : {}),
      },
      now,
    );
    // The Ready reason flips between Converged and InSync across passes; keep the first one so an
    // unchanged, ready document is not rewritten on every pass.
    const prevReady = previous?.conditions.find((c) => c.type === 'Ready');
    const ready = conditions.find((c) => c.type === 'Ready');
    if (prevReady && ready && prevReady.status === 'True' && ready.status === 'True') {
      ready.reason = prevReady.reason;
    }
    const status: DocumentStatus = {
      key,
      kind,
      name,
      observedGeneration: update.generation,
      phase: phaseOf(conditions),
      conditions,
      ...(update.file ? { file: update.file } : {}),
      ...(update.facts ? { facts: update.facts } : {}),
      updatedAt: now,
    };
    const wrote = await this.status.put(status);
    if (wrote && previous?.phase !== status.phase) {
      const cond = status.conditions.find((c) => c.type === 'Stalled') ?? ready;
      if (status.phase === 'Stalled') this.event(key, 'Warning', cond?.reason ?? 'Stalled', cond?.message ?? 'stalled');
    }
  }
}
