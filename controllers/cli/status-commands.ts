import { EventLog, followEvents } from '../../state/events.js';
import { operatorPresence } from '../../state/operator-heartbeat.js';
import type { OperatorPresence } from '../../state/operator-presence.js';
import type { StateDir } from '../../state/state-dir.js';
import { StatusStore, watchStatusDir, type UnreadableStatus } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { CELL_FLAG, STATE_DIR_FLAG, stringFlag, untilAborted, type Command, type Context, type Parsed } from './command.js';
import { parseOutput, toJsonText, type Output } from './output.js';
import { safeLine, toSafeJson } from '../safe-text.js';
import { openStateDirForReading } from './state-location.js';
import { GET_OUTPUTS, operatorLine, renderDescribe, renderGet, renderTable, renderWatchFrame, type LiveTunnel } from './status-views.js';
import { UsageError } from './usage.js';

/** Kind names as an admin may type them: `ServiceInstall`, `serviceinstalls`, `si`, ... */
const KIND_ALIASES: Record<string, string> = {
  cell: 'Cell', cells: 'Cell',
  serviceinstall: 'ServiceInstall', serviceinstalls: 'ServiceInstall', si: 'ServiceInstall', service: 'ServiceInstall', services: 'ServiceInstall',
  peeraccount: 'PeerAccount', peeraccounts: 'PeerAccount', peer: 'PeerAccount', peers: 'PeerAccount', pa: 'PeerAccount',
  connection: 'Connection', connections: 'Connection', conn: 'Connection',
  core: 'Core', cores: 'Core',
  resource: 'Resource', resources: 'Resource', res: 'Resource',
};
/** The documents' kinds, then the kinds of what pic runs for the cell as a whole (core containers, shared resources). */
export const KINDS = ['Cell', 'ServiceInstall', 'PeerAccount', 'Connection', 'Core', 'Resource'] as const;

export function canonicalKind(kind: string): string {
  const k = Object.prototype.hasOwnProperty.call(KIND_ALIASES, kind.toLowerCase()) ? KIND_ALIASES[kind.toLowerCase()] : undefined;
  if (!k) throw new UsageError(`unknown kind "${safeLine(kind)}"; use one of ${KINDS.join(', ')}`);
  return k;
}

function stateDirFrom(parsed: Parsed): Promise<StateDir> {
  return openStateDirForReading({ stateDir: stringFlag(parsed, 'state-dir'), cell: stringFlag(parsed, 'cell') });
}

/** Report files that could not be read on stderr (the table shows them in their rows too). */
function reportUnreadable(unreadable: readonly UnreadableStatus[], ctx: Context): void {
  for (const u of unreadable) ctx.io.err(`pic: ${safeLine(u.message)}`);
}

const OUTPUT_FLAG = { name: 'output', short: 'o', type: 'string', value: 'FORMAT', help: 'table, wide, json, yaml, name or jsonpath=TEMPLATE (kubectl syntax)', complete: ['table', 'wide', 'json', 'yaml', 'name', 'jsonpath='] } as const;

export const getCommand: Command = {
  name: 'get',
  summary: 'List documents and their status',
  args: '[KIND[/NAME]] [NAME]',
  description:
    'KIND is Cell, ServiceInstall (si), PeerAccount (peer), Connection, Core (the core containers) or Resource (Caddyfile, zone, firewall, WireGuard peer set); without it, every kind. ' +
    'A status file that cannot be read is shown in its row as Unreadable, and the exit code is 1. ' +
    'With --watch, prints the table and then each row (or object) again when it changes, until interrupted.',
  flags: [
    OUTPUT_FLAG,
    { name: 'no-headers', type: 'boolean', help: 'leave out the header line of the table' },
    { name: 'watch', short: 'w', type: 'boolean', help: 'after the list, print each document again when its status changes' },
    STATE_DIR_FLAG,
    CELL_FLAG,
  ],
  examples: ['pic get', 'pic get -o wide', 'pic get Core', 'pic get ServiceInstall notes -o yaml', "pic get si -o jsonpath='{.items[*].name}'", 'pic get -o name', 'pic get --watch'],
  completeArgs: [...KINDS],
  async run(parsed, ctx) {
    const output = parseOutput(stringFlag(parsed, 'output'), GET_OUTPUTS, 'get');
    if (parsed.positionals.length > 2) throw new UsageError('pic get takes at most KIND and NAME');
    let [kind, name] = parsed.positionals;
    if (kind?.includes('/') && name === undefined) [kind, name] = kind.split('/', 2) as [string, string];
    const wantedKind = kind ? canonicalKind(kind) : undefined;
    const noHeaders = parsed.values['no-headers'] === true;
    const state = await stateDirFrom(parsed);
    const store = new StatusStore(state.paths.status);
    const select = <T extends { kind: string; name: string }>(items: readonly T[]): T[] =>
      items.filter((s) => (!wantedKind || s.kind === wantedKind) && (!name || s.name === name));
    const read = async () => {
      const all = await store.listForReading();
      return { statuses: select(all.statuses), unreadable: select(all.unreadable) };
    };
    const first = await read();
    if (name && first.statuses.length === 0 && first.unreadable.length === 0 && parsed.values.watch !== true) {
      ctx.io.err(`pic: no status for ${wantedKind}/${safeLine(name)} in ${safeLine(state.root)}`);
      return 1;
    }
    const single = name !== undefined && first.statuses.length === 1 && first.unreadable.length === 0;
    const now = new Date();
    const operator = await operatorPresence(state.paths, now);
    ctx.io.out(renderGet(first.statuses, output, now, { single, noHeaders, unreadable: first.unreadable, emptyMessage: `No documents found in ${safeLine(state.root)}.`, operator }));
    // Without a header line the table cannot say it may be stale: stderr does, out of the way of scripts.
    if (operator.stale && noHeaders && (output.format === 'table' || output.format === 'wide')) ctx.io.err(`pic: ${operatorLine(operator, now)}`);
    reportUnreadable(first.unreadable, ctx);
    if (parsed.values.watch !== true) return first.unreadable.length > 0 ? 1 : 0;
    await followChanges(state, read, first.statuses, output, operator, ctx);
    return 0;
  },
};

/**
 * `get --watch`: each status that changed, as one table row (no header) or one object. Rows keep
 * the columns of the first table (its AS OF column too, when that one had it).
 */
async function followChanges(
  state: StateDir,
  read: () => Promise<{ statuses: DocumentStatus[]; unreadable: UnreadableStatus[] }>,
  initial: readonly DocumentStatus[],
  output: Output,
  operator: OperatorPresence,
  ctx: Context,
): Promise<void> {
  const seen = new Map(initial.map((s) => [s.key, JSON.stringify(s)]));
  const show = async () => {
    const { statuses } = await read();
    for (const s of statuses) {
      const text = JSON.stringify(s);
      if (seen.get(s.key) === text) continue;
      seen.set(s.key, text);
      if (output.format === 'table' || output.format === 'wide') ctx.io.out(renderTable([s], { now: new Date(), wide: output.format === 'wide', noHeaders: true, operator }));
      else if (output.format === 'json') ctx.io.out(toJsonText(s));
      else ctx.io.out(renderGet([s], output, new Date(), { single: true }) + (output.format === 'yaml' ? '\n---' : ''));
    }
  };
  let pending = Promise.resolve();
  const watcher = await watchStatusDir(state.paths.status, () => {
    pending = pending.then(show, show);
  }, { debounceMs: 30 });
  await untilAborted(ctx.signal);
  await watcher.close();
  await pending;
}

export const describeCommand: Command = {
  name: 'describe',
  summary: "One document's status in detail: facts, containers, conditions and recent events",
  args: 'KIND/NAME',
  description: 'Also takes KIND NAME as two words. Exit 1 when nothing is known of the document.',
  flags: [STATE_DIR_FLAG, CELL_FLAG],
  examples: ['pic describe ServiceInstall/notes', 'pic describe peer alice', 'pic describe Core/wireguard'],
  completeArgs: KINDS.map((k) => `${k}/`),
  async run(parsed, ctx) {
    const target = parsed.positionals.join('/');
    const slash = target.indexOf('/');
    if (parsed.positionals.length === 0 || parsed.positionals.length > 2 || slash <= 0) throw new UsageError('pic describe takes KIND/NAME, e.g. pic describe ServiceInstall/notes');
    const key = `${canonicalKind(target.slice(0, slash))}/${target.slice(slash + 1)}`;
    const state = await stateDirFrom(parsed);
    const store = new StatusStore(state.paths.status);
    let status: DocumentStatus | undefined;
    try {
      status = await store.get(key);
    } catch (err) {
      ctx.io.err(`pic: ${safeLine((err as Error).message)}`);
      return 1;
    }
    const events = await new EventLog(state.paths.events).recent({ key, limit: 20 });
    if (!status) {
      if (events.length === 0) {
        ctx.io.err(`pic: nothing known of ${safeLine(key)} in ${safeLine(state.root)}`);
        return 1;
      }
      ctx.io.out(`${safeLine(key)} has no status (it was removed). Recent events:`);
      for (const e of events) ctx.io.out(`  ${safeLine(`${e.time}  ${e.type}  ${e.reason}  ${e.message}`)}`);
      return 0;
    }
    const now = new Date();
    const tunnel = status.kind === 'Connection' ? await liveTunnel(status) : undefined;
    ctx.io.out(renderDescribe(status, events, now, await operatorPresence(state.paths, now), tunnel));
    return 0;
  },
};

/** The bytes through a Connection's exit's tunnel, read now. */
async function liveTunnel(status: DocumentStatus): Promise<LiveTunnel> {
  const exit = status.facts?.containers?.[0]?.name;
  if (exit === undefined) return { problem: 'no exit container is recorded' };
  try {
    // Loaded here: `pic get` and `pic watch` never talk to Docker and should not load its client.
    const [{ readExitTraffic }, { dockerClient }] = await Promise.all([import('../../reconcilers/egress/exit-traffic.js'), import('../docker-client.js')]);
    return { traffic: await readExitTraffic(await dockerClient(), { name: exit, connection: status.name }) };
  } catch (err) {
    return { problem: (err as Error).message };
  }
}

/** `pic watch`: redraw the table whenever a status changes; `-o json` streams events instead. */
export const watchCommand: Command = {
  name: 'watch',
  summary: 'A live table of every document, redrawn when a status changes (-o json: the event stream)',
  args: '',
  description: 'On a terminal the screen is redrawn; otherwise each new table is printed after the last. Stops on Ctrl-C.',
  flags: [{ name: 'output', short: 'o', type: 'string', value: 'json', help: 'stream events as JSON lines instead of the table', complete: ['json'] }, STATE_DIR_FLAG, CELL_FLAG],
  examples: ['pic watch', 'pic watch -o json'],
  async run(parsed, ctx) {
    const output = stringFlag(parsed, 'output');
    if (output !== undefined && output !== 'json') throw new UsageError(`pic watch: -o takes json or nothing, not "${safeLine(output)}"`);
    if (parsed.positionals.length > 0) throw new UsageError('pic watch takes no arguments');
    const state = await stateDirFrom(parsed);
    if (output === 'json') {
      // One JSON object per line (JSON lines), as `pic run --log-format json` writes them.
      const follower = followEvents(state.paths.events, (e) => ctx.io.out(toSafeJson(e)), { fromStart: false });
      await untilAborted(ctx.signal);
      follower.close();
      return 0;
    }
    const store = new StatusStore(state.paths.status);
    const tty = process.stdout.isTTY === true;
    let last = '';
    const draw = async () => {
      const { statuses, unreadable } = await store.listForReading();
      const now = new Date();
      const operator = await operatorPresence(state.paths, now);
      const frame = renderWatchFrame(statuses, now, { unreadable, emptyMessage: `No documents found in ${state.root}; is pic run going?`, operator });
      // The clock in the first line ticks on its own; the rest, and who keeps it current, decide a new frame.
      const body = [operatorLine(operator, now), ...frame.split('\n').slice(1)].join('\n');
      if (body === last) return;
      last = body;
      ctx.io.out(tty ? `\x1b[H\x1b[2J${frame}` : `${frame}\n`);
    };
    await draw();
    let drawing = Promise.resolve();
    const redraw = () => {
      drawing = drawing.then(draw, draw);
    };
    const watcher = await watchStatusDir(state.paths.status, redraw, { debounceMs: 30 });
    // Ages in the table move on their own, and an operator can die without a status changing:
    // look again now and then. A terminal is redrawn anyway; a pipe gets a frame only when the
    // table or the operator's line changed.
    const tick = setInterval(() => {
      if (tty) last = '';
      redraw();
    }, 5000);
    await untilAborted(ctx.signal);
    clearInterval(tick);
    await watcher.close();
    await drawing;
    return 0;
  },
};
