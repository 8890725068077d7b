/**
 * The cell network: a bridge with the Cell's subnet, so every service gets the fixed address it
 * was allocated. A network of that name with another subnet is never reused: the allocated
 * addresses would not exist on it.
 */
import type Dockerode from 'dockerode';
import { networkOf, readCidr } from '../../crds/ipv4.js';
import { TerminalError } from '../errors.js';
import { dockerMessage, dockerStatusCode } from './types.js';

export interface NetworkSpec {
  name: string;
  /** IPv4 CIDR, e.g. 172.20.0.0/16. */
  subnet: string;
  labels: Record<string, string>;
  /**
   * Where Docker may pick addresses for containers that ask for none (the secondary containers of
   * a multi-container service). It must lie outside the service pool, or Docker could hand out an
   * address the operator is about to give a service. See `dynamicRangeFor`.
   */
  ipRange?: string;
}

/**
 * The half of `subnet` that holds none of the service pool `[poolStart, poolEnd]` (addresses as
 * numbers), as a CIDR; undefined when the pool reaches into both halves. Pure.
 */
export function dynamicRangeFor(subnet: string, poolStart: number, poolEnd: number): string | undefined {
  const net = readCidr(subnet.trim())?.network;
  if (!net || net.prefix >= 31) return undefined;
  const half = net.network + net.size / 2;
  const lowerHasPool = poolStart < half;
  const upperHasPool = poolEnd >= half;
  if (lowerHasPool && upperHasPool) return undefined;
  return networkOf(lowerHasPool ? half : net.network, net.prefix + 1).text;
}

/**
 * Reconciles of several services each ensure the one cell network, often at the same moment;
 * dockerd then refuses all but one create ("Pool overlaps") before the winner is visible. One
 * ensure per engine and name runs at a time; the others wait for it and then find the network.
 */
const inFlight = new WeakMap<Dockerode, Map<string, Promise<unknown>>>();

/** Makes sure the network exists with the subnet; tells whether it had to create it. */
export async function ensureNetwork(docker: Dockerode, spec: NetworkSpec): Promise<{ created: boolean }> {
  let perEngine = inFlight.get(docker);
  if (!perEngine) inFlight.set(docker, (perEngine = new Map<string, Promise<unknown>>()));
  const previous = perEngine.get(spec.name) ?? Promise.resolve();
  const run = previous.then(
    () => ensureNetworkNow(docker, spec),
    () => ensureNetworkNow(docker, spec),
  );
  perEngine.set(spec.name, run);
  try {
    return await run;
  } finally {
    if (perEngine.get(spec.name) === run) perEngine.delete(spec.name);
  }
}

async function ensureNetworkNow(docker: Dockerode, spec: NetworkSpec): Promise<{ created: boolean }> {
  const existing = await inspectNetwork(docker, spec.name);
  if (existing) {
    checkSubnet(spec, existing);
    return { created: false };
  }
  try {
    await docker.createNetwork({
      Name: spec.name,
      Driver: 'bridge',
      CheckDuplicate: true,
      IPAM: { Driver: 'default', Config: [{ Subnet: spec.subnet, ...(spec.ipRange ? { IPRange: spec.ipRange } : {}) }] },
      Labels: spec.labels,
    });
    return { created: true };
  } catch (err) {
    // Created by someone else between the inspect and the create (another service's reconcile,
    // another process): Docker answers 409, or "Pool overlaps" when the twin already holds the
    // subnet. Judge the network that now exists like any existing one.
    const raced = await inspectNetwork(docker, spec.name);
    if (raced) {
      checkSubnet(spec, raced);
      return { created: false };
    }
    const message = dockerMessage(err);
    if (/overlap/i.test(message)) {
      throw new TerminalError(
        `cannot create network "${spec.name}" with subnet ${spec.subnet}: ${message}. ` +
          `Another Docker network already uses addresses of ${spec.subnet}; choose a free subnet in the Cell's ` +
          `spec.network.subnet, or remove the other network (docker network ls, docker network inspect).`,
        'NetworkConflict',
      );
    }
    throw new Error(`cannot create network "${spec.name}" with subnet ${spec.subnet}: ${message}`, { cause: err });
  }
}

async function inspectNetwork(docker: Dockerode, name: string): Promise<Dockerode.NetworkInspectInfo | undefined> {
  try {
    const info = await docker.getNetwork(name).inspect();
    // Docker also resolves a network by a prefix of its id; only an exact name is this network.
    return info.Name === name ? info : undefined;
  } catch (err) {
    if (dockerStatusCode(err) === 404) return undefined;
    throw new Error(`cannot inspect network "${name}": ${dockerMessage(err)}`, { cause: err });
  }
}

function checkSubnet(spec: NetworkSpec, info: Dockerode.NetworkInspectInfo): void {
  const subnets = (info.IPAM?.Config ?? []).map((c) => c.Subnet).filter((s): s is string => Boolean(s));
  const want = normaliseCidr(spec.subnet);
  if (subnets.some((s) => normaliseCidr(s) === want)) return;
  const have = subnets.length > 0 ? subnets.join(', ') : 'no configured subnet';
  throw new TerminalError(
    `network "${spec.name}" already exists with subnet ${have}, but the cell wants ${spec.subnet}. ` +
      `Service addresses are allocated from ${spec.subnet}, so that network cannot be reused: either set the Cell's ` +
      `spec.network.subnet to ${subnets[0] ?? 'the existing subnet'}, or remove the network (docker network rm ${spec.name}, ` +
      `after stopping the containers attached to it) so it is created again.`,
    'NetworkConflict',
  );
}

/** "10.1.2.3/16" and "10.1.0.0/16" name the same network; anything unparsable compares as written. */
export function normaliseCidr(cidr: string): string {
  return readCidr(cidr.trim())?.network.text ?? cidr.trim();
}
