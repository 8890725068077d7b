/**
 * Which state directory a command uses. In order: `--state-dir`, then `$PIC_STATE_DIR`, then the
 * one the cell's operator recorded in `CELL/.pic/state-dir` (the cell given with `--cell`, else
 * the cell folder the command runs in), then /var/lib/pic. `pic run` records its state directory
 * in the cell folder it converges, so after `pic run --cell examples/cell --state-dir X` (what
 * `make demo` does) every command given `--cell examples/cell`, or run inside that folder, reads X
 * without being told.
 *
 * Commands that only read (get, describe, watch, credentials) never create or chmod anything: a
 * state directory that is not there is an error saying so. A record is followed only to a state
 * directory an operator already made (state/state-dir.ts, notAStateDir).
 */
import path from 'node:path';
import { DEFAULT_STATE_DIR, enclosingCellDir, notAStateDir, openStateDirForReading as openForReading, recordedStateDir, STATE_DIR_RECORD, StateDirError, type StateDir } from '../../state/state-dir.js';
import { UsageError } from './usage.js';

export interface StateChoice {
  dir: string;
  /** How it was chosen, for messages: `--state-dir`, `$PIC_STATE_DIR`, `CELL/.pic/state-dir`, `the default`. */
  source: string;
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
  const cell = values.cell !== undefined ? path.resolve(values.cell) : await enclosingCellDir(cwd);
  if (cell !== undefined) {
    const recorded = await recordedStateDir(cell);
    if (recorded !== undefined) {
      const record = path.join(cell, STATE_DIR_RECORD);
      // The record is a file in the admin's cell folder (maybe a Git checkout): trust it only to
      // name a state directory an operator already made, never to choose where one is made.
      const why = await notAStateDir(recorded);
      if (why !== undefined) {
        throw new StateDirError(
          `${record} names ${recorded} as the cell's state directory, but ${why}; ` +
            `give the state directory with --state-dir DIR (pic run --state-dir DIR records it anew), or delete ${record}`,
        );
      }
      return { dir: recorded, source: record };
    }
  }
  return { dir: DEFAULT_STATE_DIR, source: 'the default' };
}

/** The state directory for a command that only reads: it must exist and be a readable folder. */
export async function openStateDirForReading(values: { stateDir?: string | undefined; cell?: string | undefined }): Promise<StateDir> {
  const choice = await chooseStateDir(values);
  // The message quotes the path; main() escapes every message before it reaches the terminal.
  return openForReading(choice.dir, choice.source);
}
