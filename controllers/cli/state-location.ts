/**
 * Which state directory a command uses, and whether it is there.
 *
 * In order: `--state-dir`, then `$PIC_STATE_DIR`, then the one the cell's operator recorded in
 * `CELL/.pic/state-dir` (the cell given with `--cell`, else the cell folder the command runs in),
 * then /var/lib/pic. `pic run` records its state directory in the cell folder it converges, so
 * after `pic run --cell examples/cell --state-dir X` (what `make demo` does) every command given
 * `--cell examples/cell`, or run inside that folder, reads X without being told.
 *
 * Commands that only read (get, describe, watch, credentials) never create or chmod anything:
 * a state directory that is not there is an error saying so.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../state/atomic-write.js';
import { CELL_FILE } from '../../state/desired.js';
import { DEFAULT_STATE_DIR, StateDir } from '../../state/state-dir.js';
import { safeLine } from '../safe-text.js';
import { UsageError } from './usage.js';

/** Where a cell folder records the state directory of the operator that converges it. */
export const POINTER_DIR = '.pic';
export const POINTER_FILE = 'state-dir';

/** The state directory is missing, not a folder or not readable: exit 1 with this message. */
export class StateDirError extends Error {}

export interface StateChoice {
  dir: string;
  /** How it was chosen, for messages: `--state-dir`, `$PIC_STATE_DIR`, `CELL/.pic/state-dir`, `the default`. */
  source: string;
}

/** The cell folder holding `from` (or `from` itself): the nearest one with a cell.yaml. */
async function enclosingCell(from: string): Promise<string | undefined> {
  let dir = path.resolve(from);
  for (;;) {
    if (await isFile(path.join(dir, CELL_FILE))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

async function isFile(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isFile(), () => false);
}

/** The state directory a cell folder's operator recorded, if any. */
export async function recordedStateDir(cellDir: string): Promise<string | undefined> {
  const file = path.join(cellDir, POINTER_DIR, POINTER_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const dir = text.split('\n')[0]?.trim() ?? '';
  return path.isAbsolute(dir) ? dir : undefined;
}

/** `pic run` records its state directory in the cell folder (only when it changed). */
export async function recordStateDir(cellDir: string, stateDir: string): Promise<void> {
  if ((await recordedStateDir(cellDir)) === stateDir) return;
  const dir = path.join(cellDir, POINTER_DIR);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await writeFileAtomic(path.join(dir, POINTER_FILE), `${stateDir}\n`, 0o644);
}

/** Choose the state directory by the order above; `--state-dir ""` is a usage error. */
export async function chooseStateDir(
  values: { stateDir?: string | undefined; cell?: string | undefined },
  env: NodeJS.ProcessEnv = process.env,
  cwd: string = process.cwd(),
): Promise<StateChoice> {
  if (values.stateDir !== undefined) {
    if (values.stateDir.trim() === '') throw new UsageError('--state-dir needs a folder, not an empty string');
    return { dir: path.resolve(values.stateDir), source: '--state-dir' };
  }
  const fromEnv = env.PIC_STATE_DIR;
  if (fromEnv !== undefined && fromEnv.trim() !== '') return { dir: path.resolve(fromEnv), source: '$PIC_STATE_DIR' };
  const cell = values.cell !== undefined ? path.resolve(values.cell) : await enclosingCell(cwd);
  if (cell !== undefined) {
    const recorded = await recordedStateDir(cell);
    if (recorded !== undefined) return { dir: recorded, source: `${path.join(cell, POINTER_DIR, POINTER_FILE)}` };
  }
  return { dir: DEFAULT_STATE_DIR, source: 'the default' };
}

/** The state directory for a command that only reads: it must exist and be a readable folder. */
export async function openStateDirForReading(values: { stateDir?: string | undefined; cell?: string | undefined }): Promise<StateDir> {
  const choice = await chooseStateDir(values);
  const shown = safeLine(choice.dir);
  let stat;
  try {
    stat = await fs.stat(choice.dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new StateDirError(
        `no state directory at ${shown} (${choice.source}); is the operator running with --state-dir ${shown}? ` +
          'Give the one it uses with --state-dir DIR, or --cell DIR for the cell it converges',
      );
    }
    if (code === 'ENOTDIR') throw new StateDirError(`${shown} (${choice.source}) is not a folder: a file is in its path; --state-dir names the operator's state folder`);
    if (code === 'EACCES') throw new StateDirError(`cannot read the state directory ${shown}: permission denied (it is owner-only; run as the operator's user)`);
    throw err;
  }
  if (!stat.isDirectory()) throw new StateDirError(`${shown} (${choice.source}) is a file, not a state directory; --state-dir names the folder the operator keeps its state in`);
  try {
    await fs.access(choice.dir, fs.constants.R_OK | fs.constants.X_OK);
  } catch {
    throw new StateDirError(`cannot read the state directory ${shown}: permission denied (it is owner-only; run as the operator's user)`);
  }
  return new StateDir(choice.dir);
}
