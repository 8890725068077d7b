/**
 * `pic reconcile source`: ask the running operator to fetch its Git remote now (as `flux
 * reconcile source git` does), instead of at its next poll. The operator is told by SIGHUP, which
 * `pic run` takes as "fetch now" with --git and as "read the folder and re-check everything"
 * without. Only the operator holding the state directory's lock, seen in this pid namespace, is
 * signalled.
 */
import { observeOperator } from '../../state/operator-heartbeat.js';
import { STATE_DIR_FLAG, CELL_FLAG, stringFlag, type Command } from './command.js';
import { safeLine } from '../safe-text.js';
import { openStateDirForReading } from './state-location.js';
import { UsageError } from './usage.js';

const TARGETS = ['source'] as const;

export const reconcileCommand: Command = {
  name: 'reconcile',
  summary: 'Ask the running operator to fetch its Git remote now (pic run --git)',
  args: 'source',
  description:
    'Sends SIGHUP to the operator that holds the state directory: with --git it fetches at once (a back-off ' +
    'after failures is cut short); without, it reads the cell folder again and re-checks everything. ' +
    'Exit 1 when no operator runs for the state directory. The Cell status (pic describe Cell/NAME) says what came of it.',
  flags: [STATE_DIR_FLAG, CELL_FLAG],
  examples: ['pic reconcile source --state-dir /var/lib/pic'],
  completeArgs: [...TARGETS],
  async run(parsed, ctx) {
    const [target, ...more] = parsed.positionals;
    if (target !== 'source' || more.length > 0) throw new UsageError(`pic reconcile takes one of: ${TARGETS.join(', ')}`);
    const state = await openStateDirForReading({ stateDir: stringFlag(parsed, 'state-dir'), cell: stringFlag(parsed, 'cell') });
    const seen = await observeOperator(state.paths);
    if (!seen.lock?.alive || !seen.sameProcessView) {
      ctx.io.err(`pic: no operator runs for ${safeLine(state.root)} here${seen.lock && !seen.sameProcessView ? ' (its lock names a process of another host or pid namespace)' : ''}; start it with pic run --git URL --state-dir ${safeLine(state.root)}`);
      return 1;
    }
    process.kill(seen.lock.pid, 'SIGHUP');
    ctx.io.out(`asked the operator (pid ${seen.lock.pid}) to fetch now; pic describe Cell/NAME --state-dir ${safeLine(state.root)} says what came of it`);
    return 0;
  },
};
