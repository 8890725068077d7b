/**
 * The WireGuard keys pic owns, in `<stateRoot>/wireguard/keys.json` (mode 0600): the server's
 * pair, generated once, and a pair per PeerAccount that does not bring its own public key.
 *
 * Private keys leave this file only for `wg syncconf` (the server's, on stdin) and for
 * `pic credentials -o wireguard` (the peer's own). No message of this module quotes a key.
 */
import { generateKeyPairSync } from 'node:crypto';
import { readJsonFile, serialiseOnFile, writeFileAtomic } from './atomic-write.js';

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

interface KeysFile {
  server?: KeyPair;
  peers: Record<string, KeyPair>;
}

const KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** A Curve25519 pair in the base64 form `wg genkey` / `wg pubkey` print. */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const d = privateKey.export({ format: 'jwk' }).d as string;
  const x = publicKey.export({ format: 'jwk' }).x as string;
  return { privateKey: Buffer.from(d, 'base64url').toString('base64'), publicKey: Buffer.from(x, 'base64url').toString('base64') };
}

function isPair(value: unknown): value is KeyPair {
  const v = value as KeyPair | null;
  return v !== null && typeof v === 'object' && KEY.test(String(v.privateKey)) && KEY.test(String(v.publicKey));
}

function isKeysFile(value: unknown): value is KeysFile {
  const v = value as KeysFile | null;
  if (v === null || typeof v !== 'object' || v.peers === null || typeof v.peers !== 'object') return false;
  return (v.server === undefined || isPair(v.server)) && Object.values(v.peers).every(isPair);
}

export class WireguardKeyStore {
  constructor(readonly file: string) {}

  private async read(): Promise<KeysFile> {
    const data = await readJsonFile<unknown>(this.file, { peers: {} });
    if (!isKeysFile(data)) throw new Error(`${this.file}: not a WireGuard key file pic wrote; refusing to overwrite it — fix or move it aside`);
    return { ...(data.server ? { server: data.server } : {}), peers: Object.assign(Object.create(null) as Record<string, KeyPair>, data.peers) };
  }

  private async write(data: KeysFile): Promise<void> {
    const peers: Record<string, KeyPair> = {};
    for (const name of Object.keys(data.peers).sort()) Object.defineProperty(peers, name, { value: data.peers[name], enumerable: true, writable: true, configurable: true });
    await writeFileAtomic(this.file, `${JSON.stringify({ server: data.server, peers }, null, 2)}\n`, 0o600);
  }

  /**
   * The server's pair and a pair for each of `generatedPeers` (missing ones are made). Pairs of
   * `keptPeers` (documents held while their file is broken) stay as they are; any other is dropped.
   */
  ensure(generatedPeers: readonly string[], keptPeers: readonly string[] = []): Promise<{ server: KeyPair; peers: Record<string, KeyPair>; changed: boolean }> {
    return serialiseOnFile(this.file, async () => {
      const data = await this.read();
      let changed = false;
      const server = data.server ?? generateKeyPair();
      if (!data.server) changed = true;
      const peers: Record<string, KeyPair> = Object.create(null) as Record<string, KeyPair>;
      for (const name of generatedPeers) {
        const known = data.peers[name];
        if (!known) changed = true;
        peers[name] = known ?? generateKeyPair();
      }
      for (const name of keptPeers) {
        const known = data.peers[name];
        if (known && !peers[name]) peers[name] = known;
      }
      if (Object.keys(data.peers).some((n) => !peers[n])) changed = true;
      if (changed) await this.write({ server, peers });
      return { server, peers, changed };
    });
  }

  /** What is stored, without creating anything (for `pic credentials`). */
  async load(): Promise<{ server?: KeyPair; peers: Record<string, KeyPair> }> {
    return this.read();
  }
}
