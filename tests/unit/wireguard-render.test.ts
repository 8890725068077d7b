/**
 * The VPN's texts and plans, pure: the wg-quick file a peer gets and the `wg syncconf` input of
 * the server as golden files, `wg show dump` parsing and the peer-set plan as tables.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseDump } from '../../reconcilers/wireguard/observe.js';
import { planPeerSet } from '../../reconcilers/wireguard/plan.js';
import { renderPeerFile, renderServerConfig, type PeerFileInput, type ServerConfig } from '../../reconcilers/wireguard/render.js';

const GOLDEN = path.join(process.cwd(), 'tests', 'golden', 'wireguard');
const KEY = (c: string) => `${c.repeat(43)}=`;
const SERVER_PRIVATE = KEY('S');
const SERVER_PUBLIC = KEY('P');

const PEER: PeerFileInput = {
  peer: 'alice',
  privateKey: KEY('a'),
  publicKey: KEY('A'),
  address: '10.8.0.2',
  dns: '172.20.0.11',
  domain: 'alice.pic.ngo',
  serverPublicKey: SERVER_PUBLIC,
  endpoint: 'vpn.alice.pic.ngo:51820',
  allowedIps: ['10.8.0.0/24', '172.20.0.0/16'],
};

const SERVER: ServerConfig = {
  privateKey: SERVER_PRIVATE,
  listenPort: 51820,
  peers: [
    { name: 'carol', publicKey: KEY('C'), address: '10.8.0.4' },
    { name: 'alice', publicKey: KEY('A'), address: '10.8.0.2' },
    { name: 'bob', publicKey: KEY('B'), address: '10.8.0.3' },
  ],
};

const { dns: _dns, ...withoutDns } = PEER;
const { privateKey: _key, ...ownKey } = PEER;
const CASES: [string, string][] = [
  ['peer-generated.conf', renderPeerFile(PEER)],
  ['peer-own-key.conf', renderPeerFile(ownKey)],
  ['peer-no-dns.conf', renderPeerFile(withoutDns)],
  ['server.conf', renderServerConfig(SERVER)],
  ['server-no-peers.conf', renderServerConfig({ ...SERVER, peers: [] })],
];

describe('golden files', () => {
  test.each(CASES)('%s', async (file, rendered) => {
    const target = path.join(GOLDEN, file);
    if (process.env.UPDATE_GOLDEN) await fs.writeFile(target, rendered);
    expect(rendered).toBe(await fs.readFile(target, 'utf8'));
  });

  test('the server config does not depend on the order peers come in', () => {
    expect(renderServerConfig({ ...SERVER, peers: [...SERVER.peers].reverse() })).toBe(renderServerConfig(SERVER));
  });
});

describe('parseDump', () => {
  test('interface line and peers, allowed IPs sorted', () => {
    const dump = [`${SERVER_PRIVATE}\t${SERVER_PUBLIC}\t51820\toff`, `${KEY('A')}\t(none)\t192.0.2.7:4242\t10.8.0.2/32\t1764600000\t10\t20\t25`, `${KEY('B')}\t(none)\t(none)\t10.8.0.9/32,10.8.0.3/32\t0\t0\t0\toff`].join('\n');
    const observed = parseDump(`${dump}\n`);
    expect(observed.privateKey).toBe(SERVER_PRIVATE);
    expect(observed.listenPort).toBe(51820);
    expect([...observed.peers.entries()]).toEqual([
      [KEY('A'), { allowedIps: '10.8.0.2/32', latestHandshake: 1764600000 }],
      [KEY('B'), { allowedIps: '10.8.0.3/32,10.8.0.9/32', latestHandshake: 0 }],
    ]);
  });

  test('a fresh interface has no key', () => {
    expect(parseDump('(none)\t(none)\t41234\toff\n')).toMatchObject({ privateKey: '(none)', listenPort: 41234 });
  });
});

describe('planPeerSet', () => {
  const live = (peers: [string, string][], privateKey = SERVER_PRIVATE, listenPort = 51820) => ({
    privateKey,
    listenPort,
    peers: new Map(peers.map(([k, a]) => [k, { allowedIps: a, latestHandshake: 0 }])),
  });
  const all: [string, string][] = SERVER.peers.map((p) => [p.publicKey, `${p.address}/32`]);
  const cases: [string, ReturnType<typeof live>, string[]][] = [
    ['in sync: nothing', live(all), []],
    ['a fresh interface: key, port and every peer', live([], '(none)', 41234), ['~ interface: server private key set', '~ interface: listen port 41234 → 51820', `+ peer alice (${KEY('A')}) at 10.8.0.2`, `+ peer bob (${KEY('B')}) at 10.8.0.3`, `+ peer carol (${KEY('C')}) at 10.8.0.4`]],
    ['one removed, one added', live([...all.slice(0, 2), [KEY('D'), '10.8.0.5/32']]), [`- peer ${KEY('D')}`, `+ peer bob (${KEY('B')}) at 10.8.0.3`]],
    ['an address moved', live([all[0]!, [KEY('A'), '10.8.0.9/32'], all[2]!]), ['~ peer alice: allowed IPs 10.8.0.9/32 → 10.8.0.2/32']],
  ];
  test.each(cases)('%s', (_name, observed, lines) => {
    const plan = planPeerSet(SERVER, observed);
    expect(plan.lines).toEqual(lines);
    expect(plan.sync).toBe(lines.length > 0);
    for (const line of plan.lines) expect(line).not.toContain(SERVER_PRIVATE);
  });
});
