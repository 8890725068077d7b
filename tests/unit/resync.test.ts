import { describe, expect, test } from '@jest/globals';
import { startResync } from '../../controllers/sources/resync.js';

/** Resolves after `count` ticks of a resync timer, then stops it. */
function ticks(count: number, intervalMs: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const timer = startResync(intervalMs, () => {
      if (++seen < count) return;
      timer.stop();
      resolve();
    });
  });
}

describe('startResync', () => {
  test('ticks again and again until stopped', async () => {
    let count = 0;
    let stopAt3!: () => void;
    const reached3 = new Promise<void>((resolve) => (stopAt3 = resolve));
    const timer = startResync(2, () => {
      count++;
      if (count === 3) {
        timer.stop();
        stopAt3();
      }
    });
    await reached3;
    // Another timer of the same interval ticking five times gives the stopped one every chance.
    await ticks(5, 2);
    expect(count).toBe(3);
  });

  test('stop before the first tick means no tick at all', async () => {
    let count = 0;
    const timer = startResync(1, () => count++);
    timer.stop();
    timer.stop();
    await ticks(5, 1);
    expect(count).toBe(0);
  });

  test.each([
    { random: 0, jitter: 0.1 },
    { random: 0.999, jitter: 0.1 },
    { random: 0.5, jitter: 1 },
    { random: 0, jitter: 1 },
  ])('keeps ticking with jitter $jitter and random() = $random', async ({ random, jitter }) => {
    let count = 0;
    await new Promise<void>((resolve) => {
      const timer = startResync(
        3,
        () => {
          if (++count === 4) {
            timer.stop();
            resolve();
          }
        },
        { jitter, random: () => random },
      );
    });
    expect(count).toBe(4);
  });

  test.each([{ interval: 0 }, { interval: -5 }, { interval: Number.NaN }])('rejects interval $interval', ({ interval }) => {
    expect(() => startResync(interval, () => undefined)).toThrow(RangeError);
  });
});
