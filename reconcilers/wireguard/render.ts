/**
 * The texts of the cell's VPN: the server's config as `wg syncconf` reads it, and a peer's
 * wg-quick file as `pic credentials PEER -o wireguard` prints it. Pure and deterministic: peers
 * sorted by public key, fixed field order, keys passed in.
 */
import { compareText } from '../../crds/values.js';

export interface ServerPeer {
  /** The PeerAccount's name, for the comment above its section. */
  name: string;
  publicKey: string;
  /** Its VPN address, e.g. 10.8.0.2. */
  address: string;
}

export interface ServerConfig {
  privateKey: string;
  listenPort: number;
  peers: readonly ServerPeer[];
}

/** `wg syncconf` input: the interface's key and port, one [Peer] per PeerAccount with its /32. */
export function renderServerConfig(config: ServerConfig): string {
  const lines = ['[Interface]', `PrivateKey = ${config.privateKey}`, `ListenPort = ${config.listenPort}`];
  for (const peer of [...config.peers].sort((a, b) => compareText(a.publicKey, b.publicKey))) {
    lines.push('', `# ${peer.name}`, '[Peer]', `PublicKey = ${peer.publicKey}`, `AllowedIPs = ${peer.address}/32`);
  }
  return `${lines.join('\n')}\n`;
}

export interface PeerFileInput {
  peer: string;
  /** Absent when the person keeps their own private key (spec.wireguard.publicKey). */
  privateKey?: string;
  publicKey: string;
  address: string;
  /** The cell's DNS server, reached through the tunnel. */
  dns?: string;
  /** Search domain handed to the peer with the DNS server. */
  domain: string;
  serverPublicKey: string;
  endpoint: string;
  /** Networks routed into the tunnel: the VPN subnet and the cell network. */
  allowedIps: readonly string[];
}

/**
 * The peer's wg-quick file. Without a private key pic knows (the person brought their own), the
 * file says where it goes instead of a PrivateKey line.
 */
export function renderPeerFile(input: PeerFileInput): string {
  const lines = [`# WireGuard settings of ${input.peer} for the cell ${input.domain}`, '[Interface]'];
  if (input.privateKey !== undefined) lines.push(`PrivateKey = ${input.privateKey}`);
  else lines.push(`# PrivateKey = <the private key of ${input.publicKey}, which you keep>`);
  lines.push(`Address = ${input.address}/32`);
  if (input.dns !== undefined) lines.push(`DNS = ${input.dns}, ${input.domain}`);
  lines.push('', '[Peer]', `PublicKey = ${input.serverPublicKey}`, `Endpoint = ${input.endpoint}`, `AllowedIPs = ${[...input.allowedIps].join(', ')}`, 'PersistentKeepalive = 25');
  return `${lines.join('\n')}\n`;
}
