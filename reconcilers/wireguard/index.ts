/**
 * The VPN's peer set: every valid PeerAccount is a WireGuard peer of the core `cell-wireguard`,
 * with a key pair pic keeps (or the person's own public key) and a stable address from the peer
 * pool. Keys and addresses live under `<stateRoot>/wireguard/`; the peer set is applied with one
 * `wg syncconf` only when it differs from what `wg show` reports.
 */
import path from 'node:path';
import type { PeerAccountDocument } from '../../crds/types.js';
import { IpAllocationStore } from '../../state/ip-allocation.js';
import { WireguardKeyStore, type KeyPair } from '../../state/wireguard-keys.js';
import { nameInKey, peerKey } from '../../state/document-keys.js';
import { vpnNetworkOf, WIREGUARD_INTERFACE, type VpnNetwork } from '../core/spec.js';
import { readVia, resolveVpnContainer } from '../firewall/index.js';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';
import { syncPeerSet } from './apply.js';
import { observeInterface } from './observe.js';
import { planPeerSet } from './plan.js';
import { renderServerConfig, type ServerPeer } from './render.js';

export const WIREGUARD_KEY = 'Resource/wireguard';

export function wireguardStateDir(stateRoot: string): string {
  return path.join(stateRoot, 'wireguard');
}

export function keyStoreOf(stateRoot: string): WireguardKeyStore {
  return new WireguardKeyStore(path.join(wireguardStateDir(stateRoot), 'keys.json'));
}

/** The peers' VPN addresses; `dryRun`: computed as a reconcile would, never saved (`pic plan`). */
export function addressStoreOf(stateRoot: string, options: { dryRun?: boolean } = {}): IpAllocationStore {
  return new IpAllocationStore(path.join(wireguardStateDir(stateRoot), 'addresses.json'), options);
}

/** The public key a peer is known by: its own, or the one of the pair pic keeps for it. */
export function peerPublicKey(peer: PeerAccountDocument, pairs: Record<string, KeyPair>): string | undefined {
  return peer.spec.wireguard?.publicKey ?? pairs[peer.metadata.name]?.publicKey;
}

function generatedPeers(peers: readonly PeerAccountDocument[]): string[] {
  return peers.filter((p) => !p.spec.wireguard?.publicKey).map((p) => p.metadata.name);
}

/**
 * Every peer's VPN address: the one it holds while it stays (valid or held), a free one of the
 * pool otherwise. Addresses of peers no longer declared are freed first, so a new peer may take
 * the address of one removed in the same pass; the server's own address is never handed out.
 */
export async function allocatePeerAddresses(store: IpAllocationStore, vpn: VpnNetwork, peers: readonly string[], kept: readonly string[]): Promise<Map<string, string>> {
  await store.load();
  const keep = new Set([...kept, ...peers]);
  for (const owner of Object.keys(store.assignments())) {
    if (!keep.has(nameInKey(owner, 'PeerAccount') ?? '')) await store.release(owner);
  }
  const out = new Map<string, string>();
  for (const name of [...peers].sort()) {
    const { ip } = await store.allocate(peerKey(name), vpn.pool.text, vpn.subnet, new Set([vpn.serverAddress]));
    out.set(name, ip);
  }
  return out;
}

/** The peers whose keys and addresses are kept: every one the folder declares, valid or held. */
function keptPeersOf(input: CellRouting): string[] {
  return [...new Set([...(input.keptPeers ?? []), ...(input.peers ?? []).map((p) => p.metadata.name)])];
}

export const wireguardReconciler: ResourceReconciler = {
  key: WIREGUARD_KEY,

  async plan(input: CellRouting, ctx: ResourceContext): Promise<string[]> {
    const vpn = vpnNetworkOf(input.cell);
    const peers = input.peers ?? [];
    const stored = await keyStoreOf(ctx.stateRoot).load();
    // The reconcile's own allocation (a removed peer's address freed first, then the rest), computed and not saved.
    const addressOf = await allocatePeerAddresses(addressStoreOf(ctx.stateRoot, { dryRun: true }), vpn, peers.map((p) => p.metadata.name), keptPeersOf(input));
    const lines: string[] = [];
    if (!stored.server) lines.push('+ server key pair (generated once, kept 0600)');
    const wanted: ServerPeer[] = [];
    const unkeyed: string[] = [];
    for (const peer of peers) {
      const name = peer.metadata.name;
      const key = peerPublicKey(peer, stored.peers);
      if (!key) {
        lines.push(`+ key pair for ${name}`);
        unkeyed.push(`+ peer ${name} (its new key pair) at ${addressOf.get(name)}`);
      } else wanted.push({ name, publicKey: key, address: addressOf.get(name)! });
    }
    if (!stored.server) return [...lines, ...peers.map((p) => `+ peer ${p.metadata.name} at ${addressOf.get(p.metadata.name)}`)];
    const observed = await observeInterface((await resolveVpnContainer(input, ctx)).reader, WIREGUARD_INTERFACE);
    return [...lines, ...planPeerSet({ privateKey: stored.server.privateKey, listenPort: vpn.listenPort, peers: wanted }, observed).lines, ...unkeyed];
  },

  async reconcile(input: CellRouting, ctx: ResourceContext): Promise<ResourceOutcome> {
    const vpn = vpnNetworkOf(input.cell);
    const peers = input.peers ?? [];
    const kept = keptPeersOf(input);
    const keys = await keyStoreOf(ctx.stateRoot).ensure(generatedPeers(peers), kept);
    const addressOf = await allocatePeerAddresses(addressStoreOf(ctx.stateRoot), vpn, peers.map((p) => p.metadata.name), kept);
    const wanted: ServerPeer[] = peers.map((peer) => ({ name: peer.metadata.name, publicKey: peerPublicKey(peer, keys.peers)!, address: addressOf.get(peer.metadata.name)! }));
    const config = { privateKey: keys.server.privateKey, listenPort: vpn.listenPort, peers: wanted };
    const readable = await resolveVpnContainer(input, ctx);
    const { container } = readable;
    const observed = await observeInterface(readable.reader, WIREGUARD_INTERFACE);
    const plan = planPeerSet(config, observed);
    const facts = { container: container.name, readVia: readVia(readable), serverPublicKey: keys.server.publicKey, listenPort: vpn.listenPort, peers: Object.fromEntries(wanted.map((p) => [p.name, p.address])) };
    const head = `${wanted.length} peer${wanted.length === 1 ? '' : 's'} on ${WIREGUARD_INTERFACE} in ${container.name}`;
    if (!plan.sync) return { changed: false, summary: `${head}; unchanged`, facts };
    // Reads of the pass taken before or during the write are not handed out again.
    ctx.core?.wrote();
    await syncPeerSet(ctx.docker, container, WIREGUARD_INTERFACE, renderServerConfig(config));
    ctx.core?.wrote();
    ctx.event('PeersSynced', `${head}: ${plan.lines.join('; ')}`);
    return { changed: true, summary: `${head}; synced (${plan.lines.length} change${plan.lines.length === 1 ? '' : 's'})`, facts };
  },
};
