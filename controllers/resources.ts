import { caddyReconciler } from '../reconcilers/caddy/index.js';
import { certificatesReconciler } from '../reconcilers/certificates/index.js';
import { dnsReconciler } from '../reconcilers/dns/index.js';
import { egressReconciler } from '../reconcilers/egress/index.js';
import { firewallReconciler } from '../reconcilers/firewall/index.js';
import { tunnelReconciler } from '../reconcilers/firewall/tunnel.js';
import { wireguardReconciler } from '../reconcilers/wireguard/index.js';

/**
 * The cell-wide reconcilers the operator runs: Caddy, the DNS zone and the certificates of direct
 * subdomains always; the firewall and
 * egress only in a cell that declares its VPN container (Cell spec.wireguard); the peer set and the
 * tunnel's firewall only where pic runs that container (spec.wireguard.run).
 */
export const CELL_RESOURCES = { always: [caddyReconciler, dnsReconciler, egressReconciler, certificatesReconciler], wireguard: [firewallReconciler], vpn: [wireguardReconciler, tunnelReconciler] };
