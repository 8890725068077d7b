import { promises as fs } from 'node:fs';
import path from 'node:path';
import { watch as watchPaths } from 'chokidar';
import { compareText } from '../crds/values.js';
import { readJsonFile, writeFileAtomic } from './atomic-write.js';
import { statusEquals } from './conditions.js';
import type { DocumentStatus } from './status-types.js';

/** A document kind as it appears in a key: `ServiceInstall`, `PeerAccount`, ... */
const KIND = /^[A-Z][A-Za-z0-9]{0,62}$/;
/** A DNS label (RFC 1123), the only names documents may have. */
const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A status key that is not `Kind/name`; refused so a key can never name a file outside the store. */
export class InvalidStatusKeyError extends Error {
  constructor(readonly key: string) {
    super(
      `invalid status key ${JSON.stringify(key)}: expected Kind/name, the kind a capitalised word ` +
        'and the name a DNS label (lowercase letters, digits and "-", at most 63 characters)',
    );
    this.name = 'InvalidStatusKeyError';
  }
}

export function parseStatusKey(key: string): { kind: string; name: string } {
  const parts = key.split('/');
  const [kind, name] = parts;
  if (parts.length !== 2 || kind === undefined || name === undefined || !KIND.test(kind) || !NAME.test(name)) {
    throw new InvalidStatusKeyError(key);
  }
  return { kind, name };
}

/** A status file that exists but cannot be read or is not a status (a reader reports it in its row). */
export interface UnreadableStatus {
  key: string;
  kind: string;
  name: string;
  file: string;
  message: string;
}

/**
 * The status of every document, one JSON file each at `<dir>/<Kind>/<name>.json`, owner-only.
 * A put that would store what is already there writes nothing: what this process last wrote or
 * read is remembered, so a reconcile that changed nothing does not even touch the disk.
 */
export class StatusStore {
  readonly dir: string;
  /**
   * key → last known content, as a private copy and as JSON (a caller gets a fresh parse of the
   * JSON: a third of what a structuredClone costs, on every status of every pass); `null` means
   * known to be absent.
   */
  private readonly known = new Map<string, { status: DocumentStatus; json: string } | null>();
  /** Operations on one key run one after another; different keys run side by side. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** key → its file; a valid key's path never changes. */
  private readonly files = new Map<string, string>();

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  fileOf(key: string): string {
    let file = this.files.get(key);
    if (file === undefined) {
      const { kind, name } = parseStatusKey(key);
      file = path.join(this.dir, kind, `${name}.json`);
      this.files.set(key, file);
    }
    return file;
  }

  /** The stored status, read from disk (another process may have written it), or undefined. */
  async get(key: string): Promise<DocumentStatus | undefined> {
    const file = this.fileOf(key);
    return this.serialise(key, () => this.read(key, file));
  }

  /**
   * What this process last wrote or read for `key`, reading the file only the first time. For the
   * operator, which owns the directory under its lock; a reader beside a running operator uses get.
   */
  async lastKnown(key: string): Promise<DocumentStatus | undefined> {
    const file = this.fileOf(key);
    return this.serialise(key, async () => {
      const known = this.known.get(key);
      if (known === null) return undefined;
      if (known !== undefined) return JSON.parse(known.json) as DocumentStatus;
      return this.read(key, file);
    });
  }

  /** The keys of every stored status, from the directory listing alone (no file is read). */
  async keys(): Promise<{ key: string; kind: string; name: string }[]> {
    const keys: { key: string; kind: string; name: string }[] = [];
    for (const kind of await readDirNames(this.dir)) {
      if (!KIND.test(kind)) continue;
      for (const entry of await readDirNames(path.join(this.dir, kind))) {
        if (!entry.endsWith('.json')) continue;
        const name = entry.slice(0, -'.json'.length);
        if (NAME.test(name)) keys.push({ key: `${kind}/${name}`, kind, name });
      }
    }
    return keys;
  }

  /** Every stored status, sorted by kind then name. */
  async list(): Promise<DocumentStatus[]> {
    const keys = (await this.keys()).map((k) => k.key);
    const statuses = await Promise.all(keys.map((key) => this.get(key)));
    return statuses.filter((s): s is DocumentStatus => s !== undefined).sort(compareStatuses);
  }

  /**
   * Every status that can be read, and one entry for each file that cannot (corrupt JSON, not a
   * status, unreadable), so one bad file does not hide the others. Reads only; creates nothing.
   */
  async listForReading(): Promise<{ statuses: DocumentStatus[]; unreadable: UnreadableStatus[] }> {
    const keys = await this.keys();
    const statuses: DocumentStatus[] = [];
    const unreadable: UnreadableStatus[] = [];
    await Promise.all(
      keys.map(async (k) => {
        try {
          const status = await this.get(k.key);
          if (status !== undefined) statuses.push(status);
        } catch (err) {
          const file = this.fileOf(k.key);
          const message = (err as Error).message.startsWith(file) ? (err as Error).message : `${file}: ${(err as Error).message}`;
          unreadable.push({ ...k, file, message });
        }
      }),
    );
    unreadable.sort((a, b) => compareText(a.key, b.key));
    return { statuses: statuses.sort(compareStatuses), unreadable };
  }

  /** Store `status` unless it equals (ignoring updatedAt) what is stored. Returns whether it wrote. */
  async put(status: DocumentStatus): Promise<boolean> {
    const { kind, name } = parseStatusKey(status.key);
    if (status.kind !== kind || status.name !== name) {
      throw new Error(`status key ${status.key} does not match its kind ${status.kind} and name ${status.name}`);
    }
    const file = this.fileOf(status.key);
    return this.serialise(status.key, async () => {
      const current = this.known.has(status.key) ? this.known.get(status.key)?.status : await this.read(status.key, file);
      if (statusEquals(current, status)) return false;
      const json = JSON.stringify(status, null, 2);
      await writeFileAtomic(file, `${json}\n`, 0o600);
      this.known.set(status.key, { status: JSON.parse(json) as DocumentStatus, json });
      return true;
    });
  }

  /** Delete the stored status. Returns whether there was one. */
  async remove(key: string): Promise<boolean> {
    const file = this.fileOf(key);
    return this.serialise(key, async () => {
      let existed = true;
      try {
        await fs.unlink(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        existed = false;
      }
      this.known.set(key, null);
      if (existed) await syncDir(path.dirname(file));
      return existed;
    });
  }

  private async read(key: string, file: string): Promise<DocumentStatus | undefined> {
    const value = await readJsonFile<unknown>(file, undefined);
    if (value === undefined) {
      this.known.set(key, null);
      return undefined;
    }
    if (!isStatusShaped(value) || value.key !== key) {
      throw new Error(`${file}: not a status of ${key}; move it aside and the operator will write a new one`);
    }
    const json = JSON.stringify(value);
    this.known.set(key, { status: JSON.parse(json) as DocumentStatus, json });
    return value;
  }

  private serialise<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const result = previous.then(operation);
    const settled = result.catch(() => undefined);
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return result;
  }
}

/** Enough of a status for every view to show it: a stray or truncated-but-valid JSON file is not. */
function isStatusShaped(value: unknown): value is DocumentStatus {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return typeof v.key === 'string' && typeof v.kind === 'string' && typeof v.name === 'string' && typeof v.phase === 'string' && Array.isArray(v.conditions);
}

function compareStatuses(a: DocumentStatus, b: DocumentStatus): number {
  return compareText(a.kind, b.kind) || compareText(a.name, b.name);
}

async function readDirNames(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface StatusDirWatch {
  close(): Promise<void>;
}

/**
 * Call `onChange` shortly after anything under the status directory changes, so `pic watch` can
 * redraw. Bursts (one atomic write is several file-system events; a reconcile pass writes many
 * statuses) are folded into one call after `debounceMs` of quiet. Resolves once watching.
 */
export async function watchStatusDir(
  statusDir: string,
  onChange: () => void,
  opts: { debounceMs?: number; onError?: (err: Error) => void } = {},
): Promise<StatusDirWatch> {
  const root = path.resolve(statusDir);
  // A reader never creates the directory: a missing one is watched from its parent until it appears
  // (only that one entry of the parent, never the services' data beside it).
  const exists = await fs.stat(root).then((st) => st.isDirectory(), () => false);
  const base = exists ? root : path.dirname(root);
  const debounceMs = opts.debounceMs ?? 50;
  // Under a steady stream of writes, still redraw now and then rather than wait for quiet.
  const maxWaitMs = debounceMs * 10;
  let timer: NodeJS.Timeout | undefined;
  let firstPendingAt = 0;
  let closed = false;
  const fire = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!closed) onChange();
  };
  const watcher = watchPaths(base, {
    ignoreInitial: true,
    // Temporary files of atomic writes start with a dot; their rename is seen as the real file.
    ignored: (p: string) => {
      if (!exists) {
        const fromBase = path.relative(base, p);
        if (fromBase !== '' && fromBase.split(path.sep)[0] !== path.basename(root)) return true;
      }
      const rel = path.relative(root, p);
      return rel !== '' && !rel.startsWith('..') && rel.split(path.sep).some((part) => part.startsWith('.'));
    },
  });
  watcher.on('all', () => {
    if (closed) return;
    const now = Date.now();
    if (!timer) firstPendingAt = now;
    else clearTimeout(timer);
    if (now - firstPendingAt >= maxWaitMs) fire();
    else timer = setTimeout(fire, debounceMs);
  });
  await new Promise<void>((resolve, reject) => {
    watcher.once('ready', resolve);
    watcher.once('error', reject);
  });
  watcher.on('error', (err) => opts.onError?.(err as Error));
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await watcher.close();
    },
  };
}
