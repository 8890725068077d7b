/**
 * What egress steering should look like on the cell host (pure).
 *
 * A service keeps its ordinary network: one address on the cell network, its default route the
 * bridge's gateway on the host. Everything of it that is not for the cell network reaches the
 * host, and the host decides:
 *
 * - filter `PIC-EGK-<cell>` (from DOCKER-USER, which Docker runs first in FORWARD and never
 *   flushes): the kill switch. A packet from a fenced service's address that would leave the
 *   bridge for any other interface (the uplink) is dropped. It is keyed on the address alone,
 *   so it holds whether or not the exit, its tunnel, the Connection document or pic exist; it
 *   goes only when the service's assignment goes back to `default` (or to a fail-open Connection).
 * - mangle `PIC-EGM-<cell>` (from PREROUTING): a steered service's packets get their
 *   Connection's fwmark; `ip rule fwmark M lookup T` sends them to the Connection's table, whose
 *   one route is `default via <exit address> dev <bridge>`: back out of the bridge, to the exit's
 *   container, which forwards them into its tunnel. Nothing of this lives in the service's or the
 *   exit's namespace, so the service never needs a capability, and a restart or recreation of the
 *   exit (same address) or of the service changes nothing here.
 * - nat `PIC-EGD-<cell>` (from PREROUTING): a steered service's DNS (udp and tcp 53, to any
 *   server off the cell network) goes to the exit's resolver instead: no query leaves by the uplink.
 *
 * A fail-open Connection whose exit is not healthy is neither fenced nor steered: its services
 * take the direct path until it is back (the status says so). Chain rules are written exactly as
 * `iptables-save` prints them.
 */
import { createHash } from 'node:crypto';
import { compareText } from '../../crds/values.js';
import { assertCommentName, assertIpv4, COMMENT_PREFIX, quoteComment, renderChainRestore } from '../firewall/render.js';
import { formatFwmark, rulePriorityOf, type EgressAllocations } from './allocate.js';

/** Docker's chain for the admin's own forwarding rules: first in FORWARD, never flushed by dockerd. */
export const DOCKER_USER_CHAIN = 'DOCKER-USER';

/** The host chains of one cell: several cells (or tests) can share a host. */
export interface EgressChains {
  fence: string;
  marks: string;
  dns: string;
  /** Where the fence is jumped to from: DOCKER-USER when Docker made it, else FORWARD. */
  fenceParent: string;
}

/** `PIC-EG{K,M,D}-<8 hex of the cell name>`: within iptables' 28 characters, and per cell. */
export function egressChainsOf(cellName: string, dockerUserExists = true): EgressChains {
  const tag = createHash('sha256').update(cellName).digest('hex').slice(0, 8);
  return { fence: `PIC-EGK-${tag}`, marks: `PIC-EGM-${tag}`, dns: `PIC-EGD-${tag}`, fenceParent: dockerUserExists ? DOCKER_USER_CHAIN : 'FORWARD' };
}

/** A service whose outbound traffic is assigned to a Connection. */
export interface AssignedService {
  name: string;
  /** Its address on the cell network. */
  address: string;
  connection: string;
}

/** A Connection as steering sees it: its exit's address and whether its exit is healthy now. */
export interface ExitState {
  name: string;
  failOpen: boolean;
  /** The exit's address on the cell network; absent while it has none (not installed yet). */
  address?: string;
  healthy: boolean;
  /** Whether the Connection document exists and is valid; a deleted one fences its services. */
  declared: boolean;
}

export interface EgressInput {
  /** Every service assigned to a Connection, valid or not: a broken document keeps its fence. */
  services: AssignedService[];
  exits: ExitState[];
  allocations: EgressAllocations;
  /** The host's interface of the cell network, and the network's subnet. */
  bridge: string;
  subnet: string;
  chains: EgressChains;
}

/** What happens to one Connection's services now, for the status. */
export type ConnectionMode = 'steered' | 'fenced' | 'direct';

export interface RoutedConnection {
  name: string;
  fwmark: number;
  table: number;
  priority: number;
  exit?: string;
  failOpen: boolean;
  /**
   * steered: through the exit, fenced; fenced: no exit to steer to (none yet, or the document is
   * gone), traffic dropped; direct: fail-open and the exit is down, the uplink is used.
   */
  mode: ConnectionMode;
  /** Services assigned to it, sorted. */
  services: string[];
}

export interface DesiredIpRule {
  priority: number;
  fwmark: number;
  table: number;
}

export interface DesiredRoute {
  table: number;
  via: string;
  dev: string;
  connection: string;
}

export interface DesiredEgress {
  connections: RoutedConnection[];
  fenceRules: string[];
  markRules: string[];
  dnsRules: string[];
  /** Sorted by priority. */
  ipRules: DesiredIpRule[];
  /** Sorted by table. */
  routes: DesiredRoute[];
}

/** A Linux interface name (IFNAMSIZ 16 with the NUL). */
const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/** The rule that drops what a fenced address sends past the bridge; also written alone before a service starts. */
export function fenceRule(chains: EgressChains, bridge: string, service: { name: string; address: string }): string {
  return `-A ${chains.fence} -s ${service.address}/32 -i ${bridge} ! -o ${bridge} -m comment --comment ${quoteComment(COMMENT_PREFIX + service.name)} -j DROP`;
}

export function renderEgress(input: EgressInput): DesiredEgress {
  const { bridge, subnet, chains } = input;
  if (!INTERFACE_NAME.test(bridge)) throw new Error(`the cell network's host interface ${JSON.stringify(bridge)} is not an interface name`);
  const exits = new Map(input.exits.map((e) => [e.name, e]));
  const byConnection = new Map<string, RoutedConnection>();
  const fence: string[] = [];
  const marks: string[] = [];
  const dns: string[] = [];

  for (const service of [...input.services].sort((a, b) => compareText(a.name, b.name))) {
    assertCommentName(service.name, `ServiceInstall/${service.name}`);
    assertIpv4(service.address, `ServiceInstall/${service.name}: service IP`);
    const name = service.connection;
    let connection = byConnection.get(name);
    if (!connection) {
      const allocation = input.allocations.connections[name];
      if (!allocation) throw new Error(`Connection/${name}: no fwmark allocated (allocate before rendering)`);
      assertCommentName(name, `Connection/${name}`);
      const exit = exits.get(name);
      const failOpen = exit?.declared === true && exit.failOpen;
      const mode: ConnectionMode = !exit?.declared || exit.address === undefined ? (failOpen ? 'direct' : 'fenced') : failOpen && !exit.healthy ? 'direct' : 'steered';
      if (exit?.address !== undefined) assertIpv4(exit.address, `Connection/${name}: exit address`);
      connection = {
        name,
        fwmark: allocation.fwmark,
        table: allocation.table,
        priority: rulePriorityOf(allocation),
        ...(exit?.address !== undefined ? { exit: exit.address } : {}),
        failOpen,
        mode,
        services: [],
      };
      byConnection.set(name, connection);
    }
    connection.services.push(service.name);
    const comment = `-m comment --comment ${quoteComment(COMMENT_PREFIX + service.name)}`;
    if (!connection.failOpen) fence.push(fenceRule(chains, bridge, service));
    if (connection.mode !== 'steered' || connection.exit === undefined) continue;
    const from = `-s ${service.address}/32 ! -d ${subnet} -i ${bridge}`;
    marks.push(`-A ${chains.marks} ${from} ${comment} -j MARK --set-xmark ${formatFwmark(connection.fwmark)}/0xffffffff`);
    for (const proto of ['udp', 'tcp']) {
      dns.push(`-A ${chains.dns} ${from} -p ${proto} -m ${proto} --dport 53 ${comment} -j DNAT --to-destination ${connection.exit}:53`);
    }
  }

  const connections = [...byConnection.values()].sort((a, b) => compareText(a.name, b.name));
  const steered = connections.filter((c): c is RoutedConnection & { exit: string } => c.mode === 'steered' && c.exit !== undefined);
  return {
    connections,
    fenceRules: fence,
    markRules: marks,
    dnsRules: dns,
    ipRules: steered.map((c) => ({ priority: c.priority, fwmark: c.fwmark, table: c.table })).sort((a, b) => a.priority - b.priority),
    routes: steered.map((c) => ({ table: c.table, via: c.exit, dev: bridge, connection: c.name })).sort((a, b) => a.table - b.table),
  };
}

/** The three chains with their tables and parents, in the order they are written: the fence first. */
export function egressChainSpecs(chains: EgressChains, desired: Pick<DesiredEgress, 'fenceRules' | 'markRules' | 'dnsRules'>) {
  return [
    { table: 'filter', chain: chains.fence, parent: chains.fenceParent, rules: desired.fenceRules },
    { table: 'mangle', chain: chains.marks, parent: 'PREROUTING', rules: desired.markRules },
    { table: 'nat', chain: chains.dns, parent: 'PREROUTING', rules: desired.dnsRules },
  ];
}

/** `ip rule` arguments after `add`/`del`, in the order `ip rule show` prints them back. */
export function ipRuleArgs(rule: DesiredIpRule): string[] {
  return ['priority', String(rule.priority), 'fwmark', formatFwmark(rule.fwmark), 'lookup', String(rule.table)];
}

/** The route as `ip route show table all` prints it, without its `table N`. */
export function routeText(route: DesiredRoute): string {
  return `default via ${route.via} dev ${route.dev}`;
}

/** The full `iptables-restore --noflush` input of the three chains (fence first), without jump changes. */
export function renderEgressRestore(chains: EgressChains, desired: DesiredEgress): string {
  return egressChainSpecs(chains, desired)
    .map((spec) => renderChainRestore(spec))
    .join('');
}

// The kill switch at boot ---------------------------------------------------------------------------

/**
 * The fence of one cell as pic last wrote it, kept in the state directory so that `pic fence`
 * can put it back on a host whose netfilter rules a reboot cleared, before dockerd starts the
 * services again (deploy/systemd/pic-fence.service).
 */
export interface BootFence {
  cell: string;
  chain: string;
  /** DOCKER-USER, or FORWARD on an engine that has no DOCKER-USER. */
  parent: string;
  rules: string[];
}

const FENCE_CHAIN = /^PIC-EGK-[0-9a-f]{8}$/;
const IFACE = '[A-Za-z0-9][A-Za-z0-9_.-]{0,14}';
const IPV4 = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(?:\\.(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}';

/** Whether `rule` is exactly what fenceRule writes for a service of `chain`: nothing else is restored. */
export function isFenceRule(chain: string, rule: string): boolean {
  const shape = new RegExp(`^-A ${chain} -s ${IPV4}/32 -i (${IFACE}) ! -o (${IFACE}) -m comment --comment "${COMMENT_PREFIX}[A-Za-z0-9][A-Za-z0-9_.-]{0,200}" -j DROP$`);
  const m = shape.exec(rule);
  return m !== null && m[1] === m[2];
}

/** The record read back, checked field by field; problems name the field. */
export function checkBootFence(value: unknown): { fence?: BootFence; problems: string[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { problems: ['is not an object with cell, chain, parent and rules'] };
  const v = value as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof v.cell !== 'string' || v.cell === '') problems.push('"cell" must be the cell\'s name');
  if (typeof v.chain !== 'string' || !FENCE_CHAIN.test(v.chain)) problems.push('"chain" must be PIC-EGK- and 8 hex digits');
  if (v.parent !== DOCKER_USER_CHAIN && v.parent !== 'FORWARD') problems.push('"parent" must be DOCKER-USER or FORWARD');
  if (!Array.isArray(v.rules)) problems.push('"rules" must be a list');
  else {
    v.rules.forEach((rule, i) => {
      if (typeof rule !== 'string' || typeof v.chain !== 'string' || !isFenceRule(v.chain, rule)) problems.push(`"rules"[${i}] is not a fence rule of pic's`);
    });
  }
  if (problems.length > 0) return { problems };
  return { fence: { cell: v.cell as string, chain: v.chain as string, parent: v.parent as string, rules: v.rules as string[] }, problems };
}

/**
 * The `iptables-restore --noflush` input that puts `fence` in place on a host whose filter table is
 * `filter` (as iptables-save printed it), or undefined when it is in place already. Rules live
 * now are kept beside the recorded ones (a fence is never lifted here); DOCKER-USER, which dockerd
 * makes only when it starts, is made (and jumped to from FORWARD) when missing: dockerd keeps an
 * existing DOCKER-USER's rules and moves its own jump to the top.
 */
export function renderBootFence(fence: BootFence, filter: { chains: ReadonlySet<string>; rules: readonly string[] } | undefined): string | undefined {
  const chains = filter?.chains ?? new Set<string>();
  const live = filter?.rules ?? [];
  const current = live.filter((line) => line.startsWith(`-A ${fence.chain} `));
  const rules = [...new Set([...current, ...fence.rules])];
  const parentMissing = fence.parent !== 'FORWARD' && !chains.has(fence.parent);
  const parentJumped = fence.parent === 'FORWARD' || live.includes(`-A FORWARD -j ${fence.parent}`);
  const jumped = live.includes(`-A ${fence.parent} -j ${fence.chain}`);
  if (chains.has(fence.chain) && rules.length === current.length && jumped && parentJumped) return undefined;
  const lines = ['*filter'];
  if (parentMissing) lines.push(`:${fence.parent} - [0:0]`);
  lines.push(`:${fence.chain} - [0:0]`, `-F ${fence.chain}`, ...rules);
  if (!parentJumped) lines.push(`-I FORWARD 1 -j ${fence.parent}`);
  if (!jumped) lines.push(`-I ${fence.parent} 1 -j ${fence.chain}`);
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}
