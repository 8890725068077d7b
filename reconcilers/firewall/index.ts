/**
 * The firewall resource: the manifests' `iptables_rules` of every installed service, as ACCEPT
 * rules in pic's own chain `PIC-SERVICES` inside the wireguard container, reached by one jump
 * from FORWARD. Observe → plan (pure) → one `iptables-restore --noflush` when anything differs.
 */
import { coreContainerClaim } from '../core/spec.js';
import { resolveOwnedContainer, type OwnedContainer } from '../shared/owned-container.js';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';
import { restoreChains } from './apply.js';
import { observeServicesChain } from './observe.js';
import { planFirewall } from './plan.js';
import { renderServiceRules, SERVICES_CHAIN } from './render.js';

export { DEFAULT_WIREGUARD_CONTAINER } from '../../crds/schemas.js';
export { wireguardContainerOf } from '../core/spec.js';

/**
 * The VPN container, resolved once a pass and checked to be the one the Cell means (pic's, or the
 * admin's): every exec of the firewall, tunnel, egress and peer-set resources goes to its id.
 */
export function resolveVpnContainer(input: CellRouting, ctx: ResourceContext): Promise<OwnedContainer> {
  return resolveOwnedContainer(ctx.docker, coreContainerClaim(input.cell, 'wireguard', 'exec into'));
}

export const firewallReconciler: ResourceReconciler = {
  key: 'Resource/firewall',

  async plan(input: CellRouting, ctx: ResourceContext): Promise<string[]> {
    const rules = renderServiceRules(input.services);
    const observed = await observeServicesChain(ctx.docker, await resolveVpnContainer(input, ctx));
    return planFirewall(rules, observed).lines;
  },

  async reconcile(input: CellRouting, ctx: ResourceContext): Promise<ResourceOutcome> {
    const container = await resolveVpnContainer(input, ctx);
    const rules = renderServiceRules(input.services);
    const observed = await observeServicesChain(ctx.docker, container);
    const plan = planFirewall(rules, observed);
    const services = new Set(input.services.filter((s) => (s.manifest.iptables_rules ?? []).length > 0).map((s) => s.name));
    const size = `${rules.length} rule${rules.length === 1 ? '' : 's'} for ${services.size} service${services.size === 1 ? '' : 's'} in ${SERVICES_CHAIN}`;
    const facts = { container: container.name, chain: SERVICES_CHAIN, rules: rules.length, services: [...services] };

    if (!plan.action) return { changed: false, summary: `${size}; unchanged`, facts };

    await restoreChains(ctx.docker, container, plan.action.restore);
    const added = plan.lines.filter((l) => l.startsWith(`+ -A ${SERVICES_CHAIN} `)).length;
    const removed = plan.lines.filter((l) => l.startsWith(`- -A ${SERVICES_CHAIN} `)).length;
    ctx.event('FirewallUpdated', `${SERVICES_CHAIN} in ${container.name} rewritten: ${plan.lines.join('; ')}`);
    return { changed: true, summary: `${size}; rewritten (+${added} -${removed})`, facts };
  },
};
