import { parseArgs } from 'node:util';
import { EventLog, followEvents } from '../../state/events.js';
import { StateDir, resolveStateDir } from '../../state/state-dir.js';
import { StatusStore, watchStatusDir } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { renderDescribe, renderGet, renderWatchFrame, type GetOutput } from './status-views.js';
import { UsageError, type Io } from './usage.js';

/** Kind names as an admin may type them: `ServiceInstall`, `serviceinstalls`, `si`, ... */
const KIND_ALIASES: Record<string, string> = {
  cell: 'Cell', cells: 'Cell',
  serviceinstall: 'ServiceInstall', serviceinstalls: 'ServiceInstall', si: 'ServiceInstall', service: 'ServiceInstall', services: 'ServiceInstall',
  peeraccount: 'PeerAccount', peeraccounts: 'PeerAccount', peer: 'PeerAccount', peers: 'PeerAccount', pa: 'PeerAccount',
  connection: 'Connection', connections: 'Connection', conn: 'Connection',
};

export function canonicalKind(kind: string): string {
  const k = KIND_ALIASES[kind.toLowerCase()];
  if (!k) throw new UsageError(`unknown kind "${kind}"; use one of Cell, ServiceInstall, PeerAccount, Connection`);
  return k;
}

function stateDirFrom(values: { 'state-dir'?: string | undefined }): StateDir {
  return new StateDir(resolveStateDir(values['state-dir']));
}

const OUTPUTS: GetOutput[] = ['table', 'wide', 'json', 'yaml'];

export async function getCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { 'state-dir': { type: 'string' }, output: { type: 'string', short: 'o' } } });
  const output = (values.output ?? 'table') as GetOutput;
  if (!OUTPUTS.includes(output)) throw new UsageError(`-o must be one of ${OUTPUTS.join(', ')}`);
  if (positionals.length > 2) throw new UsageError('pic get takes at most KIND and NAME');
  let [kind, name] = positionals;
  if (kind?.includes('/') && name === undefined) [kind, name] = kind.split('/', 2) as [string, string];
  const wantedKind = kind ? canonicalKind(kind) : undefined;
  const state = stateDirFrom(values);
  const all = await new StatusStore(state.paths.status).list();
  const selected = all.filter((s) => (!wantedKind || s.kind === wantedKind) && (!name || s.name === name));
  if (name && selected.length === 0) {
    io.err(`pic: no status for ${wantedKind}/${name} in ${state.root}`);
    return 1;
  }
  io.out(renderGet(selected, output, new Date(), { single: name !== undefined, emptyMessage: `No documents found in ${state.root}.` }));
  return 0;
}

export async function describeCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { 'state-dir': { type: 'string' } } });
  const target = positionals.join('/');
  const slash = target.indexOf('/');
  if (positionals.length === 0 || positionals.length > 2 || slash <= 0) throw new UsageError('pic describe takes KIND/NAME, e.g. pic describe ServiceInstall/notes');
  const key = `${canonicalKind(target.slice(0, slash))}/${target.slice(slash + 1)}`;
  const state = stateDirFrom(values);
  const status: DocumentStatus | undefined = await new StatusStore(state.paths.status).get(key);
  const events = await new EventLog(state.paths.events).recent({ key, limit: 20 });
  if (!status) {
    if (events.length === 0) {
      io.err(`pic: nothing known of ${key} in ${state.root}`);
      return 1;
    }
    io.out(`${key} has no status (it was removed). Recent events:`);
    for (const e of events) io.out(`  ${e.time}  ${e.type}  ${e.reason}  ${e.message}`);
    return 0;
  }
  io.out(renderDescribe(status, events, new Date()));
  return 0;
}

/** `pic watch`: redraw the table whenever a status changes; `-o json` streams events instead. */
export async function watchCommand(args: string[], io: Io, signal: AbortSignal): Promise<number> {
  const { values } = parseArgs({ args, allowPositionals: false, options: { 'state-dir': { type: 'string' }, output: { type: 'string', short: 'o' } } });
  const state = stateDirFrom(values);
  if (values.output === 'json') {
    const follower = followEvents(state.paths.events, (e) => io.out(JSON.stringify(e)), { fromStart: false });
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    follower.close();
    return 0;
  }
  if (values.output !== undefined) throw new UsageError('pic watch takes -o json or no -o');
  const store = new StatusStore(state.paths.status);
  const tty = process.stdout.isTTY === true;
  let last = '';
  const draw = async () => {
    const frame = renderWatchFrame(await store.list(), new Date(), { emptyMessage: `No documents found in ${state.root}; is pic run going?` });
    const body = frame.split('\n').slice(1).join('\n');
    if (body === last) return;
    last = body;
    io.out(tty ? `\x1b[H\x1b[2J${frame}` : `${frame}\n`);
  };
  await state.ensure().catch(() => undefined);
  await draw();
  let drawing = Promise.resolve();
  const redraw = () => {
    drawing = drawing.then(draw, draw);
  };
  const watcher = await watchStatusDir(state.paths.status, redraw, { debounceMs: 30 });
  // Ages in the table move on their own; refresh them now and then even when nothing changes.
  const tick = setInterval(() => {
    if (tty) {
      last = '';
      redraw();
    }
  }, 5000);
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  clearInterval(tick);
  await watcher.close();
  await drawing;
  return 0;
}
