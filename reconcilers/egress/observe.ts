/**
 * Read egress routing inside the wireguard container, without changing anything: the two own
 * chains (`iptables -t mangle -S PIC-EGRESS`, `iptables -S PIC-KILLSWITCH` and their parents),
 * `ip rule show`, the routes of every table (`ip route show table all`, so a table pic no longer
 * allocates is still seen), and the interfaces (`ip -o link show`).
 */
import type Dockerode from 'dockerode';
import { observeChain, type ObservedChain } from '../firewall/observe.js';
import { execInContainer } from '../shared/exec.js';
import type { OwnedContainer } from '../shared/owned-container.js';
import { isOwnFwmark, isOwnRulePriority, isOwnTable } from './allocate.js';
import { KILLSWITCH_CHAIN, KILLSWITCH_PARENT, KILLSWITCH_TABLE, MARK_CHAIN, MARK_PARENT, MARK_TABLE } from './render.js';

export interface ObservedIpRule {
  priority: number;
  /** What follows `<priority>:`, single-spaced, e.g. `from all fwmark 0x1000 lookup 1000`. */
  text: string;
  from?: string;
  /** As printed, e.g. `0x1000` or `0x1000/0xff00`. */
  fwmark?: string;
  lookup?: string;
}

export interface ObservedRoute {
  table: number;
  /** The route as printed without its `table N`, single-spaced. */
  text: string;
}

export interface ObservedLink {
  name: string;
  up: boolean;
}

export interface ObservedEgress {
  marks: ObservedChain;
  killswitch: ObservedChain;
  /** Only the rules pic owns: priority 10000–10999 or an fwmark in pic's range. */
  ipRules: ObservedIpRule[];
  /** Only routes in pic's tables (1000–1999). */
  routes: ObservedRoute[];
  links: ObservedLink[];
}

export async function observeEgress(docker: Dockerode, container: OwnedContainer): Promise<ObservedEgress> {
  const killswitch = await observeChain(docker, container, { table: KILLSWITCH_TABLE, chain: KILLSWITCH_CHAIN, parent: KILLSWITCH_PARENT });
  const marks = await observeChain(docker, container, { table: MARK_TABLE, chain: MARK_CHAIN, parent: MARK_PARENT });
  const ip = async (...args: string[]) => {
    const result = await execInContainer(docker, container, ['ip', ...args]);
    if (result.exitCode !== 0) {
      throw new Error(`ip ${args.join(' ')} in container ${container.name} failed: ${result.stderr.trim() || `exit code ${result.exitCode}`}`);
    }
    return result.stdout;
  };
  const ipRules = parseIpRules(await ip('rule', 'show')).filter(isOwnIpRule);
  const routes = parseRoutes(await ip('route', 'show', 'table', 'all'));
  const links = parseLinks(await ip('-o', 'link', 'show'));
  return { marks, killswitch, ipRules, routes, links };
}

/** Lines of `ip rule show`, e.g. `10000:\tfrom all fwmark 0x1000 lookup 1000`. */
export function parseIpRules(stdout: string): ObservedIpRule[] {
  const rules: ObservedIpRule[] = [];
  for (const line of stdout.split('\n')) {
    // By hand rather than one regular expression: `\s+(.*\S)\s*$` backtracks quadratically
    // over a long run of blanks.
    const trimmed = line.trim();
    const colon = trimmed.indexOf(':');
    if (colon <= 0 || !/^\d+$/.test(trimmed.slice(0, colon))) continue;
    const rest = trimmed.slice(colon + 1);
    const body = rest.trim();
    if (body === '' || !/^\s/.test(rest)) continue;
    const words = body.split(/\s+/);
    const rule: ObservedIpRule = { priority: Number(trimmed.slice(0, colon)), text: words.join(' ') };
    const valueAfter = (key: string) => {
      const i = words.indexOf(key);
      return i >= 0 ? words[i + 1] : undefined;
    };
    const from = valueAfter('from');
    const fwmark = valueAfter('fwmark');
    const lookup = valueAfter('lookup') ?? valueAfter('table');
    if (from !== undefined) rule.from = from;
    if (fwmark !== undefined) rule.fwmark = fwmark;
    if (lookup !== undefined) rule.lookup = lookup;
    rules.push(rule);
  }
  return rules;
}

export function isOwnIpRule(rule: ObservedIpRule): boolean {
  if (isOwnRulePriority(rule.priority)) return true;
  if (rule.fwmark === undefined) return false;
  const mark = Number.parseInt(rule.fwmark.split('/')[0] ?? '', 16);
  return Number.isInteger(mark) && isOwnFwmark(mark);
}

/** Routes of pic's tables from `ip route show table all` (other tables print no `table N` or another N). */
export function parseRoutes(stdout: string): ObservedRoute[] {
  const routes: ObservedRoute[] = [];
  for (const line of stdout.split('\n')) {
    const words = line.trim().split(/\s+/).filter((w) => w !== '');
    const at = words.indexOf('table');
    if (at < 0) continue;
    const table = Number(words[at + 1]);
    if (!Number.isInteger(table) || !isOwnTable(table)) continue;
    words.splice(at, 2);
    routes.push({ table, text: words.join(' ') });
  }
  return routes.sort((a, b) => a.table - b.table);
}

/** Lines of `ip -o link show`, e.g. `3: wg0@if4: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 ...`. */
export function parseLinks(stdout: string): ObservedLink[] {
  const links: ObservedLink[] = [];
  for (const line of stdout.split('\n')) {
    const match = /^\s*\d+:\s+([^:@\s]+)(?:@[^:\s]*)?:\s+<([^>]*)>/.exec(line);
    if (!match) continue;
    links.push({ name: match[1] as string, up: (match[2] as string).split(',').includes('UP') });
  }
  return links;
}
