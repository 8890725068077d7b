/**
 * Benchmark of routing (issue 4), against the real dockerd and a real Caddy container: with 50
 * routed services installed and the operator watching the cell folder, one more service's
 * ServiceInstall is written, and the time until its host name answers through Caddy (its own
 * page, from Caddy at its address on the cell's network, with the Host header; probed from Docker's
 * start event for the container on, as the bare container is once started) is set against the time of that
 * service's container start alone (`docker run -d` of the same container, to the first HTTP
 * answer from the container's address). Several repetitions, the service uninstalled between
 * them; medians reported. Everything created is named pictest-* / cell-pt<hex>-* and removed at
 * the end, failure or not.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import { docker } from '../support/docker.js';
import {
  createRoutingCell,
  httpAnswer,
  removeRoutingCell,
  removeStaleRoutingCells,
  routeAnswers,
  ROUTING_IMAGE,
  startCellCaddy,
  type CellCaddy,
  type RoutingCell,
} from '../support/routing-cell.js';
import { DEFAULT_QUIET_MS } from '../../controllers/sources/file-watch.js';
import { writeBenchSection, type BenchRow } from './report.js';

const run = promisify(execFile);
const SECTION = 'Routing (issue 4)';
const SUITE = 'routing-bench';
const SOCKET = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock';
/** The file watcher's quiet period and chokidar's write-finish threshold (controllers/sources/file-watch.ts). */
const DEBOUNCE_MS = DEFAULT_QUIET_MS;
const INSTALLED = 50;
const REPETITIONS = 9;
const TARGET_RATIO = 1.2;
const POLL_MS = 5;

const ids = Array.from({ length: INSTALLED + 1 }, (_, i) => `s${String(i).padStart(3, '0')}`);
const installed = ids.slice(0, INSTALLED);
const extra = ids[INSTALLED]!;

/** Poll `check` every POLL_MS until it returns a value; throw after `timeoutMs`. */
async function poll<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000, everyMs = POLL_MS): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Like `poll`, but a new probe goes out every `everyMs` without waiting for the ones in flight;
 * resolves when the first probe succeeds. A probe sent while the container is still starting can
 * hang for a second (its SYN reaches an address not up yet and TCP retransmits after 1 s), which
 * says nothing about when the route answers: later probes show that.
 */
async function pollOverlapping(what: string, check: () => Promise<boolean>, timeoutMs = 60_000, everyMs = POLL_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let done = false;
  let inFlight = 0;
  await new Promise<void>((resolve, reject) => {
    const probe = (): void => {
      if (done) return;
      if (performance.now() > deadline) {
        done = true;
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        return;
      }
      if (inFlight < MAX_PROBES_IN_FLIGHT) {
        inFlight++;
        void check()
          .catch(() => false)
          .then((ok) => {
            inFlight--;
            if (ok && !done) {
              done = true;
              resolve();
            }
          });
      }
      setTimeout(probe, everyMs);
    };
    probe();
  });
}

const MAX_PROBES_IN_FLIGHT = 100;

/** Resolves with the time Docker reports `name` started; listening begins before this returns. */
async function containerStart(name: string): Promise<{ seen: Promise<number>; close(): void }> {
  const stream = (await docker.getEvents({ filters: { type: ['container'], event: ['start'], container: [name] } })) as NodeJS.ReadableStream & { destroy(): void };
  const seen = new Promise<number>((resolve, reject) => {
    stream.once('data', () => resolve(performance.now()));
    stream.once('error', reject);
    setTimeout(() => reject(new Error(`no start event for ${name} within 60 s`)), 60_000).unref();
  });
  seen.catch(() => undefined);
  return { seen, close: () => stream.destroy() };
}


function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const ms = (n: number) => `${n.toFixed(0)} ms`;
const each = (values: number[]) => values.map((v) => v.toFixed(0)).join(', ');

// Instruments ----------------------------------------------------------------------------------

interface Timed {
  what: string;
  at: number;
  done?: number;
}

/** Records every Docker API request the operator's own Dockerode makes (wrapping `modem.dial`). */
function recordDockerRequests(client: Dockerode): { take(): Timed[]; restore(): void } {
  const modem = client.modem as unknown as { dial: (options: { method?: string; path?: string }, callback: unknown) => unknown };
  const original = modem.dial;
  let seen: Timed[] = [];
  modem.dial = function (this: unknown, options, callback) {
    const entry: Timed = { what: `${options.method ?? '?'} ${kindOf(options.path ?? '')}`, at: performance.now() };
    seen.push(entry);
    const done =
      typeof callback === 'function'
        ? (...args: unknown[]) => {
            entry.done = performance.now();
            return (callback as (...a: unknown[]) => unknown)(...args);
          }
        : callback;
    return original.call(this, options, done);
  };
  return {
    take() {
      const got = seen;
      seen = [];
      return got;
    },
    restore() {
      modem.dial = original;
    },
  };
}

function kindOf(p: string): string {
  return p
    .replace(/\?.*$/, '')
    .replace(/^\/v[\d.]+/, '')
    .replace(/^\/images\/.+\/json$/, '/images/{ref}/json')
    .replace(/^\/(containers|volumes|networks)\/(?!json$|create$|prune$)[^/]+/, '/$1/{id}');
}

/** A loopback HTTP proxy in front of Caddy's admin API that times each call (the operator only sees an address). */
async function startTimingProxy(target: () => string): Promise<{ address: string; take(): Timed[]; close(): Promise<void> }> {
  let seen: Timed[] = [];
  const server = http.createServer((req, res) => {
    const entry: Timed = { what: `${req.method} ${req.url}`, at: performance.now() };
    seen.push(entry);
    const colon = target().lastIndexOf(':');
    const host = target().slice(0, colon);
    const port = Number(target().slice(colon + 1));
    const upstream = http.request({ host, port, method: req.method, path: req.url, headers: { ...req.headers, host: `${host}:${port}` } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on('end', () => (entry.done = performance.now()));
    });
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    take() {
      const got = seen;
      seen = [];
      return got;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// The two measurements -------------------------------------------------------------------------

interface OperatorRun {
  total: number;
  /** ms after the write. */
  firstDockerCall: number;
  created: number;
  /** Docker's `start` event for the container (from the bench's own event stream). */
  started: number;
  loadStart: number;
  loadEnd: number;
  timeline: string;
}

/** Write the extra service's document; time until its page comes back through Caddy. */
async function installThroughOperator(
  cell: RoutingCell,
  caddy: CellCaddy,
  requests: ReturnType<typeof recordDockerRequests>,
  admin: Awaited<ReturnType<typeof startTimingProxy>>,
): Promise<OperatorRun> {
  requests.take();
  admin.take();
  const start = await containerStart(cell.containerName(extra));
  let t0 = 0;
  let t1 = 0;
  let startedAt = 0;
  try {
    t0 = performance.now();
    await cell.writeService(extra);
    // Nothing can answer before the container runs, and probes sent during its start would load
    // this 2-core machine while Docker starts it (Caddy proxying each one), which the bare start,
    // probed once its `docker run` returned, does not have: probing begins at the start event.
    startedAt = await start.seen;
    // At Caddy's own address: Docker's userland port proxy would carry every probe (a new
    // connection each 5 ms), a load the bare start, probed at the container's address, does not have.
    await pollOverlapping(`${cell.host(extra)} through Caddy`, () => routeAnswers(cell, caddy, extra, 'cell-network'));
    t1 = performance.now();
  } finally {
    start.close();
  }
  const calls = requests.take().filter((r) => r.at <= t1);
  const adminCalls = admin.take().filter((r) => r.at <= t1);
  const after = (r: Timed | undefined, end = false) => (r ? (end ? (r.done ?? r.at) : r.at) - t0 : NaN);
  const create = calls.find((r) => r.what === 'POST /containers/create');
  const load = adminCalls.find((r) => r.what === 'POST /load');
  const timeline = [
    ...calls.map((r) => ({ at: r.at, text: `\`${r.what}\` ${r.done !== undefined ? ms(r.done - r.at) : '(no answer)'}` })),
    ...adminCalls.map((r) => ({ at: r.at, text: `Caddy \`${r.what}\` ${r.done !== undefined ? ms(r.done - r.at) : '(no answer)'}` })),
  ]
    .sort((a, b) => a.at - b.at)
    .map((e) => `+${(e.at - t0).toFixed(0)} ${e.text}`)
    .join(', ');
  return {
    total: t1 - t0,
    firstDockerCall: after(calls[0]),
    created: after(create, true),
    started: startedAt - t0,
    loadStart: after(load),
    loadEnd: after(load, true),
    timeline: `${timeline}, +${(t1 - t0).toFixed(0)} page through Caddy`,
  };
}

/** `docker run -d` of the same container (name aside) with the docker CLI; time until it answers at its address. */
async function bareContainerStart(cell: RoutingCell, volume: string, ip: string): Promise<{ total: number; cli: number }> {
  const name = `pictest-${cell.tag}-bare`;
  const args = [
    'run', '-d', '--name', name,
    '--network', cell.network, '--ip', ip,
    '--restart', 'unless-stopped',
    '-e', `DOMAIN=${cell.domain}`,
    '-v', `${volume}:/data`,
    ...Object.entries(cell.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
    ROUTING_IMAGE,
    ...cell.command(extra),
  ];
  const t0 = performance.now();
  await run('docker', args);
  const cli = performance.now() - t0;
  await pollOverlapping(`${name} answering at ${ip}`, async () => {
    const answer = await httpAnswer(ip, 8080, undefined, 1000);
    return answer.status === 200 && answer.body.trim() === cell.page(extra);
  });
  const total = performance.now() - t0;
  await run('docker', ['rm', '-f', name]);
  return { total, cli };
}

// The benchmark ---------------------------------------------------------------------------------

async function main(): Promise<void> {
  await removeStaleRoutingCells(SUITE);
  const loadBefore = os.loadavg()[0]!;
  let cell: RoutingCell | undefined;
  let operator: Operator | undefined;
  let admin: Awaited<ReturnType<typeof startTimingProxy>> | undefined;
  const client = new Dockerode({ socketPath: SOCKET });
  const requests = recordDockerRequests(client);
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  let failed = false;
  try {
    cell = await createRoutingCell(ids.map((id) => ({ id })), SUITE, { window: 'default' });
    const current = cell;
    const caddy = await startCellCaddy(cell);
    admin = await startTimingProxy(() => `127.0.0.1:${caddy.adminPort}`);
    await cell.writeCellDocument({ adminAddress: admin.address });
    for (const id of installed) await cell.writeService(id);
    const statuses = new StatusStore(path.join(cell.stateDir, 'status'));
    operator = new Operator({
      cellDir: cell.cellDir,
      stateDir: new StateDir(cell.stateDir),
      docker: client,
      logger: createLogger({ json: true, level: 'error' }),
      resyncIntervalMs: 3_600_000,
      watch: true,
    });
    await operator.stateDirReady();
    await operator.start();
    const op = operator;
    const t0 = performance.now();
    await poll(`${INSTALLED} services Ready`, async () => {
      for (const id of installed) if ((await statuses.get(`ServiceInstall/${id}`))?.phase !== 'Ready') return undefined;
      return true;
    }, 600_000, 250);
    for (const id of installed) await poll(`${current.host(id)} through Caddy`, async () => ((await routeAnswers(current, caddy, id)) ? true : undefined), 120_000, 50);
    const convergeMs = performance.now() - t0;

    const volume = `pictest-${cell.tag}-bare-data`;
    await docker.createVolume({ Name: volume, Labels: cell.labels });
    const bareIp = `${cell.base}.121`; // outside the service pool (.20–.120) and Docker's own range (.128/25)

    const runs: OperatorRun[] = [];
    const bare: { total: number; cli: number }[] = [];
    for (let i = 0; i < REPETITIONS; i++) {
      // Quiet first: nothing queued, no write of ours still in the watcher's window.
      await sleep(1000);
      await op.queue.whenIdle(30_000);
      // Alternate the order, so a drift in the machine's load favours neither.
      if (i % 2 === 0) bare.push(await bareContainerStart(cell, volume, bareIp));
      await sleep(500);
      await op.queue.whenIdle(30_000);
      runs.push(await installThroughOperator(cell, caddy, requests, admin));
      if (i % 2 === 1) bare.push(await bareContainerStart(cell, volume, bareIp));

      await cell.removeServiceFile(extra);
      await poll(`${extra} uninstalled`, async () => {
        const gone = (await docker.listContainers({ all: true, filters: { name: [`^/${current.containerName(extra)}$`] } })).length === 0;
        const unrouted = !(await routeAnswers(current, caddy, extra));
        const statusGone = (await statuses.get(`ServiceInstall/${extra}`)) === undefined;
        return gone && unrouted && statusGone ? true : undefined;
      }, 60_000, 50);
    }

    const total = median(runs.map((r) => r.total));
    const bareTotal = median(bare.map((b) => b.total));
    const ratio = total / bareTotal;
    const typical = [...runs].sort((a, b) => a.total - b.total)[Math.floor(runs.length / 2)]!;
    if (process.env.PIC_BENCH_DEBUG) console.error(JSON.stringify(runs.map(({ timeline: _t, ...r }) => r)));
    const m = (pick: (r: OperatorRun) => number) => median(runs.map(pick).filter((v) => Number.isFinite(v)));
    rows.push(
      {
        name: `install one more routed service among ${INSTALLED} (ServiceInstall written → its page from Caddy (at its address on the cell's network, port 80) with the Host header; the watcher's ${DEBOUNCE_MS} ms quiet period included)`,
        result: `median ${ms(total)} (each: ${each(runs.map((r) => r.total))} ms)`,
        target: '—',
        met: true,
      },
      {
        name: 'that service\'s container start alone: `docker run -d` of the same container (CLI via execFile) → first HTTP answer from its address',
        result: `median ${ms(bareTotal)} (each: ${each(bare.map((b) => b.total))} ms; of which the CLI returned after median ${ms(median(bare.map((b) => b.cli)))})`,
        target: '—',
        met: true,
      },
      { name: 'ratio pic / container start (medians)', result: ratio.toFixed(2), target: `≤ ${TARGET_RATIO}`, met: ratio <= TARGET_RATIO },
      { name: 'of which: write → first Docker request (watcher event + quiet period + reading the folder)', result: `median ${ms(m((r) => r.firstDockerCall))}`, target: '—', met: true },
      { name: 'of which: first Docker request → container started (Docker\'s `start` event)', result: `median ${ms(m((r) => r.started - r.firstDockerCall))}`, target: '—', met: true },
      { name: 'of which: container started → page through Caddy', result: `median ${ms(m((r) => r.total - r.started))}`, target: '—', met: true },
      { name: `beside it: write → Caddy \`POST /load\` of ${INSTALLED + 1} routes answered (the route is loaded while the container starts)`, result: `median ${ms(m((r) => r.loadEnd))}`, target: '—', met: true },
    );
    notes.push(
      `**Routing**: a cell of ${INSTALLED + 1} catalog services, each a busybox httpd with a subdomain (\`has_subdomain\`, backend \`cell-<tag>-<id>:8080\`), a named volume and a fixed address; ` +
        `TLS mode off, so Caddy serves \`http://<sub>.<domain>\`. A Caddy container (Debian's caddy ${'2.6.2'} binary in a test image) sits on the cell's network with its admin API and port 80 published on loopback; ` +
        `the Cell's \`adminAddress\` is a timing proxy on loopback in front of the published admin port (the operator does not know). No \`spec.wireguard\`: firewall and egress keys are not in play. ` +
        `${INSTALLED} services were installed first (operator in-process, \`watch: true\`, default concurrency 4; converged and all ${INSTALLED} routes answering after ${(convergeMs / 1000).toFixed(1)} s). ` +
        `Then ${REPETITIONS} repetitions: \`${extra}\`'s ServiceInstall written beside and renamed over; from Docker's \`start\` event for its container (nothing can answer earlier, and probes during the start would load this 2-core machine while Docker starts it, which the bare start, probed once \`docker run\` returned, does not have), ` +
        `Caddy probed every ${POLL_MS} ms at its address on the cell's network (not the published port, whose userland proxy the bare probes do not pass either; a new probe each time, not waiting for those in flight) with \`Host: ${cell.host(extra)}\` until its own page came back; ` +
        `then the document deleted and waited on until container, route and status were gone. The bare start runs the same image, command, env, labels, restart policy, network and a volume, at a fixed address outside the pool, ` +
        `probed the same way at that address; bare runs alternate before and after pic's. The figure includes starting the docker CLI.`,
      `The watcher reports the write once the folder has been quiet for ${DEBOUNCE_MS} ms and the file was not written within that time; then the operator reads the folder. ` +
        'The service\'s reconcile enqueues the routes when its containers are created and about to start, so Caddy loads the new route while the container starts; a reload of the folder parses only the file that changed.',
      `Requests of the median install (ms after the rename, duration): ${typical.timeline}.`,
    );
  } catch (err) {
    failed = true;
    console.error('routing benchmark failed:', err);
    rows.push({ name: 'routing benchmark', result: `failed: ${(err as Error).message.split('\n')[0]}`, target: `ratio ≤ ${TARGET_RATIO}`, met: false });
  } finally {
    if (operator) await operator.stop();
    requests.restore();
    await admin?.close();
    if (cell) await removeRoutingCell(cell);
  }
  notes.push(
    'Figures from one run on a shared machine (other suites may have been using the same dockerd at the same time). ' +
      `1-minute load average at the start → end (${os.cpus().length} CPUs): ${loadBefore.toFixed(1)} → ${os.loadavg()[0]!.toFixed(1)}.`,
  );
  await writeBenchSection(SECTION, rows, notes);
  if (failed) process.exitCode = 1;
}

await main();
