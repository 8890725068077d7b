/**
 * IPv4 addresses and networks, read and written in one place on top of ipaddr.js: the cell
 * network's subnet and pool, the VPN subnet, fixed core addresses, compose `ipv4_address` and
 * `host_ip`, firewall rule addresses. Addresses are compared as unsigned 32-bit numbers. Pure.
 *
 * Only the dotted form counts as an address here (`a.b.c.d`, decimal, no leading zeros): ipaddr.js
 * also reads `10.1`, `0x0a000001` or `012.0.0.1`, which Docker, iptables and BIND would each read
 * their own way.
 */
import ipaddr from 'ipaddr.js';

/** An IPv4 network: `network` is its first address, `size` the number of addresses. */
export interface Ipv4Network {
  network: number;
  prefix: number;
  size: number;
  /** `a.b.c.d/n`, the network address written out. */
  text: string;
}

/** Whether `text` is a dotted IPv4 address: four decimal octets 0–255 without leading zeros. */
export function isIpv4(text: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(text);
}

/** Whether `text` is an IPv6 address. */
export function isIpv6(text: string): boolean {
  return ipaddr.IPv6.isValid(text);
}

/** `a.b.c.d` → unsigned 32-bit number; undefined unless `isIpv4`. */
export function parseIpv4(text: string): number | undefined {
  if (!isIpv4(text)) return undefined;
  return ipaddr.IPv4.parse(text).toByteArray().reduce((value, octet) => value * 256 + octet, 0);
}

/** Unsigned 32-bit number → `a.b.c.d`. */
export function formatIpv4(value: number): string {
  return ipaddr.fromByteArray([24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256)).toString();
}

/** The network of `prefix` bits that holds `address`. */
export function networkOf(address: number, prefix: number): Ipv4Network {
  const size = 2 ** (32 - prefix);
  const network = Math.floor(address / size) * size;
  return { network, prefix, size, text: `${formatIpv4(network)}/${prefix}` };
}

/**
 * `a.b.c.d/n` as written: the address, and the network it lies in (the same when no host bit is
 * set). Undefined unless the address `isIpv4` and the prefix is 0–32.
 */
export function readCidr(text: string): { address: number; network: Ipv4Network } | undefined {
  const m = /^([^/]+)\/(0|[1-9]\d?)$/.exec(text);
  const address = m ? parseIpv4(m[1]!) : undefined;
  const prefix = m ? Number(m[2]) : NaN;
  if (address === undefined || !(prefix <= 32)) return undefined;
  return { address, network: networkOf(address, prefix) };
}

/** A subnet `a.b.c.d/n` whose host bits are zero; throws an Error that says what is wrong. */
export function parseCidr(text: string): Ipv4Network {
  const read = readCidr(text.trim());
  if (!read) throw new Error(`"${text}" is not an IPv4 subnet in CIDR form, e.g. 172.20.0.0/16`);
  if (read.address !== read.network.network) throw new Error(`"${text}" has host bits set; the subnet is ${read.network.text}`);
  return read.network;
}

/** `first-last`, two dotted addresses (in either order: the caller judges that); undefined otherwise. */
export function readIpv4Range(text: string): { text: string; first: number; last: number } | undefined {
  const m = /^([^-]+)-([^-]+)$/.exec(text);
  const first = m ? parseIpv4(m[1]!) : undefined;
  const last = m ? parseIpv4(m[2]!) : undefined;
  return first === undefined || last === undefined ? undefined : { text, first, last };
}

/** The last address of `net` (its broadcast address, for a prefix under 31). */
export function lastAddress(net: Ipv4Network): number {
  return net.network + net.size - 1;
}

/** Whether the address (dotted or a number) lies in `net`; an unreadable address does not. */
export function inNetwork(ip: string | number, net: Ipv4Network): boolean {
  const value = typeof ip === 'number' ? ip : parseIpv4(ip);
  return value !== undefined && value >= net.network && value <= lastAddress(net);
}

/** Whether `ip` is a loopback address: 127.0.0.0/8 or ::1 (in any spelling). */
export function isLoopbackAddress(ip: string): boolean {
  if (isIpv4(ip)) return ipaddr.IPv4.parse(ip).range() === 'loopback';
  return isIpv6(ip) && ipaddr.IPv6.parse(ip).range() === 'loopback';
}

/** Whether `host` (a name or an address, with or without `:port` and IPv6 brackets) is this machine's loopback. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || isLoopbackAddress(name);
}
