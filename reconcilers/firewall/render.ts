/**
 * The firewall pic owns inside the wireguard container, as text: the rules of the `PIC-SERVICES`
 * chain (one ACCEPT per manifest rule of each installed service) and the `iptables-restore`
 * input that replaces an own chain in one transaction while leaving every other chain alone.
 *
 * Rules are written exactly as `iptables -S` prints them, so comparing what is wanted with what
 * is live is a string comparison.
 */
import { isIpv4 } from '../../crds/ipv4.js';
import { compareText } from '../../crds/values.js';
import { TerminalError } from '../errors.js';
import type { InstalledService } from '../shared/types.js';

export const SERVICES_CHAIN = 'PIC-SERVICES';
/** The built-in chain that jumps to ours. */
export const SERVICES_PARENT = 'FORWARD';

/** The marker in the comment of every rule pic writes, followed by the owner's name. */
export const COMMENT_PREFIX = 'pic:';

/** Names that go into a comment: no quotes, spaces or backslashes, short enough for xt_comment. */
const COMMENT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$/;

interface AcceptRule {
  service: string;
  ip: string;
  port: number;
  proto: 'tcp' | 'udp';
}

/**
 * The rules of `PIC-SERVICES` for the installed services, `${SERVICE_IP}` replaced by each
 * service's address: sorted by service, then port, then protocol, without duplicates.
 * A rule that is not a valid manifest rule is bad input (TerminalError naming the service).
 */
export function renderServiceRules(services: readonly InstalledService[]): string[] {
  const wanted = new Map<string, AcceptRule>();
  for (const service of services) {
    const rules = service.manifest.iptables_rules ?? [];
    if (rules.length === 0) continue;
    assertCommentName(service.name, `ServiceInstall/${service.name}`);
    assertIpv4(service.serviceIp, `ServiceInstall/${service.name}: service IP`);
    rules.forEach((rule, index) => {
      const where = `ServiceInstall/${service.name}: manifest iptables_rules[${index}]`;
      if (rule.type !== 'ACCEPT') throw new TerminalError(`${where}: type must be ACCEPT, not ${JSON.stringify(rule.type)}`);
      if (rule.dest_ip !== '${SERVICE_IP}') {
        throw new TerminalError(`${where}: dest_ip must be the literal \${SERVICE_IP}, not ${JSON.stringify(rule.dest_ip)}`);
      }
      if (!Number.isInteger(rule.dest_port) || rule.dest_port < 1 || rule.dest_port > 65535) {
        throw new TerminalError(`${where}: dest_port must be an integer from 1 to 65535, not ${JSON.stringify(rule.dest_port)}`);
      }
      const proto = rule.proto ?? 'tcp';
      if (proto !== 'tcp' && proto !== 'udp') throw new TerminalError(`${where}: proto must be tcp or udp, not ${JSON.stringify(proto)}`);
      const accept: AcceptRule = { service: service.name, ip: service.serviceIp, port: rule.dest_port, proto };
      wanted.set(`${accept.service}\0${accept.port}\0${accept.proto}`, accept);
    });
  }
  return [...wanted.values()]
    .sort((a, b) => compareText(a.service, b.service) || a.port - b.port || compareText(a.proto, b.proto))
    .map(
      (r) =>
        `-A ${SERVICES_CHAIN} -d ${r.ip}/32 -p ${r.proto} -m ${r.proto} --dport ${r.port} ` +
        `-m comment --comment ${quoteComment(COMMENT_PREFIX + r.service)} -j ACCEPT`,
    );
}

/** The jump from the parent chain to an own chain, as `iptables -S` prints it. */
export function jumpRule(parent: string, chain: string): string {
  return `-A ${parent} -j ${chain}`;
}

export interface ChainRestore {
  /** `filter`, `mangle`... */
  table: string;
  chain: string;
  /** The whole content of the chain, each line `-A <chain> ...`. */
  rules: readonly string[];
  /** The built-in chain that should jump to `chain`. */
  parent: string;
  /** Insert the jump at position 1 (it is missing). */
  insertJump?: boolean;
  /** Delete this many copies of the jump (it is there more than once). */
  deleteJumps?: number;
}

/**
 * One table's section of `iptables-restore --noflush` input that replaces the chain's content
 * (declaring it creates it when missing; `-F` empties it) and fixes the jump to it, committed as
 * one transaction. Nothing else in the table is named, so nothing else changes.
 */
export function renderChainRestore(section: ChainRestore): string {
  const lines = [`*${section.table}`, `:${section.chain} - [0:0]`, `-F ${section.chain}`, ...section.rules];
  for (let i = 0; i < (section.deleteJumps ?? 0); i++) lines.push(`-D ${section.parent} -j ${section.chain}`);
  if (section.insertJump) lines.push(`-I ${section.parent} 1 -j ${section.chain}`);
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}

/** The restore input for `PIC-SERVICES` with the given rules (no jump changes). */
export function renderServicesRestore(rules: readonly string[]): string {
  return renderChainRestore({ table: 'filter', chain: SERVICES_CHAIN, parent: SERVICES_PARENT, rules });
}

/** A comment argument in the form `iptables -S` prints it: always double-quoted. */
export function quoteComment(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function assertCommentName(name: string, where: string): void {
  if (!COMMENT_NAME.test(name)) {
    throw new TerminalError(`${where}: the name ${JSON.stringify(name)} cannot label a firewall rule (letters, digits, . _ - only)`);
  }
}

export function assertIpv4(ip: string, where: string): void {
  if (!isIpv4(ip)) throw new TerminalError(`${where}: ${JSON.stringify(ip)} is not an IPv4 address`);
}
