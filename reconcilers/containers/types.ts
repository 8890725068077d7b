/**
 * The vocabulary shared by the containers reconciler: what a rendered service wants
 * (`ServicePlan`), what Docker shows (`ObservedContainer`) and the steps between them
 * (`ContainerAction`).
 *
 * `DesiredContainer`, `DesiredVolume` and `ServicePlan` have the same shape as the ones
 * `compose.ts` produces, so either can be passed where the other is expected.
 */
import type Dockerode from 'dockerode';

/** Labels the operator puts on everything it creates, and reads back to know what it owns. */
export const LABEL = {
  /** The cell a resource belongs to: two cells (or a test and a cell) can share one dockerd. */
  cell: 'ngo.pic.cell',
  /** The document a resource belongs to, e.g. `ServiceInstall/notes`. */
  owner: 'ngo.pic.owner',
  /** The Compose service key the container was rendered from. */
  service: 'ngo.pic.service',
  /** A hash of everything the container was created from; a difference means "recreate". */
  specHash: 'ngo.pic.spec-hash',
} as const;

export interface DesiredContainer {
  name: string;
  /** Carries the owner, service and spec-hash labels, the network mode and the endpoint config. */
  create: Dockerode.ContainerCreateOptions;
  /** Names of the containers this one starts after. */
  dependsOn: string[];
  specHash: string;
}

export interface DesiredVolume {
  name: string;
  labels: Record<string, string>;
}

export interface ServicePlan {
  /** In dependency order. */
  containers: DesiredContainer[];
  volumes: DesiredVolume[];
}

/** Docker's container states; any other string Docker may add later is kept as it is. */
export type ContainerState =
  | 'running'
  | 'exited'
  | 'created'
  | 'restarting'
  | 'paused'
  | 'dead'
  | 'removing'
  | (string & {});

export type ContainerHealth = 'healthy' | 'unhealthy' | 'starting';

export interface ObservedContainer {
  id: string;
  /** Without Docker's leading `/`. */
  name: string;
  /** The `ngo.pic.owner` label; '' when the container has none (then it is not ours). */
  owner: string;
  /** The `ngo.pic.cell` label; '' when absent. */
  cell: string;
  /** The `ngo.pic.service` label; '' when absent. */
  service: string;
  /** The `ngo.pic.spec-hash` label; '' when absent. */
  specHash: string;
  state: ContainerState;
  /** Only for containers with a healthcheck, parsed from Docker's status text. */
  health?: ContainerHealth;
  imageId: string;
  /** The IPv4 address on the cell network, when the container has one. */
  ip?: string;
  /** Names of the networks the container is attached to, sorted. */
  networks: string[];
  labels: Record<string, string>;
}

export type ContainerAction =
  /** A desired container carries a name that a container we do not own already has. */
  | { type: 'conflict'; name: string; message: string }
  /** An owned container that is no longer rendered, or a duplicate of a rendered one. */
  | { type: 'remove'; id: string; name: string; reason: string }
  /** Only planned when something is created. */
  | { type: 'ensure-network' }
  /** Every desired volume, when something is created; applying it is idempotent. */
  | { type: 'create-volume'; volume: DesiredVolume }
  /** An image a container to be created needs and that is not present locally. */
  | { type: 'pull-image'; image: string }
  | { type: 'create'; container: DesiredContainer }
  /** The container exists but was created from another spec (or cannot be started again). */
  | { type: 'recreate'; container: DesiredContainer; id: string; reason: string }
  /** The container exists with the desired spec but does not run. */
  | { type: 'start'; container: DesiredContainer; id: string };

/** The HTTP status of a failed Docker API call, if it has one. */
export function dockerStatusCode(err: unknown): number | undefined {
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Docker's own words for a failed call, without dockerode's "(HTTP code 409) unexpected - "
 * prefix, so that an error built from it reads as one sentence.
 */
export function dockerMessage(err: unknown): string {
  const json = (err as { json?: unknown } | null)?.json;
  if (json && typeof json === 'object' && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message.trim();
  }
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim();
}
