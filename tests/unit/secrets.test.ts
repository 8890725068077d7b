import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SecretsStore, generateSecret } from '../../state/secrets.js';

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-secrets-'));
  file = path.join(dir, 'state', 'service_secrets.json');
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function readFile(): Promise<Record<string, Record<string, string>>> {
  return JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, Record<string, string>>;
}

describe('generateSecret', () => {
  test('is 32 URL-safe characters, different every time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i += 1) {
      const secret = generateSecret();
      expect(secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
      seen.add(secret);
    }
    expect(seen.size).toBe(200);
  });
});

describe('SecretsStore', () => {
  test('generates missing secrets once, persists them 0600, and reuses them', async () => {
    const store = new SecretsStore(file);
    const first = await store.ensure('notes', ['DB_PASSWORD', 'API_KEY']);
    expect(Object.keys(first).sort()).toEqual(['API_KEY', 'DB_PASSWORD']);
    for (const value of Object.values(first)) expect(value).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(first.DB_PASSWORD).not.toBe(first.API_KEY);

    expect(await readFile()).toEqual({ notes: first });
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);

    const again = await new SecretsStore(file).ensure('notes', ['DB_PASSWORD', 'API_KEY']);
    expect(again).toEqual(first);
  });

  test('returns only the names asked for, in that order', async () => {
    const store = new SecretsStore(file);
    await store.ensure('notes', ['A', 'B', 'C']);
    const some = await store.ensure('notes', ['C', 'A']);
    expect(Object.keys(some)).toEqual(['C', 'A']);
  });

  test('a new name is added without touching existing secrets', async () => {
    const store = new SecretsStore(file);
    const first = await store.ensure('notes', ['DB_PASSWORD']);
    const second = await store.ensure('notes', ['DB_PASSWORD', 'NEW_ONE']);
    expect(second.DB_PASSWORD).toBe(first.DB_PASSWORD);
    expect(second.NEW_ONE).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(await readFile()).toEqual({ notes: { DB_PASSWORD: first.DB_PASSWORD, NEW_ONE: second.NEW_ONE } });
  });

  test('nothing new means no write at all (same inode, same mtime, same bytes)', async () => {
    const store = new SecretsStore(file);
    await store.ensure('notes', ['DB_PASSWORD']);
    const before = await fs.stat(file);
    const bytes = await fs.readFile(file, 'utf8');
    // Make any rewrite visible in the mtime even on coarse-grained file systems.
    const past = new Date(Date.now() - 60_000);
    await fs.utimes(file, past, past);
    const pinned = await fs.stat(file);

    await store.ensure('notes', ['DB_PASSWORD']);
    await new SecretsStore(file).ensure('notes', ['DB_PASSWORD']);
    await store.ensure('notes', []);

    const after = await fs.stat(file);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(pinned.mtimeMs);
    expect(await fs.readFile(file, 'utf8')).toBe(bytes);
    expect((await fs.readdir(path.dirname(file))).sort()).toEqual(['service_secrets.json']);
  });

  test('no secrets needed and no file yet: no file is created', async () => {
    await new SecretsStore(file).ensure('notes', []);
    await expect(fs.stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('two services ensuring at once both get persisted', async () => {
    const store = new SecretsStore(file);
    const results = await Promise.all([
      store.ensure('notes', ['DB_PASSWORD']),
      store.ensure('files', ['ADMIN_TOKEN', 'DB_PASSWORD']),
      store.ensure('calendar', ['KEY']),
      store.ensure('notes', ['DB_PASSWORD', 'SESSION']),
    ]);
    const [notes, files, calendar, notesAgain] = results;
    expect(notesAgain?.DB_PASSWORD).toBe(notes?.DB_PASSWORD);
    expect(await readFile()).toEqual({
      calendar,
      files,
      notes: { DB_PASSWORD: notes?.DB_PASSWORD, SESSION: notesAgain?.SESSION },
    });
  });

  test('two store objects on one file do not lose each other\'s updates', async () => {
    const [a, b] = await Promise.all([new SecretsStore(file).ensure('notes', ['A']), new SecretsStore(file).ensure('files', ['B'])]);
    expect(await readFile()).toEqual({ files: b, notes: a });
  });

  test('services are kept apart', async () => {
    const store = new SecretsStore(file);
    const a = await store.ensure('notes', ['DB_PASSWORD']);
    const b = await store.ensure('files', ['DB_PASSWORD']);
    expect(a.DB_PASSWORD).not.toBe(b.DB_PASSWORD);
  });

  test('forget removes a service (writing only when it had secrets); reinstall without it keeps them', async () => {
    const store = new SecretsStore(file);
    const kept = await store.ensure('notes', ['DB_PASSWORD']);
    await store.ensure('files', ['X']);
    expect(await store.get('notes')).toEqual(kept);

    expect(await store.forget('notes')).toBe(true);
    expect(await readFile()).toEqual({ files: { X: expect.any(String) } });
    expect(await store.forget('notes')).toBe(false);
    const fresh = await store.ensure('notes', ['DB_PASSWORD']);
    expect(fresh.DB_PASSWORD).not.toBe(kept.DB_PASSWORD);
  });

  test('invalid names are refused without touching the file', async () => {
    const store = new SecretsStore(file);
    await expect(store.ensure('notes', ['BAD-NAME'])).rejects.toThrow(/must match/);
    await expect(store.ensure('notes', [''])).rejects.toThrow(/must match/);
    await expect(fs.stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('a corrupt file is reported, never overwritten', async () => {
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, '{"notes": {"DB_PASSWORD": 42}}');
    const store = new SecretsStore(file);
    await expect(store.ensure('notes', ['DB_PASSWORD'])).rejects.toThrow(/refusing to overwrite/);
    await fs.writeFile(file, 'not json');
    await expect(store.ensure('notes', ['DB_PASSWORD'])).rejects.toThrow(/not valid JSON/);
    expect(await fs.readFile(file, 'utf8')).toBe('not json');
    // A failed call does not wedge the queue.
    await fs.writeFile(file, '{}');
    await expect(store.ensure('notes', ['DB_PASSWORD'])).resolves.toHaveProperty('DB_PASSWORD');
  });
});
