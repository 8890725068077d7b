/**
 * The key pairs pic makes are WireGuard's: `wg pubkey` (wireguard-tools) derives the same public
 * key from each private key. The key file is 0600, the server pair is made once, and peers'
 * pairs follow the PeerAccounts (kept while held, dropped when deleted).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateKeyPair, WireguardKeyStore } from '../../state/wireguard-keys.js';

const run = promisify(execFile);

async function wgPubkey(privateKey: string): Promise<string> {
  const child = execFile('wg', ['pubkey']);
  const out = new Promise<string>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (c: Buffer) => (text += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text.trim()) : reject(new Error(`wg pubkey exited ${code}`))));
  });
  child.stdin!.end(`${privateKey}\n`);
  return out;
}

test('wg pubkey agrees with every generated pair', async () => {
  await run('wg', ['--version']);
  for (let i = 0; i < 8; i++) {
    const pair = generateKeyPair();
    expect(pair.privateKey).toMatch(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/);
    expect(await wgPubkey(pair.privateKey)).toBe(pair.publicKey);
  }
});

test('the key file: 0600, the server pair kept, peer pairs follow the documents', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-wg-keys-'));
  try {
    const store = new WireguardKeyStore(path.join(dir, 'wireguard', 'keys.json'));
    const first = await store.ensure(['alice', 'bob']);
    expect(first.changed).toBe(true);
    expect((await fs.stat(store.file)).mode & 0o777).toBe(0o600);
    const again = await new WireguardKeyStore(store.file).ensure(['alice', 'bob']);
    expect(again.changed).toBe(false);
    expect(again.server).toEqual(first.server);
    expect(again.peers.alice).toEqual(first.peers.alice);
    // bob held (its file broken), carol new, alice deleted.
    const next = await store.ensure(['carol'], ['bob']);
    expect(next.server).toEqual(first.server);
    expect(next.peers.bob).toEqual(first.peers.bob);
    expect(next.peers.alice).toBeUndefined();
    expect(Object.keys((await store.load()).peers).sort()).toEqual(['bob', 'carol']);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
