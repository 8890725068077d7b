/**
 * Read egress routing inside the wireguard container, without changing anything: the two own
 * chains (PIC-EGRESS in mangle, PIC-KILLSWITCH in filter, and their parents' jumps) from one
 * `iptables-save`, and from one `ip -json -batch`: the policy rules (`rule show`), the routes of
 * every table (`route show table all`, so a table pic no longer allocates is still seen) and the
 * interfaces (`link show`). Both read through shared/container-netns.ts (from the host, or by
 * exec). The JSON is turned into the words `ip` prints (`parseIpRules` and `parseRoutes` read
 * those), so a plan compares the same text whichever way it was read.
 */
import { observeChains, type ObservedChain } from '../firewall/observe.js';
import type { ContainerNetworkReader } from '../shared/container-netns.js';
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

export async function observeEgress(reader: ContainerNetworkReader): Promise<ObservedEgress> {
  const [chains, ip] = await Promise.all([
    observeChains(reader, [
      { table: KILLSWITCH_TABLE, chain: KILLSWITCH_CHAIN, parent: KILLSWITCH_PARENT },
      { table: MARK_TABLE, chain: MARK_CHAIN, parent: MARK_PARENT },
    ]),
    reader.ipJson(['rule show', 'route show table all', 'link show']),
  ]);
  const [rules = [], routes = [], links = []] = ip;
  return {
    killswitch: chains[0]!,
    marks: chains[1]!,
    ipRules: parseIpRules(rules.map(ipRuleLine).join('\n')).filter(isOwnIpRule),
    routes: parseRoutes(routes.map(routeLine).join('\n')),
    links: parseLinks(links.map(linkLine).join('\n')),
  };
}

type IpJson = Record<string, unknown>;

function fields(entry: unknown): IpJson {
  return typeof entry === 'object' && entry !== null && !Array.isArray(entry) ? (entry as IpJson) : {};
}

function word(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : JSON.stringify(value);
}

/** Words for the keys not spelt out, so an unexpected attribute still makes the text differ. */
function rest(entry: IpJson, known: ReadonlySet<string>): string[] {
  return Object.keys(entry)
    .filter((k) => !known.has(k) && entry[k] !== undefined && !(Array.isArray(entry[k]) && (entry[k] as unknown[]).length === 0))
    .sort()
    .flatMap((k) => [k, word(entry[k])]);
}

const RULE_KEYS = new Set(['priority', 'not', 'src', 'srclen', 'dst', 'dstlen', 'fwmark', 'fwmask', 'table']);

/** One entry of `ip -json rule show` as `ip rule show` prints it, e.g. `10000:\tfrom all fwmark 0x1000 lookup 1000`. Pure. */
export function ipRuleLine(entry: unknown): string {
  const r = fields(entry);
  const words: string[] = [];
  if (r.not !== undefined) words.push('not');
  words.push('from', r.src === undefined ? 'all' : `${word(r.src)}${r.srclen !== undefined ? `/${word(r.srclen)}` : ''}`);
  if (r.dst !== undefined) words.push('to', `${word(r.dst)}${r.dstlen !== undefined ? `/${word(r.dstlen)}` : ''}`);
  if (r.fwmark !== undefined) words.push('fwmark', `${word(r.fwmark)}${r.fwmask !== undefined ? `/${word(r.fwmask)}` : ''}`);
  words.push(...rest(r, RULE_KEYS));
  if (r.table !== undefined) words.push('lookup', word(r.table));
  return `${word(r.priority)}:\t${words.join(' ')}`;
}

const ROUTE_KEYS = new Set(['type', 'dst', 'gateway', 'dev', 'table', 'protocol', 'scope', 'prefsrc', 'metric', 'flags']);

/** One entry of `ip -json route show table all` as `ip route show table all` prints it. Pure. */
export function routeLine(entry: unknown): string {
  const r = fields(entry);
  const words: string[] = [];
  if (r.type !== undefined && r.type !== 'unicast') words.push(word(r.type));
  words.push(word(r.dst ?? 'default'));
  if (r.gateway !== undefined) words.push('via', word(r.gateway));
  if (r.dev !== undefined) words.push('dev', word(r.dev));
  if (r.table !== undefined) words.push('table', word(r.table));
  if (r.protocol !== undefined) words.push('proto', word(r.protocol));
  if (r.scope !== undefined) words.push('scope', word(r.scope));
  if (r.prefsrc !== undefined) words.push('src', word(r.prefsrc));
  if (r.metric !== undefined) words.push('metric', word(r.metric));
  words.push(...rest(r, ROUTE_KEYS));
  if (Array.isArray(r.flags)) words.push(...r.flags.map(word));
  return words.join(' ');
}

/** One entry of `ip -json link show` as `ip -o link show` begins it, e.g. `2: wg0: <POINTOPOINT,UP> `. Pure. */
export function linkLine(entry: unknown): string {
  const l = fields(entry);
  const flags = Array.isArray(l.flags) ? l.flags.map(word) : [];
  return `${word(l.ifindex)}: ${word(l.ifname)}: <${flags.join(',')}>`;
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
