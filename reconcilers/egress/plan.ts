/**
 * Pure: from the wanted egress routing and what was observed, the writes that converge it.
 *
 * Order matters for a fail-closed switch-over, and `applyEgress` keeps it: the chains first
 * (kill switch before marks), then routes, then `ip rule` deletions and additions. A route whose
 * interface is missing or down cannot be added; it is reported as waiting, not planned, and the
 * kill switch keeps that connection's traffic in until the interface comes up.
 */
import { planChain } from '../firewall/plan.js';
import { formatFwmark } from './allocate.js';
import type { ObservedEgress, ObservedIpRule, ObservedRoute } from './observe.js';
import {
  ipRuleArgs,
  KILLSWITCH_CHAIN,
  KILLSWITCH_PARENT,
  KILLSWITCH_TABLE,
  MARK_CHAIN,
  MARK_PARENT,
  MARK_TABLE,
  type DesiredEgress,
  type DesiredRoute,
} from './render.js';

export interface EgressPlan {
  /** `iptables-restore --noflush` input for the chains that differ; absent when both are in sync. */
  restore?: string;
  /** `ip` argument vectors (without the leading `ip`), run in this order after the restore. */
  commands: string[][];
  /** What cannot be done yet, e.g. a route whose interface does not exist. Not counted as a change. */
  waiting: string[];
  /** What changes, one line each; [] when in sync. */
  lines: string[];
}

export function planEgress(desired: DesiredEgress, observed: ObservedEgress): EgressPlan {
  const lines: string[] = [];
  const restores: string[] = [];
  const killswitch = planChain(
    { table: KILLSWITCH_TABLE, chain: KILLSWITCH_CHAIN, parent: KILLSWITCH_PARENT, rules: desired.killswitchRules },
    observed.killswitch,
  );
  const marks = planChain({ table: MARK_TABLE, chain: MARK_CHAIN, parent: MARK_PARENT, rules: desired.markRules }, observed.marks);
  for (const chain of [killswitch, marks]) {
    lines.push(...chain.lines);
    if (chain.action) restores.push(chain.action.restore);
  }

  const routeCommands: string[][] = [];
  const waiting: string[] = [];
  const wantedByTable = new Map(desired.routes.map((r) => [r.table, r]));
  const seenByTable = new Map<number, ObservedRoute[]>();
  for (const route of observed.routes) seenByTable.set(route.table, [...(seenByTable.get(route.table) ?? []), route]);
  const tables = [...new Set([...wantedByTable.keys(), ...seenByTable.keys()])].sort((a, b) => a - b);
  const links = new Map(observed.links.map((l) => [l.name, l]));
  for (const table of tables) {
    const wanted = wantedByTable.get(table);
    const seen = seenByTable.get(table) ?? [];
    const first = seen[0];
    if (wanted && seen.length === 1 && first && routeMatches(first, wanted)) continue;
    if (!wanted && seen.length === 0) continue;
    if (seen.length > 0) {
      for (const route of seen) lines.push(`- ip route ${route.text} table ${table}`);
      routeCommands.push(['route', 'flush', 'table', String(table)]);
    }
    if (!wanted) continue;
    const link = links.get(wanted.interface);
    if (!link) {
      waiting.push(`Connection/${wanted.connection}: interface ${wanted.interface} does not exist yet; its route (table ${table}) waits for it`);
    } else if (!link.up) {
      waiting.push(`Connection/${wanted.connection}: interface ${wanted.interface} is down; its route (table ${table}) waits for it`);
    } else {
      lines.push(`+ ip route replace default dev ${wanted.interface} table ${table}`);
      routeCommands.push(['route', 'replace', 'default', 'dev', wanted.interface, 'table', String(table)]);
    }
  }

  const ruleCommands: string[][] = [];
  const wantedRules = new Map<string, string[]>();
  for (const rule of desired.ipRules) {
    wantedRules.set(`${rule.priority}: from all fwmark ${formatFwmark(rule.fwmark)} lookup ${rule.table}`, ipRuleArgs(rule));
  }
  const matched = new Set<string>();
  for (const rule of observed.ipRules) {
    const key = `${rule.priority}: ${rule.text}`;
    if (wantedRules.has(key) && !matched.has(key)) {
      matched.add(key);
      continue;
    }
    lines.push(`- ip rule ${key}`);
    ruleCommands.push(['rule', 'del', ...deleteSelector(rule)]);
  }
  for (const [key, args] of wantedRules) {
    if (matched.has(key)) continue;
    lines.push(`+ ip rule add ${args.join(' ')}`);
    ruleCommands.push(['rule', 'add', ...args]);
  }

  const plan: EgressPlan = { commands: [...routeCommands, ...ruleCommands], waiting, lines };
  if (restores.length > 0) plan.restore = restores.join('');
  return plan;
}

/** A default route through exactly the wanted interface (flags like `scope link linkdown` aside). */
function routeMatches(route: ObservedRoute, wanted: DesiredRoute): boolean {
  const words = route.text.split(' ');
  return words[0] === 'default' && words[1] === 'dev' && words[2] === wanted.interface && !words.includes('via');
}

/** Enough of a rule to make `ip rule del` remove that one: its priority and whatever it matches on. */
function deleteSelector(rule: ObservedIpRule): string[] {
  const args = ['priority', String(rule.priority)];
  if (rule.from !== undefined && rule.from !== 'all') args.push('from', rule.from);
  if (rule.fwmark !== undefined) args.push('fwmark', rule.fwmark);
  if (rule.lookup !== undefined) args.push('lookup', rule.lookup);
  return args;
}
