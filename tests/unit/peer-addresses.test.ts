/**
 * Peer addresses, as a property: whatever sequence of PeerAccounts is added and removed, no two
 * peers share an address, none gets the server's, every address lies in the peer pool, a peer
 * keeps its address as long as it stays, and a reload of the file gives the same assignments.
 */
import fc from 'fast-check';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CellDocument } from '../../crds/types.js';
import { vpnNetworkOf } from '../../reconcilers/core/spec.js';
import { addressStoreOf, allocatePeerAddresses } from '../../reconcilers/wireguard/index.js';
import { parseIpv4 } from '../../crds/ipv4.js';
import { testCell } from '../support/cell-document.js';

const cell = (subnet: string, peerPool?: string): CellDocument =>
  testCell({ wireguard: { subnet, ...(peerPool ? { peerPool } : {}), run: { image: 'x', address: '172.20.0.12' } } });

const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];

test('vpn defaults: the server takes the first address, peers the rest', () => {
  const vpn = vpnNetworkOf(cell('10.8.0.0/24'));
  expect(vpn).toMatchObject({ subnet: '10.8.0.0/24', serverAddress: '10.8.0.1', prefixLength: 24, listenPort: 51820 });
  expect(vpn.pool.text).toBe('10.8.0.2-10.8.0.254');
});

test('no two peers share an address, and addresses are stable across steps and reloads', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.subarray(NAMES), { minLength: 1, maxLength: 12 }), fc.constantFrom('10.9.0.0/24', '10.9.0.0/28'), async (steps, subnet) => {
      const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-peer-addresses-'));
      try {
        const vpn = vpnNetworkOf(cell(subnet));
        let previous = new Map<string, string>();
        for (const peers of steps) {
          if (peers.length > vpn.pool.size) continue;
          const got = await allocatePeerAddresses(addressStoreOf(root), vpn, peers, []);
          const values = [...got.values()];
          expect(new Set(values).size).toBe(values.length);
          expect(values).not.toContain(vpn.serverAddress);
          for (const ip of values) {
            const n = parseIpv4(ip)!;
            expect(n >= vpn.pool.start && n <= vpn.pool.end).toBe(true);
          }
          for (const name of peers) if (previous.has(name)) expect(got.get(name)).toBe(previous.get(name));
          // A new store instance (an operator restarted) reads the same assignments back.
          const again = addressStoreOf(root);
          await again.load();
          for (const [name, ip] of got) expect(again.assignmentOf(`PeerAccount/${name}`)).toBe(ip);
          expect(Object.keys(again.assignments()).length).toBe(peers.length);
          previous = got;
        }
      } finally {
        await fs.rm(root, { recursive: true, force: true });
      }
    }),
    { numRuns: 40 },
  );
});

test('a held peer keeps its address; a deleted one frees it for the next', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-peer-addresses-'));
  try {
    const vpn = vpnNetworkOf(cell('10.9.0.0/24'));
    const first = await allocatePeerAddresses(addressStoreOf(root), vpn, ['alice', 'bob'], []);
    const held = await allocatePeerAddresses(addressStoreOf(root), vpn, ['carol'], ['alice']);
    expect(held.get('carol')).toBe(first.get('bob'));
    const after = addressStoreOf(root);
    await after.load();
    expect(after.assignmentOf('PeerAccount/alice')).toBe(first.get('alice'));
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});

test('a dry run allocates as the run does, and saves nothing', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-peer-addresses-'));
  try {
    const vpn = vpnNetworkOf(cell('10.9.0.0/24'));
    await allocatePeerAddresses(addressStoreOf(root), vpn, ['alice', 'bob', 'carol'], []);
    const file = path.join(root, 'wireguard', 'addresses.json');
    const before = await fs.readFile(file, 'utf8');
    // bob goes and dave comes in the same change: bob's address is freed first, for dave.
    const planned = await allocatePeerAddresses(addressStoreOf(root, { dryRun: true }), vpn, ['alice', 'carol', 'dave'], []);
    expect(await fs.readFile(file, 'utf8')).toBe(before);
    const applied = await allocatePeerAddresses(addressStoreOf(root), vpn, ['alice', 'carol', 'dave'], []);
    expect(planned).toEqual(applied);
    expect(planned.get('dave')).toBe(JSON.parse(before).assignments['PeerAccount/bob']);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
});
