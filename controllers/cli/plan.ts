import path from 'node:path';
import { formatProblem } from '../../crds/types.js';
import { loadRunningCell } from '../../state/cell.js';
import { StateDir } from '../../state/state-dir.js';
import { planCell } from '../plan-cell.js';
import { CELL_FLAG, STATE_DIR_FLAG, stringFlag, type Command } from './command.js';
import { connectDocker, requireFolder } from './run.js';
import { safeLine } from '../safe-text.js';
import { chooseStateDir } from './state-location.js';
import { UsageError } from './usage.js';

/** `pic plan --cell DIR`: exit 0 in sync, 2 changes pending, 1 on any error. */
export const planCommand: Command = {
  name: 'plan',
  summary: 'What a reconcile would change, without changing anything',
  args: '',
  description: 'Exit 0 in sync, 2 changes pending, 1 on error (problems in the documents, no Docker engine).',
  flags: [CELL_FLAG, STATE_DIR_FLAG],
  examples: ['pic plan --cell examples/cell'],
  run: (parsed, ctx) => plan(stringFlag(parsed, 'cell'), stringFlag(parsed, 'state-dir'), parsed.positionals, ctx.io),
};

async function plan(cellFlag: string | undefined, stateDirFlag: string | undefined, positionals: string[], io: { out: (l: string) => void; err: (l: string) => void }): Promise<number> {
  if (positionals.length > 0) throw new UsageError('pic plan takes no arguments; name the cell with --cell DIR');
  if (!cellFlag) throw new UsageError('pic plan needs --cell DIR');
  await requireFolder(cellFlag);
  const state = await chooseStateDir({ stateDir: stateDirFlag, cell: cellFlag });
  // Checked against the versions the operator admitted, as a reconcile would be.
  const cell = await loadRunningCell(path.resolve(cellFlag), state.dir);
  const docker = await connectDocker();
  const plan = await planCell(cell, docker, new StateDir(state.dir));
  for (const change of plan.changes) {
    io.out(`${safeLine(change.key)}:`);
    for (const line of change.lines) io.out(`  ${safeLine(line)}`);
  }
  for (const notice of plan.notices) io.out(`note: ${safeLine(notice)}`);
  for (const p of plan.problems) io.err(safeLine(formatProblem(p)));
  if (plan.problems.length > 0) {
    io.err(`${plan.problems.length} problem${plan.problems.length === 1 ? '' : 's'}: those documents cannot converge until fixed`);
    return 1;
  }
  if (plan.changes.length === 0) {
    io.out('in sync: nothing to change');
    return 0;
  }
  io.out(`${plan.changes.length} document${plan.changes.length === 1 ? '' : 's'} with changes pending`);
  return 2;
}
