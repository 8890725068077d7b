/**
 * What the WireGuard interface in the core container runs, from `wg show <if> dump` (through the
 * Docker exec API). The private key is read to be compared, never reported.
 */
import type Dockerode from 'dockerode';
import { execInContainer } from '../shared/exec.js';
import type { OwnedContainer } from '../shared/owned-container.js';

export interface ObservedInterface {
  /** '(none)' until a key is set. */
  privateKey: string;
  listenPort: number;
  /** Public key → allowed IPs (sorted, comma-joined) and the latest handshake (seconds, 0 never). */
  peers: Map<string, { allowedIps: string; latestHandshake: number }>;
}

export function parseDump(stdout: string): ObservedInterface {
  const [head = '', ...rest] = stdout.split('\n').filter((l) => l.trim() !== '');
  const [privateKey = '(none)', , port = '0'] = head.split('\t');
  const peers = new Map<string, { allowedIps: string; latestHandshake: number }>();
  for (const line of rest) {
    const [publicKey = '', , , allowed = '(none)', handshake = '0'] = line.split('\t');
    const allowedIps = allowed === '(none)' ? '' : allowed.split(',').map((s) => s.trim()).sort().join(',');
    peers.set(publicKey, { allowedIps, latestHandshake: Number(handshake) || 0 });
  }
  return { privateKey, listenPort: Number(port) || 0, peers };
}

export async function observeInterface(docker: Dockerode, container: OwnedContainer, iface: string): Promise<ObservedInterface> {
  const result = await execInContainer(docker, container, ['wg', 'show', iface, 'dump']);
  if (result.exitCode !== 0) throw new Error(`wg show ${iface} dump in ${container.name} exited ${result.exitCode}: ${result.stderr.trim()}`);
  return parseDump(result.stdout);
}
