/**
 * Pure: from the wanted steering and what the host shows, the writes that converge it.
 *
 * Order matters for a fail-closed switch-over, and `applyEgress` keeps it: the chains first (the
 * fence before the marks and the DNS redirection, all in one restore), then routes, then `ip
 * rule` deletions and additions. Only this cell's rules and routes are touched: those of the
 * tables its allocation holds, or held until this pass (`ownTables`); another cell's on the same
 * host are left alone.
 */
import { planChain } from '../firewall/plan.js';
import { formatFwmark } from './allocate.js';
import type { ObservedEgress, ObservedIpRule, ObservedRoute } from './observe.js';
import { egressChainSpecs, ipRuleArgs, routeText, type DesiredEgress, type EgressChains } from './render.js';

export interface EgressPlan {
  /** `iptables-restore --noflush` input for the chains that differ; absent when all are in sync. */
  restore?: string;
  /** `ip` argument vectors (without the leading `ip`), run in this order after the restore. */
  commands: string[][];
  /** What changes, one line each; [] when in sync. */
  lines: string[];
}

export function planEgress(desired: DesiredEgress, observed: ObservedEgress, chains: EgressChains, ownTables: ReadonlySet<number>): EgressPlan {
  const lines: string[] = [];
  const restores: string[] = [];
  const seen = [observed.fence, observed.marks, observed.dns];
  egressChainSpecs(chains, desired).forEach((spec, i) => {
    const chain = planChain(spec, seen[i]!);
    lines.push(...chain.lines);
    if (chain.action) restores.push(chain.action.restore);
  });

  const routeCommands: string[][] = [];
  const wantedByTable = new Map(desired.routes.map((r) => [r.table, r]));
  const seenByTable = new Map<number, ObservedRoute[]>();
  for (const route of observed.routes) {
    if (ownTables.has(route.table)) seenByTable.set(route.table, [...(seenByTable.get(route.table) ?? []), route]);
  }
  const tables = [...new Set([...wantedByTable.keys(), ...seenByTable.keys()])].sort((a, b) => a - b);
  for (const table of tables) {
    const wanted = wantedByTable.get(table);
    const routes = seenByTable.get(table) ?? [];
    if (wanted && routes.length === 1 && routeMatches(routes[0]!, routeText(wanted))) continue;
    if (!wanted && routes.length === 0) continue;
    if (routes.length > 0) {
      for (const route of routes) lines.push(`- ip route ${route.text} table ${table}`);
      routeCommands.push(['route', 'flush', 'table', String(table)]);
    }
    if (!wanted) continue;
    lines.push(`+ ip route replace ${routeText(wanted)} table ${table}`);
    routeCommands.push(['route', 'replace', 'default', 'via', wanted.via, 'dev', wanted.dev, 'table', String(table)]);
  }

  const ruleCommands: string[][] = [];
  const wantedRules = new Map<string, string[]>();
  for (const rule of desired.ipRules) wantedRules.set(ruleKey(rule.priority, `from all fwmark ${formatFwmark(rule.fwmark)} lookup ${rule.table}`), ipRuleArgs(rule));
  const matched = new Set<string>();
  for (const rule of observed.ipRules) {
    if (!isOwnRule(rule, ownTables)) continue;
    const key = ruleKey(rule.priority, rule.text);
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

  const plan: EgressPlan = { commands: [...routeCommands, ...ruleCommands], lines };
  if (restores.length > 0) plan.restore = restores.join('');
  return plan;
}

/**
 * Tables and fwmarks in pic's range that another cell on this host holds now (its rules and
 * routes): a new allocation of this cell must not take them.
 */
export function takenByOthers(observed: Pick<ObservedEgress, 'ipRules' | 'routes'>, ownTables: ReadonlySet<number>): { tables: Set<number>; fwmarks: Set<number> } {
  const tables = new Set<number>();
  const fwmarks = new Set<number>();
  for (const route of observed.routes) if (!ownTables.has(route.table)) tables.add(route.table);
  for (const rule of observed.ipRules) {
    if (isOwnRule(rule, ownTables)) continue;
    const table = Number(rule.lookup);
    if (Number.isInteger(table)) tables.add(table);
    const mark = Number.parseInt((rule.fwmark ?? '').split('/')[0] ?? '', 16);
    if (Number.isInteger(mark)) fwmarks.add(mark);
  }
  return { tables, fwmarks };
}

function ruleKey(priority: number, text: string): string {
  return `${priority}: ${text}`;
}

function isOwnRule(rule: ObservedIpRule, ownTables: ReadonlySet<number>): boolean {
  return rule.lookup !== undefined && ownTables.has(Number(rule.lookup));
}

/** The one wanted route, whatever flags `ip` adds (`linkdown`, `onlink`, `proto`…). */
function routeMatches(route: ObservedRoute, wanted: string): boolean {
  return route.text === wanted || route.text.startsWith(`${wanted} `);
}

/** Enough of a rule to make `ip rule del` remove that one: its priority and whatever it matches on. */
function deleteSelector(rule: ObservedIpRule): string[] {
  const args = ['priority', String(rule.priority)];
  if (rule.from !== undefined && rule.from !== 'all') args.push('from', rule.from);
  if (rule.fwmark !== undefined) args.push('fwmark', rule.fwmark);
  if (rule.lookup !== undefined) args.push('lookup', rule.lookup);
  return args;
}
