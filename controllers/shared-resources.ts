import type { ConnectionDocument, PeerAccountDocument } from '../crds/types.js';
import {
  accountsError,
  accountsKey,
  desiredPeersByService,
  peerStatus,
  previewServiceAccounts,
  reconcileServiceAccounts,
  type ServiceAccountsResult,
} from '../reconcilers/accounts/index.js';
import { withCoreDefaults } from '../reconcilers/core/spec.js';
import { addressStoreOf, WIREGUARD_KEY } from '../reconcilers/wireguard/index.js';
import { CoreContainers } from '../reconcilers/shared/core-containers.js';
import type { CellRouting, InstalledService, ResourceContext, ResourceReconciler } from '../reconcilers/shared/types.js';
import type { LoadedCell } from '../state/cell.js';
import { CredentialsStore } from '../state/credentials.js';
import { connectionKey, documentKey, nameInKey, peerKey, serviceKey } from '../state/document-keys.js';
import { isHeld } from '../state/hold.js';
import type { OperatorContext } from './context.js';
import { failed, progressing, ready } from './outcome.js';
import { generationOf } from './reconcile-service.js';

export const RESOURCE_KIND = 'Resource';
export const ACCOUNTS_PREFIX = 'Accounts/';

/**
 * The services that shared resources are built from: valid ServiceInstalls that hold an address,
 * with their merged config and resolved egress. Pure given the snapshot and the assignments.
 */
export function buildRouting(cell: LoadedCell, assignments: Readonly<Record<string, string>>, exitHealth: ReadonlyMap<string, boolean> = new Map()): CellRouting | undefined {
  const cellDoc = cell.cell;
  if (!cellDoc || !cell.catalog) return undefined;
  const connections = [...cell.docs.connections.map((c) => c.doc)].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const byName = new Map<string, ConnectionDocument>(connections.map((c) => [c.metadata.name, c]));
  const services: InstalledService[] = [];
  for (const { doc } of cell.docs.services) {
    const name = doc.metadata.name;
    const key = documentKey(doc);
    const ip = assignments[key];
    const manifest = cell.catalog.services.get(name)?.manifest;
    const config = cell.checked.configs.get(name);
    if ((cell.checked.byDocument.get(key) ?? []).length > 0 || !ip || !manifest || !config) continue;
    const connection = doc.spec.egress?.connection ?? 'default';
    const target = byName.get(connection);
    services.push({
      name,
      manifest,
      config,
      serviceIp: ip,
      egress: target ? { connection, type: target.spec.type, failOpen: target.spec.failOpen ?? false } : { connection: 'default', type: 'default', failOpen: false },
    });
  }
  services.sort((a, b) => a.name.localeCompare(b.name));
  const valid = (key: string) => (cell.checked.byDocument.get(key) ?? []).length === 0;
  const peers = cell.docs.peers.filter(({ doc }) => valid(documentKey(doc))).map((p) => p.doc).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const keptPeers = [
    ...cell.docs.peers.map((p) => p.doc.metadata.name),
    ...cell.docs.rejected.flatMap((r) => nameInKey(r.key, 'PeerAccount') ?? []),
  ].sort();
  return { cell: withCoreDefaults(cellDoc), services, connections, peers, keptPeers, egress: egressInputOf(cell, assignments, exitHealth) };
}

/**
 * Every service that names a Connection — valid or not, held or not: a document that breaks or a
 * Connection that is deleted never moves a service to the direct path — and every Connection,
 * with its exit's address and whether its exit is healthy now.
 */
export function egressInputOf(cell: LoadedCell, assignments: Readonly<Record<string, string>>, exitHealth: ReadonlyMap<string, boolean>): NonNullable<CellRouting['egress']> {
  const assigned = cell.docs.services.flatMap(({ doc }) => {
    const connection = doc.spec.egress?.connection ?? 'default';
    const address = assignments[documentKey(doc)];
    return connection === 'default' || !address ? [] : [{ name: doc.metadata.name, address, connection }];
  });
  const names = [...new Set([...cell.docs.connections.map((c) => c.doc.metadata.name), ...assigned.map((a) => a.connection)])].sort();
  const exits = names.map((name) => {
    const source = cell.docs.connections.find((c) => c.doc.metadata.name === name);
    const key = connectionKey(name);
    const declared = source !== undefined && (cell.checked.byDocument.get(key) ?? []).length === 0;
    const address = assignments[key];
    return { name, failOpen: source?.doc.spec.failOpen ?? false, declared, healthy: exitHealth.get(name) ?? false, ...(address ? { address } : {}) };
  });
  return { assigned, exits };
}

/** The cell-wide reconcilers a cell uses: firewall and egress only when it declares its VPN container. */
export function activeReconcilers(cell: LoadedCell, all: CellResources): ResourceReconciler[] {
  if (!cell.cell) return [];
  return [...all.always, ...(cell.cell.spec.wireguard ? all.wireguard : []), ...(cell.cell.spec.wireguard?.run ? (all.vpn ?? []) : [])];
}

export interface CellResources {
  always: ResourceReconciler[];
  wireguard: ResourceReconciler[];
  /** Where pic runs the WireGuard container: the peer set and the tunnel's firewall. */
  vpn?: ResourceReconciler[];
}

/**
 * Converges the cell-wide resources and the accounts, each under its own queue key, and keeps
 * the PeerAccount statuses that summarise the accounts.
 */
export class SharedResources {
  private readonly credentials: CredentialsStore;
  /** Latest accounts result per service, for the PeerAccount statuses. */
  private readonly accountResults = new Map<string, ServiceAccountsResult>();

  constructor(
    private readonly ctx: OperatorContext,
    private readonly reconcilers: CellResources,
    private readonly stateRoot: string,
    private readonly cellDir: string,
    /** The operator's latest snapshot: statuses are written against it, not a stale one. */
    private readonly currentCell: () => LoadedCell | undefined = () => undefined,
  ) {
    this.credentials = new CredentialsStore(`${stateRoot}/credentials.json`);
  }

  resourceKeys(cell: LoadedCell): string[] {
    return activeReconcilers(cell, this.reconcilers).map((r) => r.key);
  }

  /** `Accounts/<service>` for every installed service that has accounts. */
  accountKeys(cell: LoadedCell): string[] {
    return cell.docs.services
      .filter(({ doc }) => cell.catalog?.services.get(doc.metadata.name)?.manifest.capabilities.has_accounts)
      .map(({ doc }) => `${ACCOUNTS_PREFIX}${doc.metadata.name}`)
      .sort();
  }

  /**
   * The generation a resource status speaks of: a hash over every routed service (manifests
   * included), so it is remembered for the snapshot and addresses it was computed from.
   */
  private routingGeneration(cell: LoadedCell, assignments: Record<string, string>, routing: CellRouting): string {
    const addresses = JSON.stringify(assignments);
    const known = this.lastGeneration;
    if (known && known.cell === cell && known.addresses === addresses) return known.generation;
    const generation = generationOf({ cell: routing.cell.spec, services: routing.services, connections: routing.connections.map((c) => c.spec) });
    this.lastGeneration = { cell, addresses, generation };
    return generation;
  }

  private lastGeneration?: { cell: LoadedCell; addresses: string; generation: string };

  /** Whether each Connection's exit is healthy now (its reconcile says), for fail-open steering. */
  readonly exitHealth = new Map<string, boolean>();

  /**
   * The core containers as this pass resolved them (one inspect of the VPN container for the
   * firewall, tunnel, egress and peer-set resources together), until the next pass or a change.
   */
  private core = new CoreContainers();

  /** A new pass resolves the core containers afresh. */
  beginPass(): void {
    this.core = new CoreContainers();
  }

  /** A core container changed (a Docker event, a recreate): its resolution no longer holds. */
  forgetCoreContainers(): void {
    this.core.forget();
  }

  private resourceContext(key: string, core: CoreContainers = this.core): ResourceContext {
    return {
      docker: this.ctx.docker,
      stateRoot: this.stateRoot,
      cellDir: this.cellDir,
      event: (reason, message, type) => this.ctx.event(key, type ?? 'Normal', reason, message),
      core: core.forKey(key),
    };
  }

  async reconcileResource(cell: LoadedCell, key: string): Promise<void> {
    const reconciler = activeReconcilers(cell, this.reconcilers).find((r) => r.key === key);
    if (!reconciler) {
      await this.ctx.statuses.resources.remove(key);
      return;
    }
    const assignments = this.ctx.ips.assignments();
    const routing = buildRouting(cell, assignments, this.exitHealth);
    if (!routing) return;
    const generation = this.routingGeneration(cell, assignments, routing);
    try {
      const outcome = await reconciler.reconcile(routing, this.resourceContext(key));
      const status = outcome.notReady ? progressing(outcome.notReady.reason, `${outcome.notReady.message}; ${outcome.summary}`) : ready('InSync', outcome.summary);
      await this.ctx.statuses.resources.write(key, { generation }, status, outcome.facts);
      // Each peer's status names its VPN address, and a peer with no accounts is Ready once it is a peer.
      if (key === WIREGUARD_KEY) await this.writePeerStatuses(cell);
    } catch (err) {
      // The failure may be the container's (gone, restarted under another pid): resolve it again.
      this.core.forget();
      await this.ctx.statuses.resources.write(key, { generation }, failed(err));
      throw err;
    }
  }

  /** What the shared resources would change; `assignments` may include addresses not yet allocated. */
  async planResources(cell: LoadedCell, assignments: Readonly<Record<string, string>> = this.ctx.ips.assignments()): Promise<{ key: string; lines: string[] }[]> {
    const routing = buildRouting(cell, assignments);
    if (!routing) return [];
    const out: { key: string; lines: string[] }[] = [];
    const core = new CoreContainers();
    for (const r of activeReconcilers(cell, this.reconcilers)) {
      try {
        const lines = await r.plan(routing, this.resourceContext(r.key, core));
        if (lines.length > 0) out.push({ key: r.key, lines });
      } catch (err) {
        out.push({ key: r.key, lines: [`! cannot plan: ${(err as Error).message}`] });
      }
    }
    for (const key of this.accountKeys(cell)) {
      const service = routing.services.find((s) => `${ACCOUNTS_PREFIX}${s.name}` === key);
      if (!service) continue;
      const desired = desiredPeersByService(routing.services, this.validPeers(cell)).get(service.name) ?? [];
      try {
        const lines = await previewServiceAccounts(service, desired, { docker: this.ctx.docker, cellName: routing.cell.metadata.name, credentials: this.credentials });
        if (lines.length > 0) out.push({ key, lines });
      } catch (err) {
        out.push({ key, lines: [`! cannot plan: ${(err as Error).message}`] });
      }
    }
    return out;
  }

  private validPeers(cell: LoadedCell): PeerAccountDocument[] {
    return cell.docs.peers.filter(({ doc }) => (cell.checked.byDocument.get(documentKey(doc)) ?? []).length === 0).map((p) => p.doc);
  }

  /**
   * Converge the accounts of one service, unless the service is not Ready yet (its accounts are
   * then pending, and the service's own reconcile enqueues this key once it is Ready).
   */
  async reconcileAccounts(cell: LoadedCell, key: string): Promise<void> {
    const name = key.slice(ACCOUNTS_PREFIX.length);
    const routing = buildRouting(cell, this.ctx.ips.assignments());
    const service = routing?.services.find((s) => s.name === name);
    const serviceStatus = await this.ctx.status.lastKnown(serviceKey(name));
    if (!routing || !service || !service.manifest.capabilities.has_accounts) {
      this.accountResults.delete(name);
      await this.writePeerStatuses(cell);
      return;
    }
    if (serviceStatus?.phase !== 'Ready') {
      this.accountResults.delete(name);
      await this.writePeerStatuses(cell, new Map([[name, `${name} is not Ready yet`]]));
      return;
    }
    const desired = desiredPeersByService(routing.services, this.validPeers(cell)).get(name) ?? [];
    const result = await reconcileServiceAccounts(service, desired, {
      docker: this.ctx.docker,
      cellName: routing.cell.metadata.name,
      credentials: this.credentials,
      event: (reason, message, type) => this.ctx.event(key, type ?? 'Normal', reason, message),
    });
    this.accountResults.set(name, result);
    await this.writePeerStatuses(cell);
    const error = accountsError(result);
    if (error) throw error;
  }

  /** Every PeerAccount's status from the latest per-service results. */
  async writePeerStatuses(started: LoadedCell, waiting: Map<string, string> = new Map()): Promise<void> {
    // An accounts pass can outlive the snapshot it started with (a peer deleted meanwhile): write
    // against the newest one (and the PeerAccount writer writes no status of a peer it no longer has).
    const cell = this.currentCell() ?? started;
    const vpn = cell.cell?.spec.wireguard?.run ? addressStoreOf(this.stateRoot) : undefined;
    await vpn?.load();
    for (const { doc, file } of cell.docs.peers) {
      const key = documentKey(doc);
      // Invalid or held peers: written as Stalled by the operator.
      if ((cell.checked.byDocument.get(key) ?? []).length > 0 || isHeld(cell, key)) continue;
      const wanted = doc.spec.services;
      const summary = peerStatus(doc.metadata.name, this.accountResults, wanted);
      for (const [service, why] of waiting) {
        if (wanted.includes(service)) summary.services[service] = { state: 'pending', reason: why };
      }
      const states = Object.values(summary.services).map((s) => s.state);
      const state = states.includes('failed') ? 'failed' : states.includes('pending') ? 'pending' : 'provisioned';
      const message = state === 'provisioned' ? summary.message : Object.entries(summary.services).map(([s, e]) => `${s}: ${e.state}${e.reason ? ` (${e.reason})` : ''}`).join('; ');
      const generation = generationOf(doc.spec);
      // Right after a start no service has reported yet: a peer Ready for this very document stays
      // Ready until one does (its condition's age is not reset by every `pic run --once`).
      const unreported = wanted.filter((s) => !this.accountResults.has(s) && !waiting.has(s));
      if (state === 'pending' && unreported.length > 0 && Object.entries(summary.services).every(([s, e]) => e.state === 'provisioned' || unreported.includes(s))) {
        const stored = await this.ctx.status.lastKnown(key);
        if (stored?.phase === 'Ready' && stored.observedGeneration === generation) continue;
      }
      const vpnAddress = vpn?.assignmentOf(peerKey(doc.metadata.name));
      const facts = { services: summary.services, ...(vpnAddress ? { vpnAddress } : {}) };
      const outcome = state === 'provisioned' ? ready('Provisioned', message) : progressing(state === 'failed' ? 'AccountsFailed' : 'AccountsPending', message);
      await this.ctx.statuses.peers.write(key, { file, generation }, outcome, facts);
    }
  }

  /** Services the credentials file knows but no PeerAccount needs any more are dropped by their own key. */
  async credentialServices(): Promise<string[]> {
    return Object.keys(await this.credentials.all()).sort();
  }
}

export function isAccountsKey(key: string): boolean {
  return key.startsWith(ACCOUNTS_PREFIX);
}

export function isResourceKey(key: string): boolean {
  return key.startsWith(`${RESOURCE_KIND}/`);
}

export { accountsKey };
