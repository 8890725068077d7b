/**
 * Egress's pure parts: allocating fwmarks and tables (beside other cells on the host), rendering
 * the wanted host steering (golden files), parsing what `ip` prints, and the plan from wanted and
 * observed steering.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isTerminal } from '../../reconcilers/errors.js';
import {
  allocateEgress,
  MAX_CONNECTIONS,
  type EgressAllocation,
  type EgressAllocations,
} from '../../reconcilers/egress/allocate.js';
import { tunnelTraffic } from '../../reconcilers/egress/exit-traffic.js';
import { bridgeOf } from '../../reconcilers/egress/index.js';
import { isOwnIpRule, parseAddresses, parseIpRules, parseRoutes, type ObservedEgress } from '../../reconcilers/egress/observe.js';
import { planEgress, takenByOthers } from '../../reconcilers/egress/plan.js';
import {
  checkBootFence,
  egressChainsOf,
  fenceRule,
  isFenceRule,
  renderBootFence,
  renderEgress,
  renderEgressRestore,
  type AssignedService,
  type DesiredEgress,
  type ExitState,
} from '../../reconcilers/egress/render.js';
import { normaliseRule } from '../../reconcilers/firewall/observe.js';

const GOLDEN_DIR = path.join(process.cwd(), 'tests', 'golden', 'egress');

async function expectGolden(name: string, actual: string): Promise<void> {
  const file = path.join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    await fs.mkdir(GOLDEN_DIR, { recursive: true });
    await fs.writeFile(file, actual);
  }
  expect(actual).toBe(await fs.readFile(file, 'utf8'));
}

const pair = (i: number): EgressAllocation => ({ fwmark: 0x1000 + i, table: 1000 + i });
const saved = (connections: Record<string, EgressAllocation>): EgressAllocations => ({ version: 1, connections });

describe('allocateEgress', () => {
  test.each<[string, EgressAllocations | undefined, string[], string[], Record<string, EgressAllocation>, string[], string[], boolean]>([
    ['new connections, nothing saved', undefined, ['vpn-b', 'vpn-a'], [], { 'vpn-a': pair(0), 'vpn-b': pair(1) }, ['vpn-a', 'vpn-b'], [], true],
    ['existing ones kept, a new one after them', saved({ 'vpn-z': pair(0) }), ['vpn-a', 'vpn-z'], [], { 'vpn-a': pair(1), 'vpn-z': pair(0) }, ['vpn-a'], [], true],
    ['nothing new: unchanged', saved({ 'vpn-a': pair(0), tor: pair(1) }), ['tor', 'vpn-a'], [], { 'vpn-a': pair(0), tor: pair(1) }, [], [], false],
    ['a removed connection is freed', saved({ 'vpn-a': pair(0), tor: pair(1) }), ['tor'], [], { tor: pair(1) }, [], ['vpn-a'], true],
    ['a removed connection a service still names is kept', saved({ 'vpn-a': pair(0), tor: pair(1) }), ['tor'], ['vpn-a'], { 'vpn-a': pair(0), tor: pair(1) }, [], [], false],
    ['a named connection without document gets numbers', undefined, [], ['ghost'], { ghost: pair(0) }, ['ghost'], [], true],
    ['the lowest free pair is reused', saved({ a: pair(0), c: pair(2) }), ['a', 'b', 'c'], [], { a: pair(0), b: pair(1), c: pair(2) }, ['b'], [], true],
    ['a freed pair goes to the next new connection', saved({ a: pair(0), b: pair(1) }), ['b', 'n'], [], { b: pair(1), n: pair(0) }, ['n'], ['a'], true],
    ['a pair is free only when mark and table both are', saved({ a: { fwmark: 0x1001, table: 1000 } }), ['a', 'b'], [], { a: { fwmark: 0x1001, table: 1000 }, b: pair(2) }, ['b'], [], true],
    ['an entry out of range is allocated again', saved({ a: { fwmark: 0x10, table: 110 } }), ['a'], [], { a: pair(0) }, ['a'], [], true],
    ['of two entries sharing a mark the second is moved', saved({ a: pair(0), b: { fwmark: 0x1000, table: 1005 } }), ['a', 'b'], [], { a: pair(0), b: pair(1) }, ['b'], [], true],
    ['a pair another cell on the host holds is skipped', undefined, ['a'], [], { a: pair(1) }, ['a'], [], true],
  ])('%s', (name, existing, documents, referenced, connections, added, freed, changed) => {
    const taken = name.includes('another cell') ? { tables: new Set([1000]), fwmarks: new Set<number>() } : undefined;
    const result = allocateEgress(existing, documents, referenced, taken ? { taken } : {});
    expect(result.allocations).toEqual({ version: 1, connections });
    expect(result.added).toEqual(added);
    expect(result.freed).toEqual(freed);
    expect(result.changed).toBe(changed);
  });

  test('each cell starts at its own offset and wraps round', () => {
    expect(allocateEgress(undefined, ['a'], [], { startAt: 7 }).allocations.connections.a).toEqual(pair(7));
    const last = MAX_CONNECTIONS - 1;
    const wrapped = allocateEgress(undefined, ['a', 'b'], [], { startAt: last });
    expect(wrapped.allocations.connections).toEqual({ a: pair(last), b: pair(0) });
  });

  test('allocation does not depend on the order names come in', () => {
    const names = ['c', 'a', 'b', 'e', 'd'];
    const forward = allocateEgress(saved({ b: pair(3) }), names);
    const backward = allocateEgress(saved({ b: pair(3) }), [...names].reverse());
    expect(backward.allocations).toEqual(forward.allocations);
    expect(JSON.stringify(forward.allocations.connections)).toBe(JSON.stringify(backward.allocations.connections));
  });

  test('past the last pair the input is refused', () => {
    const full: Record<string, EgressAllocation> = {};
    for (let i = 0; i < MAX_CONNECTIONS; i++) full[`c${String(i).padStart(4, '0')}`] = pair(i);
    let thrown: unknown;
    try {
      allocateEgress(saved(full), [...Object.keys(full), 'one-more']);
    } catch (err) {
      thrown = err;
    }
    expect(isTerminal(thrown)).toBe(true);
    expect((thrown as Error).message).toMatch(/Connection\/one-more/);
  });
});

const CELL = 'pt-cell';
const BRIDGE = 'br-0123456789ab';
const SUBNET = '172.20.0.0/16';

/** Render with allocations made from the input itself. */
function render(services: AssignedService[], exits: ExitState[], existing?: EgressAllocations, dockerUser = true): DesiredEgress {
  const names = exits.map((e) => e.name);
  const allocations = allocateEgress(existing, names, services.map((s) => s.connection)).allocations;
  return renderEgress({ services, exits, allocations, bridge: BRIDGE, subnet: SUBNET, chains: egressChainsOf(CELL, dockerUser) });
}

/** Everything egress would write on an empty host, as one text. */
function renderedText(desired: DesiredEgress): string {
  const rules = desired.ipRules.map((r) => `ip rule add priority ${r.priority} fwmark 0x${r.fwmark.toString(16)} lookup ${r.table}`);
  const routes = desired.routes.map((r) => `ip route replace default via ${r.via} dev ${r.dev} table ${r.table}   # ${r.connection}`);
  const modes = desired.connections.map((c) => `# ${c.name}: ${c.mode}${c.failOpen ? ' (fail-open)' : ''}: ${c.services.join(', ')}`);
  return ['# iptables-restore --noflush', renderEgressRestore(egressChainsOf(CELL), desired).trimEnd(), '# ip rules', ...rules, '# routes', ...routes, '# connections', ...modes, ''].join('\n');
}

const exit = (name: string, extra: Partial<ExitState> = {}): ExitState => ({ name, failOpen: false, healthy: true, declared: true, address: '172.20.0.30', ...extra });

describe('renderEgress (golden)', () => {
  const cases: [string, AssignedService[], ExitState[], EgressAllocations | undefined][] = [
    ['one-service.txt', [{ name: 'mail', address: '172.20.0.20', connection: 'vpn-home' }], [exit('vpn-home')], undefined],
    [
      'mixed.txt',
      [
        { name: 'files', address: '172.20.0.24', connection: 'vpn-home' },
        { name: 'mail', address: '172.20.0.20', connection: 'vpn-home' },
        { name: 'notes', address: '172.20.0.21', connection: 'onion' },
        { name: 'calendar', address: '172.20.0.22', connection: 'office' },
        { name: 'web', address: '172.20.0.23', connection: 'gone' },
      ],
      [
        exit('vpn-home', { address: '172.20.0.30' }),
        exit('onion', { address: '172.20.0.31', healthy: false }),
        exit('office', { address: '172.20.0.32', failOpen: true, healthy: false }),
        exit('gone', { declared: false, address: undefined as unknown as string }),
        exit('unused', { address: '172.20.0.33' }),
      ],
      saved({ 'vpn-home': pair(2), unused: pair(0) }),
    ],
    ['nothing-routed.txt', [], [exit('vpn-home')], undefined],
  ];

  test.each(cases)('%s', async (name, services, exits, existing) => {
    const desired = render(services, exits.map((e) => (e.address === undefined ? (({ address: _a, ...rest }) => rest)(e) : e)), existing);
    await expectGolden(name, renderedText(desired));
    for (const rule of [...desired.fenceRules, ...desired.markRules, ...desired.dnsRules]) expect(normaliseRule(rule)).toBe(rule);
  });

  test('fail-closed with the exit down: still steered to the exit, and fenced', () => {
    const desired = render([{ name: 'mail', address: '172.20.0.20', connection: 'vpn' }], [exit('vpn', { healthy: false })]);
    expect(desired.connections[0]?.mode).toBe('steered');
    expect(desired.fenceRules).toHaveLength(1);
    expect(desired.routes).toHaveLength(1);
  });

  test('fail-open with the exit down: neither fenced nor steered (direct)', () => {
    const desired = render([{ name: 'mail', address: '172.20.0.20', connection: 'vpn' }], [exit('vpn', { failOpen: true, healthy: false })]);
    expect(desired.connections[0]?.mode).toBe('direct');
    expect([...desired.fenceRules, ...desired.markRules, ...desired.dnsRules]).toEqual([]);
    expect(desired.ipRules).toEqual([]);
  });

  test('fail-open with the exit up: steered, not fenced', () => {
    const desired = render([{ name: 'mail', address: '172.20.0.20', connection: 'vpn' }], [exit('vpn', { failOpen: true })]);
    expect(desired.connections[0]?.mode).toBe('steered');
    expect(desired.fenceRules).toEqual([]);
    expect(desired.markRules).toHaveLength(1);
  });

  test('a deleted Connection keeps its services fenced, never direct (fail-open or not)', () => {
    for (const failOpen of [false, true]) {
      const desired = render([{ name: 'mail', address: '172.20.0.20', connection: 'vpn' }], [{ name: 'vpn', failOpen, healthy: false, declared: false }]);
      expect(desired.connections[0]?.mode).toBe('fenced');
      expect(desired.fenceRules).toEqual([`-A ${egressChainsOf(CELL).fence} -s 172.20.0.20/32 -i ${BRIDGE} ! -o ${BRIDGE} -m comment --comment "pic:mail" -j DROP`]);
      expect(desired.markRules).toEqual([]);
    }
  });

  test('without DOCKER-USER the fence hangs from FORWARD', () => {
    expect(egressChainsOf(CELL, false).fenceParent).toBe('FORWARD');
    expect(egressChainsOf(CELL).fenceParent).toBe('DOCKER-USER');
  });

  test('two cells have different chains', () => {
    expect(egressChainsOf('a').fence).not.toBe(egressChainsOf('b').fence);
    expect(egressChainsOf('a').fence.length).toBeLessThanOrEqual(28);
  });

  test('a name that cannot label a rule is bad input naming the service', () => {
    expect(() => render([{ name: 'mail"x', address: '172.20.0.20', connection: 'vpn' }], [exit('vpn')])).toThrow(/ServiceInstall\/mail"x/);
  });
});

describe('parsing what ip prints', () => {
  test('ip rule show', () => {
    const rules = parseIpRules(
      [
        '0:\tfrom all lookup local',
        '100:\tfrom 10.0.0.0/8 lookup 200',
        '10000:\tfrom all fwmark 0x1000 lookup 1000',
        '10007:\tfrom all lookup 1007',
        '20000:\tfrom all fwmark 0x1003/0xffff lookup 1003',
        '32766:\tfrom all lookup main',
        '',
      ].join('\n'),
    );
    expect(rules.map((r) => r.priority)).toEqual([0, 100, 10000, 10007, 20000, 32766]);
    expect(rules[2]).toEqual({ priority: 10000, text: 'from all fwmark 0x1000 lookup 1000', from: 'all', fwmark: '0x1000', lookup: '1000' });
    expect(rules.filter(isOwnIpRule).map((r) => r.priority)).toEqual([10000, 10007, 20000]);
  });

  test('ip route show table all keeps only pic tables, without the table word', () => {
    const routes = parseRoutes(
      [
        'default via 172.17.0.1 dev eth0 ',
        'default via 172.20.0.30 dev br-0123456789ab table 1000 ',
        '10.0.0.0/8 dev eth0 table 1001 scope link ',
        'default dev tun0 table 200 scope link ',
        'local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1 ',
      ].join('\n'),
    );
    expect(routes).toEqual([
      { table: 1000, text: 'default via 172.20.0.30 dev br-0123456789ab' },
      { table: 1001, text: '10.0.0.0/8 dev eth0 scope link' },
    ]);
  });

  test('ip -json -4 addr show, and the bridge of the cell network', () => {
    const addresses = parseAddresses([
      { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
      { ifname: 'eth0', addr_info: [{ family: 'inet', local: '10.0.2.15', prefixlen: 24 }] },
      { ifname: 'br-0123456789ab', addr_info: [{ family: 'inet', local: '172.20.0.1', prefixlen: 16 }] },
      { ifname: 'odd', addr_info: 'nonsense' },
    ]);
    expect(addresses.map((a) => a.ifname)).toEqual(['lo', 'eth0', 'br-0123456789ab']);
    expect(bridgeOf(addresses, '172.20.0.0/16')).toBe('br-0123456789ab');
    expect(bridgeOf(addresses, '172.21.0.0/16')).toBeUndefined();
  });
});

describe('planEgress', () => {
  const chains = egressChainsOf(CELL);
  const services: AssignedService[] = [
    { name: 'mail', address: '172.20.0.20', connection: 'vpn' },
    { name: 'notes', address: '172.20.0.21', connection: 'onion' },
  ];
  const exits = [exit('onion', { address: '172.20.0.31' }), exit('vpn', { address: '172.20.0.30' })];
  // onion: pair 0, vpn: pair 1
  const desired = render(services, exits);
  const own = new Set([1000, 1001]);
  const live: ObservedEgress = {
    fence: { exists: true, rules: desired.fenceRules, jumps: 1 },
    marks: { exists: true, rules: desired.markRules, jumps: 1 },
    dns: { exists: true, rules: desired.dnsRules, jumps: 1 },
    dockerUser: true,
    ipRules: [
      { priority: 10000, text: 'from all fwmark 0x1000 lookup 1000', from: 'all', fwmark: '0x1000', lookup: '1000' },
      { priority: 10001, text: 'from all fwmark 0x1001 lookup 1001', from: 'all', fwmark: '0x1001', lookup: '1001' },
      // Another cell's, on the same host: never touched.
      { priority: 10005, text: 'from all fwmark 0x1005 lookup 1005', from: 'all', fwmark: '0x1005', lookup: '1005' },
    ],
    routes: [
      { table: 1000, text: `default via 172.20.0.31 dev ${BRIDGE}` },
      { table: 1001, text: `default via 172.20.0.30 dev ${BRIDGE}` },
      { table: 1005, text: 'default via 10.9.0.9 dev br-other' },
    ],
    addresses: [],
  };
  const empty: ObservedEgress = {
    fence: { exists: false, rules: [], jumps: 0 },
    marks: { exists: false, rules: [], jumps: 0 },
    dns: { exists: false, rules: [], jumps: 0 },
    dockerUser: true,
    ipRules: [live.ipRules[2]!],
    routes: [live.routes[2]!],
    addresses: [],
  };
  const handDrop = `-A ${chains.fence} -s 10.1.1.1/32 -j DROP`;

  test.each<[string, DesiredEgress, ObservedEgress, { lines: string[]; commands: string[][]; restore: boolean }]>([
    ['in sync', desired, live, { lines: [], commands: [], restore: false }],
    [
      'from nothing',
      desired,
      empty,
      {
        lines: [
          `+ -N ${chains.fence}`,
          ...desired.fenceRules.map((r) => `+ ${r}`),
          `+ -I DOCKER-USER 1 -j ${chains.fence}`,
          `+ -N ${chains.marks} (table mangle)`,
          ...desired.markRules.map((r) => `+ ${r}`),
          `+ -I PREROUTING 1 -j ${chains.marks} (table mangle)`,
          `+ -N ${chains.dns} (table nat)`,
          ...desired.dnsRules.map((r) => `+ ${r}`),
          `+ -I PREROUTING 1 -j ${chains.dns} (table nat)`,
          `+ ip route replace default via 172.20.0.31 dev ${BRIDGE} table 1000`,
          `+ ip route replace default via 172.20.0.30 dev ${BRIDGE} table 1001`,
          '+ ip rule add priority 10000 fwmark 0x1000 lookup 1000',
          '+ ip rule add priority 10001 fwmark 0x1001 lookup 1001',
        ],
        commands: [
          ['route', 'replace', 'default', 'via', '172.20.0.31', 'dev', BRIDGE, 'table', '1000'],
          ['route', 'replace', 'default', 'via', '172.20.0.30', 'dev', BRIDGE, 'table', '1001'],
          ['rule', 'add', 'priority', '10000', 'fwmark', '0x1000', 'lookup', '1000'],
          ['rule', 'add', 'priority', '10001', 'fwmark', '0x1001', 'lookup', '1001'],
        ],
        restore: true,
      },
    ],
    ['a rule added by hand to the fence', desired, { ...live, fence: { exists: true, rules: [...desired.fenceRules, handDrop], jumps: 1 } }, { lines: [`- ${handDrop}`], commands: [], restore: true }],
    [
      'the exit moved to another address',
      desired,
      { ...live, routes: [{ table: 1000, text: `default via 172.20.0.99 dev ${BRIDGE}` }, live.routes[1]!, live.routes[2]!] },
      {
        lines: [`- ip route default via 172.20.0.99 dev ${BRIDGE} table 1000`, `+ ip route replace default via 172.20.0.31 dev ${BRIDGE} table 1000`],
        commands: [
          ['route', 'flush', 'table', '1000'],
          ['route', 'replace', 'default', 'via', '172.20.0.31', 'dev', BRIDGE, 'table', '1000'],
        ],
        restore: false,
      },
    ],
    [
      'every service back to default: all withdrawn, the other cell left alone',
      render([], exits),
      live,
      {
        lines: [
          ...desired.fenceRules.map((r) => `- ${r}`),
          ...desired.markRules.map((r) => `- ${r}`),
          ...desired.dnsRules.map((r) => `- ${r}`),
          `- ip route default via 172.20.0.31 dev ${BRIDGE} table 1000`,
          `- ip route default via 172.20.0.30 dev ${BRIDGE} table 1001`,
          '- ip rule 10000: from all fwmark 0x1000 lookup 1000',
          '- ip rule 10001: from all fwmark 0x1001 lookup 1001',
        ],
        commands: [
          ['route', 'flush', 'table', '1000'],
          ['route', 'flush', 'table', '1001'],
          ['rule', 'del', 'priority', '10000', 'fwmark', '0x1000', 'lookup', '1000'],
          ['rule', 'del', 'priority', '10001', 'fwmark', '0x1001', 'lookup', '1001'],
        ],
        restore: true,
      },
    ],
  ])('%s', (_name, wanted, observed, expected) => {
    const plan = planEgress(wanted, observed, chains, own);
    expect(plan.lines).toEqual(expected.lines);
    expect(plan.commands).toEqual(expected.commands);
    expect(plan.restore !== undefined).toBe(expected.restore);
  });

  test('a chain in sync is left out of the restore input', () => {
    const plan = planEgress(desired, { ...live, marks: { exists: true, rules: [], jumps: 1 } }, chains, own);
    expect(plan.restore).toMatch(new RegExp(`^\\*mangle\\n:${chains.marks} - \\[0:0\\]\\n-F ${chains.marks}\\n`));
    expect(plan.restore).not.toMatch(new RegExp(chains.fence));
  });

  test("what other cells hold is what a new allocation avoids", () => {
    expect(takenByOthers(live, own)).toEqual({ tables: new Set([1005]), fwmarks: new Set([0x1005]) });
  });
});

describe('tunnelTraffic (ip -json link show and /proc/net/dev of an exit)', () => {
  const netDev = [
    'Inter-|   Receive                                                |  Transmit',
    ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
    '    lo:       5       1    0    0    0     0          0         0        5       1    0    0    0     0       0          0',
    '  eth0:     900      10    0    0    0     0          0         0      800       9    0    0    0     0       0          0',
    '   wg0:     300       3    0    0    0     0          0         0      200       2    0    0    0     0       0          0',
    '  tun0:       7       1    0    0    0     0          0         0        9       1    0    0    0     0       0          0',
    '   wg1: garbage',
  ].join('\n');
  const link = (ifname: string, linkType: string) => ({ ifname, link_type: linkType });
  test.each([
    ['a WireGuard exit: wg0 only, not lo or eth0', [link('lo', 'loopback'), link('eth0', 'ether'), link('wg0', 'none')], [{ iface: 'wg0', received: 300, sent: 200 }]],
    ['an OpenVPN exit: tun0', [link('eth0', 'ether'), link('tun0', 'none')], [{ iface: 'tun0', received: 7, sent: 9 }]],
    ['a proxy exit: no tunnel interface', [link('lo', 'loopback'), link('eth0', 'ether')], []],
    ['two tunnels, sorted by name', [link('wg0', 'none'), link('tun0', 'none')], [{ iface: 'tun0', received: 7, sent: 9 }, { iface: 'wg0', received: 300, sent: 200 }]],
    ['malformed entries and unreadable counters are skipped', [null, 'x', { ifname: 5, link_type: 'none' }, link('wg1', 'none'), link('wg9', 'none')], []],
  ])('%s', (_what, links, expected) => {
    expect(tunnelTraffic(links, netDev)).toEqual(expected);
  });
});

describe('the kill switch at boot (pic fence)', () => {
  const chains = egressChainsOf('home');
  const mail = fenceRule(chains, 'br-1234567890ab', { name: 'mail', address: '172.20.0.21' });
  const files = fenceRule(chains, 'br-1234567890ab', { name: 'files', address: '172.20.0.22' });
  const fence = { cell: 'home', chain: chains.fence, parent: 'DOCKER-USER', rules: [mail] };
  const jumpToFence = `-A DOCKER-USER -j ${chains.fence}`;

  test.each<[string, { chains: Set<string>; rules: string[] } | undefined, string | undefined]>([
    [
      'after a reboot, before dockerd: DOCKER-USER made and jumped to from FORWARD, then the fence',
      { chains: new Set(['INPUT', 'FORWARD', 'OUTPUT']), rules: [] },
      `*filter\n:DOCKER-USER - [0:0]\n:${chains.fence} - [0:0]\n-F ${chains.fence}\n${mail}\n-I FORWARD 1 -j DOCKER-USER\n-I DOCKER-USER 1 -j ${chains.fence}\nCOMMIT\n`,
    ],
    [
      'no filter table printed at all: the same',
      undefined,
      `*filter\n:DOCKER-USER - [0:0]\n:${chains.fence} - [0:0]\n-F ${chains.fence}\n${mail}\n-I FORWARD 1 -j DOCKER-USER\n-I DOCKER-USER 1 -j ${chains.fence}\nCOMMIT\n`,
    ],
    [
      'dockerd running, the cell\'s chain gone: only the fence and its jump (DOCKER-USER\'s own rules untouched)',
      { chains: new Set(['FORWARD', 'DOCKER-USER']), rules: ['-A FORWARD -j DOCKER-USER', '-A DOCKER-USER -s 10.0.0.1/32 -j DROP', '-A DOCKER-USER -j RETURN'] },
      `*filter\n:${chains.fence} - [0:0]\n-F ${chains.fence}\n${mail}\n-I DOCKER-USER 1 -j ${chains.fence}\nCOMMIT\n`,
    ],
    [
      'in place already: nothing to write',
      { chains: new Set(['FORWARD', 'DOCKER-USER', chains.fence]), rules: ['-A FORWARD -j DOCKER-USER', jumpToFence, mail] },
      undefined,
    ],
    [
      'a live rule the record lacks (pic fenced another since) is kept: a boot never lifts a fence',
      { chains: new Set(['FORWARD', 'DOCKER-USER', chains.fence]), rules: ['-A FORWARD -j DOCKER-USER', jumpToFence, files] },
      `*filter\n:${chains.fence} - [0:0]\n-F ${chains.fence}\n${files}\n${mail}\nCOMMIT\n`,
    ],
  ])('%s', (_name, filter, expected) => {
    expect(renderBootFence(fence, filter)).toBe(expected);
  });

  test('on an engine without DOCKER-USER the fence hangs from FORWARD, and no DOCKER-USER is made', () => {
    const forward = { ...fence, parent: 'FORWARD', rules: [fenceRule(egressChainsOf('home', false), 'br-1234567890ab', { name: 'mail', address: '172.20.0.21' })] };
    expect(renderBootFence(forward, { chains: new Set(['FORWARD']), rules: [] })).toBe(
      `*filter\n:${chains.fence} - [0:0]\n-F ${chains.fence}\n${forward.rules[0]}\n-I FORWARD 1 -j ${chains.fence}\nCOMMIT\n`,
    );
  });

  test.each<[string, unknown, string[]]>([
    ['a record as pic writes it', fence, []],
    ['no rules', { ...fence, rules: [] }, []],
    ['not an object', [fence], ['is not an object with cell, chain, parent and rules']],
    ['a chain that is not a fence chain', { ...fence, chain: 'INPUT' }, ['"chain" must be PIC-EGK- and 8 hex digits', '"rules"[0] is not a fence rule of pic\'s']],
    ['another parent', { ...fence, parent: 'OUTPUT' }, ['"parent" must be DOCKER-USER or FORWARD']],
    ['a rule that accepts', { ...fence, rules: [mail.replace('-j DROP', '-j ACCEPT')] }, ['"rules"[0] is not a fence rule of pic\'s']],
    ['a rule with something appended', { ...fence, rules: [`${mail}\n-A INPUT -j ACCEPT`] }, ['"rules"[0] is not a fence rule of pic\'s']],
    ['a rule of another chain', { ...fence, rules: [mail.replace(chains.fence, 'PIC-EGK-00000000')] }, ['"rules"[0] is not a fence rule of pic\'s']],
    ['in and out on different interfaces', { ...fence, rules: [mail.replace('! -o br-1234567890ab', '! -o eth0')] }, ['"rules"[0] is not a fence rule of pic\'s']],
    ['no cell', { ...fence, cell: '' }, ['"cell" must be the cell\'s name']],
  ])('a record read back: %s', (_name, value, problems) => {
    expect(checkBootFence(value).problems).toEqual(problems);
  });

  test('every rule fenceRule writes is a fence rule', () => {
    expect(isFenceRule(chains.fence, mail)).toBe(true);
    expect(isFenceRule(chains.fence, fenceRule(chains, 'eth1', { name: 'a.b_c-d', address: '10.255.0.1' }))).toBe(true);
  });
});
