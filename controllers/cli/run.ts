import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { parse as parseYaml } from 'yaml';
import type { Problem } from '../../crds/types.js';
import { dockerClient } from '../docker-client.js';
import { recordStateDir, StateDir } from '../../state/state-dir.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { createLogger } from '../logging.js';
import type { Registry } from 'prom-client';
import type { OperatorMetrics } from '../metrics.js';
import { MetricsAddressError, metricsUrl, parseMetricsAddress, startMetricsServer, type MetricsAddress, type MetricsServer } from '../metrics-server.js';
import { Operator, RESYNC_KEY } from '../operator.js';
import { GitSource, sourceOutcome } from '../sources/git-source.js';
import { StoreRefresher, storeUrlOf } from '../store-refresh.js';
import { backoffMs } from '../sources/git-remote.js';
import { GIT_FLAGS, gitSettings, type GitSettings } from './run-git.js';
import { CELL_FLAG, LOG_FORMAT_FLAG, STATE_DIR_FLAG, stringFlag, untilAborted, type Command, type Parsed } from './command.js';
import { safeLine } from '../safe-text.js';
import { chooseStateDir } from './state-location.js';
import { renderTable } from './status-views.js';
import { UsageError, type Io } from './usage.js';

/** A flag given in seconds, as milliseconds; `fallbackSeconds` when absent. */
function positiveSeconds(value: string | undefined, flag: string, fallbackSeconds: number): number {
  if (value === undefined) return fallbackSeconds * 1000;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} takes a number of seconds greater than 0, not "${value}"`);
  return n * 1000;
}

/** The cell folder must exist before an operator or a plan is worth starting. */
export async function requireFolder(dir: string): Promise<void> {
  let stat;
  try {
    stat = await fs.stat(dir);
  } catch {
    throw new Error(`${safeLine(dir)}: no such folder; --cell names the folder that holds cell.yaml`);
  }
  if (!stat.isDirectory()) throw new Error(`${safeLine(dir)}: not a folder; --cell names the folder that holds cell.yaml`);
}

/** Connect to dockerd (DOCKER_HOST or the default socket) and say plainly when it is not there. */
export async function connectDocker(): Promise<Dockerode> {
  const docker = await dockerClient();
  try {
    await docker.ping();
  } catch (err) {
    throw new Error(`cannot reach the Docker engine (${(err as Error).message}); is dockerd running? (make demo starts it)`);
  }
  return docker;
}

/** The verdict of `pic run --once`: every document the operator converges is Ready. */
export function onceVerdict(statuses: DocumentStatus[], keys: string[]): { ok: boolean; notReady: DocumentStatus[]; missing: string[] } {
  const byKey = new Map(statuses.map((s) => [s.key, s]));
  const notReady = keys.map((k) => byKey.get(k)).filter((s): s is DocumentStatus => s !== undefined && s.phase !== 'Ready');
  const missing = keys.filter((k) => !byKey.has(k));
  return { ok: notReady.length === 0 && missing.length === 0, notReady, missing };
}

export const runCommand: Command = {
  name: 'run',
  summary: 'The operator: converge the cell, then follow every change until stopped',
  args: '',
  description:
    'Records its state directory in CELL/.pic/state-dir, so other commands given --cell (or run inside ' +
    'the cell folder) find it. --once converges and exits 0 only if every document is Ready, 1 otherwise. ' +
    'SIGTERM or Ctrl-C finishes the work in flight and exits 0. ' +
    'With --git URL instead of --cell, pic follows a Git remote: each new commit of --ref is checked out ' +
    'into the state directory, validated whole as `pic validate` does, and applied only when all of it is ' +
    'valid (the Cell status says which revision runs, and why one was refused). SIGHUP (or `pic reconcile ' +
    'source`) fetches at once; without --git it re-reads the cell folder and re-checks everything.',
  flags: [
    CELL_FLAG,
    STATE_DIR_FLAG,
    { name: 'once', type: 'boolean', help: 'converge once and exit: 0 only if every document is Ready' },
    { name: 'timeout', type: 'string', value: 'S', help: 'with --once: give up after this many seconds (default 600)' },
    { name: 'resync', type: 'string', value: 'S', help: 're-check everything every S seconds (default 600)' },
    { name: 'concurrency', type: 'string', value: 'N', help: 'documents reconciled at once (default 4)' },
    { name: 'metrics-address', type: 'string', value: 'ADDR', help: 'serve Prometheus /metrics, /healthz and /readyz on a loopback HOST:PORT or unix:/PATH (default: off)' },
    LOG_FORMAT_FLAG,
    ...GIT_FLAGS,
  ],
  examples: ['pic run --cell examples/cell', 'pic run --git https://git.example.org/admin/cell.git --git-password-file /etc/pic/git-token --state-dir /var/lib/pic', 'pic run --cell examples/cell --once --log-format text', 'pic run --cell examples/cell --metrics-address 127.0.0.1:9464'],
  run: (parsed, ctx) => runOperator(parsed, ctx.io, ctx.signal),
};

async function runOperator(parsed: Parsed, io: Io, signal: AbortSignal): Promise<number> {
  if (parsed.positionals.length > 0) throw new UsageError('pic run takes no arguments; name the cell with --cell DIR');
  const values = {
    cell: stringFlag(parsed, 'cell'),
    'state-dir': stringFlag(parsed, 'state-dir'),
    once: parsed.values.once === true,
    resync: stringFlag(parsed, 'resync'),
    timeout: stringFlag(parsed, 'timeout'),
    'log-format': stringFlag(parsed, 'log-format'),
    concurrency: stringFlag(parsed, 'concurrency'),
    'metrics-address': stringFlag(parsed, 'metrics-address'),
  };
  const git = await gitSettings(parsed);
  if (git && values.cell) throw new UsageError('pic run takes --cell DIR or --git URL, not both');
  if (!git && !values.cell) throw new UsageError('pic run needs --cell DIR (a folder) or --git URL (a Git remote)');
  if (values.cell) await requireFolder(values.cell);
  const format = values['log-format'];
  if (format !== undefined && format !== 'json' && format !== 'text') throw new UsageError(`--log-format is json or text, not "${safeLine(format)}"`);
  const concurrency = values.concurrency === undefined ? 4 : Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError('--concurrency takes a whole number ≥ 1');
  const metricsAddress = values['metrics-address'] === undefined ? undefined : usageOf(() => parseMetricsAddress(values['metrics-address']!));
  const logger = createLogger(format ? { json: format === 'json' } : {});
  const choice = await chooseStateDir({ stateDir: values['state-dir'], cell: values.cell });
  const stateDir = new StateDir(choice.dir);
  await stateDir.ensure();
  const lock = await stateDir.acquireLock();
  if (values.cell) {
    try {
      await recordStateDir(path.resolve(values.cell), stateDir.root);
    } catch (err) {
      // A read-only cell folder (a mounted checkout) is fine: other commands then need --state-dir.
      logger.warn(`could not record the state directory in ${path.join(values.cell, '.pic')}: ${(err as Error).message}`);
    }
  }
  const docker = await connectDocker().catch(async (err) => {
    await lock.release();
    throw err;
  });
  // prom-client is loaded only when metrics are asked for: every other command starts without it.
  const metrics = metricsAddress ? await loadMetrics() : undefined;
  // The source writes the Cell's status through the operator's writer, and reloads it once started.
  const wiring: Wiring = { started: false };
  const source = git ? gitSource(git, stateDir, logger, wiring) : undefined;
  if (source) {
    try {
      await source.prepare();
    } catch (err) {
      await lock.release();
      throw err;
    }
  }
  const operator = new Operator({
    cellDir: source ? source.cellDir : path.resolve(values.cell!),
    ...(source ? { watchFolder: false } : {}),
    stateDir,
    docker,
    logger,
    resyncIntervalMs: positiveSeconds(values.resync, '--resync', 600),
    concurrency,
    watch: !values.once,
    ...(metrics ? { metrics: metrics.operatorMetrics } : {}),
  });
  wiring.operator = operator;
  // The queue's timers do not hold the process open (so it can always exit); while the operator
  // works, this does.
  const keepAlive = setInterval(() => undefined, 60_000);
  let metricsServer: MetricsServer | undefined;
  const onHangup = () => {
    logger.info(source ? 'SIGHUP: fetching the Git remote now' : 'SIGHUP: reading the cell folder and re-checking everything now');
    if (source) source.pollNow();
    else operator.queue.add(RESYNC_KEY);
  };
  process.on('SIGHUP', onHangup);
  try {
    if (metricsAddress && metrics) metricsServer = await serveMetrics(metricsAddress, metrics.registry, operator, logger);
    if (source && !(await firstRevision(source, git!, signal, logger))) return 1;
    await operator.start();
    wiring.started = true;
    if (source) {
      // The Cell's status under the cell's own name, now that the operator read it.
      await source.writeReport(true);
      if (!values.once) source.start();
    }
    if (values.once) {
      const deadline = positiveSeconds(values.timeout, '--timeout', 600);
      // Settled: nothing queued or running, and no retry due within 30 s (a key that keeps failing
      // that long is reported as failing rather than waited on).
      const settled = await Promise.race([
        operator.queue.whenIdle(30_000).then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), deadline).unref()),
        untilAborted(signal).then(() => false),
      ]);
      const keys = operator.reconciledKeys();
      const statuses = await operator.statuses();
      const relevant = statuses.filter((s) => keys.includes(s.key));
      io.out(renderTable(relevant, { now: new Date() }));
      const verdict = onceVerdict(statuses, keys);
      if (!settled) io.err(signal.aborted ? 'pic: interrupted before the cell settled' : 'pic: the cell did not settle before --timeout');
      for (const s of verdict.notReady) {
        const why = s.conditions.find((c) => c.type === 'Stalled') ?? s.conditions.find((c) => c.type === 'Ready');
        io.err(safeLine(`${s.key} is ${s.phase}: ${why?.message ?? 'no reason recorded'}`));
      }
      for (const k of verdict.missing) io.err(`${safeLine(k)} has no status yet`);
      for (const line of operator.unreconciledNotes()) io.err(safeLine(line));
      return verdict.ok && settled && operator.unreconciledNotes().length === 0 ? 0 : 1;
    }
    logger.info(`pic is converging ${source ? `${git!.remote.display} (${source.appliedRevision})` : values.cell}; state in ${stateDir.root}`);
    await untilAborted(signal);
    logger.info('stopping: finishing work in progress');
    return 0;
  } finally {
    process.off('SIGHUP', onHangup);
    clearInterval(keepAlive);
    await source?.stop();
    await metricsServer?.close();
    await operator.stop();
    await lock.release();
  }
}

/** A refused --metrics-address is a usage error (exit 2), like any other bad flag. */
function usageOf<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof MetricsAddressError) throw new UsageError(safeLine(err.message));
    throw err;
  }
}

/** Listen before the first pass, so /healthz answers and /readyz says the pass is under way. */
/** The metrics registry and the operator's metrics in it, loaded on demand. */
async function loadMetrics(): Promise<{ registry: Registry; operatorMetrics: OperatorMetrics }> {
  const [{ Registry: RegistryClass }, { OperatorMetrics: Metrics }] = await Promise.all([import('prom-client'), import('../metrics.js')]);
  const registry = new RegistryClass();
  return { registry, operatorMetrics: new Metrics(registry) };
}

async function serveMetrics(address: MetricsAddress, registry: Registry, operator: Operator, logger: { info(message: string): unknown }): Promise<MetricsServer> {
  let server: MetricsServer;
  try {
    server = await startMetricsServer(address, { registry, readiness: () => operator.readiness() });
  } catch (err) {
    throw new Error(`cannot serve metrics on ${metricsUrl(address)}: ${(err as Error).message}`);
  }
  logger.info(`metrics on ${metricsUrl(server.address)}; health on /healthz and /readyz`);
  return server;
}

/** The Git source of `pic run --git`, wired to the operator's Cell status writer and event log. */
interface Wiring {
  operator?: Operator;
  /** The operator has started (its first reload is done): a switch reloads it. */
  started: boolean;
}

function gitSource(git: GitSettings, stateDir: StateDir, logger: ReturnType<typeof createLogger>, wiring: Wiring): GitSource {
  const operator = () => wiring.operator;
  const refresher = new StoreRefresher({ stateRoot: stateDir.root });
  // Before the operator has read the cell, the name comes from the revision checked out.
  const cellKey = () => (wiring.started ? operator()?.cellStatusKey() : undefined) ?? cellKeyIn(source.cellDir) ?? 'Cell/cell';
  const source: GitSource = new GitSource({
    ...git,
    stateRoot: stateDir.root,
    logger,
    validate: async (dir) => {
      const { validatePath, emptyCounts } = await import('./validate.js');
      const { withCatalogMemo } = await import('../../state/catalog.js');
      await refreshStoreOf(dir, stateDir.root, refresher, logger);
      const problems = await withCatalogMemo(() => validatePath(dir, undefined, new Set(), emptyCounts(), stateDir.root));
      return problems.length > 0 ? problems : gitModeProblems(dir);
    },
    switchFolder: async (swap) => {
      const op = operator();
      if (op && wiring.started) await op.reload(swap);
      else await swap();
    },
    report: async (report) => {
      const op = operator();
      // Before the operator has read the cell, its name is not known: a status is written only
      // while no revision runs (to say why); once one does, the operator's start writes it under the cell's name.
      if (!op || (!wiring.started && report.lastAppliedRevision !== undefined)) return;
      await op.ctx.statuses.cell.sourceReport(cellKey(), `${git.remote.display}#${git.path}`, sourceOutcome(report), { ...report });
    },
    event: (type, reason, message) => operator()?.ctx.event(cellKey(), type, reason, message),
  });
  return source;
}

/** `Cell/<name>` of the cell.yaml in `dir`, when it can be read. */
function cellKeyIn(dir: string): string | undefined {
  try {
    const name = (parseYaml(readFileSync(path.join(dir, 'cell.yaml'), 'utf8')) as { metadata?: { name?: unknown } } | null)?.metadata?.name;
    return typeof name === 'string' && name !== '' ? `Cell/${name}` : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Before the operator starts: the last good revision, or else the first one the remote gives
 * (retried with back-off until one is applied or pic is stopped). False when stopped first.
 */
async function firstRevision(source: GitSource, git: GitSettings, signal: AbortSignal, logger: { info(m: string): unknown }): Promise<boolean> {
  let failures = 0;
  while (source.appliedRevision === undefined) {
    await source.poll();
    if (source.appliedRevision !== undefined) break;
    failures++;
    const wait = backoffMs(git.intervalMs, failures);
    logger.info(`no revision of ${git.remote.display} applied yet; trying again in ${Math.round(wait / 100) / 10}s`);
    const aborted = await Promise.race([new Promise<boolean>((resolve) => setTimeout(() => resolve(false), wait).unref()), untilAborted(signal).then(() => true)]);
    if (aborted) return false;
  }
  return true;
}

/** Paths of the Cell that pic writes to (snapshots, the Caddyfile, the zone): by JSON pointer. */
const WRITTEN_PATHS: readonly { pointer: string; what: string; get: (spec: CellSpecPaths) => unknown }[] = [
  { pointer: '/spec/backup/path', what: 'snapshots', get: (s) => s.backup?.path },
  { pointer: '/spec/caddy/caddyfile', what: 'the Caddyfile', get: (s) => s.caddy?.caddyfile },
  { pointer: '/spec/dns/zoneFile', what: 'the zone file', get: (s) => s.dns?.zoneFile },
];

interface CellSpecPaths {
  backup?: { path?: unknown };
  caddy?: { caddyfile?: unknown };
  dns?: { zoneFile?: unknown };
}

/**
 * What a cell followed from Git may not say although a local folder may: a relative path pic
 * writes to would put what it writes inside a checked-out revision, which the next one replaces.
 */
async function gitModeProblems(dir: string): Promise<Problem[]> {
  const file = path.join(dir, 'cell.yaml');
  let doc: unknown;
  try {
    doc = parseYaml(await fs.readFile(file, 'utf8'));
  } catch {
    return []; // validated already: a cell.yml, or nothing to add
  }
  const spec = (doc as { spec?: CellSpecPaths } | null)?.spec ?? {};
  return WRITTEN_PATHS.flatMap(({ pointer, what, get }) => {
    const value = get(spec);
    if (typeof value !== 'string' || path.isAbsolute(value)) return [];
    return [{ file, pointer, message: `"${value}" is relative to the cell folder, where pic would write ${what}; pic run --git replaces that folder with each revision: give an absolute path, or leave it out (it then lives in the state directory)` }];
  });
}

/**
 * A revision whose Cell names a published store (spec.store.url) is validated against that
 * store's catalog: fetched into the state directory's cache when due (the operator reads the
 * same cache), so a first revision can be checked before the operator has ever run.
 */
async function refreshStoreOf(dir: string, stateRoot: string, refresher: StoreRefresher, logger: { warn(m: string): unknown }): Promise<void> {
  const { loadCell } = await import('../../state/cell.js');
  const loaded = await loadCell(dir, { stateRoot });
  if (!storeUrlOf(loaded.cell)) return;
  const report = await refresher.refreshIfDue(loaded.cell, loaded.policy, dir).catch((err: Error) => {
    logger.warn(`store: cannot refresh the cache: ${err.message}`);
    return undefined;
  });
  if (report?.outcome === 'failed') logger.warn(`store ${report.url}: refresh failed: ${report.failure?.url}: ${report.failure?.message}`);
}
