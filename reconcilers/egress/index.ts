/**
 * The egress resource: services whose ServiceInstall names a Connection leave through its exit,
 * steered and fenced on the cell host (render.ts says how). Each Connection holds an fwmark and a
 * routing table, allocated once, kept in `<stateRoot>/egress/allocations.json`, and never one
 * another cell on the same host holds.
 */
import path from 'node:path';
import { createHash } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { isRecord } from '../../crds/values.js';
import { readJsonFile, writeFileAtomic } from '../../state/atomic-write.js';
import { TerminalError } from '../errors.js';
import { hostNetworkReader, type HostNetworkReader } from '../shared/container-netns.js';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';
import { allocateEgress, formatFwmark, MAX_CONNECTIONS, type AllocationResult, type EgressAllocations } from './allocate.js';
import { applyEgress, runHostCommand } from './apply.js';
import { parseAddresses, observeEgress, type HostAddress, type ObservedEgress } from './observe.js';
import { planEgress, takenByOthers, type EgressPlan } from './plan.js';
import { egressChainsOf, fenceRule, renderEgress, type DesiredEgress, type EgressChains } from './render.js';
import { recordingBootFence } from './boot-fence.js';
import { parseIptablesSave, chainOf } from '../firewall/observe.js';
import { renderChainRestore } from '../firewall/render.js';

export function egressAllocationsFile(stateRoot: string): string {
  return path.join(stateRoot, 'egress', 'allocations.json');
}

/** The saved allocations, or undefined when none were saved yet. */
export async function loadEgressAllocations(stateRoot: string): Promise<EgressAllocations | undefined> {
  const file = egressAllocationsFile(stateRoot);
  const saved = await readJsonFile<unknown>(file, undefined);
  if (saved === undefined) return undefined;
  const connections = isRecord(saved) ? saved.connections : undefined;
  if (!isRecord(connections)) {
    throw new TerminalError(`${file}: not an egress allocations file (no "connections" object); move it aside to start afresh`, 'BadStateFile');
  }
  return saved as EgressAllocations;
}

export async function saveEgressAllocations(stateRoot: string, allocations: EgressAllocations): Promise<void> {
  await writeFileAtomic(egressAllocationsFile(stateRoot), `${JSON.stringify(allocations, null, 2)}\n`, 0o600);
}

/** The host interface that holds an address of the cell's subnet: the bridge of the cell network. */
export function bridgeOf(addresses: readonly HostAddress[], subnet: string): string | undefined {
  const [network, bits] = ipaddr.IPv4.parseCIDR(subnet);
  return addresses.find((a) => a.prefixlen === bits && ipaddr.IPv4.isValid(a.address) && ipaddr.IPv4.parse(a.address).match(network, bits))?.ifname;
}

/** Where this cell starts looking for a free fwmark/table pair: its own offset, from its name. */
function startOf(cellName: string): number {
  return createHash('sha256').update(cellName).digest().readUInt32BE(0) % MAX_CONNECTIONS;
}

function allocationLines(result: AllocationResult, before: EgressAllocations | undefined): string[] {
  const lines: string[] = [];
  for (const name of result.freed) {
    const old = before?.connections[name];
    lines.push(`- allocation Connection/${name}${old ? ` fwmark ${formatFwmark(old.fwmark)} table ${old.table}` : ''}`);
  }
  for (const name of result.added) {
    const now = result.allocations.connections[name];
    if (now) lines.push(`+ allocation Connection/${name} fwmark ${formatFwmark(now.fwmark)} table ${now.table}`);
  }
  return lines;
}

interface EgressPass {
  chains: EgressChains;
  existing: EgressAllocations | undefined;
  allocation: AllocationResult;
  desired: DesiredEgress;
  plan: EgressPlan;
  bridge: string;
}

/** Nothing assigned and nothing ever allocated: no host state to read. */
function idle(input: CellRouting, existing: EgressAllocations | undefined): boolean {
  const egress = input.egress;
  return (egress?.assigned.length ?? 0) === 0 && (input.connections.length === 0) && Object.keys(existing?.connections ?? {}).length === 0;
}

async function observeAndPlan(input: CellRouting, ctx: ResourceContext, reader: HostNetworkReader): Promise<EgressPass | undefined> {
  const existing = await loadEgressAllocations(ctx.stateRoot);
  if (idle(input, existing)) return undefined;
  const cellName = input.cell.metadata.name;
  const probe = egressChainsOf(cellName);
  const observed: ObservedEgress = await observeEgress(reader, probe);
  const chains = egressChainsOf(cellName, observed.dockerUser);
  const subnet = input.cell.spec.network.subnet;
  const bridge = bridgeOf(observed.addresses, subnet);
  if (bridge === undefined) throw new Error(`no host interface holds an address of the cell network ${subnet}: the network is not created yet`);
  const before = Object.values(existing?.connections ?? {}).map((a) => a.table);
  const ownTables = new Set(before);
  const assigned = input.egress?.assigned ?? [];
  const allocation = allocateEgress(
    existing,
    input.connections.map((c) => c.metadata.name),
    assigned.map((s) => s.connection),
    { taken: takenByOthers(observed, ownTables), startAt: startOf(cellName) },
  );
  for (const a of Object.values(allocation.allocations.connections)) ownTables.add(a.table);
  const desired = renderEgress({ services: assigned, exits: input.egress?.exits ?? [], allocations: allocation.allocations, bridge, subnet, chains });
  return { chains, existing, allocation, desired, plan: planEgress(desired, observed, chains, ownTables), bridge };
}

function describe(desired: DesiredEgress): { summary: string; facts: Record<string, unknown>; notReady?: { reason: string; message: string } } {
  const services = desired.connections.reduce((n, c) => n + c.services.length, 0);
  const parts = desired.connections.map((c) => {
    const how = c.mode === 'steered' ? `via exit ${c.exit}${c.failOpen ? ', fail-open' : ', kill switch'}` : c.mode === 'fenced' ? 'BLOCKED (no exit): traffic dropped' : 'exit down, fail-open: traffic goes direct';
    return `${c.name}: ${c.services.join(', ')} ${how}`;
  });
  const summary =
    services === 0
      ? 'no service routed through a connection'
      : `${services} service${services === 1 ? '' : 's'} via ${desired.connections.length} connection${desired.connections.length === 1 ? '' : 's'} (${parts.join('; ')})`;
  const facts = {
    connections: desired.connections.map((c) => ({
      name: c.name,
      fwmark: formatFwmark(c.fwmark),
      table: c.table,
      priority: c.priority,
      exit: c.exit ?? null,
      mode: c.mode,
      failOpen: c.failOpen,
      killSwitch: !c.failOpen,
      services: c.services,
    })),
  };
  const down = desired.connections.filter((c) => c.mode !== 'steered');
  if (down.length === 0) return { summary, facts };
  const message = down
    .map((c) => (c.mode === 'fenced' ? `Connection/${c.name} has no exit to steer to: ${c.services.join(', ')} blocked` : `Connection/${c.name} exit is down: ${c.services.join(', ')} fall back to the direct path (fail-open)`))
    .join('; ');
  return { summary, facts, notReady: { reason: down.some((c) => c.mode === 'fenced') ? 'ConnectionDown' : 'FailingOpen', message } };
}

export const egressReconciler: ResourceReconciler = {
  key: 'Resource/egress',

  async plan(input: CellRouting, ctx: ResourceContext): Promise<string[]> {
    const pass = await observeAndPlan(input, ctx, hostNetworkReader());
    if (!pass) return [];
    return [...allocationLines(pass.allocation, pass.existing), ...pass.plan.lines];
  },

  async reconcile(input: CellRouting, ctx: ResourceContext): Promise<ResourceOutcome> {
    const pass = await observeAndPlan(input, ctx, hostNetworkReader());
    if (!pass) return { changed: false, summary: 'no service routed through a connection; unchanged', facts: { connections: [] } };
    const { allocation, existing, desired, plan } = pass;
    // Saved before anything live carries the numbers, so a crash cannot leave marks nobody owns.
    if (allocation.changed) {
      await saveEgressAllocations(ctx.stateRoot, allocation.allocations);
      const lines = allocationLines(allocation, existing);
      if (lines.length > 0) ctx.event('EgressAllocated', lines.join('; '));
    }
    // The fence is also recorded for `pic fence` (boot-fence.ts), before it goes on the host.
    const writes = await recordingBootFence(ctx.stateRoot, { cell: input.cell.metadata.name, chain: pass.chains.fence, parent: pass.chains.fenceParent, rules: desired.fenceRules }, () => applyEgress(plan));
    if (writes > 0) ctx.event('EgressUpdated', `egress steering on the host: ${plan.lines.join('; ')}`);
    const { summary, facts, notReady } = describe(desired);
    const state = writes > 0 ? `; updated (${plan.lines.length} change${plan.lines.length === 1 ? '' : 's'})` : '; unchanged';
    return {
      changed: writes > 0 || allocation.changed,
      summary: `${summary}${state}`,
      facts: { bridge: pass.bridge, chains: pass.chains, ...facts, allocations: allocation.allocations.connections },
      ...(notReady ? { notReady } : {}),
    };
  },
};

/**
 * Before a service assigned to a fail-closed Connection starts, its address is fenced on the host
 * (the kill switch's rule for it), so not one packet leaves directly before the egress resource
 * has converged. A no-op when the rule is there; the resource's next restore keeps it.
 */
export async function fenceServiceAddress(
  cell: { name: string; subnet: string },
  service: { name: string; address: string },
  stateRoot: string,
  reader: HostNetworkReader = hostNetworkReader(),
): Promise<boolean> {
  const [saved, ip] = await Promise.all([reader.iptablesSave(), reader.ipJson(['address show'])]);
  const bridge = bridgeOf(parseAddresses(ip[0] ?? []), cell.subnet);
  if (bridge === undefined) throw new Error(`no host interface holds an address of the cell network ${cell.subnet}: cannot fence ${service.name} before it starts`);
  const tables = parseIptablesSave(saved);
  const chains = egressChainsOf(cell.name, tables.get('filter')?.chains.has('DOCKER-USER') ?? false);
  const observed = chainOf(tables, { table: 'filter', chain: chains.fence, parent: chains.fenceParent });
  const rule = fenceRule(chains, bridge, service);
  if (observed.exists && observed.rules.includes(rule) && observed.jumps > 0) return false;
  const rules = [...new Set([rule, ...observed.rules])];
  await recordingBootFence(stateRoot, { cell: cell.name, chain: chains.fence, parent: chains.fenceParent, rules }, () =>
    runHostCommand('iptables-restore', ['--noflush'], renderChainRestore({ table: 'filter', chain: chains.fence, parent: chains.fenceParent, rules, insertJump: observed.jumps === 0 })),
  );
  return true;
}
