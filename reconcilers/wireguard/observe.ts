/**
 * What the WireGuard interface in the core container runs: from its UAPI socket (wireguard-go's
 * `get=1`, read from the host through the container's root, no process started), or from `wg
 * show <if> dump` by exec where the host cannot read it (shared/container-netns.ts). Both give
 * the same observation. The private key is read to be compared, never reported.
 */
import type { ContainerNetworkReader } from '../shared/container-netns.js';

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

/**
 * The answer to a UAPI `get=1`: `key=value` lines, the interface's first, then each peer's from
 * its `public_key` on; keys in hex (base64 here, as `wg` prints them). Pure.
 */
export function parseUapi(text: string): ObservedInterface {
  const observed: ObservedInterface = { privateKey: '(none)', listenPort: 0, peers: new Map() };
  let peer: { key: string; allowed: string[]; latestHandshake: number } | undefined;
  const flush = () => {
    if (peer) observed.peers.set(peer.key, { allowedIps: [...peer.allowed].sort().join(','), latestHandshake: peer.latestHandshake });
  };
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (at <= 0) continue;
    const key = line.slice(0, at);
    const value = line.slice(at + 1);
    if (key === 'public_key') {
      flush();
      peer = { key: hexToBase64(value), allowed: [], latestHandshake: 0 };
    } else if (!peer) {
      if (key === 'private_key') observed.privateKey = /^0+$/.test(value) ? '(none)' : hexToBase64(value);
      else if (key === 'listen_port') observed.listenPort = Number(value) || 0;
    } else if (key === 'allowed_ip') {
      peer.allowed.push(value);
    } else if (key === 'last_handshake_time_sec') {
      peer.latestHandshake = Number(value) || 0;
    }
  }
  flush();
  return observed;
}

function hexToBase64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

export async function observeInterface(reader: ContainerNetworkReader, iface: string): Promise<ObservedInterface> {
  const read = await reader.wireguard(iface);
  return read.format === 'uapi' ? parseUapi(read.text) : parseDump(read.text);
}
