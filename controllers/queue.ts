import PQueue from 'p-queue';
import { isTerminal } from '../reconcilers/errors.js';

/** What happened to one run of a key, for logging and status; called after every run. */
export interface WorkOutcome {
  key: string;
  ok: boolean;
  error?: unknown;
  /** The error was a TerminalError: the key is not retried until it is added again. */
  terminal: boolean;
  /** 1 for the first run after a success (or ever), 2 for the first retry, ... */
  attempt: number;
  /** Set when a retry was scheduled: the delay until it runs (0 when it was re-added meanwhile). */
  retryInMs?: number;
  /** How long the handler ran. */
  durationMs: number;
}

/**
 * Told what the queue does with each key, for metrics (the names follow client-go's workqueue:
 * an add, a wait in the queue, a run). An observer that throws is ignored.
 */
export interface WorkQueueObserver {
  /** The key became due to run: queued, or due again after its current run. Coalesced adds are not told. */
  added?(key: string): void;
  /** A run of the key starts after it waited `waitedMs` for a slot. */
  started?(key: string, waitedMs: number): void;
  /** A run ended; a scheduled retry shows as `outcome.retryInMs`. */
  finished?(outcome: WorkOutcome): void;
}

export interface WorkQueueOptions {
  handler: (key: string) => Promise<void>;
  /** How many different keys may run at once (one key never runs twice at once). */
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** 0..1: the retry delay is moved by up to ± this fraction, so failing keys do not retry in step. */
  jitter?: number;
  random?: () => number;
  onOutcome?: (outcome: WorkOutcome) => void;
  observer?: WorkQueueObserver;
}

const DEFAULT_CONCURRENCY = 4;
const DEFAULT_BASE_DELAY_MS = 200;
const DEFAULT_MAX_DELAY_MS = 5 * 60_000;
const DEFAULT_JITTER = 0.2;

/** `min(maxDelayMs, baseDelayMs * 2^(failures-1))`; failures counts from 1. */
export function backOffDelay(failures: number, baseDelayMs: number, maxDelayMs: number): number {
  return Math.min(maxDelayMs, baseDelayMs * 2 ** Math.max(0, failures - 1));
}

/** `delayMs` moved by up to ± `fraction` of itself; `random()` in [0, 1) picks where. */
export function jittered(delayMs: number, fraction: number, random: () => number): number {
  return Math.max(0, Math.round(delayMs * (1 + fraction * (2 * random() - 1))));
}

interface KeyState {
  /** Waiting for a p-queue slot. */
  queued: boolean;
  running: boolean;
  /** Added while running: run once more when the current run ends. */
  dirty: boolean;
  /** A retry or an addAfter; at most one per key, the earliest wins. */
  timer?: NodeJS.Timeout;
  dueAt?: number;
  /** Consecutive failed runs; reset by a success. */
  failures: number;
  /** When it was last queued, and when its current run started (Date.now()). */
  queuedAt: number;
  startedAt: number;
}

interface Waiter {
  ready: () => boolean;
  resolve: () => void;
}

/**
 * A queue of keys, each naming something to reconcile. The handler is level-based (it re-reads
 * everything), so a key queued many times needs to run only once, and a key changed while it runs
 * needs exactly one more run. Failures are retried per key with exponential back-off.
 */
export class WorkQueue {
  readonly #handler: (key: string) => Promise<void>;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #jitter: number;
  readonly #random: () => number;
  readonly #onOutcome: ((outcome: WorkOutcome) => void) | undefined;
  readonly #observer: WorkQueueObserver;
  readonly #slots: PQueue;
  readonly #keys = new Map<string, KeyState>();
  #waiters: Waiter[] = [];
  #closed = false;

  constructor(options: WorkQueueOptions) {
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    const jitter = options.jitter ?? DEFAULT_JITTER;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`WorkQueue concurrency must be an integer >= 1, got ${concurrency}`);
    }
    if (!(jitter >= 0 && jitter <= 1)) {
      throw new RangeError(`WorkQueue jitter must be between 0 and 1, got ${jitter}`);
    }
    this.#handler = options.handler;
    this.#baseDelayMs = options.baseDelayMs ?? DEFAULT_BASE_DELAY_MS;
    this.#maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    this.#jitter = jitter;
    this.#random = options.random ?? Math.random;
    this.#onOutcome = options.onOutcome;
    this.#observer = options.observer ?? {};
    this.#slots = new PQueue({ concurrency });
  }

  /**
   * Run `key` as soon as a slot is free. Already queued: nothing changes. Running: it runs once
   * more afterwards. Waiting for a retry: it runs now (its document changed), keeping its failure
   * count so a key that still fails keeps backing off.
   */
  add(key: string): void {
    if (this.#closed) return;
    const state = this.#state(key);
    this.#clearTimer(state);
    this.#enqueue(key, state);
  }

  /** Run `key` after `delayMs`, unless it is due earlier already. */
  addAfter(key: string, delayMs: number): void {
    if (this.#closed) return;
    if (!(delayMs > 0)) {
      this.add(key);
      return;
    }
    this.#schedule(key, this.#state(key), delayMs);
  }

  /** The key is queued, due to run again after its current run, or scheduled. */
  has(key: string): boolean {
    const state = this.#keys.get(key);
    return state !== undefined && isPending(state);
  }

  /** Keys queued, due to run again after their current run, or scheduled. */
  get size(): number {
    let size = 0;
    for (const state of this.#keys.values()) if (isPending(state)) size++;
    return size;
  }

  /** Keys waiting for a slot (client-go's depth: neither running nor only scheduled). */
  get depth(): number {
    let depth = 0;
    for (const state of this.#keys.values()) if (state.queued) depth++;
    return depth;
  }

  /** When each run in progress started (Date.now()), by key. */
  runningSince(): Map<string, number> {
    const running = new Map<string, number>();
    for (const [key, state] of this.#keys) if (state.running) running.set(key, state.startedAt);
    return running;
  }

  /** Consecutive failed runs of `key` (0 after a success). */
  failures(key: string): number {
    return this.#keys.get(key)?.failures ?? 0;
  }

  /**
   * Resolves when nothing is queued or running and nothing is scheduled to run within `withinMs`
   * (default: nothing scheduled at all). A key that keeps failing is always scheduled, so a
   * caller that must not hang on it passes a horizon.
   */
  whenIdle(withinMs = Number.POSITIVE_INFINITY): Promise<void> {
    return this.#waitFor(() => {
      const horizon = Date.now() + withinMs;
      for (const state of this.#keys.values()) {
        if (state.queued || state.running) return false;
        if (state.timer !== undefined && (state.dueAt ?? 0) <= horizon) return false;
      }
      return true;
    });
  }

  /** Resolves when nothing is queued or running; scheduled retries may remain. */
  whenSettled(): Promise<void> {
    return this.#waitFor(() => {
      for (const state of this.#keys.values()) if (state.queued || state.running) return false;
      return true;
    });
  }

  /** Stop accepting keys, drop the queued and scheduled ones, wait for the running ones. */
  async shutdown(): Promise<void> {
    this.#closed = true;
    this.#slots.clear();
    for (const state of this.#keys.values()) {
      this.#clearTimer(state);
      state.queued = false;
      state.dirty = false;
    }
    this.#notify();
    await this.whenSettled();
  }

  #state(key: string): KeyState {
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { queued: false, running: false, dirty: false, failures: 0, queuedAt: 0, startedAt: 0 };
      this.#keys.set(key, state);
    }
    return state;
  }

  #enqueue(key: string, state: KeyState, told = false): void {
    if (state.queued) return;
    if (state.running) {
      if (!state.dirty) {
        this.#tell(() => this.#observer.added?.(key));
        state.queuedAt = Date.now();
      }
      state.dirty = true;
      return;
    }
    // A key due again after its run was told of (and its wait began) when it was added.
    if (!told) {
      this.#tell(() => this.#observer.added?.(key));
      state.queuedAt = Date.now();
    }
    state.queued = true;
    // #run never rejects; the catch only keeps a bug there from becoming an unhandled rejection.
    this.#slots.add(() => this.#run(key, state)).catch(() => undefined);
  }

  #schedule(key: string, state: KeyState, delayMs: number): void {
    const dueAt = Date.now() + delayMs;
    if (state.timer !== undefined && (state.dueAt ?? 0) <= dueAt) return;
    this.#clearTimer(state);
    state.dueAt = dueAt;
    state.timer = setTimeout(() => {
      state.timer = undefined;
      state.dueAt = undefined;
      if (!this.#closed) this.#enqueue(key, state);
      this.#notify();
    }, delayMs);
    state.timer.unref();
  }

  #clearTimer(state: KeyState): void {
    if (state.timer === undefined) return;
    clearTimeout(state.timer);
    state.timer = undefined;
    state.dueAt = undefined;
  }

  async #run(key: string, state: KeyState): Promise<void> {
    // Start the handler on a later tick, so that adds made in the same tick as this one (a burst
    // of file events) still find the key queued and coalesce into this run.
    await Promise.resolve();
    if (!state.queued) return; // dropped by shutdown
    state.queued = false;
    state.running = true;
    state.startedAt = Date.now();
    this.#tell(() => this.#observer.started?.(key, state.startedAt - state.queuedAt));
    const attempt = state.failures + 1;
    let outcome: WorkOutcome;
    try {
      await this.#handler(key);
      state.failures = 0;
      outcome = { key, ok: true, terminal: false, attempt, durationMs: Date.now() - state.startedAt };
    } catch (error) {
      state.failures++;
      const terminal = isTerminal(error);
      outcome = { key, ok: false, error, terminal, attempt, durationMs: Date.now() - state.startedAt };
      if (!terminal && !this.#closed) {
        if (state.dirty) {
          outcome.retryInMs = 0;
        } else {
          const delay = backOffDelay(state.failures, this.#baseDelayMs, this.#maxDelayMs);
          outcome.retryInMs = jittered(delay, this.#jitter, this.#random);
          this.#schedule(key, state, outcome.retryInMs);
        }
      }
    }
    state.running = false;
    if (state.dirty && !this.#closed) {
      state.dirty = false;
      this.#enqueue(key, state, true);
    }
    this.#tell(() => this.#onOutcome?.(outcome));
    this.#tell(() => this.#observer.finished?.(outcome));
    if (!isPending(state) && !state.running && state.failures === 0) {
      this.#keys.delete(key);
    }
    this.#notify();
  }

  #tell(call: () => void): void {
    try {
      call();
    } catch {
      // An observer that throws must not wedge the queue; what it was told of is already applied.
    }
  }

  #waitFor(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ ready, resolve }));
  }

  #notify(): void {
    if (this.#waiters.length === 0) return;
    const waiting: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.ready()) waiter.resolve();
      else waiting.push(waiter);
    }
    this.#waiters = waiting;
  }
}

function isPending(state: KeyState): boolean {
  return state.queued || state.dirty || state.timer !== undefined;
}
