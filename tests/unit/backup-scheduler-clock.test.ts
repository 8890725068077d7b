/**
 * The operator's backup scheduler keeps every time on the clock it is given: after a scheduled run
 * that found nothing to back up, it waits `retryMs` on that clock before it tries again, whether
 * that clock is behind the host's or ahead of it. No Docker is involved: with no ServiceInstall,
 * a run stops before the first Docker request; `settled` (called at the start of each run) counts
 * the runs.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BackupScheduler } from '../../controllers/backup-schedule.js';
import { BackupStatusStore } from '../../controllers/backup-status.js';
import type { OperatorContext } from '../../controllers/context.js';
import type { HeldCell } from '../../state/hold.js';
import { testCell } from '../support/caddy.js';

let work: string;

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-dns-scheduler-'));
});

afterAll(async () => {
  if (work) await fs.rm(work, { recursive: true, force: true });
});

const RETRY_MS = 15 * 60_000;
const minutes = (start: Date, n: number) => new Date(start.getTime() + n * 60_000);
/** Lets a run started in the background finish (it makes no I/O before it returns). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test.each([
  ['years behind the host’s clock', '2020-01-01T03:30:00Z'],
  ['years ahead of it', '2040-01-01T03:30:00Z'],
])('after a run with nothing to back up, the next waits out retryMs on the injected clock (%s)', async (_name, start) => {
  const base = testCell({ domain: 'sched.pic.test' });
  const cell = { ...base, spec: { ...base.spec, backup: { schedule: { every: 'daily' as const, at: '03:00' } } } };
  const held = { dir: path.join(work, 'cell'), cell, docs: { services: [] }, held: new Map(), frozen: false } as unknown as HeldCell;
  const logger = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const ctx = { logger, event: () => undefined } as unknown as OperatorContext;
  let now = new Date(start);
  let runs = 0;
  const scheduler = new BackupScheduler({
    ctx,
    stateRoot: path.join(work, `state-${start.slice(0, 4)}`),
    cellDir: path.join(work, 'cell'),
    cell: () => held,
    statusStore: new BackupStatusStore(path.join(work, `status-${start.slice(0, 4)}`)),
    enqueue: () => undefined,
    settled: async () => {
      runs++;
    },
    now: () => now,
    retryMs: RETRY_MS,
  });
  try {
    await scheduler.check();
    await settle();
    expect(runs).toBe(1);

    now = minutes(new Date(start), 1);
    await scheduler.check();
    await settle();
    expect(runs).toBe(1);

    now = minutes(new Date(start), 16);
    await scheduler.check();
    await settle();
    expect(runs).toBe(2);
  } finally {
    await scheduler.stop();
  }
});
