/**
 * The operator's heartbeat file (`operator-heartbeat.json` in the state directory) and what a
 * reader sees of the operator: the lock's holder and that file. The judgement is pure
 * (state/operator-presence.ts); this module does the reading and writing.
 */
import { promises as fs, readlinkSync } from 'node:fs';
import os from 'node:os';
import { writeFileAtomic } from './atomic-write.js';
import { heartbeatDue, judgeOperator, type Heartbeat, type OperatorObservation, type OperatorPresence } from './operator-presence.js';
import { processStartTime } from './snapshots.js';
import { isProcessAlive, readLockPid, type StatePaths } from './state-dir.js';

/** This process's pid namespace (`pid:[4026531836]`), to tell a reader in another one that our pid is not theirs. */
function pidNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

/**
 * Writes the heartbeat of one operator: once when it starts, after a finished pass when the file is
 * older than half a resync interval (heartbeatDue says why), and once when it stops. Writes are
 * atomic, one at a time, and never fail the operator: a heartbeat that cannot be written is
 * reported through `onError` and the loop goes on (readers then call the statuses stale).
 */
export class HeartbeatWriter {
  private readonly beat: Heartbeat;
  /** When a pass was last written down (the start's write does not count: the first pass is always written). */
  private passWrittenAt?: Date;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly options: { mode: Heartbeat['mode']; resyncIntervalMs: number; onError: (err: Error) => void },
  ) {
    const procStart = processStartTime(process.pid);
    const namespace = pidNamespace();
    this.beat = {
      pid: process.pid,
      ...(procStart !== undefined ? { procStart } : {}),
      host: os.hostname(),
      ...(namespace !== undefined ? { pidNamespace: namespace } : {}),
      mode: options.mode,
      resyncIntervalSeconds: Math.round(options.resyncIntervalMs / 1000),
      startedAt: new Date().toISOString(),
    };
  }

  started(now = new Date()): Promise<void> {
    this.beat.startedAt = now.toISOString();
    delete this.beat.lastPassAt;
    delete this.beat.stoppedAt;
    this.passWrittenAt = undefined;
    return this.write();
  }

  /** A full pass finished: remembered always, written only when the file is due. */
  passed(now = new Date()): Promise<void> {
    this.beat.lastPassAt = now.toISOString();
    if (!heartbeatDue(this.passWrittenAt, now, this.options.resyncIntervalMs)) return this.writing;
    this.passWrittenAt = now;
    return this.write();
  }

  /** The operator stops: the last pass it finished and when it stopped. */
  stopped(now = new Date()): Promise<void> {
    this.beat.stoppedAt = now.toISOString();
    return this.write();
  }

  private write(): Promise<void> {
    const text = `${JSON.stringify(this.beat)}\n`;
    this.writing = this.writing.then(() => writeFileAtomic(this.file, text, 0o600)).catch((err: Error) => this.options.onError(err));
    return this.writing;
  }
}

/** The heartbeat on disk, or undefined when there is none or it is not one (a reader then judges by the lock alone). */
export async function readHeartbeat(file: string): Promise<Heartbeat | undefined> {
  let value: unknown;
  try {
    value = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch {
    return undefined;
  }
  return isHeartbeat(value) ? value : undefined;
}

function isHeartbeat(value: unknown): value is Heartbeat {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  const optionalText = (key: string) => v[key] === undefined || typeof v[key] === 'string';
  return (
    Number.isInteger(v.pid) && (v.pid as number) > 0 &&
    (v.mode === 'run' || v.mode === 'once') &&
    typeof v.resyncIntervalSeconds === 'number' && v.resyncIntervalSeconds > 0 &&
    typeof v.startedAt === 'string' &&
    ['procStart', 'host', 'pidNamespace', 'lastPassAt', 'stoppedAt'].every(optionalText)
  );
}

/** What a reader sees of the operator of a state directory: the lock's holder and the heartbeat. */
export async function observeOperator(paths: Pick<StatePaths, 'lock' | 'heartbeat'>): Promise<OperatorObservation> {
  const heartbeat = await readHeartbeat(paths.heartbeat);
  const pid = await readLockPid(paths.lock).catch(() => undefined);
  const procStart = pid === undefined ? undefined : processStartTime(pid);
  const lock = pid === undefined ? undefined : { pid, alive: isProcessAlive(pid), ...(procStart !== undefined ? { procStart } : {}) };
  const namespace = pidNamespace();
  const sameProcessView =
    heartbeat === undefined ||
    ((heartbeat.host === undefined || heartbeat.host === os.hostname()) && (heartbeat.pidNamespace === undefined || heartbeat.pidNamespace === namespace));
  return { ...(lock ? { lock } : {}), ...(heartbeat ? { heartbeat } : {}), sameProcessView };
}

/** Whether an operator converges the state directory now, and whether its statuses are current. */
export async function operatorPresence(paths: Pick<StatePaths, 'lock' | 'heartbeat'>, now = new Date()): Promise<OperatorPresence> {
  return judgeOperator(await observeOperator(paths), now);
}
