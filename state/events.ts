import { watch as watchFs, promises as fs, statSync, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { OperatorEvent } from './status-types.js';

export const DEFAULT_EVENT_LOG_MAX_BYTES = 1024 * 1024;
export const REDACTED = '[REDACTED]';

/** Names of fields whose values are secrets: passwords, secrets, tokens, keys. */
const SECRET_KEY = /pass(?:word|wd|phrase)|secret|token|api[_-]?key|private[_-]?key|credential/i;
/** `password=…`, `"token": "…"`, `PIC_SECRET_DB: …` inside free text. */
const SECRET_ASSIGNMENT =
  /([\w.-]*(?:pass(?:word|wd|phrase)|secret|token|api[_-]?key|private[_-]?key)[\w.-]*["']?\s*[:=]\s*["']?)([^\s"',;&}\]]+)/gi;
/** `scheme://user:password@host` */
const URL_PASSWORD = /(\/\/[^\s:/@]+:)([^\s@/]+)(@)/g;

/**
 * A copy of `value` with secrets replaced by `[REDACTED]`: the value of any property whose name
 * looks like password/secret/token/key, and `name=value` / `name: value` pairs and URL passwords
 * inside strings. Used for every event recorded and every log line written. Symbol-keyed
 * properties (winston's bookkeeping) are copied untouched.
 */
export function redact<T>(value: T): T {
  return redactValue(value, new WeakMap()) as T;
}

function redactValue(value: unknown, seen: WeakMap<object, unknown>): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value !== 'object' || value === null) return value;
  const known = seen.get(value);
  if (known !== undefined) return known;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    seen.set(value, out);
    for (const item of value) out.push(redactValue(item, seen));
    return out;
  }
  if (value instanceof Error) {
    const out: Record<string, unknown> = { name: value.name, message: redactText(value.message) };
    seen.set(value, out);
    if (value.stack !== undefined) out.stack = redactText(value.stack);
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? REDACTED : redactValue(v, seen);
    return out;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value; // Dates, Buffers, class instances
  const source = value as Record<string | symbol, unknown>;
  const out: Record<string | symbol, unknown> = {};
  seen.set(value, out);
  for (const key of Reflect.ownKeys(source)) {
    const v = source[key];
    if (typeof key === 'symbol') out[key] = typeof v === 'string' ? redactText(v) : v;
    else if (SECRET_KEY.test(key) && v !== undefined && v !== null && v !== '') out[key] = REDACTED;
    else out[key] = redactValue(v, seen);
  }
  return out;
}

function redactText(text: string): string {
  return text.replace(SECRET_ASSIGNMENT, `$1${REDACTED}`).replace(URL_PASSWORD, `$1${REDACTED}$3`);
}

export interface EventLogOptions {
  /** The live file is rotated before it would exceed this, so the log and its one rotated copy stay within twice this. */
  maxBytes?: number;
}

export interface RecentOptions {
  key?: string;
  /** At most this many, the most recent (default 100). */
  limit?: number;
}

/** Appends of this process to each file, chained so lines never interleave and rotation is never raced. */
const appendQueues = new Map<string, Promise<void>>();

/**
 * The operator's event log: one JSON object per line, appended, owner-only. Bounded: when the
 * next line would push it past `maxBytes` the file is renamed to `<file>.1` (replacing the older
 * one) and a new file is started.
 */
export class EventLog {
  readonly file: string;
  readonly rotatedFile: string;
  readonly maxBytes: number;

  constructor(file: string, opts: EventLogOptions = {}) {
    this.file = path.resolve(file);
    this.rotatedFile = `${this.file}.1`;
    this.maxBytes = opts.maxBytes ?? DEFAULT_EVENT_LOG_MAX_BYTES;
    if (!(this.maxBytes > 0)) throw new Error(`EventLog maxBytes must be positive, not ${this.maxBytes}`);
  }

  record(e: Omit<OperatorEvent, 'time'> & { time?: string }): Promise<void> {
    const event: OperatorEvent = redact({
      time: e.time ?? new Date().toISOString(),
      key: e.key,
      type: e.type,
      reason: e.reason,
      message: e.message,
    });
    const line = this.lineFor(event);
    const previous = appendQueues.get(this.file) ?? Promise.resolve();
    const next = previous.then(() => this.append(line));
    // The queue continues after a failed append; the caller still sees the failure.
    const settled = next.catch(() => undefined);
    appendQueues.set(this.file, settled);
    void settled.then(() => {
      if (appendQueues.get(this.file) === settled) appendQueues.delete(this.file);
    });
    return next;
  }

  /** Events in the order they happened (oldest first), from the rotated file and the live one. */
  async recent(opts: RecentOptions = {}): Promise<OperatorEvent[]> {
    await appendQueues.get(this.file);
    const limit = opts.limit ?? 100;
    const events: OperatorEvent[] = [];
    for (const file of [this.rotatedFile, this.file]) {
      for (const event of parseEventLines(await readIfExists(file))) {
        if (opts.key === undefined || event.key === opts.key) events.push(event);
      }
    }
    return limit <= 0 ? [] : events.slice(-limit);
  }

  /** A line never exceeds maxBytes, so rotation alone keeps the bound; an oversized message is cut. */
  private lineFor(event: OperatorEvent): string {
    let line = `${JSON.stringify(event)}\n`;
    let overflow = Buffer.byteLength(line) - this.maxBytes;
    while (overflow > 0 && event.message.length > 0) {
      event.message = `${event.message.slice(0, Math.max(0, event.message.length - overflow - 4))}…`;
      if (event.message === '…') event.message = '';
      line = `${JSON.stringify(event)}\n`;
      overflow = Buffer.byteLength(line) - this.maxBytes;
    }
    return line;
  }

  private async append(line: string): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const bytes = Buffer.byteLength(line);
    let handle = await fs.open(this.file, 'a', 0o600);
    try {
      let stat = await handle.stat();
      if (stat.size > 0 && stat.size + bytes > this.maxBytes) {
        await handle.close();
        await fs.rename(this.file, this.rotatedFile);
        handle = await fs.open(this.file, 'a', 0o600);
        stat = await handle.stat();
      }
      if ((stat.mode & 0o077) !== 0) await handle.chmod(0o600);
      await handle.appendFile(line);
    } finally {
      await handle.close();
    }
  }
}

/** Parse JSON lines, skipping any that are not a whole event (a torn last line, a stray edit). */
export function parseEventLines(text: string): OperatorEvent[] {
  const events: OperatorEvent[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (isOperatorEvent(value)) events.push(value);
  }
  return events;
}

function isOperatorEvent(value: unknown): value is OperatorEvent {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.time === 'string' &&
    typeof v.key === 'string' &&
    (v.type === 'Normal' || v.type === 'Warning') &&
    typeof v.reason === 'string' &&
    typeof v.message === 'string'
  );
}

async function readIfExists(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

export interface FollowOptions {
  /** Replay what the file already holds before following (default: only new events). */
  fromStart?: boolean;
  /** Only events of this key. */
  key?: string;
  /** How often to look even without a file-system notification (default 1000 ms). */
  pollMs?: number;
  onError?: (err: Error) => void;
}

export interface EventFollower {
  close(): void;
}

/**
 * Tail the event log: every complete line appended after the call (or from the start) is parsed
 * and passed to `onEvent`, in order. Survives rotation: the rest of the renamed file is read
 * before the new one. A directory watch gives prompt delivery; a slow poll covers file systems
 * where notifications are lost and a log that does not exist yet.
 */
export function followEvents(file: string, onEvent: (e: OperatorEvent) => void, opts: FollowOptions = {}): EventFollower {
  const target = path.resolve(file);
  const rotated = `${target}.1`;
  const dir = path.dirname(target);
  const base = path.basename(target);
  const onError = opts.onError ?? (() => undefined);

  let ino: number | undefined;
  let offset = 0;
  let pending = '';
  let closed = false;
  let running = false;
  let again = false;

  try {
    const stat = statSync(target);
    ino = stat.ino;
    offset = opts.fromStart ? 0 : stat.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }

  const emitLines = (text: string): void => {
    pending += text;
    const end = pending.lastIndexOf('\n');
    if (end < 0) return;
    const complete = pending.slice(0, end + 1);
    pending = pending.slice(end + 1);
    for (const event of parseEventLines(complete)) {
      if (closed) return;
      if (opts.key === undefined || event.key === opts.key) onEvent(event);
    }
  };

  const readRange = async (name: string, from: number): Promise<number> => {
    let handle;
    try {
      handle = await fs.open(name, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return from;
      throw err;
    }
    try {
      const { size } = await handle.stat();
      if (size <= from) return size < from ? 0 : from;
      const buffer = Buffer.alloc(size - from);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
      emitLines(buffer.subarray(0, bytesRead).toString('utf8'));
      return from + bytesRead;
    } finally {
      await handle.close();
    }
  };

  const check = async (): Promise<void> => {
    let stat;
    try {
      stat = await fs.stat(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (ino !== undefined && stat?.ino !== ino) {
      // The file we were reading was rotated away: finish it from where we were.
      try {
        const old = await fs.stat(rotated);
        if (old.ino === ino) await readRange(rotated, offset);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      pending = '';
      ino = undefined;
      offset = 0;
    }
    if (!stat) return;
    if (ino === undefined) {
      ino = stat.ino;
      offset = 0;
    }
    if (stat.size < offset) {
      // Truncated in place: start over.
      offset = 0;
      pending = '';
    }
    offset = await readRange(target, offset);
  };

  const schedule = (): void => {
    if (closed) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    void (async () => {
      do {
        again = false;
        try {
          await check();
        } catch (err) {
          onError(err as Error);
        }
      } while (again && !closed);
      running = false;
    })();
  };

  let watcher: FSWatcher | undefined;
  /** The directory may not exist yet (no event recorded so far); the poll retries the watch. */
  const ensureWatcher = (): void => {
    if (watcher || closed) return;
    try {
      watcher = watchFs(dir, { persistent: true }, (_event, name) => {
        if (name === null || name === base || name === `${base}.1`) schedule();
      });
      watcher.on('error', (err) => onError(err));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') onError(err as Error);
    }
  };
  ensureWatcher();
  const timer = setInterval(() => {
    ensureWatcher();
    schedule();
  }, opts.pollMs ?? 1000);
  schedule();

  return {
    close() {
      closed = true;
      clearInterval(timer);
      watcher?.close();
    },
  };
}
