import { promises as fs } from 'node:fs';
import path from 'node:path';
import { temporaryFileWriter, writeFileAtomic } from './atomic-write.js';
import { CELL_FILE } from './desired.js';

/** Everything the operator owns lives under one directory; only root (the operator) may read it. */
export const DEFAULT_STATE_DIR = '/var/lib/pic';

/** `--state-dir` wins, then `PIC_STATE_DIR`, then the default. Returned as an absolute path. */
export function resolveStateDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = nonEmpty(flag) ?? nonEmpty(env.PIC_STATE_DIR) ?? DEFAULT_STATE_DIR;
  return path.resolve(chosen);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== '' ? value : undefined;
}

/**
 * Where a cell folder records the state directory of the operator that converges it
 * (`CELL/.pic/state-dir`, one absolute path), so other commands on that cell find it. The
 * folder's loader and watcher skip dot-folders, so the record is never read as a document.
 */
export const STATE_DIR_RECORD = path.join('.pic', 'state-dir');

/** The state directory a cell folder's operator recorded, if any. */
export async function recordedStateDir(cellDir: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(cellDir, STATE_DIR_RECORD), 'utf8');
  } catch {
    return undefined;
  }
  const dir = text.split('\n')[0]?.trim() ?? '';
  return path.isAbsolute(dir) ? dir : undefined;
}

/** Record `stateDir` in the cell folder (written only when it changed). */
export async function recordStateDir(cellDir: string, stateDir: string): Promise<void> {
  if ((await recordedStateDir(cellDir)) === stateDir) return;
  const file = path.join(cellDir, STATE_DIR_RECORD);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, `${stateDir}\n`, 0o644);
}

/**
 * Whether `dir` is a state directory an operator of this user made: a real folder (not a
 * symlink), owned by this user, owner-only, with its status folder. A record in a cell folder is
 * only trusted when it names one, so a record committed to a cell repository cannot point the
 * operator (root) at `/` or `/etc` to chmod and write there. Returns why not, or undefined.
 */
export async function notAStateDir(dir: string): Promise<string | undefined> {
  let stat;
  try {
    stat = await fs.lstat(dir);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : `it cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  if (stat.isSymbolicLink()) return 'it is a symbolic link';
  if (!stat.isDirectory()) return 'it is not a folder';
  if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) return `it is owned by uid ${stat.uid}, not by this user`;
  if ((stat.mode & 0o077) !== 0) return `its mode is ${(stat.mode & 0o777).toString(8)}, not owner-only (700)`;
  const status = await fs.lstat(path.join(dir, 'status')).catch(() => undefined);
  if (!status?.isDirectory()) return 'it has no status folder';
  return undefined;
}

/** The cell folder holding `from` (or `from` itself): the nearest one with a cell.yaml. */
export async function enclosingCellDir(from: string): Promise<string | undefined> {
  let dir = path.resolve(from);
  for (;;) {
    if (await fs.stat(path.join(dir, CELL_FILE)).then((s) => s.isFile(), () => false)) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The state directory is missing, not a folder or not readable. */
export class StateDirError extends Error {}

/**
 * A state directory for a reader (get, describe, watch, credentials): it must exist and be a
 * readable folder. Creates nothing and changes no mode; `source` says in the message how `dir`
 * was chosen (`--state-dir`, `$PIC_STATE_DIR`, ...).
 */
export async function openStateDirForReading(dir: string, source: string): Promise<StateDir> {
  const denied = `cannot read the state directory ${dir}: permission denied (it is owner-only; run as the operator's user)`;
  let stat;
  try {
    stat = await fs.stat(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new StateDirError(
        `no state directory at ${dir} (${source}); is the operator running with --state-dir ${dir}? ` +
          'Give the one it uses with --state-dir DIR, or --cell DIR for the cell it converges',
      );
    }
    if (code === 'ENOTDIR') throw new StateDirError(`${dir} (${source}) is not a folder: a file is in its path; --state-dir names the operator's state folder`);
    if (code === 'EACCES') throw new StateDirError(denied);
    throw err;
  }
  if (!stat.isDirectory()) throw new StateDirError(`${dir} (${source}) is a file, not a state directory; --state-dir names the folder the operator keeps its state in`);
  try {
    await fs.access(dir, fs.constants.R_OK | fs.constants.X_OK);
  } catch {
    throw new StateDirError(denied);
  }
  return new StateDir(dir);
}

export interface StatePaths {
  /** One JSON status file per document: status/<Kind>/<name>.json */
  status: string;
  events: string;
  secrets: string;
  ipAllocations: string;
  credentials: string;
  /** The last accepted version of every document, held while its file is broken (state/hold.ts). */
  applied: string;
  lock: string;
  /** The operator's heartbeat: when it started and last finished a pass (state/operator-heartbeat.ts). */
  heartbeat: string;
  /** Data directories of the services (bind mounts), data/<service>/... */
  data: string;
  /** `pic run --git`: the fetched repository and the checked-out revisions (controllers/sources/git-source.ts). */
  git: string;
}

export interface OperatorLock {
  /** Remove the lock file if it is still ours. Safe to call more than once. */
  release(): Promise<void>;
}

/** Another operator holds the state directory; starting a second one would make them fight. */
export class LockHeldError extends Error {
  constructor(
    readonly pid: number,
    readonly lockFile: string,
  ) {
    super(
      `another pic operator (pid ${pid}) is running on this state directory (${lockFile}); ` +
        'stop it first, or use a different --state-dir',
    );
    this.name = 'LockHeldError';
  }
}

/** Lock files this process holds, so a lock naming our own pid is told apart from a stale one. */
const heldByThisProcess = new Set<string>();

export class StateDir {
  readonly root: string;
  readonly paths: StatePaths;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.paths = {
      status: path.join(this.root, 'status'),
      events: path.join(this.root, 'events.jsonl'),
      secrets: path.join(this.root, 'secrets.json'),
      ipAllocations: path.join(this.root, 'allocations', 'ips.json'),
      credentials: path.join(this.root, 'credentials.json'),
      applied: path.join(this.root, 'applied.json'),
      lock: path.join(this.root, 'operator.lock'),
      heartbeat: path.join(this.root, 'operator-heartbeat.json'),
      data: path.join(this.root, 'data'),
      git: path.join(this.root, 'git'),
    };
  }

  /**
   * Create the directory (and its status folder) owner-only. An existing directory that others
   * can read is narrowed to 0700: it holds secrets and credentials.
   */
  async ensure(): Promise<void> {
    for (const dir of [this.root, this.paths.status]) {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      const stat = await fs.stat(dir);
      if (!stat.isDirectory()) throw new Error(`${dir} is not a directory; pic needs it as its state directory`);
      if ((stat.mode & 0o077) !== 0) await fs.chmod(dir, 0o700);
    }
  }

  /**
   * Remove what atomic writes of a killed process left behind (`.<name>.<pid>.<random>.tmp`, see
   * writeFileAtomic): whole copies of files such as credentials.json, which must live in one place
   * only. Only files of processes no longer running; never below data/ (the services' own files) nor git/ (checkouts of pic run --git).
   * Returns the paths removed.
   */
  async removeStaleTemporaryFiles(): Promise<string[]> {
    const removed: string[] = [];
    const visit = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          if (p !== this.paths.data && p !== this.paths.git) await visit(p);
          continue;
        }
        const pid = temporaryFileWriter(entry.name);
        if (!entry.isFile() || pid === undefined || pid === process.pid || isProcessAlive(pid)) continue;
        await fs.rm(p, { force: true });
        removed.push(p);
      }
    };
    await visit(this.root);
    return removed;
  }

  /**
   * Take the operator lock: a file holding our pid, created exclusively. A lock left behind by a
   * process that no longer exists is taken over; a live holder is an error.
   */
  async acquireLock(): Promise<OperatorLock> {
    const lockFile = this.paths.lock;
    if (heldByThisProcess.has(lockFile)) {
      throw new Error(`this process already holds the operator lock ${lockFile}`);
    }
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
    // A few rounds: each lost race (another process took or replaced the lock meanwhile) re-checks.
    for (let attempt = 0; attempt < 40; attempt++) {
      if (await tryCreateLock(lockFile)) {
        heldByThisProcess.add(lockFile);
        return { release: () => releaseLock(lockFile) };
      }
      const content = await readLockContent(lockFile);
      if (content === undefined) continue; // vanished between our create and read: try again
      const pid = parsePid(content);
      if (pid === undefined) {
        // Either a holder is between creating the file and writing its pid, or one crashed right
        // there. Give a live holder a moment; an old empty file is stale.
        if (await isRecent(lockFile)) {
          await delay(100);
          continue;
        }
      } else if (pid !== process.pid && isProcessAlive(pid)) {
        throw new LockHeldError(pid, lockFile);
      }
      // Stale: remove it only if it still holds what we judged, then compete for it again.
      if ((await readLockContent(lockFile)) === content) await fs.rm(lockFile, { force: true });
    }
    throw new Error(`could not take the operator lock ${lockFile}: it keeps changing; is another operator starting?`);
  }
}

async function tryCreateLock(lockFile: string): Promise<boolean> {
  let handle;
  try {
    handle = await fs.open(lockFile, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(`${process.pid}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}

async function releaseLock(lockFile: string): Promise<void> {
  if (!heldByThisProcess.delete(lockFile)) return;
  const content = await readLockContent(lockFile);
  if (content !== undefined && parsePid(content) === process.pid) await fs.rm(lockFile, { force: true });
}

/** The pid an operator lock file names, or undefined when there is none (no file, or no pid in it yet). */
export async function readLockPid(lockFile: string): Promise<number | undefined> {
  const content = await readLockContent(lockFile);
  return content === undefined ? undefined : parsePid(content);
}

async function readLockContent(lockFile: string): Promise<string | undefined> {
  try {
    return await fs.readFile(lockFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function parsePid(content: string): number | undefined {
  const text = content.trim();
  if (!/^[1-9][0-9]{0,9}$/.test(text)) return undefined;
  return Number(text);
}

/** Signal 0 checks for existence without touching the process; EPERM means it exists but is not ours. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

async function isRecent(file: string): Promise<boolean> {
  try {
    const stat = await fs.stat(file);
    return Date.now() - stat.mtimeMs < 2000;
  } catch {
    return false;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
