import path from 'node:path';
import { parseArgs } from 'node:util';
import { formatProblem } from '../../crds/types.js';
import { loadCell } from '../../state/cell.js';
import { StateDir, resolveStateDir } from '../../state/state-dir.js';
import { planCell } from '../plan-cell.js';
import { connectDocker, requireFolder } from './run.js';
import { UsageError, type Io } from './usage.js';

/** `pic plan --cell DIR`: exit 0 in sync, 2 changes pending, 1 on any error. */
export async function planCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, allowPositionals: false, options: { cell: { type: 'string' }, 'state-dir': { type: 'string' } } });
  if (!values.cell) throw new UsageError('pic plan needs --cell DIR');
  await requireFolder(values.cell);
  const cell = await loadCell(path.resolve(values.cell));
  const docker = await connectDocker();
  const plan = await planCell(cell, docker, new StateDir(resolveStateDir(values['state-dir'])));
  for (const change of plan.changes) {
    io.out(`${change.key}:`);
    for (const line of change.lines) io.out(`  ${line}`);
  }
  for (const p of plan.problems) io.err(formatProblem(p));
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
