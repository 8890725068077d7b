/**
 * The firewall resource: the manifests' `iptables_rules` of every installed service, as ACCEPT
 * rules in pic's own chain `PIC-SERVICES` inside the wireguard container, reached by one jump
 * from FORWARD. Observe → plan (pure) → one `iptables-restore --noflush` when anything differs.
 */
import { coreContainerClaim } from '../core/spec.js';
import { containerNetworkReader } from '../shared/container-netns.js';
import type { ReadableContainer } from '../shared/core-containers.js';
import { resolveOwnedContainer } from '../shared/owned-container.js';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';
import { restoreChains } from './apply.js';
import { observeChains, SERVICES_REF } from './observe.js';
import { planFirewall } from './plan.js';
import { renderServiceRules, SERVICES_CHAIN } from './render.js';

export { DEFAULT_WIREGUARD_CONTAINER } from '../../crds/schemas.js';
export { wireguardContainerOf } from '../core/spec.js';

/**
 * The VPN container, resolved once a pass (with the pass's `ctx.core`) and checked to be the one
 * the Cell means (pic's, or the admin's), with the reader of its network state: every read of the
 * firewall, tunnel, egress and peer-set resources goes through it, every exec to its id.
 */
export function resolveVpnContainer(input: CellRouting, ctx: ResourceContext): Promise<ReadableContainer> {
  const claim = coreContainerClaim(input.cell, 'wireguard', 'exec into');
  const resolve = async () => {
    const container = await resolveOwnedContainer(ctx.docker, claim);
    return { container, reader: await containerNetworkReader(ctx.docker, container) };
  };
  return ctx.core ? ctx.core.get(claim, resolve) : resolve();
}

/** How the resource read the container, for its status facts. */
export function readVia({ reader }: ReadableContainer): string {
  return reader.via.mode === 'host' ? 'host namespaces' : `docker exec (${reader.via.reason})`;
}

export const firewallReconciler: ResourceReconciler = {
  key: 'Resource/firewall',

  async plan(input: CellRouting, ctx: ResourceContext): Promise<string[]> {
    const rules = renderServiceRules(input.services);
    const [observed] = await observeChains((await resolveVpnContainer(input, ctx)).reader, [SERVICES_REF]);
    return planFirewall(rules, observed!).lines;
  },

  async reconcile(input: CellRouting, ctx: ResourceContext): Promise<ResourceOutcome> {
    const vpn = await resolveVpnContainer(input, ctx);
    const { container } = vpn;
    const rules = renderServiceRules(input.services);
    const [observed] = await observeChains(vpn.reader, [SERVICES_REF]);
    const plan = planFirewall(rules, observed!);
    const services = new Set(input.services.filter((s) => (s.manifest.iptables_rules ?? []).length > 0).map((s) => s.name));
    const size = `${rules.length} rule${rules.length === 1 ? '' : 's'} for ${services.size} service${services.size === 1 ? '' : 's'} in ${SERVICES_CHAIN}`;
    const facts = { container: container.name, readVia: readVia(vpn), chain: SERVICES_CHAIN, rules: rules.length, services: [...services] };

    if (!plan.action) return { changed: false, summary: `${size}; unchanged`, facts };

    // Reads of the pass taken before or during the write are not handed out again.
    ctx.core?.wrote();
    await restoreChains(ctx.docker, container, plan.action.restore);
    ctx.core?.wrote();
    const added = plan.lines.filter((l) => l.startsWith(`+ -A ${SERVICES_CHAIN} `)).length;
    const removed = plan.lines.filter((l) => l.startsWith(`- -A ${SERVICES_CHAIN} `)).length;
    ctx.event('FirewallUpdated', `${SERVICES_CHAIN} in ${container.name} rewritten: ${plan.lines.join('; ')}`);
    return { changed: true, summary: `${size}; rewritten (+${added} -${removed})`, facts };
  },
};
