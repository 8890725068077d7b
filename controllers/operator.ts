import { createHash } from 'node:crypto';
import type Dockerode from 'dockerode';
import type winston from 'winston';
import { canonicalJson } from '../reconcilers/containers/spec-hash.js';
import { LABEL, OWNER_LABEL } from '../reconcilers/containers/labels.js';
import { fetchCaExpiries } from '../reconcilers/caddy/ca-expiry.js';
import { caddyAdminAddressOf } from '../reconcilers/core/spec.js';
import { listOwnedContainers, type ObservedContainer } from '../reconcilers/containers/observe.js';
import { isTerminal } from '../reconcilers/errors.js';
import { AppliedStore } from '../state/applied-store.js';
import { StoreRefresher } from './store-refresh.js';
import type { RefreshReport } from '../state/store/refresh.js';
import { CellReadMemo, catalogLocation, cellFilesSignature, loadCell, resolveCellPath, type LoadedCell } from '../state/cell.js';
import { EventLog } from '../state/events.js';
import { holdBrokenDocuments, type HeldCell, type HeldDocument } from '../state/hold.js';
import { IpAllocationStore } from '../state/ip-allocation.js';
import { cellKey, CONNECTION_KIND, documentKey, isServiceKey, nameInKey, SERVICE_KIND, serviceKey } from '../state/document-keys.js';
import { HeartbeatWriter } from '../state/operator-heartbeat.js';
import { PackageStore } from '../state/packages.js';
import { SecretsStore } from '../state/secrets.js';
import { StateDir } from '../state/state-dir.js';
import type { DocumentStatus } from '../state/status-types.js';
import { BackupScheduler } from './backup-schedule.js';
import { BackupStatusStore } from './backup-status.js';
import { OperatorContext } from './context.js';
import { progressing, refused } from './outcome.js';
import { CELL_RESOURCES } from './resources.js';
import { CORE_KIND, coreComponents, isCoreKey } from '../reconcilers/core/spec.js';
import { coreKeys, isContainerOwnerKey, ownerKeys, ownersOfPass } from './pass-keys.js';
import { reconcileCoreReporting } from './reconcile-core.js';
import { ACCOUNTS_PREFIX, isAccountsKey, isResourceKey, SharedResources } from './shared-resources.js';
import { WorkQueue } from './queue.js';
import { generationOf, reconcileServiceReporting, type ReconcileHooks } from './reconcile-service.js';
import { exitPackageOf, reconcileConnection } from './reconcile-connection.js';
import { fenceServiceAddress } from '../reconcilers/egress/index.js';
import type { OperatorMetrics } from './metrics.js';
import { readinessOf, type Readiness } from './metrics-server.js';
import { watchDockerEvents } from './sources/docker-events.js';
import { watchCellFolder } from './sources/file-watch.js';
import { startResync } from './sources/resync.js';

export const RESYNC_KEY = 'resync';
const DEFAULT_RESYNC_MS = 10 * 60_000;

export interface OperatorOptions {
  cellDir: string;
  stateDir: StateDir;
  docker: Dockerode;
  logger: winston.Logger;
  /** Periodic full pass; default 10 minutes. */
  resyncIntervalMs?: number;
  concurrency?: number;
  /** Watch the folder and Docker; false for `pic run --once`. */
  watch?: boolean;
  /**
   * Watch the cell folder for edits (default true). `pic run --git` says false: its source
   * switches whole revisions and calls `reload` itself.
   */
  watchFolder?: boolean;
  /** Metrics in a registry the caller serves (`pic run --metrics-address`); none by default. */
  metrics?: OperatorMetrics;
}

/**
 * The reconcile loop: a snapshot of the desired documents, a queue of keys, and the sources that
 * feed it (file changes, Docker events, a periodic resync).
 */
export class Operator {
  readonly ctx: OperatorContext;
  readonly queue: WorkQueue;
  private cell?: HeldCell;
  /** The last accepted version of every document, held while its file is broken. */
  private readonly applied: AppliedStore;
  /** Per key, a fingerprint of everything desired that its reconcile reads; a change enqueues it. */
  private fingerprints = new Map<string, string>();
  /**
   * Container listings taken by a resync pass, handed once to each owner's reconcile; `seq` says
   * when the listing began, so a listing older than the owner's last finished reconcile (which may
   * have changed its containers since) is never used.
   */
  private observedByOwner = new Map<string, { containers: ObservedContainer[]; seq: number }>();
  private seq = 0;
  /** Core keys a Docker event named since their last reconcile. */
  private coreEvents = new Set<string>();
  private finishedAt = new Map<string, number>();
  /** Services seen Ready by this process, so becoming Ready enqueues their accounts once. */
  private readyBefore = new Set<string>();
  private closers: (() => Promise<void> | void)[] = [];
  private reloading?: Promise<void>;
  readonly shared: SharedResources;
  /** Scheduled backups, the sweep after a killed one, and the hold a running one has on a service. */
  readonly backups: BackupScheduler;
  /** The folder-wide problems last logged, so an unchanged problem is not logged on every pass. */
  private lastGeneral = '';
  /** The files the snapshot was read from, as read and checked: a reading after an edit reads the edited file alone. */
  private readonly reads = new CellReadMemo();
  /** What the snapshot was read from (`cellFilesSignature`), when it can be trusted. */
  private filesSignature?: string;
  /** A reconcile admitted, upgraded or rolled back a version since the snapshot was read. */
  private admissionChanged = false;
  /** When the last full pass (a resync and every key it queued) finished, for /readyz and metrics. */
  private lastPassAt?: number;
  /** Tells readers (get, describe, watch) that this operator runs and when it last finished a pass. */
  private readonly heartbeat: HeartbeatWriter;
  private heartbeatStarted = false;
  /** The cache of the Cell's published store (spec.store.url), refreshed when due. */
  private readonly store: StoreRefresher;

  constructor(private readonly opts: OperatorOptions) {
    const paths = opts.stateDir.paths;
    this.heartbeat = new HeartbeatWriter(paths.heartbeat, {
      mode: opts.watch === false ? 'once' : 'run',
      resyncIntervalMs: opts.resyncIntervalMs ?? DEFAULT_RESYNC_MS,
      onError: (err) => opts.logger.warn(`cannot write the heartbeat ${paths.heartbeat}: ${err.message}; pic get will call the statuses stale`),
    });
    const statusStore = new BackupStatusStore(paths.status);
    this.ctx = new OperatorContext(
      opts.docker,
      new IpAllocationStore(paths.ipAllocations),
      new SecretsStore(paths.secrets),
      statusStore,
      new EventLog(paths.events),
      opts.logger,
      paths.data,
    );
    this.applied = new AppliedStore(paths.applied);
    this.store = new StoreRefresher({ stateRoot: opts.stateDir.root });
    this.shared = new SharedResources(
      this.ctx,
      CELL_RESOURCES,
      opts.stateDir.root,
      opts.cellDir,
      () => this.cell,
    );
    this.backups = new BackupScheduler({
      ctx: this.ctx,
      stateRoot: opts.stateDir.root,
      cellDir: opts.cellDir,
      cell: () => this.cell,
      statusStore,
      enqueue: (key) => this.queue.add(key),
      // A backup waits for the pass under way, so it sees which services are Ready (at most a minute).
      settled: () => Promise.race([this.queue.whenIdle(5000), new Promise<void>((resolve) => setTimeout(resolve, 60_000).unref())]),
    });
    this.queue = new WorkQueue({
      handler: (key) => this.handle(key),
      concurrency: opts.concurrency ?? 4,
      ...(opts.metrics ? { observer: opts.metrics } : {}),
      onOutcome: (o) => {
        if (!o.ok && !o.terminal) this.opts.logger.warn(`${(o.error as Error)?.message ?? o.error}; retry in ${Math.round((o.retryInMs ?? 0) / 100) / 10}s`, { key: o.key });
      },
    });
    opts.metrics?.attach({
      statuses: () => this.knownStatuses(),
      queueDepth: () => this.queue.depth,
      runningSince: () => this.queue.runningSince(),
      lastPassAt: () => this.lastPassAt,
      caddyAdminAddress: () => (this.cell?.cell ? caddyAdminAddressOf(this.cell.cell, opts.stateDir.root) : undefined),
      fetchCaExpiries: (address) => fetchCaExpiries(address, 2000),
    });
  }

  get snapshot(): HeldCell | undefined {
    return this.cell;
  }

  /** Keys of every document the snapshot declares that owns containers (valid or not). */
  private desiredKeys(cell: HeldCell): string[] {
    return ownerKeys(cell);
  }

  /** `Core/<name>` of every core container the Cell asks pic to run. */
  private coreKeys(cell: LoadedCell): string[] {
    return coreKeys(cell);
  }

  /** What the core containers are built from: the Cell's network, domain, core sections and image policy. */
  private coreFingerprint(cell: LoadedCell): string {
    const spec = cell.cell?.spec;
    return createHash('sha256')
      .update(canonicalJson({ name: cell.cell?.metadata.name ?? null, network: spec?.network ?? null, domain: spec?.domain ?? null, caddy: spec?.caddy?.run ?? null, dns: [spec?.dns?.run ?? null, spec?.dns?.zoneFile ?? null], wireguard: spec?.wireguard ?? null, verification: [spec?.imageVerification ?? null, spec?.registries ?? null, spec?.allowedImagePrefix ?? null] }))
      .digest('hex');
  }

  /**
   * A service assigned to a Connection: fenced on the host before its containers start (unless the
   * Connection is fail-open), and Ready only while its Connection's exit is healthy.
   */
  private egressHooks(cell: HeldCell, name: string): Pick<ReconcileHooks, 'fence' | 'egress'> {
    const doc = cell.docs.services.find((s) => s.doc.metadata.name === name)?.doc;
    const connection = doc?.spec.egress?.connection ?? 'default';
    const cellDoc = cell.cell;
    if (connection === 'default' || !cellDoc) return {};
    const target = cell.docs.connections.find((c) => c.doc.metadata.name === connection)?.doc;
    const failOpen = target?.spec.failOpen ?? false;
    return {
      ...(failOpen ? {} : { fence: async (ip: string) => void (await fenceServiceAddress({ name: cellDoc.metadata.name, subnet: cellDoc.spec.network.subnet }, { name, address: ip }, this.opts.stateDir.root)) }),
      egress: () => {
        if (this.shared.exitHealth.get(connection) === true) return undefined;
        const consequence = failOpen ? 'its outbound traffic goes direct (fail-open) until the exit is back' : 'its outbound traffic is blocked (kill switch) until the exit is back';
        return { reason: 'ConnectionDown', message: `Connection/${connection} is not Ready: ${consequence}` };
      },
    };
  }

  /** Converge a Connection's exit; a change of its health re-steers and re-judges its services. */
  private async handleConnection(cell: HeldCell, key: string, name: string): Promise<void> {
    const entry = this.observedByOwner.get(key);
    this.observedByOwner.delete(key);
    const cached = entry && entry.seq > (this.finishedAt.get(key) ?? 0) ? entry.containers : undefined;
    const before = this.shared.exitHealth.get(name) ?? false;
    let healthy = false;
    try {
      const outcome = await reconcileConnection(this.ctx, cell, name, cached);
      healthy = outcome.healthy;
      if (outcome.requeueAfterMs !== undefined) this.queue.addAfter(key, outcome.requeueAfterMs);
      if (outcome.changed) this.enqueueShared();
    } finally {
      this.finishedAt.set(key, ++this.seq);
      if (cell.docs.connections.some((c) => c.doc.metadata.name === name)) this.shared.exitHealth.set(name, healthy);
      else this.shared.exitHealth.delete(name);
      if (healthy !== before) {
        this.queue.add('Resource/egress');
        for (const s of cell.docs.services) if (s.doc.spec.egress?.connection === name) this.queue.add(documentKey(s.doc));
      }
    }
  }

  /** Keys of the cell-wide resources and of each service's accounts. */
  private sharedKeys(cell: LoadedCell): string[] {
    return [...this.shared.resourceKeys(cell), ...this.shared.accountKeys(cell)];
  }

  /** Enqueue every shared key: the set of services or their addresses changed. */
  private enqueueShared(): void {
    if (this.cell) for (const key of this.sharedKeys(this.cell)) this.queue.add(key);
  }

  /**
   * What the shared resources are computed from. Only services that hold an address count: one
   * that has none yet has no route or rule, and its own reconcile enqueues the shared keys once it
   * gets one (as its containers start), so a new document does not cost a pass of every shared
   * resource before its containers are even created.
   */
  private sharedFingerprint(cell: HeldCell): string {
    const services = cell.docs.services.flatMap((s) => {
      const name = s.doc.metadata.name;
      const ip = this.ctx.ips.assignmentOf(serviceKey(name));
      return ip === undefined ? [] : [[name, ip, s.doc.spec, cell.catalog?.services.get(name)?.manifest ?? null]];
    });
    return createHash('sha256')
      .update(
        canonicalJson({
          cell: cell.cell?.spec ?? null,
          services,
          peers: cell.docs.peers.map((p) => [p.doc.metadata.name, p.doc.spec]),
          connections: cell.docs.connections.map((c) => [c.doc.metadata.name, c.doc.spec]),
          problems: [...cell.checked.byDocument.entries()].map(([k, v]) => [k, v.length]),
          held: [...cell.held.keys()].sort(),
        }),
      )
      .digest('hex');
  }

  private fingerprint(cell: HeldCell, key: string): string {
    const name = key.slice(key.indexOf('/') + 1);
    const isConnection = nameInKey(key, CONNECTION_KIND) !== undefined;
    const connection = isConnection ? cell.docs.connections.find((c) => c.doc.metadata.name === name)?.doc : undefined;
    const doc = isConnection ? connection : cell.docs.services.find((s) => s.doc.metadata.name === name)?.doc;
    const pkg = isConnection ? (connection && cell.catalog ? exitPackageOf(cell.catalog.offered, connection).service : undefined) : cell.catalog?.services.get(name);
    return createHash('sha256')
      .update(
        canonicalJson({
          cell: cell.cell?.spec ?? null,
          cellName: cell.cell?.metadata.name ?? null,
          spec: doc?.spec ?? null,
          problems: cell.checked.byDocument.get(key) ?? [],
          general: cell.checked.general.length,
          manifest: pkg?.manifest ?? null,
          template: pkg?.template ?? null,
          config: isConnection ? null : (cell.checked.configs.get(name) ?? null),
          version: isConnection ? null : (cell.checked.versions.get(name) ?? null),
          held: cell.held.get(key)?.problems ?? null,
        }),
      )
      .digest('hex');
  }

  /**
   * Read the cell folder again and enqueue every key whose inputs changed (or vanished).
   * `first` runs before it, while no other reload reads the folder (a Git source switches the
   * folder to a new revision there).
   */
  async reload(first?: () => Promise<void>): Promise<void> {
    const run = async () => {
      if (first) await first();
      const dir = this.opts.cellDir;
      const storeOf = (c: LoadedCell | undefined) => (c?.cell ? catalogLocation(dir, c.cell, this.opts.stateDir.root).dir : undefined);
      // Nothing the last snapshot was read from has changed on disk: it still holds, and so do the
      // fingerprints, statuses and problems derived from it.
      const before = cellFilesSignature(dir, storeOf(this.cell));
      if (this.cell && before !== undefined && before === this.filesSignature && !this.admissionChanged && !this.store.due(this.cell.cell)) return;
      this.admissionChanged = false;
      let cell: HeldCell;
      try {
        const read = async () => loadCell(dir, { admission: await new PackageStore(this.opts.stateDir.root).load(), reads: this.reads, stateRoot: this.opts.stateDir.root });
        let loaded = await read();
        // A published store: fetched when due, before anything is converged from its catalog; a
        // new set in the cache means reading the catalog again.
        if ((await this.refreshStore(loaded)) === 'updated') loaded = await read();
        const held = holdBrokenDocuments(loaded, await this.applied.load());
        cell = held.cell;
        if (!cell.frozen) await this.applied.save(held.records);
      } catch (err) {
        // A fault of pic's own (or of the state directory): the last snapshot keeps holding, and
        // the cell's status says why, instead of the operator dying.
        this.filesSignature = undefined;
        const message = `cannot read the cell folder ${dir}: ${(err as Error).message}; this is a bug or a fault of the state directory, the last snapshot keeps holding`;
        this.opts.logger.error(message);
        await this.writeCellStatus({ reason: 'LoadFailed', message });
        return;
      }
      // Kept only when nothing changed while reading (and the catalog is still the same folder).
      const after = cellFilesSignature(dir, storeOf(cell));
      this.filesSignature = after === before ? after : undefined;
      if (cell.cell) this.ctx.useCell(cell.cell);
      this.cell = cell;
      const general = cell.checked.general.map((p) => `${p.file}: ${p.pointer || '/'}: ${p.message}`);
      if (general.join('\n') !== this.lastGeneral) for (const line of general) this.opts.logger.warn(line);
      this.lastGeneral = general.join('\n');
      if (cell.frozen) {
        // No valid Cell: nothing is converged, so nothing can be pruned. Every key known is enqueued
        // again once the Cell is valid (its fingerprint can match nothing), documents deleted
        // meanwhile included.
        this.fingerprints = new Map([...this.fingerprints.keys()].map((key) => [key, 'frozen']));
        const first = cell.checked.general[0];
        await this.writeCellStatus({ reason: 'CellInvalid', message: `${first ? `${first.file}: ${first.pointer || '/'}: ${first.message}` : 'no valid Cell document'}; the whole cell is held: nothing is created, changed or removed until cell.yaml is valid` });
        for (const entry of cell.held.values()) await this.writeHeldStatus(entry);
        return;
      }
      await this.writeCellStatus(undefined);
      const next = new Map<string, string>();
      for (const key of this.desiredKeys(cell)) next.set(key, this.fingerprint(cell, key));
      for (const [key, print] of next) if (this.fingerprints.get(key) !== print) this.queue.add(key);
      for (const key of this.fingerprints.keys()) if (!next.has(key)) this.queue.add(key);
      const core = this.coreFingerprint(cell);
      if (this.fingerprints.get('core') !== core) for (const key of this.coreKeys(cell)) this.queue.add(key);
      const shared = this.sharedFingerprint(cell);
      if (this.fingerprints.get('shared') !== shared) for (const key of this.sharedKeys(cell)) this.queue.add(key);
      // Resources the cell stopped using (no more spec.wireguard, a service without accounts): clear them.
      for (const status of await this.ctx.status.keys()) {
        if (status.kind === 'Resource' && !this.shared.resourceKeys(cell).includes(status.key)) this.queue.add(status.key);
        if (status.kind === CORE_KIND && !this.coreKeys(cell).includes(status.key)) this.queue.add(status.key);
      }
      next.set('shared', shared);
      next.set('core', core);
      this.fingerprints = next;
      await this.writeValidatedStatuses(cell);
    };
    // One reload at a time; a reload asked for during another runs after it.
    const previous = this.reloading ?? Promise.resolve();
    const current = previous.then(run, run);
    this.reloading = current.finally(() => {
      if (this.reloading === current) this.reloading = undefined;
    });
    return current;
  }

  /** The key of the cell's own status: written only while the whole cell is held or unreadable. */
  /** Refresh the cell's published store when due (never throws: a fault is logged, the cache serves). */
  private async refreshStore(loaded: LoadedCell): Promise<RefreshReport['outcome'] | undefined> {
    if (!loaded.cell) return undefined;
    try {
      const report = await this.store.refreshIfDue(loaded.cell, loaded.policy, this.opts.cellDir);
      if (!report) return undefined;
      const key = cellKey(loaded.cell.metadata.name);
      if (report.outcome === 'failed') {
        const kept = report.fetchedAt ? `the catalog fetched ${report.fetchedAt} stays in use` : 'no catalog is cached yet';
        this.ctx.event(key, 'Warning', 'StoreRefreshFailed', `store ${report.url}: refresh failed: ${report.failure?.url}: ${report.failure?.message}; ${kept}`);
      } else if (report.outcome === 'updated') {
        this.ctx.event(key, 'Normal', 'CatalogUpdated', `store ${report.url}: a new catalog is in use (${report.requests} requests, ${report.bytes} bytes)`);
      }
      return report.outcome;
    } catch (err) {
      this.opts.logger.error(`store: cannot refresh the cache: ${(err as Error).message}; the cached catalog stays in use`);
      return undefined;
    }
  }

  cellStatusKey(): string {
    return cellKey(this.cell?.cell?.metadata.name ?? (this.ctx.cellName || 'cell'));
  }

  /** The Cell's status: Stalled with why, or (undefined) removed when the cell is readable. */
  private async writeCellStatus(problem: { reason: string; message: string } | undefined): Promise<void> {
    const store = await this.store.status(this.cell?.cell).catch(() => undefined);
    await this.ctx.statuses.cell.cellProblem(this.cellStatusKey(), resolveCellPath(this.opts.cellDir, 'cell.yaml'), problem && refused(problem.reason, problem.message), store);
  }

  /** A held document's status: Stalled with the problem and what is kept; its facts stay. */
  private async writeHeldStatus(entry: HeldDocument): Promise<void> {
    await this.ctx.statuses.of(entry.key).held(entry);
  }

  /**
   * PeerAccount and Connection documents: Stalled with the problem when invalid; a peer
   * AccountsPending until its accounts report (a valid Connection's status is its own reconcile's).
   * Their writers are told which documents exist, so the statuses of deleted ones go.
   */
  private async writeValidatedStatuses(cell: HeldCell): Promise<void> {
    const present = new Set<string>();
    const docs = [...cell.docs.peers, ...cell.docs.connections];
    const invalid = (problems: { pointer: string; message: string }[]) => refused('InvalidSpec', problems.map((p) => `${p.pointer || '/'}: ${p.message}`).join('; '));
    for (const entry of cell.held.values()) if (!isServiceKey(entry.key)) present.add(entry.key);
    for (const { doc } of docs) present.add(documentKey(doc));
    for (const r of cell.docs.rejected) if (r.key && /^(PeerAccount|Connection)\//.test(r.key)) present.add(r.key);
    const { peers, connections } = this.ctx.statuses;
    await peers.track(new Set([...present].filter((k) => peers.owns(k))));
    await connections.track(new Set([...present].filter((k) => connections.owns(k))));
    const written = new Set<string>();
    for (const entry of cell.held.values()) {
      if (isServiceKey(entry.key)) continue;
      written.add(entry.key);
      await this.writeHeldStatus(entry);
    }
    for (const { doc, file } of docs) {
      const key = documentKey(doc);
      if (written.has(key)) continue;
      written.add(key);
      const problems = cell.checked.byDocument.get(key) ?? [];
      const ref = { file, generation: generationOf(doc.spec) };
      if (problems.length > 0) {
        await this.ctx.statuses.of(key).write(key, ref, invalid(problems));
      } else if (doc.kind === 'Connection') {
        // Converged under its own key (reconcile-connection.ts), which writes its status.
        continue;
      } else if (!(await this.ctx.status.lastKnown(key))) {
        await peers.write(key, ref, progressing('AccountsPending', 'accounts not reconciled yet'));
      }
    }
    for (const r of cell.docs.rejected) {
      if (!r.key || written.has(r.key) || !/^(PeerAccount|Connection)\//.test(r.key)) continue;
      written.add(r.key);
      await this.ctx.statuses.of(r.key).write(r.key, { file: r.file, generation: 'invalid' }, invalid(r.problems));
    }
  }

  /** The keys whose Ready verdict `pic run --once` judges: services, peers, shared resources, any invalid document. */
  reconciledKeys(): string[] {
    const cell = this.cell;
    if (!cell) return [];
    const keys = new Set([...this.desiredKeys(cell), ...this.coreKeys(cell), ...this.shared.resourceKeys(cell), ...cell.docs.peers.map((p) => documentKey(p.doc)), ...cell.held.keys()]);
    for (const [key, problems] of cell.checked.byDocument) if (problems.length > 0 && /^(PeerAccount|Connection)\//.test(key)) keys.add(key);
    if (cell.frozen) keys.add(this.cellStatusKey());
    return [...keys].sort();
  }

  /** Lines for `pic run --once` about what it did not judge: problems of the folder, validated-only kinds. */
  unreconciledNotes(): string[] {
    const cell = this.cell;
    if (!cell) return [];
    return cell.checked.general.map((p) => `${p.file}: ${p.pointer || '/'}: ${p.message}`);
  }

  private async handle(key: string): Promise<void> {
    if (key === RESYNC_KEY) {
      await this.resync();
      // The pass is over once every key it queued has run (a key left to retry later included).
      void this.queue.whenSettled().then(() => {
        this.lastPassAt = Date.now();
        return this.heartbeat.passed(new Date(this.lastPassAt));
      });
      return;
    }
    if (!this.cell) await this.reload();
    const cell = this.cell;
    if (!cell) return; // the folder could not be read at all: its status says why
    const held = cell.held.get(key);
    if (held) return isServiceKey(held.key) ? this.writeHeldStatus(held) : undefined;
    // Without a valid Cell nothing converges, so nothing can be withdrawn or removed by mistake.
    if (cell.frozen) return;
    if (isCoreKey(key)) return this.handleCore(cell, key);
    if (isResourceKey(key)) return this.shared.reconcileResource(cell, key);
    if (isAccountsKey(key)) return (await this.heldByBackup(key, key.slice(ACCOUNTS_PREFIX.length))) ? undefined : this.shared.reconcileAccounts(cell, key);
    const [kind, name = ''] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
    if (kind === CONNECTION_KIND) return this.handleConnection(cell, key, name);
    if (kind !== SERVICE_KIND) return;
    if (await this.heldByBackup(key, name)) return;
    const entry = this.observedByOwner.get(key);
    this.observedByOwner.delete(key);
    const cached = entry && entry.seq > (this.finishedAt.get(key) ?? 0) ? entry.containers : undefined;
    try {
      const ipBefore = this.ctx.ips.assignmentOf(key);
      // Routes, records, rules and accounts follow the services (the queue runs each once however
      // many services ask). A service with a new address enqueues them as its containers start,
      // so Caddy and DNS converge during the start; one that changed or lost its address, after.
      const outcome = await reconcileServiceReporting(this.ctx, cell, name, cached, {
        starting: (ip) => {
          if (ip !== ipBefore) this.enqueueShared();
        },
        ...this.egressHooks(cell, name),
      });
      if (outcome.admissionChanged) {
        // The version that runs changed: what everything else follows is read again.
        this.admissionChanged = true;
        await this.reload();
        this.queue.add(key);
      }
      if (outcome.requeueAfterMs !== undefined) this.queue.addAfter(key, outcome.requeueAfterMs);
      if (outcome.changed || ipBefore !== this.ctx.ips.assignmentOf(key)) this.enqueueShared();
      else if (outcome.ready && !this.readyBefore.has(key)) this.queue.add(`${ACCOUNTS_PREFIX}${name}`);
      if (outcome.ready) this.readyBefore.add(key);
      else this.readyBefore.delete(key);
    } finally {
      this.finishedAt.set(key, ++this.seq);
    }
  }

  /**
   * A backup or restore (this operator's or a command's) is holding the service still: its
   * containers are left as they are and the key is looked at again shortly.
   */
  private async heldByBackup(key: string, service: string): Promise<boolean> {
    const hold = await this.backups.holdOf(service);
    if (hold) this.queue.addAfter(key, 2000);
    return hold !== undefined;
  }

  /**
   * A core container: converged like a service's. When it was (re)created, everything built on it
   * follows: Caddy gets its routes loaded, the firewall and the peer set are written again.
   */
  private async handleCore(cell: HeldCell, key: string): Promise<void> {
    const entry = this.observedByOwner.get(key);
    this.observedByOwner.delete(key);
    const cached = entry && entry.seq > (this.finishedAt.get(key) ?? 0) ? entry.containers : undefined;
    try {
      const outcome = await reconcileCoreReporting(this.ctx, cell, key, { stateRoot: this.opts.stateDir.root, cellDir: this.opts.cellDir }, cached);
      // Restarted or recreated under pic's feet: what lives in it (Caddy's load, the peer set, the
      // chains) is written again once it runs.
      if (outcome.changed || this.coreEvents.delete(key)) {
        this.shared.forgetCoreContainers();
        this.enqueueShared();
      }
    } finally {
      this.finishedAt.set(key, ++this.seq);
    }
  }

  /**
   * A full pass: read the folder, list this cell's containers once, and give every service its
   * share of that listing. A service in sync then costs no further Docker call and no write.
   */
  private async resync(): Promise<void> {
    await this.reload();
    const cell = this.cell;
    if (!cell?.cell || cell.frozen) return;
    const seq = ++this.seq;
    this.shared.beginPass();
    const all = await listOwnedContainers(this.opts.docker, { cell: cell.cell.metadata.name });
    // Documents that vanished while the operator was down (a status or an address is left): converged to absent too.
    const byOwner = ownersOfPass(cell, all, [...(await this.ctx.status.keys()).map((s) => s.key), ...Object.keys(this.ctx.ips.assignments())]);
    this.observedByOwner = new Map([...byOwner].map(([owner, containers]) => [owner, { containers, seq }]));
    for (const key of byOwner.keys()) this.queue.add(key);
    for (const key of this.sharedKeys(cell)) this.queue.add(key);
    if (this.opts.watch !== false) this.backups.check().catch((err: Error) => this.opts.logger.warn(`backup schedule: ${err.message}`));
  }

  /** Run one full pass now and wait until the queue has nothing left to do soon (benchmarks, --once). */
  async resyncAndSettle(withinMs = 30_000): Promise<void> {
    this.queue.add(RESYNC_KEY);
    await this.queue.whenIdle(withinMs);
  }

  /** Forget a cached listing when Docker says the owner's containers changed. */
  private onDockerEvent(owner: string): void {
    this.observedByOwner.delete(owner);
    if (isCoreKey(owner)) {
      this.coreEvents.add(owner);
      this.shared.forgetCoreContainers();
    }
    this.queue.add(owner);
  }

  /** Create the state directory (0700) if it is not there yet. */
  async stateDirReady(): Promise<void> {
    await this.opts.stateDir.ensure();
  }

  async start(): Promise<void> {
    // Copies of state files (credentials among them) that a killed operator was writing.
    for (const file of await this.opts.stateDir.removeStaleTemporaryFiles()) {
      this.opts.logger.info(`removed ${file}, left by an operator that was killed while writing it`);
    }
    this.heartbeatStarted = true;
    await this.heartbeat.started();
    await this.ctx.ips.load();
    await this.reload();
    await this.backups.start(this.opts.watch !== false);
    this.queue.add(RESYNC_KEY);
    if (this.opts.watch === false) return;
    if (this.opts.watchFolder !== false) {
      const watcher = await watchCellFolder(this.opts.cellDir, () => {
        this.reload().catch((err: Error) => this.opts.logger.error(`cannot read the cell folder: ${err.message}`));
      });
      this.closers.push(() => watcher.close());
    }
    const cellName = this.cell?.cell?.metadata.name;
    const events = watchDockerEvents(
      this.opts.docker,
      (e) => {
        if (isContainerOwnerKey(e.owner) || isCoreKey(e.owner)) this.onDockerEvent(e.owner);
        // Another owner's container under a core container's name (a Stalled core waits for it to
        // go): its events concern that core component too.
        const cellDoc = this.cell?.cell;
        const core = cellDoc ? coreComponents(cellDoc).find((c) => c.container === e.container && c.key !== e.owner) : undefined;
        if (core) this.onDockerEvent(core.key);
      },
      {
        labelFilter: OWNER_LABEL,
        ...(cellName ? { cellLabel: { key: LABEL.cell, value: cellName } } : {}),
        onStatus: (s, err) => {
          if (s === 'connected') this.queue.add(RESYNC_KEY);
          else this.opts.logger.warn(`lost the Docker event stream${err ? `: ${err.message}` : ''}; reconnecting`);
        },
      },
    );
    this.closers.push(() => events.close());
    const resync = startResync(this.opts.resyncIntervalMs ?? DEFAULT_RESYNC_MS, () => this.queue.add(RESYNC_KEY));
    this.closers.push(() => resync.stop());
  }

  /** Finish in-flight work, stop the sources, write nothing more. */
  async stop(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) await close();
    await this.backups.stop();
    await this.queue.shutdown();
    if (this.heartbeatStarted) await this.heartbeat.stopped();
  }

  /** /readyz: the first full pass has finished and the last one is recent. */
  readiness(now = Date.now()): Readiness {
    return readinessOf(this.lastPassAt, this.opts.resyncIntervalMs ?? DEFAULT_RESYNC_MS, now);
  }

  /**
   * Every status as this operator last wrote or read it: the folder is listed, the files are read
   * only the first time (the operator is their only writer). What metrics are computed from.
   */
  private async knownStatuses(): Promise<DocumentStatus[]> {
    const keys = await this.ctx.status.keys();
    const statuses = await Promise.all(keys.map((k) => this.ctx.status.lastKnown(k.key).catch(() => undefined)));
    return statuses.filter((s): s is DocumentStatus => s !== undefined);
  }

  /** Keys of the documents of the current snapshot, with their status, for --once and tests. */
  async statuses() {
    return this.ctx.status.list();
  }

  generation(key: string): string | undefined {
    const name = key.slice(key.indexOf('/') + 1);
    const doc = this.cell?.docs.services.find((s) => s.doc.metadata.name === name)?.doc;
    return doc ? generationOf(doc.spec) : undefined;
  }
}

export { isTerminal, serviceKey };
