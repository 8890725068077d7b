/**
 * What egress routing should look like inside the wireguard container (pure):
 *
 * - mangle `PIC-EGRESS` (from PREROUTING): packets from a routed service get their connection's
 *   fwmark;
 * - `ip rule` per connection in use: that fwmark looks up the connection's table, whose default
 *   route leaves through the connection's interface (when its document names one);
 * - filter `PIC-KILLSWITCH` (from FORWARD): marked packets that would leave any other way are
 *   dropped, unless the connection is failOpen. Without a known interface every marked packet
 *   is dropped: fail closed.
 *
 * Chain rules are written exactly as `iptables -S` prints them.
 */
import { TerminalError } from '../errors.js';
import { assertCommentName, assertIpv4, COMMENT_PREFIX, compareText, quoteComment, renderChainRestore } from '../firewall/render.js';
import type { CellRouting } from '../shared/types.js';
import { formatFwmark, rulePriorityOf, type EgressAllocations } from './allocate.js';

export const MARK_CHAIN = 'PIC-EGRESS';
/** Private (RFC 1918) destinations, never routed through an egress connection. */
export const LOCAL_DESTINATIONS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] as const;
export const MARK_TABLE = 'mangle';
export const MARK_PARENT = 'PREROUTING';
export const KILLSWITCH_CHAIN = 'PIC-KILLSWITCH';
export const KILLSWITCH_TABLE = 'filter';
export const KILLSWITCH_PARENT = 'FORWARD';

/** A Linux interface name (IFNAMSIZ 16 with the NUL), safe as an argument anywhere. */
const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export interface RoutedConnection {
  name: string;
  fwmark: number;
  table: number;
  priority: number;
  interface?: string;
  failOpen: boolean;
  /** Services whose traffic leaves through it, sorted. */
  services: string[];
}

export interface DesiredIpRule {
  priority: number;
  fwmark: number;
  table: number;
}

export interface DesiredRoute {
  table: number;
  interface: string;
  connection: string;
}

export interface DesiredEgress {
  /** Connections at least one installed service routes through, sorted by name. */
  connections: RoutedConnection[];
  /** Content of `PIC-EGRESS` (mangle), sorted by service. */
  markRules: string[];
  /** Content of `PIC-KILLSWITCH` (filter), sorted by connection. */
  killswitchRules: string[];
  /** Sorted by priority. */
  ipRules: DesiredIpRule[];
  /** A default route per connection in use that names an interface; sorted by table. */
  routes: DesiredRoute[];
}

export function renderEgress(routing: CellRouting, allocations: EgressAllocations): DesiredEgress {
  const documents = new Map(routing.connections.map((c) => [c.metadata.name, c]));
  const byConnection = new Map<string, RoutedConnection>();
  const marks: { service: string; rule: string }[] = [];

  const routed = routing.services.filter((s) => s.egress.connection !== 'default');
  for (const service of [...routed].sort((a, b) => compareText(a.name, b.name))) {
    const name = service.egress.connection;
    let connection = byConnection.get(name);
    if (!connection) {
      const allocation = allocations.connections[name];
      if (!allocation) throw new Error(`Connection/${name}: no fwmark allocated (allocate before rendering)`);
      const document = documents.get(name);
      const iface = document?.spec.interface ?? service.egress.interface;
      assertCommentName(name, `Connection/${name}`);
      if (iface !== undefined && !INTERFACE_NAME.test(iface)) {
        throw new TerminalError(`Connection/${name}: spec.interface ${JSON.stringify(iface)} is not an interface name (1–15 of letters, digits, . _ -)`);
      }
      connection = {
        name,
        fwmark: allocation.fwmark,
        table: allocation.table,
        priority: rulePriorityOf(allocation),
        failOpen: document?.spec.failOpen ?? service.egress.failOpen,
        services: [],
      };
      if (iface !== undefined) connection.interface = iface;
      byConnection.set(name, connection);
    }
    connection.services.push(service.name);
    assertCommentName(service.name, `ServiceInstall/${service.name}`);
    assertIpv4(service.serviceIp, `ServiceInstall/${service.name}: service IP`);
    marks.push({
      service: service.name,
      rule:
        `-A ${MARK_CHAIN} -s ${service.serviceIp}/32 -m comment --comment ${quoteComment(COMMENT_PREFIX + service.name)} ` +
        `-j MARK --set-xmark ${formatFwmark(connection.fwmark)}/0xffffffff`,
    });
  }

  const connections = [...byConnection.values()].sort((a, b) => compareText(a.name, b.name));
  const killswitchRules = connections
    .filter((c) => !c.failOpen)
    .map((c) => {
      const out = c.interface === undefined ? '' : ` ! -o ${c.interface}`;
      return `-A ${KILLSWITCH_CHAIN}${out} -m mark --mark ${formatFwmark(c.fwmark)} -m comment --comment ${quoteComment(COMMENT_PREFIX + c.name)} -j DROP`;
    });
  const ipRules = connections
    .map((c) => ({ priority: c.priority, fwmark: c.fwmark, table: c.table }))
    .sort((a, b) => a.priority - b.priority);
  const routes = connections
    .filter((c): c is RoutedConnection & { interface: string } => c.interface !== undefined)
    .map((c) => ({ table: c.table, interface: c.interface, connection: c.name }))
    .sort((a, b) => a.table - b.table);

  // Traffic to private addresses — replies to VPN peers, other containers of the cell, the LAN —
  // is not egress: it stays unmarked so the kill switch never cuts a service off from its peers.
  const localRules =
    marks.length === 0
      ? []
      : LOCAL_DESTINATIONS.map((cidr) => `-A ${MARK_CHAIN} -d ${cidr} -m comment --comment ${quoteComment(`${COMMENT_PREFIX}local`)} -j RETURN`);
  return { connections, markRules: [...localRules, ...marks.map((m) => m.rule)], killswitchRules, ipRules, routes };
}

/** `ip rule` arguments after `add`/`del`, in the order `ip rule show` prints them back. */
export function ipRuleArgs(rule: DesiredIpRule): string[] {
  return ['priority', String(rule.priority), 'fwmark', formatFwmark(rule.fwmark), 'lookup', String(rule.table)];
}

/** The full `iptables-restore --noflush` input of both egress chains (kill switch first), without jump changes. */
export function renderEgressRestore(desired: DesiredEgress): string {
  return (
    renderChainRestore({ table: KILLSWITCH_TABLE, chain: KILLSWITCH_CHAIN, parent: KILLSWITCH_PARENT, rules: desired.killswitchRules }) +
    renderChainRestore({ table: MARK_TABLE, chain: MARK_CHAIN, parent: MARK_PARENT, rules: desired.markRules })
  );
}
