/**
 * `pic data list|delete`: the volumes pic kept from services that are no longer installed (their
 * ServiceInstall is gone; removal keeps data by design). Delete takes a final, verified snapshot
 * first unless --no-snapshot, and refuses while any container still uses a volume.
 */
import { byText } from '../../crds/values.js';
import { BackupError, createKeptDataSnapshot } from '../../reconcilers/backup/index.js';
import { removeVolume } from '../../reconcilers/backup/helper.js';
import { containersUsingVolume, listServiceVolumes, type KeptVolume } from '../../reconcilers/backup/observe.js';
import { nameInKey } from '../../state/document-keys.js';
import { StateDir, resolveStateDir } from '../../state/state-dir.js';
import { dockerClient } from '../docker-client.js';
import { backupRoot, commandEnv, loadCellOrFail } from './backup-env.js';
import { CELL_FLAG, STATE_DIR_FLAG, stringFlag, type Command, type Parsed } from './command.js';
import { chooseStateDir } from './state-location.js';
import { safeLine } from '../safe-text.js';
import { UsageError, type Io } from './usage.js';


/** Kept volumes grouped by the service they belonged to: owners without a ServiceInstall. */
export function keptData(volumes: readonly KeptVolume[], installed: ReadonlySet<string>): Map<string, KeptVolume[]> {
  const out = new Map<string, KeptVolume[]>();
  for (const v of volumes) {
    if (installed.has(v.service)) continue;
    out.set(v.service, [...(out.get(v.service) ?? []), v]);
  }
  return new Map([...out.entries()].sort(byText(([name]) => name)));
}

async function runData(parsed: Parsed, io: Io): Promise<number> {
  const [sub, ...positionals] = parsed.positionals;
  const chosen = await chooseStateDir({ stateDir: stringFlag(parsed, 'state-dir'), cell: stringFlag(parsed, 'cell') });
  const values = { cell: stringFlag(parsed, 'cell'), 'state-dir': chosen.dir, output: stringFlag(parsed, 'output'), yes: parsed.values.yes === true, 'no-snapshot': parsed.values['no-snapshot'] === true };
  if (values.output !== undefined && values.output !== 'json') throw new UsageError(`pic data: -o takes json or nothing, not "${safeLine(values.output)}"`);
  const cell = await loadCellOrFail(values.cell, values['state-dir'], `data ${sub ?? ''}`.trim());
  const installed = new Set(cell.docs.services.map((s) => s.doc.metadata.name));
  // A ServiceInstall file that cannot be read is not known to be gone: its data is not "kept".
  for (const name of cell.docs.rejected.flatMap((r) => nameInKey(r.key, 'ServiceInstall') ?? [])) installed.add(name);
  if (cell.docs.unreadable.some((u) => u.file.includes('/services/'))) {
    io.err('pic: a file under services/ cannot be read, so which services are installed is not known; fix it first (pic validate)');
    return 1;
  }
  const docker = await dockerClient();
  const kept = keptData(await listServiceVolumes(docker, cell.cell.metadata.name), installed);
  switch (sub) {
    case 'list': {
      if (positionals.length > 0) throw new UsageError('pic data list takes no arguments');
      if (values.output === 'json') io.out(JSON.stringify(Object.fromEntries([...kept.entries()].map(([s, v]) => [s, v.map((x) => ({ volume: x.name, createdAt: x.createdAt ?? null }))])), null, 2));
      else if (kept.size === 0) io.out('No data kept from uninstalled services.');
      else for (const [service, volumes] of kept) io.out(`${service}: ${volumes.map((v) => v.name).join(', ')}`);
      return 0;
    }
    case 'delete': {
      if (positionals.length !== 1) throw new UsageError('pic data delete takes one SERVICE');
      const service = positionals[0] as string;
      if (installed.has(service)) {
        io.err(`pic: ServiceInstall/${service} is installed; its data is in use. Remove services/${service}.yaml first (the data stays), then delete it.`);
        return 1;
      }
      const volumes = kept.get(service);
      if (!volumes) {
        io.err(`pic: no data is kept for "${service}"; see pic data list`);
        return 1;
      }
      if (!values.yes) throw new UsageError(`pic data delete removes ${volumes.map((v) => v.name).join(', ')} for good; add --yes to do it`);
      for (const v of volumes) {
        const users = await containersUsingVolume(docker, v.name);
        if (users.length > 0) {
          io.err(`pic: volume ${v.name} is still used by ${users.join(', ')}; nothing was deleted`);
          return 1;
        }
      }
      if (!values['no-snapshot']) {
        const state = new StateDir(resolveStateDir(values['state-dir']));
        const { env } = await commandEnv(values, cell.cell.metadata.name, backupRoot(state, cell), io, cell);
        try {
          const { manifest } = await createKeptDataSnapshot(env, service, volumes.map((v) => v.name));
          if (!manifest.verification?.ok) {
            io.err(`pic: the final snapshot ${manifest.id} failed verification; nothing was deleted:\n  ${(manifest.verification?.problems ?? []).join('\n  ')}`);
            return 1;
          }
          io.out(`final snapshot ${manifest.id} (verified)`);
        } catch (err) {
          if (err instanceof BackupError) {
            io.err(`pic: ${err.message}`);
            return 1;
          }
          throw err;
        }
      }
      for (const v of volumes) await removeVolume(docker, v.name);
      io.out(`deleted ${volumes.map((v) => v.name).join(', ')}`);
      return 0;
    }
    default:
      throw new UsageError(sub === undefined ? 'pic data needs a subcommand: list or delete' : `unknown data subcommand "${sub}"`);
  }
}

export const dataCommand: Command = {
  name: 'data',
  summary: "Volumes kept from uninstalled services: list, delete",
  args: 'list|delete [SERVICE]',
  description: "Delete takes a final, verified snapshot first unless --no-snapshot, and refuses while a container uses a volume or a ServiceInstall names the service. Exit 0 done, 1 refused or failed.",
  flags: [
    CELL_FLAG,
    STATE_DIR_FLAG,
    { name: 'output', short: 'o', type: 'string', value: 'json', help: 'print JSON instead of text', complete: ['json'] },
    { name: 'yes', type: 'boolean', help: 'delete: really remove the volumes' },
    { name: 'no-snapshot', type: 'boolean', help: 'delete: without a final snapshot first' },
  ],
  examples: ['pic data list --cell .demo/cell', 'pic data delete notes --cell .demo/cell --yes'],
  run: (parsed, ctx) => runData(parsed, ctx.io),
};
