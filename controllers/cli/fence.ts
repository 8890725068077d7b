/**
 * `pic fence`: put the egress kill switch back on the host from the state directory alone. A
 * reboot clears netfilter, and dockerd starts the services with a restart policy before pic runs;
 * deploy/systemd/pic-fence.service runs this before docker.service, so a service on a fail-closed
 * Connection has no moment in which its packets can leave directly. It needs neither Docker nor
 * the cell folder, and it only ever adds the fence (a boot never lifts one).
 */
import { promises as fs } from 'node:fs';
import { restoreBootFence } from '../../reconcilers/egress/boot-fence.js';
import { CELL_FLAG, STATE_DIR_FLAG, stringFlag, type Command, type Parsed } from './command.js';
import { chooseStateDir, openStateDirForReading } from './state-location.js';
import { UsageError, type Io } from './usage.js';

export const fenceCommand: Command = {
  name: 'fence',
  summary: "Put the egress kill switch back on the host (at boot, before dockerd starts the cell's services)",
  args: '',
  description:
    'Reads the fence pic last wrote (STATE/egress/fence.json) and puts it back in the host\'s netfilter, ' +
    'making DOCKER-USER when dockerd has not yet. Needs neither Docker nor the cell folder; adds, never removes. ' +
    'Exit 0 when the fence is in place (or none was ever recorded), 1 when it could not be put back. ' +
    'deploy/systemd/pic-fence.service runs it before docker.service.',
  flags: [STATE_DIR_FLAG, CELL_FLAG],
  examples: ['pic fence --state-dir /var/lib/pic'],
  run: (parsed, ctx) => fence(parsed, ctx.io),
};

async function fence(parsed: Parsed, io: Io): Promise<number> {
  if (parsed.positionals.length > 0) throw new UsageError('pic fence takes no arguments; name the state directory with --state-dir DIR');
  const values = { stateDir: stringFlag(parsed, 'state-dir'), cell: stringFlag(parsed, 'cell') };
  // A host where pic never ran (no state directory yet) has nothing to fence: dockerd may start.
  const choice = await chooseStateDir(values);
  if ((await fs.stat(choice.dir).catch((err: NodeJS.ErrnoException) => err.code)) === 'ENOENT') {
    io.out(`no state directory at ${choice.dir} (${choice.source}): pic has not run here, nothing to fence`);
    return 0;
  }
  const stateDir = await openStateDirForReading(values);
  const result = await restoreBootFence(stateDir.root);
  if (!result.fence) {
    io.out(`no fence recorded in ${stateDir.root}: no service of this cell is on a fail-closed Connection`);
    return 0;
  }
  const services = result.fence.rules.length;
  const what = `${services} service${services === 1 ? '' : 's'} of cell ${result.fence.cell} fenced (${result.fence.chain} from ${result.fence.parent})`;
  io.out(result.wrote ? `put back: ${what}` : `in place: ${what}`);
  return 0;
}
