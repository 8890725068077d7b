/**
 * The credentials store on the real file system: layout, 0600, writes only on change,
 * serialised updates, no torn file ever visible (even to a process killed mid-write), and no
 * credential in its errors.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CredentialsStore, generatePassword } from '../../state/credentials.js';

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-credentials-'));
  file = path.join(dir, 'state', 'credentials.json');
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function readFile(): Promise<unknown> {
  return JSON.parse(await fs.readFile(file, 'utf8'));
}

describe('generatePassword', () => {
  test('16 random bytes as URL-safe base64: 22 characters, different every time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const p = generatePassword();
      expect(p).toMatch(/^[A-Za-z0-9_-]{22}$/);
      seen.add(p);
    }
    expect(seen.size).toBe(200);
  });
});

describe('CredentialsStore', () => {
  test('stores { service: { peer: { password } } } with mode 0600, sorted', async () => {
    const store = new CredentialsStore(file);
    await store.set('notes', 'bob', { password: 'b0b' });
    await store.set('notes', 'alice', { password: 'al1ce', pin: '1234' });
    await store.set('files', 'alice', { password: 'f1les' });
    expect(await readFile()).toEqual({
      files: { alice: { password: 'f1les' } },
      notes: { alice: { password: 'al1ce', pin: '1234' }, bob: { password: 'b0b' } },
    });
    expect(Object.keys((await readFile()) as object)).toEqual(['files', 'notes']);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(await store.get('notes', 'alice')).toEqual({ password: 'al1ce', pin: '1234' });
    expect(await store.get('notes', 'carol')).toBeUndefined();
    expect(await store.get('email', 'alice')).toBeUndefined();
    expect(await store.peersOf('notes')).toEqual(['alice', 'bob']);
    expect(await store.peersOf('email')).toEqual([]);
    expect(await store.servicesOf('alice')).toEqual(['files', 'notes']);
    expect(await store.servicesOf('bob')).toEqual(['notes']);
    expect(await new CredentialsStore(file).all()).toEqual(await readFile());
  });

  test('generates a password when none is given', async () => {
    const store = new CredentialsStore(file);
    const creds = await store.set('notes', 'alice');
    expect(creds.password).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(await store.get('notes', 'alice')).toEqual(creds);
  });

  test('writes only when something changes', async () => {
    const store = new CredentialsStore(file);
    await store.set('notes', 'alice', { password: 'same' });
    const before = await fs.stat(file);
    await new Promise((r) => setTimeout(r, 20));
    await store.set('notes', 'alice', { password: 'same' });
    expect(await store.remove('notes', 'nobody')).toBe(false);
    expect(await store.remove('email', 'alice')).toBe(false);
    const after = await fs.stat(file);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  test('remove drops the peer, and a service left empty', async () => {
    const store = new CredentialsStore(file);
    await store.set('notes', 'alice', { password: 'a' });
    await store.set('notes', 'bob', { password: 'b' });
    await store.set('files', 'alice', { password: 'c' });
    expect(await store.remove('notes', 'alice')).toBe(true);
    expect(await readFile()).toEqual({ files: { alice: { password: 'c' } }, notes: { bob: { password: 'b' } } });
    expect(await store.remove('files', 'alice')).toBe(true);
    expect(await readFile()).toEqual({ notes: { bob: { password: 'b' } } });
  });

  test('names such as __proto__ are stored like any other', async () => {
    const store = new CredentialsStore(file);
    await store.set('__proto__', 'constructor', { password: 'x' });
    expect(await new CredentialsStore(file).get('__proto__', 'constructor')).toEqual({ password: 'x' });
    expect(await store.get('notes', 'toString')).toBeUndefined();
  });

  test('concurrent updates from several store objects are all kept, and every read of the file parses', async () => {
    const stores = [new CredentialsStore(file), new CredentialsStore(file), new CredentialsStore(file)];
    let reading = true;
    let reads = 0;
    const reader = (async () => {
      while (reading) {
        try {
          JSON.parse(await fs.readFile(file, 'utf8'));
          reads++;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    const writes = Array.from({ length: 60 }, (_, i) => stores[i % 3]!.set(`svc${i % 4}`, `peer${i}`, { password: `p${i}` }));
    await Promise.all(writes);
    reading = false;
    await reader;
    expect(reads).toBeGreaterThan(0);
    const all = (await readFile()) as Record<string, Record<string, { password: string }>>;
    for (let i = 0; i < 60; i++) expect(all[`svc${i % 4}`]?.[`peer${i}`]).toEqual({ password: `p${i}` });
    expect((await fs.readdir(path.dirname(file))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  test('a writer killed at any moment leaves a file that parses', async () => {
    // A child process writes as fast as it can; it is killed with SIGKILL mid-stream, at a
    // moment nobody chooses, several times over. The file must parse after every kill.
    const moduleUrl = new URL('../../state/credentials.js', import.meta.url).href;
    const script = `
      const { CredentialsStore } = await import(${JSON.stringify(moduleUrl)});
      const store = new CredentialsStore(${JSON.stringify(file)});
      let i = 0;
      for (;;) { await store.set('notes', 'peer' + (i % 50), { password: 'x'.repeat(2000) + i }); if (++i === 5) process.stdout.write('go\\n'); }
    `;
    for (let round = 0; round < 5; round++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`writer exited early (${code})`)));
      });
      await new Promise((r) => setTimeout(r, 5 + round * 7));
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      const parsed = (await readFile()) as Record<string, Record<string, unknown>>;
      expect(Object.keys(parsed.notes ?? {}).length).toBeGreaterThan(0);
      expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
      expect(await new CredentialsStore(file).peersOf('notes')).not.toEqual([]);
    }
  });

  test('a corrupt file is refused without quoting it, and is not overwritten', async () => {
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, '{"notes": {"alice": {"password": "hunter2-secret"', { mode: 0o600 });
    const store = new CredentialsStore(file);
    await expect(store.get('notes', 'alice')).rejects.toThrow(/not valid JSON; refusing to overwrite it/);
    await expect(store.set('notes', 'bob')).rejects.toThrow(/refusing to overwrite/);
    try {
      await store.all();
    } catch (err) {
      expect((err as Error).message).not.toContain('hunter2');
    }
    expect(await fs.readFile(file, 'utf8')).toContain('hunter2-secret');
  });

  test('a file of the wrong shape is refused', async () => {
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, JSON.stringify({ notes: { alice: { pin: '1' } } }), { mode: 0o600 });
    await expect(new CredentialsStore(file).peersOf('notes')).rejects.toThrow(/expected \{ "<service>"/);
  });
});
