/**
 * The parsers of what the host reads from the VPN container: `iptables-save`, `ip -json -batch`
 * and WireGuard's UAPI answer. The files in tests/golden/observe/ were captured from the core
 * WireGuard image in one state, both ways: each host-side read must give the observation the
 * matching exec-side read (`wg show dump`, `ip rule show`, …) gave.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { ipRuleLine, parseIpRules, parseRoutes, routeLine } from '../../reconcilers/egress/observe.js';
import { chainOf, parseIptablesSave, type ChainRef } from '../../reconcilers/firewall/observe.js';
import { parseIpBatch } from '../../reconcilers/shared/container-netns.js';
import { parseDump, parseUapi } from '../../reconcilers/wireguard/observe.js';

const GOLDEN = path.join(process.cwd(), 'tests', 'golden', 'observe');
const golden = (file: string) => fs.readFile(path.join(GOLDEN, file), 'utf8');

describe('WireGuard UAPI get=1', () => {
  test('gives what wg show dump gave for the same interface (golden)', async () => {
    const fromUapi = parseUapi(await golden('uapi-get.txt'));
    expect(fromUapi).toEqual(parseDump(await golden('wg-show-dump.txt')));
    expect(fromUapi.privateKey).toBe('yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=');
    expect([...fromUapi.peers.values()].map((p) => p.allowedIps)).toEqual(['10.231.0.2/32,10.231.0.9/32', '10.231.0.3/32', '']);
  });

  test.each([
    ['no key, no peers', 'listen_port=0\nerrno=0\n\n', { privateKey: '(none)', listenPort: 0, peers: new Map() }],
    ['an all-zero key is no key', `private_key=${'0'.repeat(64)}\nlisten_port=7\nerrno=0\n\n`, { privateKey: '(none)', listenPort: 7, peers: new Map() }],
    [
      'a handshake time and keys of peers before the interface keys are not mixed up',
      `listen_port=1\npublic_key=${'11'.repeat(32)}\nlast_handshake_time_sec=1700000000\nallowed_ip=10.0.0.2/32\nlisten_port=9\nerrno=0\n\n`,
      { privateKey: '(none)', listenPort: 1, peers: new Map([[Buffer.alloc(32, 0x11).toString('base64'), { allowedIps: '10.0.0.2/32', latestHandshake: 1700000000 }]]) },
    ],
  ])('%s', (_name, text, expected) => {
    expect(parseUapi(text)).toEqual(expected);
  });

  test('property: any peer set survives the round trip through UAPI text as it does through dump text', () => {
    const key = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b));
    const cidr = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 32 })).map(([o, l]) => `10.0.${o}.1/${l}`);
    const peer = fc.record({ key, allowed: fc.uniqueArray(cidr, { maxLength: 4 }), handshake: fc.nat() });
    fc.assert(
      fc.property(key, fc.integer({ min: 0, max: 65535 }), fc.uniqueArray(peer, { selector: (p) => p.key.toString('hex'), maxLength: 5 }), (priv, port, peers) => {
        const uapi = [`private_key=${priv.toString('hex')}`, `listen_port=${port}`];
        const dump = [`${priv.toString('base64')}\tpub\t${port}\toff`];
        for (const p of peers) {
          uapi.push(`public_key=${p.key.toString('hex')}`, `last_handshake_time_sec=${p.handshake}`, ...p.allowed.map((a) => `allowed_ip=${a}`));
          dump.push(`${p.key.toString('base64')}\t(none)\t(none)\t${p.allowed.join(',') || '(none)'}\t${p.handshake}\t0\t0\toff`);
        }
        const fromUapi = parseUapi(`${uapi.join('\n')}\nerrno=0\n\n`);
        const fromDump = parseDump(`${dump.join('\n')}\n`);
        if (priv.every((b) => b === 0)) fromDump.privateKey = '(none)';
        expect(fromUapi).toEqual(fromDump);
      }),
    );
  });
});

describe('iptables-save', () => {
  const refs: [ChainRef, ReturnType<typeof chainOf>][] = [
    [{ table: 'filter', chain: 'PIC-SERVICES', parent: 'FORWARD' }, { exists: true, jumps: 1, rules: ['-A PIC-SERVICES -d 172.20.0.20/32 -p tcp -m tcp --dport 443 -m comment --comment "pic:web app" -j ACCEPT'] }],
    [{ table: 'filter', chain: 'PIC-KILLSWITCH', parent: 'FORWARD' }, { exists: true, jumps: 2, rules: ['-A PIC-KILLSWITCH ! -o wg0 -m mark --mark 0x1001 -m comment --comment "pic:home" -j DROP'] }],
    [{ table: 'mangle', chain: 'PIC-EGRESS', parent: 'PREROUTING' }, { exists: true, jumps: 1, rules: ['-A PIC-EGRESS -s 172.20.0.21/32 -m comment --comment "pic:notes" -j MARK --set-xmark 0x1001/0xffffffff'] }],
    [{ table: 'nat', chain: 'PIC-TUNNEL-NAT', parent: 'POSTROUTING' }, { exists: true, jumps: 0, rules: ['-A PIC-TUNNEL-NAT -s 10.231.0.0/24 ! -o wg0 -j MASQUERADE'] }],
    [{ table: 'filter', chain: 'PIC-TUNNEL', parent: 'FORWARD' }, { exists: false, jumps: 0, rules: [] }],
    [{ table: 'raw', chain: 'PIC-X', parent: 'PREROUTING' }, { exists: false, jumps: 0, rules: [] }],
  ];

  test.each(refs)('%j from one save of every table (golden)', async (ref, expected) => {
    expect(chainOf(parseIptablesSave(await golden('iptables-save.txt')), ref)).toEqual(expected);
  });

  test('a chain of the same name in another table is not this one', () => {
    const tables = parseIptablesSave('*nat\n:PIC-A - [0:0]\n-A PIC-A -j RETURN\nCOMMIT\n*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j PIC-A\nCOMMIT\n');
    expect(chainOf(tables, { table: 'filter', chain: 'PIC-A', parent: 'FORWARD' })).toEqual({ exists: false, rules: [], jumps: 1 });
    expect(chainOf(tables, { table: 'nat', chain: 'PIC-A', parent: 'POSTROUTING' })).toEqual({ exists: true, rules: ['-A PIC-A -j RETURN'], jumps: 0 });
  });

  test('property: rules of a saved chain come back in order and normalised, whatever else the table holds', () => {
    const rule = fc.constantFrom('-j ACCEPT', '-s 10.0.0.0/8 -j DROP', '-m comment --comment "a b" -j RETURN', '-m comment --comment x -j ACCEPT');
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 6 }), fc.array(rule, { maxLength: 6 }), (own, other) => {
        const text = ['# Generated', '*filter', ':FORWARD ACCEPT [0:0]', ':PIC-O - [0:0]', ':OTHER - [0:0]', ...other.map((r) => `-A OTHER ${r}`), ...own.map((r) => `-A PIC-O ${r}`), 'COMMIT', '# Completed'].join('\n');
        const got = chainOf(parseIptablesSave(text), { table: 'filter', chain: 'PIC-O', parent: 'FORWARD' });
        expect(got.rules).toEqual(own.map((r) => `-A PIC-O ${r}`.replace('--comment x ', '--comment "x" ')));
      }),
    );
  });
});

describe('ip -json -batch', () => {
  test('rules and routes read as JSON give what the text listings gave (golden)', async () => {
    const [rules = [], routes = []] = parseIpBatch(await golden('ip-json-batch.txt'), 3);
    expect(parseIpRules(rules.map(ipRuleLine).join('\n'))).toEqual(parseIpRules(await golden('ip-rule-show.txt')));
    expect(parseRoutes(routes.map(routeLine).join('\n'))).toEqual(parseRoutes(await golden('ip-route-show-table-all.txt')));
  });

  test.each([
    ['a plain fwmark rule', { priority: 10001, src: 'all', fwmark: '0x1001', table: '1001' }, '10001:\tfrom all fwmark 0x1001 lookup 1001'],
    ['a masked mark and a source prefix', { priority: 5, src: '10.9.0.0', srclen: 16, fwmark: '0x2', fwmask: '0xff', table: '7' }, '5:\tfrom 10.9.0.0/16 fwmark 0x2/0xff lookup 7'],
    ['a negated rule', { priority: 6, not: null, src: 'all', table: 'main' }, '6:\tnot from all lookup main'],
    ['an attribute not spelt out still shows', { priority: 10001, src: 'all', fwmark: '0x1001', iif: 'eth0', table: '1001' }, '10001:\tfrom all fwmark 0x1001 iif eth0 lookup 1001'],
  ])('rule: %s', (_name, entry, line) => {
    expect(ipRuleLine(entry)).toBe(line);
  });

  test.each([
    ['through an interface', { dst: 'default', dev: 'wgx0', table: '1001', scope: 'link', flags: [] }, 'default dev wgx0 table 1001 scope link'],
    ['unreachable', { type: 'unreachable', dst: 'default', table: '1002', flags: [] }, 'unreachable default table 1002'],
    ['through a gateway, link down', { dst: 'default', gateway: '10.0.0.1', dev: 'eth1', table: '1003', flags: ['linkdown'] }, 'default via 10.0.0.1 dev eth1 table 1003 linkdown'],
  ])('route: %s', (_name, entry, line) => {
    expect(routeLine(entry)).toBe(line);
  });

  test('a batch whose output does not match its commands is an error', () => {
    expect(() => parseIpBatch('[]\n', 3)).toThrow(/expected 3 JSON arrays, got 1/);
    expect(() => parseIpBatch('[]\n{}\n', 2)).toThrow(/expected 2/);
  });
});
