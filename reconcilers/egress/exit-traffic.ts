/**
 * The bytes a Connection's exit has carried through its tunnel, read live for `pic describe`:
 * the counters of the exit's tunnel interfaces (WireGuard's wg0, OpenVPN's tun0: links without a
 * hardware address) in its own network namespace: their link types by one `ip -json link show`
 * through the container's namespaces from the host, their counters from its /proc/<pid>/net/dev
 * (or both by exec where the host cannot enter them). The
 * container is first checked to be this Connection's exit (its owner and cell labels).
 */
import { promises as fs } from 'node:fs';
import type Dockerode from 'dockerode';
import { compareText } from '../../crds/values.js';
import { LABEL } from '../containers/labels.js';
import { containerNetworkReader } from '../shared/container-netns.js';
import { execInContainer } from '../shared/exec.js';
import { resolveOwnedContainer } from '../shared/owned-container.js';

export interface TunnelTraffic {
  iface: string;
  /** Bytes that came out of the tunnel (answers to the services). */
  received: number;
  /** Bytes sent into the tunnel (the services' traffic). */
  sent: number;
}

interface Link {
  ifname?: unknown;
  link_type?: unknown;
}

/** Bytes received and sent per interface, from /proc/net/dev. Pure. */
export function parseNetDev(text: string): Map<string, { received: number; sent: number }> {
  const out = new Map<string, { received: number; sent: number }>();
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const fields = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (fields.length < 16 || fields.some((n) => !Number.isFinite(n))) continue;
    out.set(line.slice(0, colon).trim(), { received: fields[0]!, sent: fields[8]! });
  }
  return out;
}

/**
 * The tunnel interfaces (link type `none`: WireGuard, tun) of `ip -json link show` output, with
 * their counters from /proc/net/dev, sorted by name. Pure.
 */
export function tunnelTraffic(links: readonly unknown[], netDev: string): TunnelTraffic[] {
  const counters = parseNetDev(netDev);
  const out: TunnelTraffic[] = [];
  for (const link of links as (Link | null)[]) {
    if (typeof link?.ifname !== 'string' || link.link_type !== 'none') continue;
    const c = counters.get(link.ifname);
    if (c) out.push({ iface: link.ifname, ...c });
  }
  return out.sort((a, b) => compareText(a.iface, b.iface));
}

/**
 * The tunnel traffic of the exit container `name` of Connection `connection`. Without `cell`
 * (`pic describe` reads only the state directory), the container's own cell label is taken, and
 * its owner label must still name the Connection.
 */
export async function readExitTraffic(docker: Dockerode, exit: { name: string; connection: string; cell?: string }): Promise<TunnelTraffic[]> {
  const cell = exit.cell ?? (await docker.getContainer(exit.name).inspect().then((i) => i.Config?.Labels?.[LABEL.cell] ?? '', () => ''));
  const container = await resolveOwnedContainer(docker, {
    name: exit.name,
    owner: `Connection/${exit.connection}`,
    cell,
    createdBy: 'pic',
    role: `the exit of Connection/${exit.connection}`,
    use: 'read from',
  });
  const reader = await containerNetworkReader(docker, container);
  const [links] = await reader.ipJson(['link show']);
  // The counters of the container's network namespace: from the host through its pid, else by exec.
  const netDev =
    reader.via.mode === 'host' && container.pid !== undefined
      ? await fs.readFile(`/proc/${container.pid}/net/dev`, 'utf8')
      : (await execInContainer(docker, container, ['cat', '/proc/net/dev'], { timeoutMs: 10_000 })).stdout;
  return tunnelTraffic(links ?? [], netDev);
}
