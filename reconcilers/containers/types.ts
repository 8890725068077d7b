/**
 * The vocabulary shared by the containers reconciler: what a rendered service wants
 * (`ServicePlan`), what Docker shows (`ObservedContainer`) and the steps between them
 * (`ContainerAction`).
 *
 * The translator (translate.ts) produces the desired side; observe.ts the observed one; plan.ts
 * the actions.
 */
import type Dockerode from 'dockerode';

export type DependsOnCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

export interface DesiredContainer {
  /** Docker container name (the compose container_name). */
  name: string;
  /** The compose service key this container comes from. */
  service?: string;
  /** Carries the owner, service and spec-hash labels, the network mode and the endpoint config. */
  create: Dockerode.ContainerCreateOptions;
  /** Names of the containers this one starts after, sorted. */
  dependsOn: string[];
  /** For each name in dependsOn, what "ready" means. */
  dependsOnConditions?: Record<string, DependsOnCondition>;
  specHash: string;
}

export interface DesiredVolume {
  name: string;
  labels: Record<string, string>;
}

export interface ServicePlan {
  /** In dependency order; ties broken by compose service key. */
  containers: DesiredContainer[];
  /** Sorted by name. */
  volumes: DesiredVolume[];
  /** Host directories bind-mounted into containers (sorted): prepared before anything is created. */
  bindSources?: string[];
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
  /** How long a running container has been up, at least (seconds), from Docker's status text. */
  upSeconds?: number;
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

/** What applyContainerActions carries out: every action but a pull, which the pipeline makes first (index.ts). */
export type ContainerChange = Exclude<ContainerAction, { type: 'pull-image' }>;

export function isContainerChange(action: ContainerAction): action is ContainerChange {
  return action.type !== 'pull-image';
}

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
