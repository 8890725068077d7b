/**
 * The one rule for "is this service up", used by the loop, upgrades, restores and backups: every
 * container of the service is running, has stayed running for a stability window (Kubernetes'
 * minReadySeconds, Swarm's update monitor), has not restarted since it was created, and passes
 * its health check if it has one. A container that exited, died or restarts is not up and, for a
 * verdict that commits (an upgrade), fails at once; one created, paused, starting its health check
 * or younger than the window is waited on. Judged from what was observed: pure.
 */

/** What the rule needs to know of a container. */
export interface ContainerForReadiness {
  name: string;
  state: string;
  health?: string;
  /** How long it has run since its last start, at least (seconds); unknown when absent. */
  upSeconds?: number;
  /** Restarts since it was created, when known (an inspect); a crash loop shows here. */
  restarts?: number;
}

/** Why a container is not up: it is missing or not running, its health check, or it is too young. */
export type NotUpCause = 'absent' | 'state' | 'health' | 'window' | 'deadline';

export type Readiness =
  | { state: 'ready' }
  /** Not up yet; judge again after `retryAfterMs`. */
  | { state: 'waiting'; reason: string; retryAfterMs: number; cause: NotUpCause }
  /** Not up, and waiting will not make it so (it exited, died, restarts, or its health check fails). */
  | { state: 'failed'; reason: string; cause: NotUpCause };

/** The stability window of upgrades and restores, unless the ServiceInstall sets spec.minReadySeconds. */
export const DEFAULT_MIN_READY_SECONDS = 10;

/**
 * The window of the loop's own Ready. Shorter than an upgrade's: the loop's verdict is judged again
 * on every Docker event of the service (a die, a restart), while an upgrade's commits to a version.
 */
export const LOOP_MIN_READY_SECONDS = 2;

/** How soon to look again at something that is only starting. */
const POLL_MS = 1000;

/**
 * Judge the containers `expected` by name against what was observed. `windowSeconds` is the
 * stability window; `remainingMs`, when given, is the time left before a deadline, after which
 * waiting turns into failure.
 */
export function judgeReadiness(expected: readonly string[], observed: readonly ContainerForReadiness[], windowSeconds: number, remainingMs?: number): Readiness {
  const waiting: string[] = [];
  let retryAfterMs = POLL_MS;
  // The weightiest cause among the containers waited on: one missing or stopped before a health check before a young one.
  let cause: NotUpCause = 'window';
  const rank: Record<NotUpCause, number> = { absent: 4, state: 3, health: 2, window: 1, deadline: 0 };
  for (const name of expected) {
    const c = observed.find((o) => o.name === name);
    const verdict: Readiness = c ? judgeContainer(c, windowSeconds) : { state: 'waiting', reason: `${name} (absent)`, retryAfterMs: POLL_MS, cause: 'absent' };
    if (verdict.state === 'failed') return verdict;
    if (verdict.state === 'waiting') {
      waiting.push(verdict.reason);
      retryAfterMs = Math.max(retryAfterMs, verdict.retryAfterMs);
      if (rank[verdict.cause] > rank[cause]) cause = verdict.cause;
    }
  }
  if (waiting.length === 0) return { state: 'ready' };
  const reason = `not Ready: ${waiting.join(', ')}`;
  if (remainingMs !== undefined && remainingMs <= 0) return { state: 'failed', reason: `${reason} when the deadline passed`, cause: 'deadline' };
  return { state: 'waiting', reason, cause, retryAfterMs: remainingMs === undefined ? retryAfterMs : Math.max(0, Math.min(retryAfterMs, remainingMs)) };
}

/** One container against the rule. */
export function judgeContainer(c: ContainerForReadiness, windowSeconds: number): Readiness {
  switch (c.state) {
    case 'exited':
    case 'dead':
    case 'removing':
      return { state: 'failed', reason: `${c.name} ${c.state === 'removing' ? 'is being removed' : c.state} instead of running`, cause: 'state' };
    case 'restarting':
      return { state: 'failed', reason: `${c.name} is restarting: it exited and Docker starts it again`, cause: 'state' };
    case 'running':
      break;
    default:
      // created, paused, or a state Docker adds later: not up, and nothing says it will not be.
      return { state: 'waiting', reason: `${c.name} (${c.state})`, retryAfterMs: POLL_MS, cause: 'state' };
  }
  if (c.restarts !== undefined && c.restarts > 0) return { state: 'failed', reason: `${c.name} restarted ${c.restarts} time${c.restarts === 1 ? '' : 's'} since it was created: it exits and Docker starts it again`, cause: 'state' };
  if (c.health === 'unhealthy') return { state: 'failed', reason: `${c.name} is unhealthy (its health check fails)`, cause: 'health' };
  if (c.health === 'starting') return { state: 'waiting', reason: `${c.name} (health: starting)`, retryAfterMs: POLL_MS, cause: 'health' };
  const up = c.upSeconds ?? 0;
  if (up < windowSeconds) {
    return { state: 'waiting', reason: `${c.name} (up ${up} s of the ${windowSeconds} s it must stay up)`, retryAfterMs: Math.max(POLL_MS, (windowSeconds - up) * 1000), cause: 'window' };
  }
  return { state: 'ready' };
}

const UNIT_SECONDS: Readonly<Record<string, number>> = { second: 1, minute: 60, hour: 3600, day: 86_400, week: 604_800, month: 2_592_000, year: 31_536_000 };

/**
 * How long a running container has been up, at least, from the status text Docker's listing gives
 * ("Up 5 seconds", "Up About a minute (healthy)", "Up Less than a second"); undefined for a
 * container that is not up. Docker rounds down, so the figure never claims more than was run.
 */
export function parseUptime(status: string): number | undefined {
  const m = /^Up (Less than a second|About an? (minute|hour)|(\d+) (second|minute|hour|day|week|month|year)s?)\b/.exec(status);
  if (!m) return undefined;
  if (m[1] === 'Less than a second') return 0;
  if (m[2] !== undefined) return UNIT_SECONDS[m[2]]!;
  return Number(m[3]) * UNIT_SECONDS[m[4]!]!;
}
