/**
 * What the core containers may have that no store service may: the one explicit list. Store
 * services go through reconcilers/containers/policy.ts, which refuses devices and capabilities;
 * the core containers are pic's own and never rendered from a template, so their privileges are
 * fixed here by name, not read from any input.
 */
import type { CoreName } from './spec.js';

export interface CorePrivileges {
  capAdd: string[];
  devices: { host: string; container: string }[];
  sysctls: Record<string, string>;
}

export const CORE_PRIVILEGES: Readonly<Record<CoreName, CorePrivileges>> = {
  caddy: { capAdd: [], devices: [], sysctls: {} },
  dns: { capAdd: [], devices: [], sysctls: {} },
  // The tunnel (wireguard-go needs /dev/net/tun where the kernel has no WireGuard), its address,
  // the firewall and the forwarding between the tunnel and the cell network.
  wireguard: {
    capAdd: ['NET_ADMIN'],
    devices: [{ host: '/dev/net/tun', container: '/dev/net/tun' }],
    sysctls: { 'net.ipv4.ip_forward': '1' },
  },
};
