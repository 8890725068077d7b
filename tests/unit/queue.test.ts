import { describe, expect, test } from '@jest/globals';
import { backOffDelay, jittered, WorkQueue, type WorkOutcome, type WorkQueueOptions } from '../../controllers/queue.js';
import { TerminalError } from '../../reconcilers/errors.js';

/** A promise with its resolve function outside, to hold a handler until the test releases it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/**
 * A fake handler that records every call, how many runs of each key overlap (and of all keys),
 * and lets a test decide per call whether it waits on a gate or fails.
 */
class Recorder {
  calls: string[] = [];
  running = new Map<string, number>();
  maxPerKey = new Map<string, number>();
  runningTotal = 0;
  maxTotal = 0;
  outcomes: WorkOutcome[] = [];
  /** Called at the start of each run; may wait, throw, or return. */
  behaviour: (key: string, call: number) => Promise<void> | void = () => undefined;
  #startWaiters: { key: string; count: number; resolve: () => void }[] = [];

  handler = async (key: string): Promise<void> => {
    this.calls.push(key);
    const now = (this.running.get(key) ?? 0) + 1;
    this.running.set(key, now);
    this.maxPerKey.set(key, Math.max(this.maxPerKey.get(key) ?? 0, now));
    this.runningTotal++;
    this.maxTotal = Math.max(this.maxTotal, this.runningTotal);
    this.#startWaiters = this.#startWaiters.filter((w) => {
      if (this.callsOf(w.key) < w.count) return true;
      w.resolve();
      return false;
    });
    try {
      await this.behaviour(key, this.callsOf(key));
    } finally {
      this.running.set(key, (this.running.get(key) ?? 1) - 1);
      this.runningTotal--;
    }
  };

  onOutcome = (o: WorkOutcome): void => {
    this.outcomes.push(o);
  };

  callsOf(key: string): number {
    return this.calls.filter((k) => k === key).length;
  }

  /** Resolves once `key` has been started `count` times. */
  started(key: string, count = 1): Promise<void> {
    if (this.callsOf(key) >= count) return Promise.resolve();
    return new Promise((resolve) => this.#startWaiters.push({ key, count, resolve }));
  }

  retryDelays(key: string): (number | undefined)[] {
    return this.outcomes.filter((o) => o.key === key && !o.ok).map((o) => o.retryInMs);
  }
}

function queueWith(rec: Recorder, options: Partial<WorkQueueOptions> = {}): WorkQueue {
  return new WorkQueue({ handler: rec.handler, onOutcome: rec.onOutcome, jitter: 0, ...options });
}

describe('backOffDelay and jittered', () => {
  test.each([
    { failures: 1, expected: 200 },
    { failures: 2, expected: 400 },
    { failures: 3, expected: 800 },
    { failures: 11, expected: 204_800 },
    { failures: 12, expected: 300_000 },
    { failures: 5000, expected: 300_000 },
  ])('failure $failures waits $expected ms before jitter', ({ failures, expected }) => {
    expect(backOffDelay(failures, 200, 300_000)).toBe(expected);
  });

  test.each([
    { fraction: 0, random: 0, expected: 1000 },
    { fraction: 0.2, random: 0, expected: 800 },
    { fraction: 0.2, random: 0.5, expected: 1000 },
    { fraction: 0.2, random: 0.75, expected: 1100 },
    { fraction: 1, random: 0, expected: 0 },
  ])('jitter $fraction with random() = $random gives $expected', ({ fraction, random, expected }) => {
    expect(jittered(1000, fraction, () => random)).toBe(expected);
  });
});

describe('WorkQueue', () => {
  test('a key added several times before it runs runs once', async () => {
    const rec = new Recorder();
    const q = queueWith(rec);
    q.add('ServiceInstall/notes');
    q.add('ServiceInstall/notes');
    q.add('caddy');
    q.add('ServiceInstall/notes');
    expect(q.size).toBe(2);
    expect(q.has('caddy')).toBe(true);
    await q.whenIdle();
    expect([...rec.calls].sort()).toEqual(['ServiceInstall/notes', 'caddy']);
    expect(q.size).toBe(0);
  });

  test('a key waiting for a slot is not queued twice', async () => {
    const rec = new Recorder();
    const blocker = gate();
    rec.behaviour = (key) => (key === 'blocker' ? blocker.promise : undefined);
    const q = queueWith(rec, { concurrency: 1 });
    q.add('blocker');
    await rec.started('blocker');
    for (let i = 0; i < 5; i++) q.add('dns');
    expect(q.size).toBe(1);
    blocker.open();
    await q.whenIdle();
    expect(rec.calls).toEqual(['blocker', 'dns']);
  });

  test('a key added while it runs never runs concurrently, and runs exactly once more', async () => {
    const rec = new Recorder();
    const gates = [gate(), gate()];
    rec.behaviour = (_key, call) => gates[call - 1]?.promise;
    const q = queueWith(rec, { concurrency: 4 });
    q.add('caddy');
    await rec.started('caddy');
    q.add('caddy');
    q.add('caddy');
    q.add('caddy');
    expect(q.has('caddy')).toBe(true);
    gates[0]!.open();
    await rec.started('caddy', 2);
    q.add('caddy');
    gates[1]!.open();
    await q.whenIdle();
    expect(rec.callsOf('caddy')).toBe(3);
    expect(rec.maxPerKey.get('caddy')).toBe(1);
  });

  test('no more keys run at once than the concurrency', async () => {
    const rec = new Recorder();
    const release = gate();
    rec.behaviour = () => release.promise;
    const q = queueWith(rec, { concurrency: 2 });
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const key of keys) q.add(key);
    await Promise.all([rec.started('a'), rec.started('b')]);
    expect(rec.calls).toEqual(['a', 'b']);
    release.open();
    await q.whenIdle();
    expect(rec.calls).toEqual(keys);
    expect(rec.maxTotal).toBe(2);
  });

  test.each([
    { name: 'no jitter', jitter: 0, random: 0.3, expected: [2, 4, 8, 16, 16, 16] },
    { name: 'jitter at its low end', jitter: 0.5, random: 0, expected: [1, 2, 4, 8, 8, 8] },
    { name: 'jitter at its high end', jitter: 0.5, random: 1, expected: [3, 6, 12, 24, 24, 24] },
  ])('back-off doubles per failure up to the cap ($name)', async ({ jitter, random, expected }) => {
    const rec = new Recorder();
    const failuresBeforeSuccess = expected.length;
    rec.behaviour = (_key, call) => {
      if (call <= failuresBeforeSuccess) throw new Error(`docker unavailable (${call})`);
    };
    const q = queueWith(rec, { baseDelayMs: 2, maxDelayMs: 16, jitter, random: () => random });
    q.add('ServiceInstall/notes');
    await q.whenIdle();
    expect(rec.retryDelays('ServiceInstall/notes')).toEqual(expected);
    expect(rec.outcomes.map((o) => o.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(rec.outcomes.at(-1)).toMatchObject({ ok: true, attempt: 7, terminal: false });
    expect(q.failures('ServiceInstall/notes')).toBe(0);
  });

  test('a success resets the back-off', async () => {
    const rec = new Recorder();
    const failOn = new Set([1, 2, 4]);
    rec.behaviour = (_key, call) => {
      if (failOn.has(call)) throw new Error('flaky');
    };
    const q = queueWith(rec, { baseDelayMs: 1, maxDelayMs: 1000 });
    q.add('dns');
    await q.whenIdle();
    expect(rec.outcomes.map((o) => [o.ok, o.retryInMs])).toEqual([
      [false, 1],
      [false, 2],
      [true, undefined],
    ]);
    q.add('dns');
    await q.whenIdle();
    expect(rec.retryDelays('dns')).toEqual([1, 2, 1]);
    expect(rec.outcomes.map((o) => o.attempt)).toEqual([1, 2, 3, 1, 2]);
  });

  test('each key backs off on its own', async () => {
    const rec = new Recorder();
    rec.behaviour = (key, call) => {
      if (key === 'failing' && call <= 3) throw new Error('down');
    };
    const q = queueWith(rec, { baseDelayMs: 1 });
    q.add('failing');
    q.add('healthy');
    await q.whenIdle();
    expect(rec.retryDelays('failing')).toEqual([1, 2, 4]);
    expect(rec.callsOf('healthy')).toBe(1);
  });

  test('a terminal error is not retried until the key is added again', async () => {
    const rec = new Recorder();
    rec.behaviour = (_key, call) => {
      if (call === 1) throw new TerminalError('services/notes.yaml: spec.config.port: not an integer');
    };
    const q = queueWith(rec, { baseDelayMs: 1 });
    q.add('ServiceInstall/notes');
    await q.whenIdle();
    expect(rec.outcomes).toEqual([
      expect.objectContaining({ key: 'ServiceInstall/notes', ok: false, terminal: true, attempt: 1 }),
    ]);
    expect(rec.outcomes[0]!.retryInMs).toBeUndefined();
    expect(rec.outcomes[0]!.error).toBeInstanceOf(TerminalError);
    expect(q.has('ServiceInstall/notes')).toBe(false);
    expect(q.size).toBe(0);

    q.add('ServiceInstall/notes');
    await q.whenIdle();
    expect(rec.callsOf('ServiceInstall/notes')).toBe(2);
    expect(rec.outcomes.at(-1)).toMatchObject({ ok: true, attempt: 2 });
  });

  test('adding a key that waits for a retry runs it now and keeps backing off', async () => {
    const rec = new Recorder();
    rec.behaviour = () => {
      throw new Error('registry unreachable');
    };
    const q = queueWith(rec, { baseDelayMs: 60_000, maxDelayMs: 600_000 });
    q.add('ServiceInstall/notes');
    await q.whenSettled();
    expect(q.has('ServiceInstall/notes')).toBe(true);
    expect(rec.retryDelays('ServiceInstall/notes')).toEqual([60_000]);

    q.add('ServiceInstall/notes');
    await q.whenSettled();
    expect(rec.callsOf('ServiceInstall/notes')).toBe(2);
    expect(q.failures('ServiceInstall/notes')).toBe(2);
    expect(rec.retryDelays('ServiceInstall/notes')).toEqual([60_000, 120_000]);
    expect(q.size).toBe(1);
    await q.whenIdle(30_000);
    await q.shutdown();
    expect(q.size).toBe(0);
  });

  test('a failed run that was re-added meanwhile runs again at once', async () => {
    const rec = new Recorder();
    const first = gate();
    rec.behaviour = async (_key, call) => {
      if (call === 1) {
        await first.promise;
        throw new Error('container create failed');
      }
    };
    const q = queueWith(rec, { baseDelayMs: 60_000 });
    q.add('ServiceInstall/notes');
    await rec.started('ServiceInstall/notes');
    q.add('ServiceInstall/notes');
    first.open();
    await q.whenIdle();
    expect(rec.outcomes.map((o) => [o.ok, o.retryInMs, o.attempt])).toEqual([
      [false, 0, 1],
      [true, undefined, 2],
    ]);
  });

  test('addAfter runs the key later, the earliest request wins, add runs it now', async () => {
    const rec = new Recorder();
    const q = queueWith(rec);
    q.addAfter('caddy', 60_000);
    q.addAfter('caddy', 1);
    q.addAfter('caddy', 120_000);
    expect(q.size).toBe(1);
    expect(rec.calls).toEqual([]);
    await q.whenIdle();
    expect(rec.calls).toEqual(['caddy']);

    q.addAfter('dns', 60_000);
    await q.whenIdle(1_000);
    expect(rec.callsOf('dns')).toBe(0);
    q.add('dns');
    await q.whenIdle();
    expect(rec.callsOf('dns')).toBe(1);
  });

  test('a handler that throws synchronously or an onOutcome that throws does not wedge the queue', async () => {
    const rec = new Recorder();
    let thrown = 0;
    const q = new WorkQueue({
      baseDelayMs: 1,
      jitter: 0,
      handler: ((key: string) => {
        rec.calls.push(key);
        if (rec.callsOf(key) === 1) throw new Error('sync failure');
        return Promise.resolve();
      }),
      onOutcome: () => {
        thrown++;
        throw new Error('observer bug');
      },
    });
    q.add('firewall');
    await q.whenIdle();
    expect(rec.calls).toEqual(['firewall', 'firewall']);
    expect(thrown).toBe(2);
  });

  test('shutdown waits for running handlers and drops queued and scheduled keys', async () => {
    const rec = new Recorder();
    const release = gate();
    rec.behaviour = (key) => (key === 'a' ? release.promise : undefined);
    const q = queueWith(rec, { concurrency: 1 });
    q.add('a');
    q.add('b');
    q.add('c');
    q.addAfter('d', 1);
    await rec.started('a');
    q.add('a');

    let finished = false;
    const stopping = q.shutdown().then(() => (finished = true));
    q.add('e');
    q.addAfter('f', 1);
    expect(q.size).toBe(0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(finished).toBe(false);

    release.open();
    await stopping;
    expect(rec.calls).toEqual(['a']);
    expect(rec.outcomes).toEqual([expect.objectContaining({ key: 'a', ok: true })]);
    expect(q.size).toBe(0);
    await q.whenIdle();
  });

  test('a run failing during shutdown is not retried', async () => {
    const rec = new Recorder();
    const release = gate();
    rec.behaviour = async () => {
      await release.promise;
      throw new Error('interrupted');
    };
    const q = queueWith(rec, { baseDelayMs: 1 });
    q.add('egress');
    await rec.started('egress');
    const stopping = q.shutdown();
    release.open();
    await stopping;
    expect(rec.outcomes).toEqual([expect.objectContaining({ ok: false, terminal: false })]);
    expect(rec.outcomes[0]!.retryInMs).toBeUndefined();
    expect(q.size).toBe(0);
  });

  test.each([{ concurrency: 0 }, { concurrency: 1.5 }, { jitter: -0.1 }, { jitter: 2 }])(
    'rejects invalid options %o',
    (options) => {
      expect(() => new WorkQueue({ handler: async () => undefined, ...options })).toThrow(RangeError);
    },
  );
});
