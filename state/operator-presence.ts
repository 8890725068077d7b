/**
 * Whether an operator is converging a state directory, judged from what a reader can see: the
 * lock (`operator.lock`, the holder's pid) and the heartbeat the operator refreshes after its
 * passes (`operator-heartbeat.json`). Pure: state/operator-heartbeat.ts reads both, the clock is
 * passed in. The commands that print statuses (get, describe, watch) say from this whether what
 * they print is live or only as of the last pass.
 */

/** What the operator records in `operator-heartbeat.json`. */
export interface Heartbeat {
  pid: number;
  /** When the process started as the kernel counts it (state/snapshots.ts processStartTime): a reused pid is told apart. */
  procStart?: string;
  /** Host name and pid namespace of the writer: a reader elsewhere (the operator in a container) cannot check its pid. */
  host?: string;
  pidNamespace?: string;
  /** `run` follows the cell until stopped; `once` is `pic run --once`, which converges and exits. */
  mode: 'run' | 'once';
  /** The periodic resync of that operator: a pass is due at least this often. */
  resyncIntervalSeconds: number;
  startedAt: string;
  /** The end of the last full pass written down (at most half a resync interval behind the real one). */
  lastPassAt?: string;
  /** Set when the operator stopped cleanly. */
  stoppedAt?: string;
}

/** What a reader saw of the lock and the heartbeat. */
export interface OperatorObservation {
  /** The pid the lock file names; absent without a lock file (or one naming none). */
  lock?: { pid: number; alive: boolean; procStart?: string };
  heartbeat?: Heartbeat;
  /**
   * Whether the heartbeat was written on this host in this pid namespace. When not, the lock's pid
   * means nothing here and only the heartbeat's age tells whether the operator lives.
   */
  sameProcessView: boolean;
}

/** The fact `pic get -o json` carries as `operator`, and what the tables' header is made from. */
export interface OperatorPresence {
  /** A live process holds the lock (or, seen from another pid namespace, its heartbeat is fresh). */
  running: boolean;
  /** Nothing vouches for the statuses being current: no operator runs, or it has finished no pass for too long. */
  stale: boolean;
  pid?: number;
  mode?: 'run' | 'once';
  /** The end of the operator's last full pass, as its heartbeat records it. */
  lastPass?: string;
  /** The last time the operator was known alive (its last pass, start or clean stop). */
  lastSeen?: string;
  resyncIntervalSeconds?: number;
}

/** The operator's default resync interval, for a heartbeat that does not say. */
export const DEFAULT_RESYNC_SECONDS = 600;

/**
 * A heartbeat older than this says the loop has stopped passing: two resync intervals (a pass
 * is due every interval, and the heartbeat may lag one by half of one) plus a minute for the pass
 * itself. The same margin /readyz allows (controllers/metrics-server.ts readinessOf).
 */
export function heartbeatStaleAfterMs(resyncIntervalMs: number): number {
  return 2 * resyncIntervalMs + 60_000;
}

/**
 * Whether a finished pass rewrites the heartbeat: the first pass always, later ones only when the
 * pass on disk is older than half a resync interval. Passes come at least once an interval, so the heartbeat a reader sees is never
 * older than 1.5 intervals plus a pass while the loop runs (well inside the 2 intervals + 1 minute
 * it is judged by), and passes closer together than that (Docker reconnects, a short --resync,
 * benchmarks) write nothing: a no-op pass costs at most one small write per half interval.
 */
export function heartbeatDue(passLastWritten: Date | undefined, now: Date, resyncIntervalMs: number): boolean {
  return passLastWritten === undefined || now.getTime() - passLastWritten.getTime() >= resyncIntervalMs / 2;
}

function parseTime(iso: string | undefined): number | undefined {
  if (iso === undefined) return undefined;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? undefined : t;
}

/** The latest of some ISO times, as given; undefined when none parses. */
function latest(...times: (string | undefined)[]): string | undefined {
  let best: { iso: string; t: number } | undefined;
  for (const iso of times) {
    const t = parseTime(iso);
    if (iso !== undefined && t !== undefined && (best === undefined || t > best.t)) best = { iso, t };
  }
  return best?.iso;
}

/**
 * Judge whether an operator runs for the state directory and whether its statuses can be
 * trusted as current. A live lock holder is running unless the heartbeat shows its pid now
 * belongs to a process started at another time (the operator died and the pid was reused). A
 * running operator whose own heartbeat is older than heartbeatStaleAfterMs has stopped passing.
 */
export function judgeOperator(observed: OperatorObservation, now: Date): OperatorPresence {
  const beat = observed.heartbeat;
  const resyncSeconds = beat?.resyncIntervalSeconds ?? DEFAULT_RESYNC_SECONDS;
  const alive = latest(beat?.lastPassAt, beat?.startedAt);
  const aliveAt = parseTime(alive);
  const fresh = aliveAt !== undefined && now.getTime() - aliveAt <= heartbeatStaleAfterMs(resyncSeconds * 1000);

  let running: boolean;
  let own: boolean;
  if (beat && !observed.sameProcessView) {
    running = beat.stoppedAt === undefined && fresh;
    own = running;
  } else {
    const lock = observed.lock;
    const samePid = beat !== undefined && lock !== undefined && beat.pid === lock.pid;
    const reused = samePid && beat.procStart !== undefined && lock.procStart !== undefined && beat.procStart !== lock.procStart;
    running = lock?.alive === true && !reused;
    own = running && samePid;
  }

  const facts: OperatorPresence = { running, stale: false };
  if (running) {
    const pid = own ? beat?.pid : observed.lock?.pid;
    if (pid !== undefined) facts.pid = pid;
  }
  if (beat && (own || !running)) {
    facts.mode = beat.mode;
    if (beat.lastPassAt !== undefined) facts.lastPass = beat.lastPassAt;
    const seen = running ? alive : latest(beat.stoppedAt, alive);
    if (seen !== undefined) facts.lastSeen = seen;
    facts.resyncIntervalSeconds = resyncSeconds;
  }
  // A live holder that has written no heartbeat of its own is starting (or an older pic): nothing says it is stuck.
  facts.stale = !running || (own && !fresh);
  return facts;
}
