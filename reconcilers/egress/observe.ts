/**
 * Read egress steering on the cell host, without changing anything: the three own chains of the
 * cell (and their parents' jumps) from one `iptables-save`, and from one `ip -json -batch`: the
 * policy rules (`rule show`), the routes of every table (`route show table all`, so a table pic
 * no longer allocates is still seen) and the IPv4 addresses (`-4 addr show`, to find the
 * bridge of the cell network). The JSON is turned into the words `ip` prints (`parseIpRules` and
 * `parseRoutes` read those), so a plan compares the same text as a person reading `ip` does.
 */
import { isRecord } from '../../crds/values.js';
import { chainOf, parseIptablesSave, type ObservedChain } from '../firewall/observe.js';
import type { HostNetworkReader } from '../shared/container-netns.js';
import { isOwnFwmark, isOwnRulePriority, isOwnTable } from './allocate.js';
import { DOCKER_USER_CHAIN, type EgressChains } from './render.js';

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

export interface HostAddress {
  ifname: string;
  address: string;
  prefixlen: number;
}

export interface ObservedEgress {
  fence: ObservedChain;
  marks: ObservedChain;
  dns: ObservedChain;
  /** Whether Docker's DOCKER-USER chain exists (the fence's parent; FORWARD when not). */
  dockerUser: boolean;
  /** Rules in pic's ranges (priority 10000–10999 or an fwmark 0x1000–…): every cell's on this host. */
  ipRules: ObservedIpRule[];
  /** Routes in pic's tables (1000–1999): every cell's on this host. */
  routes: ObservedRoute[];
  addresses: HostAddress[];
}

export async function observeEgress(reader: HostNetworkReader, chains: EgressChains): Promise<ObservedEgress> {
  const [saved, ip] = await Promise.all([reader.iptablesSave(), reader.ipJson(['rule show', 'route show table all', 'address show'])]);
  const tables = parseIptablesSave(saved);
  const dockerUser = tables.get('filter')?.chains.has(DOCKER_USER_CHAIN) ?? false;
  const fenceParent = dockerUser ? DOCKER_USER_CHAIN : 'FORWARD';
  const [rules = [], routes = [], addresses = []] = ip;
  return {
    fence: chainOf(tables, { table: 'filter', chain: chains.fence, parent: fenceParent }),
    marks: chainOf(tables, { table: 'mangle', chain: chains.marks, parent: 'PREROUTING' }),
    dns: chainOf(tables, { table: 'nat', chain: chains.dns, parent: 'PREROUTING' }),
    dockerUser,
    ipRules: parseIpRules(rules.map(ipRuleLine).join('\n')).filter(isOwnIpRule),
    routes: parseRoutes(routes.map(routeLine).join('\n')),
    addresses: parseAddresses(addresses),
  };
}

/** Entries of `ip -json -4 addr show` as (interface, address, prefix length). Pure. */
export function parseAddresses(entries: readonly unknown[]): HostAddress[] {
  const out: HostAddress[] = [];
  for (const entry of entries) {
    const link = fields(entry);
    const infos = Array.isArray(link.addr_info) ? link.addr_info : [];
    for (const info of infos) {
      const a = fields(info);
      if (a.family === 'inet' && typeof a.local === 'string' && typeof a.prefixlen === 'number' && typeof link.ifname === 'string') {
        out.push({ ifname: link.ifname, address: a.local, prefixlen: a.prefixlen });
      }
    }
  }
  return out;
}

type IpJson = Record<string, unknown>;

function fields(entry: unknown): IpJson {
  return isRecord(entry) ? entry : {};
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
