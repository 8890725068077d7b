/**
 * What the cell-wide resources (Caddy, DNS zone, firewall, egress, accounts) are converged from,
 * and the shape each of their reconcilers has. The controller builds `CellRouting` from the
 * desired snapshot; each reconciler observes its live resource, plans (pure), and applies.
 */
import type Dockerode from 'dockerode';
import type { ConfigValue } from '../../crds/config.js';
import type { CellDocument, ConnectionDocument, EgressType, Manifest, PeerAccountDocument } from '../../crds/types.js';
import type { AssignedService, ExitState } from '../egress/render.js';
import type { CoreView } from './core-containers.js';

export interface ServiceEgress {
  /** "default", or the name of a Connection document. */
  connection: string;
  type: EgressType;
  failOpen: boolean;
}

/** A ServiceInstall that is valid and has its address: what shared resources are built from. */
export interface InstalledService {
  name: string;
  manifest: Manifest;
  /** Merged config (manifest defaults filled in). */
  config: Record<string, ConfigValue>;
  serviceIp: string;
  egress: ServiceEgress;
}

export interface CellRouting {
  /** The Cell document, defaults applied. */
  cell: CellDocument;
  /** Sorted by name. */
  services: InstalledService[];
  /** Sorted by name. */
  connections: ConnectionDocument[];
  /** Valid PeerAccounts, sorted by name: the VPN's peers. */
  peers?: PeerAccountDocument[];
  /** Names of every PeerAccount the folder still declares, valid or held: their keys and addresses are kept. */
  keptPeers?: string[];
  /** What egress steering is built from; absent: nothing is assigned to a Connection. */
  egress?: {
    /** Every service assigned to a Connection, valid or not, with its address: a broken document keeps its fence. */
    assigned: AssignedService[];
    /** Every Connection named or declared: its exit's address and health. */
    exits: ExitState[];
  };
}

export interface ResourceContext {
  docker: Dockerode;
  /** The state directory; a resource keeps what it owns under `<stateRoot>/<its key>/`. */
  stateRoot: string;
  /** The cell folder, to resolve relative paths of the Cell spec. */
  cellDir: string;
  /** Record an event (also logged) about this resource. */
  event: (reason: string, message: string, type?: 'Normal' | 'Warning') => void;
  /** The pass's core containers and their reads, shared by the resources of one pass; without it each resolves and reads its own. */
  core?: CoreView;
}

export interface ResourceOutcome {
  /** Whether anything live was changed (a write, a reload, a rule). */
  changed: boolean;
  /** One line for the resource's status, e.g. "3 routes; Caddyfile unchanged". */
  summary: string;
  facts?: Record<string, unknown>;
  /** Converged as far as it can be, yet not Ready for a person (a Connection down, traffic blocked): why. */
  notReady?: { reason: string; message: string };
}

export interface ResourceReconciler {
  /** Queue and status key, e.g. "Resource/caddy". */
  key: string;
  /** What `reconcile` would change, one line each (unified diff lines allowed); [] when in sync. No writes. */
  plan(input: CellRouting, ctx: ResourceContext): Promise<string[]>;
  /** Converge; throw TerminalError (reconcilers/errors.ts) for bad input, Error for faults that may pass. */
  reconcile(input: CellRouting, ctx: ResourceContext): Promise<ResourceOutcome>;
}
