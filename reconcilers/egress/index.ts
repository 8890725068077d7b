/**
 * The egress resource: services whose ServiceInstall names a Connection leave through it.
 * Each Connection holds an fwmark and a routing table, allocated once and kept in
 * `<stateRoot>/egress/allocations.json`; inside the wireguard container the service's packets
 * are marked, policy-routed to the connection's table, and fenced by a fail-closed kill switch.
 */
import path from 'node:path';
import { readJsonFile, writeFileAtomic } from '../../state/atomic-write.js';
import { TerminalError } from '../errors.js';
import { readVia, resolveVpnContainer } from '../firewall/index.js';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';
import { allocateEgress, formatFwmark, type AllocationResult, type EgressAllocations } from './allocate.js';
import { applyEgress } from './apply.js';
import { observeEgress } from './observe.js';
import { planEgress, type EgressPlan } from './plan.js';
import { renderEgress, type DesiredEgress } from './render.js';

export function egressAllocationsFile(stateRoot: string): string {
  return path.join(stateRoot, 'egress', 'allocations.json');
}

/** The saved allocations, or undefined when none were saved yet. */
export async function loadEgressAllocations(stateRoot: string): Promise<EgressAllocations | undefined> {
  const file = egressAllocationsFile(stateRoot);
  const saved = await readJsonFile<unknown>(file, undefined);
  if (saved === undefined) return undefined;
  const connections = typeof saved === 'object' && saved !== null && 'connections' in saved ? saved.connections : undefined;
  if (typeof saved !== 'object' || saved === null || typeof connections !== 'object' || connections === null || Array.isArray(connections)) {
    throw new TerminalError(`${file}: not an egress allocations file (no "connections" object); move it aside to start afresh`, 'BadStateFile');
  }
  return saved as EgressAllocations;
}

export async function saveEgressAllocations(stateRoot: string, allocations: EgressAllocations): Promise<void> {
  await writeFileAtomic(egressAllocationsFile(stateRoot), `${JSON.stringify(allocations, null, 2)}\n`, 0o600);
}

/** Allocation of every Connection document and every connection a service names. */
function allocateFor(input: CellRouting, existing: EgressAllocations | undefined): AllocationResult {
  const documents = input.connections.map((c) => c.metadata.name);
  const referenced = input.services.map((s) => s.egress.connection).filter((c) => c !== 'default');
  return allocateEgress(existing, documents, referenced);
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

function describe(desired: DesiredEgress, plan: EgressPlan): { summary: string; waiting: string; facts: Record<string, unknown> } {
  const services = desired.connections.reduce((n, c) => n + c.services.length, 0);
  const parts = desired.connections.map((c) => {
    const exit = c.interface === undefined ? 'no interface' : `dev ${c.interface}`;
    return `${c.name}: fwmark ${formatFwmark(c.fwmark)} table ${c.table} ${exit}${c.failOpen ? ', fail-open' : ''}`;
  });
  const routed =
    services === 0
      ? 'no service routed through a connection'
      : `${services} service${services === 1 ? '' : 's'} via ${desired.connections.length} connection${desired.connections.length === 1 ? '' : 's'} (${parts.join('; ')})`;
  const waiting = plan.waiting.length > 0 ? `; waiting: ${plan.waiting.join('; ')}` : '';
  const facts = {
    connections: desired.connections.map((c) => ({
      name: c.name,
      fwmark: formatFwmark(c.fwmark),
      table: c.table,
      priority: c.priority,
      interface: c.interface ?? null,
      failOpen: c.failOpen,
      killSwitch: !c.failOpen,
      services: c.services,
    })),
    waiting: plan.waiting,
  };
  return { summary: routed, waiting, facts };
}

export const egressReconciler: ResourceReconciler = {
  key: 'Resource/egress',

  async plan(input: CellRouting, ctx: ResourceContext): Promise<string[]> {
    const existing = await loadEgressAllocations(ctx.stateRoot);
    const allocation = allocateFor(input, existing);
    const desired = renderEgress(input, allocation.allocations);
    const observed = await observeEgress((await resolveVpnContainer(input, ctx)).reader);
    return [...allocationLines(allocation, existing), ...planEgress(desired, observed).lines];
  },

  async reconcile(input: CellRouting, ctx: ResourceContext): Promise<ResourceOutcome> {
    const vpn = await resolveVpnContainer(input, ctx);
    const { container } = vpn;
    const existing = await loadEgressAllocations(ctx.stateRoot);
    const allocation = allocateFor(input, existing);
    const desired = renderEgress(input, allocation.allocations);
    const observed = await observeEgress(vpn.reader);
    const plan = planEgress(desired, observed);

    // Saved before anything live carries the numbers, so a crash cannot leave marks nobody owns.
    if (allocation.changed) {
      await saveEgressAllocations(ctx.stateRoot, allocation.allocations);
      const lines = allocationLines(allocation, existing);
      if (lines.length > 0) ctx.event('EgressAllocated', lines.join('; '));
    }
    // Reads of the pass taken before or during the write are not handed out again.
    const writing = plan.restore !== undefined || plan.commands.length > 0;
    if (writing) ctx.core?.wrote();
    const writes = await applyEgress(ctx.docker, container, plan).finally(() => {
      if (writing) ctx.core?.wrote();
    });
    if (writes > 0) ctx.event('EgressUpdated', `egress routing in ${container.name}: ${plan.lines.join('; ')}`);

    const { summary, waiting, facts } = describe(desired, plan);
    const state = writes > 0 ? `; updated (${plan.lines.length} change${plan.lines.length === 1 ? '' : 's'})` : '; unchanged';
    return {
      changed: writes > 0 || allocation.changed,
      summary: `${summary}${state}${waiting}`,
      facts: { container: container.name, readVia: readVia(vpn), ...facts, allocations: allocation.allocations.connections },
    };
  },
};
