/**
 * The heartbeat file as the operator writes it and a reader sees it, with a real lock: written at
 * the start, after the first pass, not again for a pass soon after, and at the stop.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HeartbeatWriter, observeOperator, operatorPresence, readHeartbeat } from '../../state/operator-heartbeat.js';
import { StateDir } from '../../state/state-dir.js';

let tmp: string;
let dir: StateDir;

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-stale-heartbeat-'));
  dir = new StateDir(tmp);
  await dir.ensure();
});

afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const errors: Error[] = [];
const writer = () => new HeartbeatWriter(dir.paths.heartbeat, { mode: 'run', resyncIntervalMs: 600_000, onError: (e) => errors.push(e) });
const identity = async () => {
  const st = await fs.stat(dir.paths.heartbeat);
  return `${st.ino}:${st.mtimeMs}`;
};

test('written at the start, after the first pass, not for a pass soon after, and at the stop', async () => {
  const beat = writer();
  const t0 = new Date('2024-05-01T12:00:00Z');
  await beat.started(t0);
  expect(await readHeartbeat(dir.paths.heartbeat)).toMatchObject({ pid: process.pid, mode: 'run', resyncIntervalSeconds: 600, startedAt: t0.toISOString() });
  expect((await fs.stat(dir.paths.heartbeat)).mode & 0o777).toBe(0o600);
  await beat.passed(new Date(t0.getTime() + 5000));
  expect((await readHeartbeat(dir.paths.heartbeat))?.lastPassAt).toBe('2024-05-01T12:00:05.000Z');
  const before = await identity();
  await beat.passed(new Date(t0.getTime() + 60_000));
  expect(await identity()).toBe(before);
  await beat.passed(new Date(t0.getTime() + 5000 + 300_000));
  expect((await readHeartbeat(dir.paths.heartbeat))?.lastPassAt).toBe('2024-05-01T12:05:05.000Z');
  await beat.passed(new Date(t0.getTime() + 400_000));
  await beat.stopped(new Date(t0.getTime() + 401_000));
  // The stop writes down the last pass the file had not recorded yet.
  expect(await readHeartbeat(dir.paths.heartbeat)).toMatchObject({ lastPassAt: '2024-05-01T12:06:40.000Z', stoppedAt: '2024-05-01T12:06:41.000Z' });
  expect(errors).toEqual([]);
});

test('a reader sees the lock holder alive and the same process; a dead holder is gone', async () => {
  const lock = await dir.acquireLock();
  const beat = writer();
  await beat.started();
  await beat.passed();
  const seen = await observeOperator(dir.paths);
  expect(seen).toMatchObject({ lock: { pid: process.pid, alive: true }, sameProcessView: true });
  expect(seen.lock?.procStart).toBe(seen.heartbeat?.procStart);
  expect(await operatorPresence(dir.paths)).toMatchObject({ running: true, stale: false, pid: process.pid });
  await lock.release();

  // A lock left by a process that exited: its pid is no longer alive.
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  await fs.writeFile(dir.paths.lock, `${child.pid}\n`);
  expect(await operatorPresence(dir.paths)).toMatchObject({ running: false, stale: true, mode: 'run' });
});

test('a missing or damaged heartbeat is no heartbeat', async () => {
  expect(await readHeartbeat(dir.paths.heartbeat)).toBeUndefined();
  await fs.writeFile(dir.paths.heartbeat, '{"pid": "x"');
  expect(await readHeartbeat(dir.paths.heartbeat)).toBeUndefined();
  await fs.writeFile(dir.paths.heartbeat, '{"pid": 1, "mode": "sometimes", "resyncIntervalSeconds": 600, "startedAt": "x"}');
  expect(await readHeartbeat(dir.paths.heartbeat)).toBeUndefined();
  expect(await operatorPresence(dir.paths)).toEqual({ running: false, stale: true });
});
