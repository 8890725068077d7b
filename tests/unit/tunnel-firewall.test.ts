/**
 * The tunnel's chains (what peers may reach, the return path) as golden files, one per Cell shape.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { CellDocument } from '../../crds/types.js';
import { renderTunnelChains } from '../../reconcilers/firewall/tunnel.js';
import { renderChainRestore } from '../../reconcilers/firewall/render.js';
import { TerminalError } from '../../reconcilers/errors.js';
import { testCell } from '../support/cell-document.js';

const GOLDEN = path.join(process.cwd(), 'tests', 'golden', 'tunnel');
const cell = testCell;
const WG = { run: { image: 'wg', address: '172.20.0.12' } };

const CASES: [string, CellDocument][] = [
  ['full-core', cell({ caddy: { run: { image: 'caddy', address: '172.20.0.10' } }, dns: { run: { image: 'dns', address: '172.20.0.11' } }, wireguard: WG })],
  ['admin-caddy', cell({ dns: { address: '172.20.0.5' }, wireguard: { ...WG, subnet: '10.99.0.0/24' } })],
  ['wireguard-only', cell({ wireguard: WG })],
];

test.each(CASES)('%s', async (name, doc) => {
  const text = renderTunnelChains(doc).map((spec) => renderChainRestore({ ...spec, insertJump: true })).join('');
  const target = path.join(GOLDEN, `${name}.rules`);
  if (process.env.UPDATE_GOLDEN) await fs.writeFile(target, text);
  expect(text).toBe(await fs.readFile(target, 'utf8'));
});

test('every chain ends by dropping what the tunnel was not allowed, and masquerades the VPN subnet', () => {
  const [forward, input, nat] = renderTunnelChains(CASES[0]![1]);
  expect(forward!.rules.at(-1)).toBe('-A PIC-TUNNEL -i wg0 -j DROP');
  expect(forward!.rules.at(-2)).toBe('-A PIC-TUNNEL -i wg0 -j PIC-SERVICES');
  expect(input!.rules.at(-1)).toBe('-A PIC-TUNNEL-IN -i wg0 -j DROP');
  expect(nat!.rules).toEqual(['-A PIC-TUNNEL-NAT -s 10.8.0.0/24 ! -o wg0 -j MASQUERADE']);
});

test('an address that is not IPv4 is refused, naming the field', () => {
  expect(() => renderTunnelChains(cell({ caddy: { run: { image: 'c', address: '172.20.0.10 -j ACCEPT' } }, wireguard: WG }))).toThrow(TerminalError);
});
