import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { createLogger } from '../../controllers/logging.js';
import { EventLog, followEvents, redact, REDACTED } from '../../state/events.js';
import { LockHeldError, resolveStateDir, StateDir } from '../../state/state-dir.js';
import { InvalidStatusKeyError, parseStatusKey, StatusStore, watchStatusDir } from '../../state/status-store.js';
import type { DocumentStatus, OperatorEvent } from '../../state/status-types.js';

/**
 * The stores the operator keeps in its state directory, against the real file system:
 * the directory and its lock, the status store and its watcher, the event log and its follower,
 * and the redaction shared by events and logs.
 */

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-state-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** Wait for something asynchronous (a file-system notification) without asserting how long it takes. */
async function waitFor(check: () => boolean | Promise<boolean>, what: string, limitMs = 20000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function status(kind: string, name: string, patch: Partial<DocumentStatus> = {}): DocumentStatus {
  return {
    key: `${kind}/${name}`,
    kind,
    name,
    observedGeneration: 'gen-1',
    phase: 'Ready',
    conditions: [{ type: 'Ready', status: 'True', reason: 'Converged', message: 'ok', lastTransitionTime: '2024-05-01T10:00:00.000Z' }],
    updatedAt: '2024-05-01T10:00:00.000Z',
    ...patch,
  };
}

describe('resolveStateDir', () => {
  test.each([
    ['the flag wins', '/srv/flag', { PIC_STATE_DIR: '/srv/env' }, '/srv/flag'],
    ['then PIC_STATE_DIR', undefined, { PIC_STATE_DIR: '/srv/env' }, '/srv/env'],
    ['then the default', undefined, {}, '/var/lib/pic'],
    ['an empty flag or variable counts as unset', '', { PIC_STATE_DIR: '' }, '/var/lib/pic'],
  ])('%s', (_name, flag, env, expected) => {
    expect(resolveStateDir(flag, env)).toBe(expected);
  });

  test('a relative path is made absolute', () => {
    expect(resolveStateDir('state')).toBe(path.join(process.cwd(), 'state'));
  });
});

describe('StateDir', () => {
  test('paths', () => {
    const dir = new StateDir('/var/lib/pic');
    expect(dir.paths).toEqual({
      applied: '/var/lib/pic/applied.json',
      status: '/var/lib/pic/status',
      events: '/var/lib/pic/events.jsonl',
      secrets: '/var/lib/pic/secrets.json',
      ipAllocations: '/var/lib/pic/allocations/ips.json',
      credentials: '/var/lib/pic/credentials.json',
      lock: '/var/lib/pic/operator.lock',
      heartbeat: '/var/lib/pic/operator-heartbeat.json',
      data: '/var/lib/pic/data',
      git: '/var/lib/pic/git',
    });
  });

  test('ensure creates the directory owner-only and narrows a wider one', async () => {
    const root = path.join(tmp, 'a', 'state');
    const dir = new StateDir(root);
    await dir.ensure();
    expect((await fs.stat(root)).mode & 0o777).toBe(0o700);
    expect((await fs.stat(dir.paths.status)).mode & 0o777).toBe(0o700);
    await fs.chmod(root, 0o755);
    await dir.ensure();
    expect((await fs.stat(root)).mode & 0o777).toBe(0o700);
  });

  test('temporary files of killed writers are removed; live writers\' and the services\' data are not', async () => {
    const dir = new StateDir(tmp);
    await dir.ensure();
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    const files = {
      deadTop: path.join(tmp, `.credentials.json.${dead}.0123456789ab.tmp`),
      deadStatus: path.join(dir.paths.status, 'ServiceInstall', `.notes.json.${dead}.ba9876543210.tmp`),
      ours: path.join(tmp, `.secrets.json.${process.pid}.0123456789ab.tmp`),
      liveOther: path.join(tmp, `.secrets.json.1.0123456789ab.tmp`),
      inData: path.join(dir.paths.data, 'notes', `.x.${dead}.0123456789ab.tmp`),
      notOurs: path.join(tmp, `credentials.json.${dead}.tmp`),
    };
    for (const f of Object.values(files)) {
      await fs.mkdir(path.dirname(f), { recursive: true });
      await fs.writeFile(f, 'x');
    }
    expect((await dir.removeStaleTemporaryFiles()).sort()).toEqual([files.deadStatus, files.deadTop].sort());
    const left = await Promise.all(Object.entries(files).map(async ([k, f]) => [k, await fs.stat(f).then(() => true, () => false)]));
    expect(Object.fromEntries(left)).toEqual({ deadTop: false, deadStatus: false, ours: true, liveOther: true, inData: true, notOurs: true });
  });

  test('the lock holds our pid, refuses a second holder, and is released', async () => {
    const dir = new StateDir(tmp);
    const lock = await dir.acquireLock();
    expect((await fs.readFile(dir.paths.lock, 'utf8')).trim()).toBe(String(process.pid));
    expect((await fs.stat(dir.paths.lock)).mode & 0o777).toBe(0o600);
    await expect(new StateDir(tmp).acquireLock()).rejects.toThrow(/already holds/);
    await lock.release();
    await lock.release();
    await expect(fs.stat(dir.paths.lock)).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await dir.acquireLock();
    await again.release();
  });

  test('a live holder is reported with its pid', async () => {
    const dir = new StateDir(tmp);
    // Our parent process is alive and is not us.
    await fs.writeFile(dir.paths.lock, `${process.ppid}\n`);
    const attempt = dir.acquireLock();
    await expect(attempt).rejects.toBeInstanceOf(LockHeldError);
    await expect(dir.acquireLock()).rejects.toThrow(`another pic operator (pid ${process.ppid}) is running on this state directory`);
    expect((await fs.readFile(dir.paths.lock, 'utf8')).trim()).toBe(String(process.ppid));
  });

  test('a stale lock (its process is gone) is taken over', async () => {
    const dir = new StateDir(tmp);
    const child = spawnSync(process.execPath, ['-e', '0']);
    expect(child.pid).toBeGreaterThan(0);
    await fs.writeFile(dir.paths.lock, `${child.pid}\n`);
    const lock = await dir.acquireLock();
    expect((await fs.readFile(dir.paths.lock, 'utf8')).trim()).toBe(String(process.pid));
    await lock.release();
  });

  test('a lock naming our own pid that we do not hold is stale (a restarted container reuses pids)', async () => {
    const dir = new StateDir(tmp);
    await fs.writeFile(dir.paths.lock, `${process.pid}\n`);
    const lock = await dir.acquireLock();
    await lock.release();
  });
});

describe('parseStatusKey', () => {
  test.each(['ServiceInstall/notes', 'PeerAccount/a', 'Connection/vpn-home', 'Cell/x1'])('accepts %s', (key) => {
    expect(() => parseStatusKey(key)).not.toThrow();
  });

  test.each([
    'ServiceInstall/../../x',
    '../x',
    'ServiceInstall/..',
    'ServiceInstall/.',
    'ServiceInstall/notes/extra',
    'ServiceInstall/Notes',
    'ServiceInstall/-notes',
    'ServiceInstall/notes-',
    'ServiceInstall/',
    '/notes',
    'serviceinstall/notes',
    'Service.Install/notes',
    'ServiceInstall/notes.json',
    'ServiceInstall/a\u0000b',
    `ServiceInstall/${'a'.repeat(64)}`,
    'caddy',
  ])('refuses %j', (key) => {
    expect(() => parseStatusKey(key)).toThrow(InvalidStatusKeyError);
  });

  test('property: an accepted key always names a file directly inside its kind folder', () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), fc.string({ maxLength: 80 }), (kind, name) => {
        let file: string;
        try {
          file = store.fileOf(`${kind}/${name}`);
        } catch (err) {
          return err instanceof InvalidStatusKeyError;
        }
        return path.dirname(path.dirname(file)) === store.dir && path.basename(file) === `${name}.json` && !name.startsWith('.');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('StatusStore', () => {
  test('put writes once; the same content again writes nothing', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    const file = store.fileOf('ServiceInstall/notes');
    expect(await store.put(status('ServiceInstall', 'notes'))).toBe(true);
    const before = await fs.stat(file);
    expect(before.mode & 0o777).toBe(0o600);

    expect(await store.put(status('ServiceInstall', 'notes', { updatedAt: '2024-05-01T11:00:00.000Z' }))).toBe(false);
    const after = await fs.stat(file);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);

    // A fresh store (a restarted operator) compares with the file instead of its memory.
    const restarted = new StatusStore(path.join(tmp, 'status'));
    expect(await restarted.put(status('ServiceInstall', 'notes'))).toBe(false);
    expect((await fs.stat(file)).ino).toBe(before.ino);
  });

  test('a no-op put is answered from memory without reading the file', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    const file = store.fileOf('ServiceInstall/notes');
    await store.put(status('ServiceInstall', 'notes'));
    // Make the file unusable: a put that read it would fail.
    await fs.writeFile(file, 'not json');
    expect(await store.put(status('ServiceInstall', 'notes'))).toBe(false);
    expect(await store.lastKnown('ServiceInstall/notes')).toEqual(status('ServiceInstall', 'notes'));
    await expect(store.get('ServiceInstall/notes')).rejects.toThrow(/not valid JSON/);
  });

  test('lastKnown reads the file once, then answers from memory', async () => {
    const dir = path.join(tmp, 'status');
    await new StatusStore(dir).put(status('ServiceInstall', 'notes'));
    const store = new StatusStore(dir);
    expect(await store.lastKnown('ServiceInstall/notes')).toEqual(status('ServiceInstall', 'notes'));
    expect(await store.lastKnown('ServiceInstall/absent')).toBeUndefined();
    await fs.writeFile(store.fileOf('ServiceInstall/notes'), 'not json');
    const known = await store.lastKnown('ServiceInstall/notes');
    expect(known?.phase).toBe('Ready');
    if (known) known.phase = 'Stalled';
    expect((await store.lastKnown('ServiceInstall/notes'))?.phase).toBe('Ready');
  });

  test('a changed status is written and read back', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    await store.put(status('ServiceInstall', 'notes'));
    const changed = status('ServiceInstall', 'notes', { phase: 'Failed', facts: { serviceIp: '172.20.0.20' } });
    expect(await store.put(changed)).toBe(true);
    expect(await new StatusStore(path.join(tmp, 'status')).get('ServiceInstall/notes')).toEqual(changed);
    expect(await store.get('ServiceInstall/absent')).toBeUndefined();
  });

  test('mutating a status after put does not fool the next put', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    const s = status('ServiceInstall', 'notes');
    await store.put(s);
    s.phase = 'Stalled';
    expect(await store.put(s)).toBe(true);
    expect((await store.get('ServiceInstall/notes'))?.phase).toBe('Stalled');
  });

  test('concurrent puts of different keys all land; list is sorted by kind then name', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    const names = Array.from({ length: 20 }, (_, i) => `svc-${String(19 - i).padStart(2, '0')}`);
    const puts = [
      ...names.map((n) => store.put(status('ServiceInstall', n))),
      store.put(status('PeerAccount', 'bob')),
      store.put(status('PeerAccount', 'alice')),
      store.put(status('Connection', 'vpn-home')),
      store.put(status('Cell', 'home')),
    ];
    expect(await Promise.all(puts)).toEqual(puts.map(() => true));
    const listed = await new StatusStore(path.join(tmp, 'status')).list();
    expect(listed.map((s) => s.key)).toEqual([
      'Cell/home',
      'Connection/vpn-home',
      'PeerAccount/alice',
      'PeerAccount/bob',
      ...[...names].sort().map((n) => `ServiceInstall/${n}`),
    ]);
  });

  test('concurrent puts of one key are applied in order', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    const results = await Promise.all(
      ['a', 'b', 'b', 'c'].map((g) => store.put(status('ServiceInstall', 'notes', { observedGeneration: g }))),
    );
    expect(results).toEqual([true, true, false, true]);
    expect((await new StatusStore(path.join(tmp, 'status')).get('ServiceInstall/notes'))?.observedGeneration).toBe('c');
  });

  test('list skips temporary files and strangers, and an empty store lists nothing', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    expect(await store.list()).toEqual([]);
    await store.put(status('ServiceInstall', 'notes'));
    await fs.writeFile(path.join(store.dir, 'ServiceInstall', '.notes.json.123.abc.tmp'), '{');
    await fs.writeFile(path.join(store.dir, 'ServiceInstall', 'README'), 'x');
    await fs.mkdir(path.join(store.dir, 'lower'), { recursive: true });
    expect((await store.list()).map((s) => s.key)).toEqual(['ServiceInstall/notes']);
  });

  test('remove deletes and reports whether there was a status', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    await store.put(status('ServiceInstall', 'notes'));
    expect(await store.remove('ServiceInstall/notes')).toBe(true);
    expect(await store.remove('ServiceInstall/notes')).toBe(false);
    expect(await store.get('ServiceInstall/notes')).toBeUndefined();
    expect(await store.list()).toEqual([]);
    // After a remove the same content is new again.
    expect(await store.put(status('ServiceInstall', 'notes'))).toBe(true);
  });

  test('keys that could escape the folder are refused by every operation', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    const evil = 'ServiceInstall/../../x';
    await expect(store.get(evil)).rejects.toThrow(InvalidStatusKeyError);
    await expect(store.remove(evil)).rejects.toThrow(InvalidStatusKeyError);
    await expect(store.put({ ...status('ServiceInstall', 'x'), key: evil, name: '../../x' })).rejects.toThrow(InvalidStatusKeyError);
    await expect(store.put({ ...status('ServiceInstall', 'x'), key: 'ServiceInstall/y' })).rejects.toThrow(/does not match/);
    expect(await fs.readdir(tmp)).toEqual([]);
  });

  test('watchStatusDir calls onChange after a put, and no longer after close', async () => {
    const store = new StatusStore(path.join(tmp, 'status'));
    let changes = 0;
    const watch = await watchStatusDir(store.dir, () => {
      changes += 1;
    });
    try {
      await store.put(status('ServiceInstall', 'notes'));
      await waitFor(() => changes > 0, 'a change after the first put');
      const seen = changes;
      await store.put(status('ServiceInstall', 'notes', { phase: 'Failed' }));
      await waitFor(() => changes > seen, 'a change after the second put');
    } finally {
      await watch.close();
    }
    const closedAt = changes;
    await store.put(status('ServiceInstall', 'notes', { phase: 'Stalled' }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(changes).toBe(closedAt);
  });
});

describe('redact', () => {
  test.each<[string, unknown, unknown]>([
    ['a password field', { user: 'alice', password: 'hunter2' }, { user: 'alice', password: REDACTED }],
    ['nested and in arrays', { a: [{ apiToken: 't' }, { client_secret: 's' }] }, { a: [{ apiToken: REDACTED }, { client_secret: REDACTED }] }],
    ['any case, any spelling', { DB_PASSWORD: 'x', Passphrase: 'y', privateKey: 'z', api_key: 'k' }, { DB_PASSWORD: REDACTED, Passphrase: REDACTED, privateKey: REDACTED, api_key: REDACTED }],
    ['name=value in text', 'login password=hunter2 ok', `login password=${REDACTED} ok`],
    ['name: value in text', 'token: abc.def, next', `token: ${REDACTED}, next`],
    ['JSON in text', '{"secret":"s3cr3t","user":"a"}', `{"secret":"${REDACTED}","user":"a"}`],
    ['template variables', 'PIC_SECRET_DB=Zm9vYmFy', `PIC_SECRET_DB=${REDACTED}`],
    ['URL credentials', 'https://bob:pw123@example.org/x', `https://bob:${REDACTED}@example.org/x`],
    ['a word alone is kept', 'Generated secret DB_PASSWORD for notes', 'Generated secret DB_PASSWORD for notes'],
    ['other values are kept', { count: 3, ok: true, nothing: null, list: [1, 'a'] }, { count: 3, ok: true, nothing: null, list: [1, 'a'] }],
  ])('%s', (_name, input, expected) => {
    expect(redact(input)).toEqual(expected);
  });

  test('does not change its input and survives cycles', () => {
    const input: Record<string, unknown> = { password: 'p' };
    input.self = input;
    const output = redact<Record<string, unknown>>(input);
    expect(input.password).toBe('p');
    expect(output.password).toBe(REDACTED);
    expect(output.self).toBe(output);
  });
});

describe('EventLog', () => {
  const event = (i: number, key = 'ServiceInstall/notes'): Omit<OperatorEvent, 'time'> => ({
    key,
    type: i % 2 === 0 ? 'Normal' : 'Warning',
    reason: 'Step',
    message: `step ${i}`,
  });

  test('records JSON lines owner-only and reads them back by key and limit', async () => {
    const log = new EventLog(path.join(tmp, 'events.jsonl'));
    await log.record({ ...event(0), time: '2024-05-01T10:00:00.000Z' });
    await log.record(event(1, 'caddy'));
    await log.record(event(2));
    expect((await fs.stat(log.file)).mode & 0o777).toBe(0o600);
    const all = await log.recent();
    expect(all.map((e) => e.message)).toEqual(['step 0', 'step 1', 'step 2']);
    expect(all[0]?.time).toBe('2024-05-01T10:00:00.000Z');
    expect(Date.parse(all[1]?.time ?? '')).not.toBeNaN();
    expect((await log.recent({ key: 'ServiceInstall/notes' })).map((e) => e.message)).toEqual(['step 0', 'step 2']);
    expect((await log.recent({ limit: 2 })).map((e) => e.message)).toEqual(['step 1', 'step 2']);
    expect(await new EventLog(path.join(tmp, 'none.jsonl')).recent()).toEqual([]);
  });

  test('concurrent records never interleave', async () => {
    const log = new EventLog(path.join(tmp, 'events.jsonl'), { maxBytes: 2000 });
    await Promise.all(Array.from({ length: 200 }, (_, i) => log.record(event(i))));
    const lines = [
      ...(await fs.readFile(log.rotatedFile, 'utf8')).split('\n'),
      ...(await fs.readFile(log.file, 'utf8')).split('\n'),
    ].filter((l) => l !== '');
    const messages = lines.map((l) => (JSON.parse(l) as OperatorEvent).message);
    expect(messages.slice(-5)).toEqual(['step 195', 'step 196', 'step 197', 'step 198', 'step 199']);
    // Only the last few fit after rotations; what is kept is in order.
    const numbers = messages.map((m) => Number(m.split(' ')[1]));
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
  });

  test('rotation keeps disk use within twice maxBytes and recent spans both files', async () => {
    const maxBytes = 1000;
    const log = new EventLog(path.join(tmp, 'events.jsonl'), { maxBytes });
    for (let i = 0; i < 100; i++) {
      await log.record(event(i));
      const sizes = await Promise.all([log.file, log.rotatedFile].map((f) => fs.stat(f).then((s) => s.size, () => 0)));
      expect(sizes[0]).toBeLessThanOrEqual(maxBytes);
      expect((sizes[0] ?? 0) + (sizes[1] ?? 0)).toBeLessThanOrEqual(2 * maxBytes);
    }
    const recent = await log.recent();
    expect(recent.at(-1)?.message).toBe('step 99');
    expect(recent.length).toBeGreaterThan((await fs.readFile(log.file, 'utf8')).split('\n').length - 1);
    const numbers = recent.map((e) => Number(e.message.split(' ')[1]));
    expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => 100 - numbers.length + i));
  });

  test('an oversized message is cut so one line still fits', async () => {
    const log = new EventLog(path.join(tmp, 'events.jsonl'), { maxBytes: 300 });
    await log.record({ ...event(0), message: 'x'.repeat(5000) });
    const size = (await fs.stat(log.file)).size;
    expect(size).toBeLessThanOrEqual(300);
    expect((await log.recent())[0]?.message.endsWith('…')).toBe(true);
  });

  test('a torn last line and stray text are skipped', async () => {
    const log = new EventLog(path.join(tmp, 'events.jsonl'));
    await log.record(event(0));
    await fs.appendFile(log.file, 'garbage\n{"time":"2024-05-01T1');
    expect((await log.recent()).map((e) => e.message)).toEqual(['step 0']);
  });

  test('secrets never reach the file', async () => {
    const log = new EventLog(path.join(tmp, 'events.jsonl'));
    await log.record({ key: 'PeerAccount/alice', type: 'Normal', reason: 'Provisioned', message: 'created alice with password=hunter2 on notes' });
    const text = await fs.readFile(log.file, 'utf8');
    expect(text).not.toContain('hunter2');
    expect(text).toContain(`password=${REDACTED}`);
  });

  test('followEvents streams new events in order, across rotations, and stops on close', async () => {
    const log = new EventLog(path.join(tmp, 'events.jsonl'), { maxBytes: 600 });
    await log.record({ ...event(-1), message: 'before follow' });
    const seen: string[] = [];
    const errors: Error[] = [];
    const follower = followEvents(log.file, (e) => seen.push(e.message), { onError: (err) => errors.push(err), pollMs: 100 });
    try {
      // A burst without waiting: all arrive, in order.
      await Promise.all(Array.from({ length: 3 }, (_, i) => log.record(event(i))));
      await waitFor(() => seen.length >= 3, 'the first burst');
      // One at a time across several rotations.
      for (let i = 3; i < 30; i++) {
        await log.record(event(i));
        await waitFor(() => seen.length >= i + 1, `event ${i}`);
      }
    } finally {
      follower.close();
    }
    expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => `step ${i}`));
    expect(errors).toEqual([]);
    await log.record(event(99));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen).toHaveLength(30);
  });

  test('followEvents waits for a log that does not exist yet, and can replay from the start', async () => {
    const file = path.join(tmp, 'later', 'events.jsonl');
    const seen: OperatorEvent[] = [];
    const follower = followEvents(file, (e) => seen.push(e), { pollMs: 50, key: 'caddy' });
    try {
      const log = new EventLog(file);
      await log.record(event(0));
      await log.record(event(1, 'caddy'));
      await waitFor(() => seen.length >= 1, 'the first caddy event');
    } finally {
      follower.close();
    }
    expect(seen.map((e) => e.message)).toEqual(['step 1']);

    const replayed: string[] = [];
    const replay = followEvents(file, (e) => replayed.push(e.message), { fromStart: true });
    try {
      await waitFor(() => replayed.length >= 2, 'the replay');
    } finally {
      replay.close();
    }
    expect(replayed).toEqual(['step 0', 'step 1']);
  });
});

describe('createLogger', () => {
  function capture(): { stream: Writable; lines: () => string[] } {
    let text = '';
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        text += chunk.toString('utf8');
        done();
      },
    });
    return { stream, lines: () => text.split('\n').filter((l) => l !== '') };
  }

  test('JSON lines with a timestamp, secrets redacted', async () => {
    const out = capture();
    const logger = createLogger({ json: true, stream: out.stream });
    logger.info('Created container cell-notes', { key: 'ServiceInstall/notes', password: 'hunter2', env: { PIC_SECRET_DB: 'abc' } });
    logger.debug('not shown at info');
    await waitFor(() => out.lines().length >= 1, 'a log line');
    const [line] = out.lines();
    expect(line).not.toContain('hunter2');
    expect(line).not.toContain('abc');
    const entry = JSON.parse(line ?? '') as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 'info', message: 'Created container cell-notes', key: 'ServiceInstall/notes', password: REDACTED });
    expect(Date.parse(String(entry.timestamp))).not.toBeNaN();
    expect(out.lines()).toHaveLength(1);
  });

  test('readable line for a terminal, without colour when asked', async () => {
    const out = capture();
    const logger = createLogger({ json: false, colour: false, stream: out.stream, level: 'debug' });
    logger.info('Created container cell-notes', { key: 'ServiceInstall/notes' });
    logger.warn('Reload failed: token=abc', { attempt: 2, key: 'caddy' });
    logger.debug('Resync');
    await waitFor(() => out.lines().length >= 3, 'three log lines');
    const [first, second, third] = out.lines();
    expect(first).toMatch(/^\d\d:\d\d:\d\d info {2}ServiceInstall\/notes {2}Created container cell-notes$/);
    expect(second).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d warn  caddy  Reload failed: token=\\[REDACTED\\]  attempt=2$`));
    expect(third).toMatch(/^\d\d:\d\d:\d\d debug Resync$/);
    // eslint-disable-next-line no-control-regex
    expect(out.lines().join('\n')).not.toMatch(/\u001b/);
  });
});
