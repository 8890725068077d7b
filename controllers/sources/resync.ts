import { jittered } from '../queue.js';

export interface ResyncOptions {
  /** 0..1: each interval is moved by up to ± this fraction (default 0.1). */
  jitter?: number;
  random?: () => number;
}

/**
 * Calls `onTick` about every `intervalMs`, to catch drift no event reported. Each tick is
 * scheduled anew with fresh jitter, so operators started together do not stay in step, and a
 * slow tick never piles up behind itself. The timer never keeps the process alive.
 */
export function startResync(
  intervalMs: number,
  onTick: () => void,
  opts: ResyncOptions = {},
): { stop(): void } {
  const jitter = opts.jitter ?? 0.1;
  const random = opts.random ?? Math.random;
  if (!(intervalMs > 0)) throw new RangeError(`resync interval must be > 0 ms, got ${intervalMs}`);
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError(`resync jitter must be between 0 and 1, got ${jitter}`);

  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const scheduleNext = (): void => {
    timer = setTimeout(() => {
      if (stopped) return;
      // Schedule first: an onTick that throws must not end the chain.
      scheduleNext();
      onTick();
    }, Math.max(1, jittered(intervalMs, jitter, random)));
    timer.unref();
  };
  scheduleNext();

  return {
    stop(): void {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
