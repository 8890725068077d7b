/**
 * Each Connection's fwmark and routing table, allocated once and then kept (pure).
 *
 * Pair `i` is fwmark 0x1000+i and table 1000+i; its `ip rule` gets priority 10000+i. A new
 * connection takes the lowest free pair. An allocation lives as long as its Connection document,
 * whether or not a service uses it now, so switching a service away and back keeps the numbers.
 * It is freed only when the document is gone AND no installed service still names the connection
 * (while one does, its traffic stays marked and fenced, fail-closed, under the same numbers).
 * A freed pair is reused by the next new connection; the rules and routes still carrying it are
 * rewritten in the same reconcile that frees it.
 */
import { compareText } from '../../crds/values.js';
import { TerminalError } from '../errors.js';

export const FWMARK_BASE = 0x1000;
export const TABLE_BASE = 1000;
export const RULE_PRIORITY_BASE = 10000;
/** Pairs 0..999: priorities 10000–10999, tables 1000–1999, fwmarks 0x1000–0x13e7. */
export const MAX_CONNECTIONS = 1000;

export interface EgressAllocation {
  fwmark: number;
  table: number;
}

export interface EgressAllocations {
  version: 1;
  /** Connection name → its numbers. */
  connections: Record<string, EgressAllocation>;
}

export interface AllocationResult {
  allocations: EgressAllocations;
  /** Connections that got numbers now, sorted. */
  added: string[];
  /** Connections whose numbers were released, sorted. */
  freed: string[];
  /** Whether `allocations` differs from `existing` (and so must be saved). */
  changed: boolean;
}

export function emptyAllocations(): EgressAllocations {
  return { version: 1, connections: {} };
}

/**
 * Keep existing allocations of `connectionNames` (the Connection documents) and of
 * `referencedNames` (connections installed services name); give the others the lowest free
 * pair; drop the rest. Entries that are out of range or collide with another are reallocated.
 */
export function allocateEgress(
  existing: EgressAllocations | undefined,
  connectionNames: readonly string[],
  referencedNames: readonly string[] = [],
  host: { taken?: { tables: ReadonlySet<number>; fwmarks: ReadonlySet<number> }; startAt?: number } = {},
): AllocationResult {
  const wanted = [...new Set([...connectionNames, ...referencedNames])].sort(compareText);
  const wantedSet = new Set(wanted);
  const before = existing?.connections ?? {};
  const kept: Record<string, EgressAllocation> = {};
  // Pairs another cell on the same host holds are never handed out; each cell starts its search
  // at its own offset, so two cells allocating at once rarely meet.
  const usedMarks = new Set<number>(host.taken?.fwmarks ?? []);
  const usedTables = new Set<number>(host.taken?.tables ?? []);
  const startAt = Math.max(0, Math.min(MAX_CONNECTIONS - 1, Math.floor(host.startAt ?? 0)));

  for (const name of Object.keys(before).sort(compareText)) {
    const allocation = before[name];
    if (!wantedSet.has(name) || !isValidAllocation(allocation)) continue;
    if (usedMarks.has(allocation.fwmark) || usedTables.has(allocation.table)) continue;
    kept[name] = { fwmark: allocation.fwmark, table: allocation.table };
    usedMarks.add(allocation.fwmark);
    usedTables.add(allocation.table);
  }

  const added: string[] = [];
  for (const name of wanted) {
    if (kept[name]) continue;
    let tried = 0;
    let index = startAt;
    while (tried < MAX_CONNECTIONS && (usedMarks.has(FWMARK_BASE + index) || usedTables.has(TABLE_BASE + index))) {
      index = (index + 1) % MAX_CONNECTIONS;
      tried++;
    }
    if (tried >= MAX_CONNECTIONS) {
      throw new TerminalError(`Connection/${name}: no fwmark/table left; pic routes at most ${MAX_CONNECTIONS} connections`, 'TooManyConnections');
    }
    kept[name] = { fwmark: FWMARK_BASE + index, table: TABLE_BASE + index };
    usedMarks.add(FWMARK_BASE + index);
    usedTables.add(TABLE_BASE + index);
    added.push(name);
  }

  const connections: Record<string, EgressAllocation> = {};
  for (const name of Object.keys(kept).sort(compareText)) connections[name] = kept[name] as EgressAllocation;
  const freed = Object.keys(before)
    .filter((name) => !wantedSet.has(name))
    .sort(compareText);
  const changed = JSON.stringify(normalised(before)) !== JSON.stringify(connections) || existing?.version !== 1;
  return { allocations: { version: 1, connections }, added, freed, changed };
}

/** The `ip rule` priority of an allocation: 10000 plus its table's offset. */
export function rulePriorityOf(allocation: EgressAllocation): number {
  return RULE_PRIORITY_BASE + (allocation.table - TABLE_BASE);
}

export function isOwnFwmark(mark: number): boolean {
  return mark >= FWMARK_BASE && mark < FWMARK_BASE + MAX_CONNECTIONS;
}

export function isOwnTable(table: number): boolean {
  return table >= TABLE_BASE && table < TABLE_BASE + MAX_CONNECTIONS;
}

export function isOwnRulePriority(priority: number): boolean {
  return priority >= RULE_PRIORITY_BASE && priority < RULE_PRIORITY_BASE + MAX_CONNECTIONS;
}

export function formatFwmark(mark: number): string {
  return `0x${mark.toString(16)}`;
}

function isValidAllocation(a: EgressAllocation | undefined): a is EgressAllocation {
  return (
    a !== undefined &&
    typeof a === 'object' &&
    Number.isInteger(a.fwmark) &&
    Number.isInteger(a.table) &&
    isOwnFwmark(a.fwmark) &&
    isOwnTable(a.table)
  );
}

function normalised(connections: Record<string, EgressAllocation>): Record<string, EgressAllocation> {
  const out: Record<string, EgressAllocation> = {};
  for (const name of Object.keys(connections).sort(compareText)) {
    const a = connections[name];
    if (a && typeof a === 'object') out[name] = { fwmark: a.fwmark, table: a.table };
  }
  return out;
}
