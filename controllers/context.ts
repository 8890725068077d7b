import path from 'node:path';
import type Dockerode from 'dockerode';
import type winston from 'winston';
import type { CellDocument } from '../crds/types.js';
import { cellContextOf, type CellContext } from '../reconcilers/containers/desired.js';
import { ImageVerifier } from '../reconcilers/images/index.js';
import type { EventLog } from '../state/events.js';
import { parsePool, type IpAllocationStore } from '../state/ip-allocation.js';
import { dynamicRangeFor } from '../reconcilers/containers/network.js';
import type { SecretsStore } from '../state/secrets.js';
import { PackageStore } from '../state/packages.js';
import type { StatusStore } from '../state/status-store.js';
import type { OperatorEvent } from '../state/status-types.js';
import type { PlanJournal } from './plan-journal.js';
import { StatusWriters } from './status-writers.js';

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
    /**
     * A dry run (`pic plan`): the same reconciles, but where one would change something it notes
     * the change here instead. Nothing is written: no container, no status, no event, no state
     * file (`ips` must then be a dry-run store: addresses are computed, not saved), and the image
     * verifier reads its cache without adding to it.
     */
    readonly dryRun?: PlanJournal,
  ) {
    this.stateRoot = path.dirname(dataDir);
    this.imageVerifier = new ImageVerifier(this.stateRoot, undefined, undefined, { dryRun: Boolean(dryRun) });
    this.statuses = new StatusWriters(status, { clock, event: (key, type, reason, message) => this.event(key, type, reason, message), dryRun: Boolean(dryRun) });
    this.packages = new PackageStore(this.stateRoot);
  }

  /** The kept packages and upgrade records; one store, which remembers the records it read and wrote. */
  readonly packages: PackageStore;

  /** The one writer of each kind's statuses (status-writers.ts); `status` is for reading. */
  readonly statuses: StatusWriters;

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


  /** Record an event and log it; failures to record never fail a reconcile. A dry run records none. */
  event(key: string, type: OperatorEvent['type'], reason: string, message: string): void {
    if (this.dryRun) return;
    const level = type === 'Warning' ? 'warn' : 'info';
    this.logger.log(level, message, { key, reason });
    this.events.record({ key, type, reason, message }).catch((err: Error) => this.logger.warn(`cannot record event: ${err.message}`, { key }));
  }
}
