/**
 * Read the containers of a cell from Docker: one listing per call, filtered by the cell label
 * (and the owner label when given), so a pass that finds nothing to do costs one API call.
 */
import type Dockerode from 'dockerode';
import { compareText } from '../../crds/values.js';
import { LABEL } from './labels.js';
import { parseUptime, type ContainerForReadiness } from './readiness.js';
import type { ContainerHealth, ObservedContainer } from './types.js';

export type { ObservedContainer } from './types.js';

export interface ContainerFilter {
  cell: string;
  /** e.g. `ServiceInstall/notes`; without it every container of the cell is listed. */
  owner?: string;
  /** The cell network, whose address becomes `ip`; without it `ip` is set only for a container on one network. */
  network?: string;
}

export async function listOwnedContainers(docker: Dockerode, filter: ContainerFilter): Promise<ObservedContainer[]> {
  const label = [`${LABEL.cell}=${filter.cell}`];
  if (filter.owner !== undefined) label.push(`${LABEL.owner}=${filter.owner}`);
  const infos = await docker.listContainers({ all: true, filters: { label } });
  return infos
    .map((info) => toObservedContainer(info, filter.network))
    .sort((a, b) => compareText(a.name, b.name) || compareText(a.id, b.id));
}

export function toObservedContainer(info: Dockerode.ContainerInfo, cellNetwork?: string): ObservedContainer {
  const labels = info.Labels ?? {};
  const attached = info.NetworkSettings?.Networks ?? {};
  const networks = Object.keys(attached).sort(compareText);
  const ipOf = (network: string | undefined) => {
    const address = network === undefined ? undefined : attached[network]?.IPAddress;
    return address ? address : undefined;
  };
  const ip = cellNetwork !== undefined ? ipOf(cellNetwork) : networks.length === 1 ? ipOf(networks[0]) : undefined;
  const health = parseHealth(info.Status ?? '');
  const observed: ObservedContainer = {
    id: info.Id,
    name: (info.Names?.[0] ?? '').replace(/^\//, ''),
    owner: labels[LABEL.owner] ?? '',
    cell: labels[LABEL.cell] ?? '',
    service: labels[LABEL.service] ?? '',
    specHash: labels[LABEL.specHash] ?? '',
    state: info.State,
    imageId: info.ImageID,
    networks,
    labels: { ...labels },
  };
  if (health !== undefined) observed.health = health;
  const up = parseUptime(info.Status ?? '');
  if (up !== undefined) observed.upSeconds = up;
  if (ip !== undefined) observed.ip = ip;
  return observed;
}

/** Docker writes the health into the status text: "Up 5 minutes (healthy)", "Up 2 seconds (health: starting)". */
export function parseHealth(status: string): ContainerHealth | undefined {
  const match = /\((healthy|unhealthy|health: starting)\)/.exec(status);
  if (!match) return undefined;
  return match[1] === 'health: starting' ? 'starting' : (match[1] as ContainerHealth);
}

/**
 * The containers of an owner as the readiness rule needs them when a verdict commits (an upgrade,
 * a restore): one listing, then one inspect per container for what the listing lacks, its restart
 * count and its exact start time.
 */
export async function observeForReadiness(docker: Dockerode, filter: { cell: string; owner: string }, now: Date): Promise<ContainerForReadiness[]> {
  const listed = await listOwnedContainers(docker, filter);
  const out: ContainerForReadiness[] = [];
  for (const c of listed) {
    let inspect: Dockerode.ContainerInspectInfo;
    try {
      inspect = await docker.getContainer(c.id).inspect();
    } catch {
      continue; // removed meanwhile: absent
    }
    const state = inspect.State;
    const started = Date.parse(state.StartedAt);
    const health = state.Health?.Status;
    out.push({
      name: c.name,
      state: state.Status,
      ...(health && health !== 'none' ? { health } : {}),
      ...(state.Running && Number.isFinite(started) ? { upSeconds: Math.max(0, Math.floor((now.getTime() - started) / 1000)) } : {}),
      restarts: inspect.RestartCount,
    });
  }
  return out;
}
