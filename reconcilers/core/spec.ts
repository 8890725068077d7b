/**
 * The cell's core stack as the Cell declares it: which of Caddy, the DNS server and WireGuard pic
 * runs (and with what), and the defaults that follow from that for the resources built on them
 * (Caddy's admin address, the address the A records point at, the VPN container, TLS).
 *
 * Pure: a Cell document in, plain data out.
 */
import path from 'node:path';
import { DEFAULT_CORE_CONTAINERS, DEFAULT_VPN } from '../../crds/schemas.js';
import type { CellDocument, CoreRunSpec } from '../../crds/types.js';
import { formatIpv4, inNetwork, lastAddress, parseCidr } from '../../crds/ipv4.js';
import { parsePool, type IpPool } from '../../state/ip-allocation.js';
import type { ContainerClaim, ContainerUse } from '../shared/owned-container.js';

export const CORE_KIND = 'Core';
export const CORE_NAMES = ['caddy', 'dns', 'wireguard'] as const;
export type CoreName = (typeof CORE_NAMES)[number];

/**
 * Caddy's admin API, when pic runs Caddy, is on no network at all: a Unix socket in a folder of
 * the state directory (owner-only) that is bind-mounted into the Caddy container alone. No other
 * container, and no peer, can reach it; pic talks to it through the socket on the host.
 */
export const CADDY_ADMIN_FOLDER = 'caddy-admin';
/** Where that folder is mounted inside the Caddy container. */
export const CADDY_ADMIN_MOUNT = '/run/caddy-admin';
export const CADDY_ADMIN_SOCKET = 'admin.sock';
/** The `admin` option of every config pic gives its Caddy (Caddy's own address syntax). */
export const CADDY_ADMIN_LISTEN = `unix/${CADDY_ADMIN_MOUNT}/${CADDY_ADMIN_SOCKET}`;

/** The folder on the host holding the admin socket of the Caddy pic runs. */
export function caddyAdminDir(stateRoot: string): string {
  return path.join(stateRoot, CADDY_ADMIN_FOLDER);
}

/**
 * Where pic reaches Caddy's admin API: the socket of the Caddy pic runs (`unix/<state>/...`),
 * else the admin's `spec.caddy.adminAddress`; undefined when there is neither.
 */
export function caddyAdminAddressOf(cell: CellDocument, stateRoot: string): string | undefined {
  if (cell.spec.caddy?.run) return `unix/${path.join(caddyAdminDir(stateRoot), CADDY_ADMIN_SOCKET)}`;
  return cell.spec.caddy?.adminAddress;
}
export const WIREGUARD_INTERFACE = 'wg0';

export interface CoreComponent {
  name: CoreName;
  /** `Core/<name>`: queue, status and owner-label key. */
  key: string;
  container: string;
  run: CoreRunSpec;
}

export function coreKey(name: CoreName): string {
  return `${CORE_KIND}/${name}`;
}

export function isCoreKey(key: string): boolean {
  return CORE_NAMES.some((n) => coreKey(n) === key);
}

/** The core containers pic runs for this Cell, in start order (DNS and WireGuard before Caddy is not needed: none depends on another). */
export function coreComponents(cell: CellDocument): CoreComponent[] {
  const out: CoreComponent[] = [];
  for (const name of CORE_NAMES) {
    const run = cell.spec[name]?.run;
    if (!run) continue;
    // The VPN container's name may also come from spec.wireguard.container, which the firewall
    // and egress resources address it by.
    const named = run.container ?? (name === 'wireguard' ? cell.spec.wireguard?.container : undefined);
    out.push({ name, key: coreKey(name), container: named ?? DEFAULT_CORE_CONTAINERS[name], run });
  }
  return out;
}

/**
 * The container whose network namespace holds the cell's VPN, firewall and egress routing: the
 * one pic runs, else the one `spec.wireguard.container` names.
 */
export function wireguardContainerOf(cell: CellDocument): string {
  return coreComponents(cell).find((c) => c.name === 'wireguard')?.container ?? (cell.spec.wireguard?.container || DEFAULT_CORE_CONTAINERS.wireguard);
}

const CORE_ROLES: Record<CoreName, string> = { caddy: 'Caddy', dns: 'DNS server', wireguard: 'WireGuard' };

/**
 * The core container pic is about to exec into or signal, and who may hold its name: pic's own
 * (both labels) when the Cell has pic run it, else the admin's (no pic owner but this one).
 */
export function coreContainerClaim(cell: CellDocument, name: CoreName, use: ContainerUse): ContainerClaim {
  const component = coreComponents(cell).find((c) => c.name === name);
  const container = name === 'wireguard' ? wireguardContainerOf(cell) : (component?.container ?? DEFAULT_CORE_CONTAINERS[name]);
  const role = component ? `pic's ${CORE_ROLES[name]}` : `the ${CORE_ROLES[name]} the admin runs`;
  return { name: container, owner: coreKey(name), cell: cell.metadata.name, createdBy: component ? 'pic' : 'admin', role, use };
}

/** The VPN's addresses: the subnet, the server's own address (its first) and the pool peers get theirs from. */
export interface VpnNetwork {
  subnet: string;
  /** e.g. 10.8.0.1 */
  serverAddress: string;
  /** e.g. 24 */
  prefixLength: number;
  pool: IpPool;
  listenPort: number;
}

export function vpnNetworkOf(cell: CellDocument): VpnNetwork {
  const wg = cell.spec.wireguard ?? {};
  const subnet = wg.subnet ?? DEFAULT_VPN.subnet;
  const cidr = parseCidr(subnet);
  const server = formatIpv4(cidr.network + 1);
  const last = lastAddress(cidr) - 1;
  const poolText = wg.peerPool ?? `${formatIpv4(cidr.network + 2)}-${formatIpv4(last)}`;
  return { subnet, serverAddress: server, prefixLength: cidr.prefix, pool: parsePool(poolText, subnet), listenPort: wg.run?.listenPort ?? DEFAULT_VPN.listenPort };
}

/** The address peers reach Caddy on: pic's Caddy, else the admin's spec.dns.address. */
export function caddyAddressOf(cell: CellDocument): string | undefined {
  return cell.spec.caddy?.run?.address ?? cell.spec.dns?.address;
}

/** The DNS server peers query: pic's, else none known. */
export function dnsServerAddressOf(cell: CellDocument): string | undefined {
  return cell.spec.dns?.run?.address;
}

/**
 * The Cell with what the core stack implies filled in, for the resources built on it: Caddy's
 * TLS mode when pic runs Caddy, the A records' address (Caddy's), and the VPN container's name.
 * Nothing the admin wrote is replaced. (Where pic reaches its own Caddy depends on the state
 * directory too: caddyAdminAddressOf.)
 */
export function withCoreDefaults(cell: CellDocument): CellDocument {
  const spec = structuredClone(cell.spec);
  if (spec.caddy?.run) {
    spec.caddy.tls = { ...(spec.caddy.tls ?? {}), mode: spec.caddy.tls?.mode ?? 'internal' };
  }
  const address = caddyAddressOf(cell);
  if (address && !spec.dns?.address) spec.dns = { ...(spec.dns ?? {}), address };
  if (spec.wireguard?.run) spec.wireguard.container = spec.wireguard.run.container ?? spec.wireguard.container ?? DEFAULT_CORE_CONTAINERS.wireguard;
  return { ...cell, spec };
}

/** Whether `ip` is a dotted IPv4 address inside `subnet`. */
export function inSubnet(ip: string, subnet: string): boolean {
  return inNetwork(ip, parseCidr(subnet));
}
