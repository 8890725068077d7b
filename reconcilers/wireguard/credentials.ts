/**
 * A peer's VPN settings as `pic credentials` prints them: read from the stores the wireguard
 * resource keeps (keys, addresses) and the Cell, rendered by render.ts. Reads only; a peer that
 * has no address yet (the operator has not run since it was added) is an error saying so.
 */
import { withCoreDefaults, dnsServerAddressOf, vpnNetworkOf } from '../core/spec.js';
import type { CellDocument, PeerAccountDocument } from '../../crds/types.js';
import { peerKey } from '../../state/document-keys.js';
import { addressStoreOf, keyStoreOf } from './index.js';
import { renderPeerFile, type PeerFileInput } from './render.js';

export class PeerSettingsError extends Error {
  override readonly name = 'PeerSettingsError';
}

export async function peerWireguardInput(cellDoc: CellDocument, peer: PeerAccountDocument, stateRoot: string): Promise<PeerFileInput> {
  const cell = withCoreDefaults(cellDoc);
  const name = peer.metadata.name;
  if (!cell.spec.wireguard?.run) throw new PeerSettingsError(`the Cell does not ask pic to run WireGuard (spec.wireguard.run), so pic keeps no VPN settings for ${name}`);
  const endpoint = cell.spec.wireguard.endpoint;
  if (!endpoint) throw new PeerSettingsError(`the Cell names no spec.wireguard.endpoint (host:port peers connect to); set it to the cell's public name or address and UDP port`);
  const keys = await keyStoreOf(stateRoot).load();
  const addresses = addressStoreOf(stateRoot);
  await addresses.load();
  const address = addresses.assignmentOf(peerKey(name));
  const own = peer.spec.wireguard?.publicKey;
  const pair = keys.peers[name];
  if (!keys.server || !address || (!own && !pair)) {
    throw new PeerSettingsError(`peer ${name} has no VPN address or key yet: run the operator (pic run) so it converges the peer set first`);
  }
  const vpn = vpnNetworkOf(cell);
  const dns = dnsServerAddressOf(cell);
  return {
    peer: name,
    ...(own ? {} : { privateKey: pair!.privateKey }),
    publicKey: own ?? pair!.publicKey,
    address,
    ...(dns ? { dns } : {}),
    domain: cell.spec.domain,
    serverPublicKey: keys.server.publicKey,
    endpoint,
    allowedIps: [vpn.subnet, cell.spec.network.subnet],
  };
}

export async function peerWireguardFile(cell: CellDocument, peer: PeerAccountDocument, stateRoot: string): Promise<string> {
  return renderPeerFile(await peerWireguardInput(cell, peer, stateRoot));
}
