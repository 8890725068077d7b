/**
 * The tunnel's firewall inside the core WireGuard container pic runs. From the tunnel a peer
 * reaches Caddy (80, 443), the DNS server (53 udp and tcp), and what the services'
 * `iptables_rules` open (`PIC-SERVICES`, jumped to from here); everything else that enters from
 * the tunnel is dropped: other service ports, other peers, the Docker host's own addresses, the
 * WireGuard container itself (but for ping of its tunnel address).
 *
 * The return path is masquerading: traffic from the VPN subnet leaves the container with the
 * container's own address on the cell network, so service containers answer it without a route
 * to the VPN subnet (and can never open a connection to a peer).
 *
 * Rules are written as `iptables -S` prints them; the chains are replaced with the same
 * `iptables-restore --noflush` as PIC-SERVICES.
 */
import { dnsServerAddressOf, caddyAddressOf, vpnNetworkOf, WIREGUARD_INTERFACE } from '../core/spec.js';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';
import { restoreChains } from './apply.js';
import { observeChains, SERVICES_REF } from './observe.js';
import { planChain, type ChainSpec } from './plan.js';
import { assertIpv4, SERVICES_CHAIN } from './render.js';
import { readVia, resolveVpnContainer } from './index.js';
import type { CellDocument } from '../../crds/types.js';

export const TUNNEL_FORWARD_CHAIN = 'PIC-TUNNEL';
export const TUNNEL_INPUT_CHAIN = 'PIC-TUNNEL-IN';
export const TUNNEL_NAT_CHAIN = 'PIC-TUNNEL-NAT';

/** The three chains of the tunnel, pure from the Cell. */
export function renderTunnelChains(cell: CellDocument): ChainSpec[] {
  const wg = WIREGUARD_INTERFACE;
  const vpn = vpnNetworkOf(cell);
  const forward: string[] = [];
  const caddy = caddyAddressOf(cell);
  if (caddy) {
    assertIpv4(caddy, 'Cell spec.caddy.run.address');
    for (const port of [80, 443]) forward.push(`-A ${TUNNEL_FORWARD_CHAIN} -d ${caddy}/32 -i ${wg} -p tcp -m tcp --dport ${port} -j ACCEPT`);
  }
  const dns = dnsServerAddressOf(cell);
  if (dns) {
    assertIpv4(dns, 'Cell spec.dns.run.address');
    forward.push(`-A ${TUNNEL_FORWARD_CHAIN} -d ${dns}/32 -i ${wg} -p udp -m udp --dport 53 -j ACCEPT`);
    forward.push(`-A ${TUNNEL_FORWARD_CHAIN} -d ${dns}/32 -i ${wg} -p tcp -m tcp --dport 53 -j ACCEPT`);
  }
  forward.push(`-A ${TUNNEL_FORWARD_CHAIN} -i ${wg} -j ${SERVICES_CHAIN}`, `-A ${TUNNEL_FORWARD_CHAIN} -i ${wg} -j DROP`);
  const input = [
    `-A ${TUNNEL_INPUT_CHAIN} -d ${vpn.serverAddress}/32 -i ${wg} -p icmp -m icmp --icmp-type 8 -j ACCEPT`,
    `-A ${TUNNEL_INPUT_CHAIN} -i ${wg} -j DROP`,
  ];
  const nat = [`-A ${TUNNEL_NAT_CHAIN} -s ${vpn.subnet} ! -o ${wg} -j MASQUERADE`];
  return [
    { table: 'filter', chain: TUNNEL_FORWARD_CHAIN, parent: 'FORWARD', rules: forward },
    { table: 'filter', chain: TUNNEL_INPUT_CHAIN, parent: 'INPUT', rules: input },
    { table: 'nat', chain: TUNNEL_NAT_CHAIN, parent: 'POSTROUTING', rules: nat },
  ];
}

async function observeAndPlan(input: CellRouting, ctx: ResourceContext) {
  const vpn = await resolveVpnContainer(input, ctx);
  const specs = renderTunnelChains(input.cell);
  const observed = await observeChains(vpn.reader, [...specs, SERVICES_REF]);
  const plans = specs.map((spec, i) => ({ spec, plan: planChain(spec, observed[i]!) }));
  // PIC-TUNNEL jumps to PIC-SERVICES, which must exist first: when the firewall resource has not
  // made it yet, an empty one is declared (never re-declared: its rules are that resource's).
  const servicesExist = observed[specs.length]!.exists;
  return { vpn, container: vpn.container, specs, plans, servicesExist };
}

export const tunnelReconciler: ResourceReconciler = {
  key: 'Resource/tunnel',

  async plan(input, ctx) {
    const { plans } = await observeAndPlan(input, ctx);
    return plans.flatMap((p) => p.plan.lines);
  },

  async reconcile(input, ctx): Promise<ResourceOutcome> {
    const { vpn, container, specs, plans, servicesExist } = await observeAndPlan(input, ctx);
    const facts = { container: container.name, readVia: readVia(vpn), chains: specs.map((s) => `${s.table}/${s.chain}`), returnPath: 'masquerade' };
    const changed = plans.filter((p) => p.plan.action);
    if (changed.length === 0) return { changed: false, summary: `tunnel firewall in ${container.name}; unchanged`, facts };
    const services = servicesExist ? '' : `*filter\n:${SERVICES_CHAIN} - [0:0]\nCOMMIT\n`;
    // Reads of the pass taken before or during the write are not handed out again.
    ctx.core?.wrote();
    await restoreChains(ctx.docker, container, services + changed.map((p) => p.plan.action!.restore).join(''));
    ctx.core?.wrote();
    const lines = changed.flatMap((p) => p.plan.lines);
    ctx.event('TunnelFirewallUpdated', `tunnel chains in ${container.name} rewritten: ${lines.join('; ')}`);
    return { changed: true, summary: `tunnel firewall in ${container.name}; rewritten (${lines.length} change${lines.length === 1 ? '' : 's'})`, facts };
  },
};
