/**
 * Pure: the wanted interface against the running one → whether `wg syncconf` must run, and what
 * changes (one line each; keys shown by their public half, the private key never).
 */
import { byText } from '../../crds/values.js';
import type { ServerConfig } from './render.js';
import type { ObservedInterface } from './observe.js';

export interface PeerSetPlan {
  sync: boolean;
  lines: string[];
}

export function planPeerSet(wanted: ServerConfig, observed: ObservedInterface): PeerSetPlan {
  const lines: string[] = [];
  if (observed.privateKey !== wanted.privateKey) lines.push('~ interface: server private key set');
  if (observed.listenPort !== wanted.listenPort) lines.push(`~ interface: listen port ${observed.listenPort} → ${wanted.listenPort}`);
  const desired = new Map(wanted.peers.map((p) => [p.publicKey, p]));
  for (const [key] of observed.peers) if (!desired.has(key)) lines.push(`- peer ${key}`);
  for (const peer of [...wanted.peers].sort(byText((p) => p.name))) {
    const live = observed.peers.get(peer.publicKey);
    if (!live) lines.push(`+ peer ${peer.name} (${peer.publicKey}) at ${peer.address}`);
    else if (live.allowedIps !== `${peer.address}/32`) lines.push(`~ peer ${peer.name}: allowed IPs ${live.allowedIps || 'none'} → ${peer.address}/32`);
  }
  return { sync: lines.length > 0, lines };
}
