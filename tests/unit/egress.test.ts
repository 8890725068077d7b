/**
 * Egress's pure parts: allocating fwmarks and tables, rendering the wanted routing (golden
 * files), parsing what `ip` prints, and the plan from wanted and observed routing.
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
import { isOwnIpRule, parseIpRules, parseLinks, parseRoutes, type ObservedEgress } from '../../reconcilers/egress/observe.js';
import { planEgress } from '../../reconcilers/egress/plan.js';
import { renderEgress, renderEgressRestore, type DesiredEgress } from '../../reconcilers/egress/render.js';
import { normaliseRule } from '../../reconcilers/firewall/observe.js';
import type { CellRouting } from '../../reconcilers/shared/types.js';
import { testRouting, type TestConnectionShape, type TestServiceShape } from '../support/wireguard.js';

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
  ])('%s', (_name, existing, documents, referenced, connections, added, freed, changed) => {
    const result = allocateEgress(existing, documents, referenced);
    expect(result.allocations).toEqual({ version: 1, connections });
    expect(result.added).toEqual(added);
    expect(result.freed).toEqual(freed);
    expect(result.changed).toBe(changed);
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

/** Render with allocations made from the routing itself. */
function render(routing: CellRouting, existing?: EgressAllocations): DesiredEgress {
  const names = routing.connections.map((c) => c.metadata.name);
  const referenced = routing.services.map((s) => s.egress.connection).filter((c) => c !== 'default');
  return renderEgress(routing, allocateEgress(existing, names, referenced).allocations);
}

/** Everything egress would write on an empty container, as one text. */
function renderedText(desired: DesiredEgress): string {
  const rules = desired.ipRules.map((r) => `ip rule add priority ${r.priority} fwmark 0x${r.fwmark.toString(16)} lookup ${r.table}`);
  const routes = desired.routes.map((r) => `ip route replace default dev ${r.interface} table ${r.table}   # ${r.connection}`);
  return ['# iptables-restore --noflush', renderEgressRestore(desired).trimEnd(), '# ip rules', ...rules, '# routes', ...routes, ''].join('\n');
}

describe('renderEgress (golden)', () => {
  const cases: [string, TestServiceShape[], TestConnectionShape[], EgressAllocations | undefined][] = [
    [
      'one-service.txt',
      [{ name: 'mail', ip: '172.20.0.20', connection: 'vpn-home' }, { name: 'notes', ip: '172.20.0.21' }],
      [{ name: 'vpn-home', interface: 'wg_ext0' }],
      undefined,
    ],
    [
      'mixed.txt',
      [
        { name: 'files', ip: '172.20.0.24', connection: 'vpn-home' },
        { name: 'mail', ip: '172.20.0.20', connection: 'vpn-home' },
        { name: 'notes', ip: '172.20.0.21', connection: 'onion' },
        { name: 'calendar', ip: '172.20.0.22', connection: 'office' },
        { name: 'web', ip: '172.20.0.23' },
      ],
      [
        { name: 'vpn-home', type: 'wireguard_ext', interface: 'wg_ext0' },
        { name: 'onion', type: 'tor' },
        { name: 'office', type: 'openvpn', interface: 'tun0', failOpen: true },
        { name: 'unused', type: 'sshuttle' },
      ],
      saved({ 'vpn-home': pair(2), unused: pair(0) }),
    ],
    ['nothing-routed.txt', [{ name: 'notes', ip: '172.20.0.21' }], [{ name: 'vpn-home', interface: 'wg_ext0' }], undefined],
  ];

  test.each(cases)('%s', async (name, services, connections, existing) => {
    const desired = render(testRouting('cell-wireguard', services, connections), existing);
    await expectGolden(name, renderedText(desired));
    for (const rule of [...desired.markRules, ...desired.killswitchRules]) expect(normaliseRule(rule)).toBe(rule);
  });

  test('failOpen: marked and routed, but no DROP rule', () => {
    const desired = render(testRouting('c', [{ name: 'mail', ip: '172.20.0.20', connection: 'vpn' }], [{ name: 'vpn', interface: 'wg1', failOpen: true }]));
    expect(desired.markRules.filter((r) => !r.includes('"pic:local"'))).toHaveLength(1);
    expect(desired.ipRules).toHaveLength(1);
    expect(desired.killswitchRules).toEqual([]);
  });

  test('without an interface every marked packet is dropped (fail closed)', () => {
    const desired = render(testRouting('c', [{ name: 'mail', ip: '172.20.0.20', connection: 'vpn' }], [{ name: 'vpn' }]));
    expect(desired.killswitchRules).toEqual(['-A PIC-KILLSWITCH -m mark --mark 0x1000 -m comment --comment "pic:vpn" -j DROP']);
    expect(desired.routes).toEqual([]);
  });

  test('an interface name that is not one is bad input naming the Connection', () => {
    let thrown: unknown;
    try {
      render(testRouting('c', [{ name: 'mail', ip: '172.20.0.20', connection: 'vpn' }], [{ name: 'vpn', interface: 'wg0; reboot' }]));
    } catch (err) {
      thrown = err;
    }
    expect(isTerminal(thrown)).toBe(true);
    expect((thrown as Error).message).toMatch(/Connection\/vpn: spec.interface/);
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
        'default dev wgx0 table 1000 scope link linkdown ',
        '10.0.0.0/8 dev eth0 table 1001 scope link ',
        'default dev tun0 table 200 scope link ',
        'local 127.0.0.1 dev lo table local proto kernel scope host src 127.0.0.1 ',
      ].join('\n'),
    );
    expect(routes).toEqual([
      { table: 1000, text: 'default dev wgx0 scope link linkdown' },
      { table: 1001, text: '10.0.0.0/8 dev eth0 scope link' },
    ]);
  });

  test('ip -o link show', () => {
    const links = parseLinks(
      [
        '1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00',
        '2: wgx0p@wgx0: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000\\    link/ether 8e:7e:62:13:f5:8a brd ff:ff:ff:ff:ff:ff',
        '3: wgx0@wgx0p: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue state LOWERLAYERDOWN mode DEFAULT group default qlen 1000',
        '325: eth0@if326: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default',
      ].join('\n'),
    );
    expect(links).toEqual([
      { name: 'lo', up: true },
      { name: 'wgx0p', up: false },
      { name: 'wgx0', up: true },
      { name: 'eth0', up: true },
    ]);
  });
});

describe('planEgress', () => {
  const routing = testRouting(
    'c',
    [
      { name: 'mail', ip: '172.20.0.20', connection: 'vpn' },
      { name: 'notes', ip: '172.20.0.21', connection: 'onion' },
    ],
    [
      { name: 'onion', type: 'tor' },
      { name: 'vpn', interface: 'wgx0' },
    ],
  );
  // onion: pair 0, vpn: pair 1
  const desired = render(routing);
  const live: ObservedEgress = {
    marks: { exists: true, rules: desired.markRules, jumps: 1 },
    killswitch: { exists: true, rules: desired.killswitchRules, jumps: 1 },
    ipRules: [
      { priority: 10000, text: 'from all fwmark 0x1000 lookup 1000', from: 'all', fwmark: '0x1000', lookup: '1000' },
      { priority: 10001, text: 'from all fwmark 0x1001 lookup 1001', from: 'all', fwmark: '0x1001', lookup: '1001' },
    ],
    routes: [{ table: 1001, text: 'default dev wgx0 scope link' }],
    links: [
      { name: 'lo', up: true },
      { name: 'wgx0', up: true },
    ],
  };
  const empty: ObservedEgress = {
    marks: { exists: false, rules: [], jumps: 0 },
    killswitch: { exists: false, rules: [], jumps: 0 },
    ipRules: [],
    routes: [],
    links: live.links,
  };
  const handDrop = '-A PIC-KILLSWITCH -s 10.1.1.1/32 -j DROP';

  test.each<[string, DesiredEgress, ObservedEgress, { lines: string[]; commands: string[][]; restore: boolean; waiting?: RegExp }]>([
    ['in sync', desired, live, { lines: [], commands: [], restore: false }],
    [
      'from nothing',
      desired,
      empty,
      {
        lines: [
          '+ -N PIC-KILLSWITCH',
          ...desired.killswitchRules.map((r) => `+ ${r}`),
          '+ -I FORWARD 1 -j PIC-KILLSWITCH',
          '+ -N PIC-EGRESS (table mangle)',
          ...desired.markRules.map((r) => `+ ${r}`),
          '+ -I PREROUTING 1 -j PIC-EGRESS (table mangle)',
          '+ ip route replace default dev wgx0 table 1001',
          '+ ip rule add priority 10000 fwmark 0x1000 lookup 1000',
          '+ ip rule add priority 10001 fwmark 0x1001 lookup 1001',
        ],
        commands: [
          ['route', 'replace', 'default', 'dev', 'wgx0', 'table', '1001'],
          ['rule', 'add', 'priority', '10000', 'fwmark', '0x1000', 'lookup', '1000'],
          ['rule', 'add', 'priority', '10001', 'fwmark', '0x1001', 'lookup', '1001'],
        ],
        restore: true,
      },
    ],
    [
      'a rule added by hand to the kill switch',
      desired,
      { ...live, killswitch: { exists: true, rules: [...desired.killswitchRules, handDrop], jumps: 1 } },
      { lines: [`- ${handDrop}`], commands: [], restore: true },
    ],
    [
      'a stale ip rule and a stale table',
      desired,
      {
        ...live,
        ipRules: [...live.ipRules, { priority: 10004, text: 'from all fwmark 0x1004 lookup 1004', from: 'all', fwmark: '0x1004', lookup: '1004' }],
        routes: [...live.routes, { table: 1004, text: 'default dev tun9 scope link' }],
      },
      {
        lines: ['- ip route default dev tun9 scope link table 1004', '- ip rule 10004: from all fwmark 0x1004 lookup 1004'],
        commands: [
          ['route', 'flush', 'table', '1004'],
          ['rule', 'del', 'priority', '10004', 'fwmark', '0x1004', 'lookup', '1004'],
        ],
        restore: false,
      },
    ],
    [
      'a rule at our priority pointing elsewhere',
      desired,
      { ...live, ipRules: [{ ...(live.ipRules[0] as ObservedEgress['ipRules'][number]), text: 'from all fwmark 0x1000 lookup 1009', lookup: '1009' }, live.ipRules[1] as ObservedEgress['ipRules'][number]] },
      {
        lines: ['- ip rule 10000: from all fwmark 0x1000 lookup 1009', '+ ip rule add priority 10000 fwmark 0x1000 lookup 1000'],
        commands: [
          ['rule', 'del', 'priority', '10000', 'fwmark', '0x1000', 'lookup', '1009'],
          ['rule', 'add', 'priority', '10000', 'fwmark', '0x1000', 'lookup', '1000'],
        ],
        restore: false,
      },
    ],
    [
      'the route through another interface',
      desired,
      { ...live, routes: [{ table: 1001, text: 'default dev eth0 scope link' }] },
      {
        lines: ['- ip route default dev eth0 scope link table 1001', '+ ip route replace default dev wgx0 table 1001'],
        commands: [
          ['route', 'flush', 'table', '1001'],
          ['route', 'replace', 'default', 'dev', 'wgx0', 'table', '1001'],
        ],
        restore: false,
      },
    ],
    [
      'the interface does not exist yet: waiting, not a change',
      desired,
      { ...live, routes: [], links: [{ name: 'lo', up: true }] },
      { lines: [], commands: [], restore: false, waiting: /Connection\/vpn: interface wgx0 does not exist yet/ },
    ],
    [
      'the interface is down: waiting',
      desired,
      { ...live, routes: [], links: [{ name: 'wgx0', up: false }] },
      { lines: [], commands: [], restore: false, waiting: /interface wgx0 is down/ },
    ],
    [
      'every service back to default: all withdrawn',
      render(testRouting('c', [{ name: 'mail', ip: '172.20.0.20' }], [{ name: 'onion', type: 'tor' }, { name: 'vpn', interface: 'wgx0' }])),
      live,
      {
        lines: [
          ...desired.killswitchRules.map((r) => `- ${r}`),
          ...desired.markRules.map((r) => `- ${r}`),
          '- ip route default dev wgx0 scope link table 1001',
          '- ip rule 10000: from all fwmark 0x1000 lookup 1000',
          '- ip rule 10001: from all fwmark 0x1001 lookup 1001',
        ],
        commands: [
          ['route', 'flush', 'table', '1001'],
          ['rule', 'del', 'priority', '10000', 'fwmark', '0x1000', 'lookup', '1000'],
          ['rule', 'del', 'priority', '10001', 'fwmark', '0x1001', 'lookup', '1001'],
        ],
        restore: true,
      },
    ],
  ])('%s', (_name, wanted, observed, expected) => {
    const plan = planEgress(wanted, observed);
    expect(plan.lines).toEqual(expected.lines);
    expect(plan.commands).toEqual(expected.commands);
    expect(plan.restore !== undefined).toBe(expected.restore);
    if (expected.waiting) expect(plan.waiting.join('\n')).toMatch(expected.waiting);
    else expect(plan.waiting).toEqual([]);
  });

  test('a chain in sync is left out of the restore input', () => {
    const plan = planEgress(desired, { ...live, marks: { exists: true, rules: [], jumps: 1 } });
    expect(plan.restore).toMatch(/^\*mangle\n:PIC-EGRESS - \[0:0\]\n-F PIC-EGRESS\n/);
    expect(plan.restore).not.toMatch(/PIC-KILLSWITCH/);
  });
});
