/**
 * Counting instruments for the benchmarks: every Docker API request a Dockerode instance makes,
 * and every file written under some folders (by comparing stat snapshots and by inotify watches).
 */
import { watch, type FSWatcher, promises as fs } from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type Dockerode from 'dockerode';

export interface DockerRequest {
  method: string;
  path: string;
  /** performance.now() when the request was dialled. */
  at: number;
  /** performance.now() when docker-modem called back (the response, or the stream's start). */
  done?: number;
}

/**
 * Wraps `docker.modem.dial`, the one place docker-modem sends a request through, so each request
 * is recorded while recording is on.
 */
export function recordDockerRequests(docker: Dockerode): { start(): void; stop(): DockerRequest[]; restore(): void } {
  const modem = docker.modem as unknown as { dial: (options: { method?: string; path?: string }, callback: unknown) => unknown };
  const original = modem.dial;
  let recording: DockerRequest[] | undefined;
  modem.dial = function (this: unknown, options, callback) {
    if (!recording) return original.call(this, options, callback);
    const entry: DockerRequest = { method: options.method ?? '?', path: (options.path ?? '').replace(/\?$/, ''), at: performance.now() };
    recording.push(entry);
    const done = typeof callback === 'function'
      ? (...args: unknown[]) => {
          entry.done = performance.now();
          return (callback as (...a: unknown[]) => unknown)(...args);
        }
      : callback;
    return original.call(this, options, done);
  };
  return {
    start() {
      recording = [];
    },
    stop() {
      const got = recording ?? [];
      recording = undefined;
      return got;
    },
    restore() {
      modem.dial = original;
    },
  };
}

/** A listing of a container (`GET /containers/json`), the one Docker call a no-op pass may make. */
export function isContainerListing(r: DockerRequest): boolean {
  return r.method === 'GET' && /^(\/v[\d.]+)?\/containers\/json$/.test(r.path);
}

/** `POST /containers/{id}/start`: the API version dropped, names and ids replaced. */
export function requestKind(r: DockerRequest): string {
  const p = r.path
    .replace(/^\/v[\d.]+/, '')
    .replace(/^\/images\/.+\/(json|tag|history|push|get)$/, '/images/{ref}/$1')
    .replace(/^\/(containers|volumes|networks)\/(?!json$|create$|prune$)[^/]+/, '/$1/{id}')
    .replace(/^\/exec\/[0-9a-f]{12,}/, '/exec/{id}');
  return `${r.method} ${p}`;
}

/** Per kind of request: how many, and their summed and mean duration, slowest total first. */
export function requestTimes(requests: DockerRequest[]): string {
  const byKind = new Map<string, { n: number; total: number }>();
  for (const r of requests) {
    const k = requestKind(r);
    const e = byKind.get(k) ?? { n: 0, total: 0 };
    e.n++;
    e.total += (r.done ?? r.at) - r.at;
    byKind.set(k, e);
  }
  return [...byKind]
    .sort((a, b) => b[1].total - a[1].total)
    .map(([k, e]) => `\`${k}\` ×${e.n} ${e.n > 1 ? `${e.total.toFixed(0)} ms in all (mean ${(e.total / e.n).toFixed(0)} ms)` : `${e.total.toFixed(0)} ms`}`)
    .join(', ');
}

export interface FileStamp {
  size: bigint;
  mtimeNs: bigint;
  ino: bigint;
}

/** (size, mtime in ns, inode) of every file and directory under `roots`. */
export async function snapshotFiles(roots: string[]): Promise<Map<string, FileStamp>> {
  const out = new Map<string, FileStamp>();
  const visit = async (p: string): Promise<void> => {
    let st;
    try {
      st = await fs.lstat(p, { bigint: true });
    } catch {
      return; // removed while we looked: the other snapshot will show it
    }
    out.set(p, { size: st.size, mtimeNs: st.mtimeNs, ino: st.ino });
    if (st.isDirectory()) {
      for (const name of await fs.readdir(p).catch(() => [] as string[])) await visit(path.join(p, name));
    }
  };
  for (const root of roots) await visit(root);
  return out;
}

/** Paths added, removed, or whose size, mtime or inode differ between two snapshots. */
export function changedFiles(before: Map<string, FileStamp>, after: Map<string, FileStamp>): string[] {
  const changed = new Set<string>();
  for (const [p, a] of after) {
    const b = before.get(p);
    if (!b || b.size !== a.size || b.mtimeNs !== a.mtimeNs || b.ino !== a.ino) changed.add(p);
  }
  for (const p of before.keys()) if (!after.has(p)) changed.add(p);
  return [...changed].sort();
}

/**
 * An fs.watch on every directory under `roots` (Linux has no recursive watch in Node 20); events
 * are collected while `take` has not been called since.
 */
export async function watchDirectories(roots: string[]): Promise<{ take(): string[]; close(): void }> {
  const watchers: FSWatcher[] = [];
  let events: string[] = [];
  const visit = async (dir: string): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    const w = watch(dir, (event, name) => events.push(`${event} ${path.join(dir, String(name ?? ''))}`));
    w.on('error', () => undefined);
    watchers.push(w);
    for (const e of entries) if (e.isDirectory()) await visit(path.join(dir, e.name));
  };
  for (const root of roots) await visit(root);
  return {
    take() {
      const got = events;
      events = [];
      return got;
    },
    close() {
      for (const w of watchers) w.close();
    },
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function ms(value: number): string {
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
}

/**
 * PIC_BENCH_PROFILE=DIR: a V8 CPU profile of the measured part only, written to DIR/<name>.cpuprofile
 * (open it in Chrome's DevTools or summarise it with a script).
 */
export async function startProfile(): Promise<{ stop(name: string): Promise<void> } | undefined> {
  const dir = process.env.PIC_BENCH_PROFILE;
  if (!dir) return undefined;
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<any>((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 100 });
  await post('Profiler.start');
  return {
    async stop(name) {
      const { profile } = await post('Profiler.stop');
      session.disconnect();
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    },
  };
}
