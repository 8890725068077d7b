/**
 * `pic credentials PEER [-o json] [--cell DIR] [--state-dir DIR]`: what a peer's devices need to
 * use its accounts — the filled `peer_config_template` of every service the peer has stored
 * credentials for (the raw credentials where a service has no template).
 *
 * This prints passwords, by design: it is how they reach the peer. It writes nothing, logs
 * nothing and records no event.
 */
import path from 'node:path';
import { fillPeerConfig, PeerConfigError } from '../../reconcilers/accounts/template.js';
import { loadRunningCell } from '../../state/cell.js';
import { CredentialsStore } from '../../state/credentials.js';
import { peerKey } from '../../state/document-keys.js';
import { CELL_FLAG, parseCommandArgs, STATE_DIR_FLAG, stringFlag, type Command, type Parsed } from './command.js';
import { toJsonText } from './output.js';
import { safeLine } from '../safe-text.js';
import { openStateDirForReading } from './state-location.js';
import { requireFolder } from './run.js';
import { UsageError, type Io } from './usage.js';
import { printPeerWireguard } from './wireguard.js';

export const credentials: Command = {
  name: 'credentials',
  summary: "A peer's filled connection details for every service it has an account on",
  args: 'PEER',
  description: 'Prints passwords, by design: it is how they reach the peer. Writes nothing and records no event. Exit 1 when the peer has no stored credentials.',
  flags: [
    CELL_FLAG,
    STATE_DIR_FLAG,
    { name: 'output', short: 'o', type: 'string', value: 'json|wireguard', help: "print JSON instead of text, or the peer's wg-quick file", complete: ['json', 'wireguard'] },
    { name: 'qr', type: 'boolean', help: "the peer's wg-quick file as a QR code, for a phone's WireGuard app" },
  ],
  examples: ['pic credentials alice --cell examples/cell', 'pic credentials alice --cell examples/cell -o json', 'pic credentials alice --cell examples/cell -o wireguard'],
  run: (parsed, ctx) => printCredentials(parsed, ctx.io),
};

/** `pic credentials ARGS...` called directly (tests of the accounts flow do). */
export function credentialsCommand(args: string[], io: Io): Promise<number> {
  return credentials.run(parseCommandArgs(credentials, args), { io, signal: new AbortController().signal, commands: async () => [credentials] });
}

async function printCredentials(parsed: Parsed, io: Io): Promise<number> {
  const { positionals } = parsed;
  const values = { cell: stringFlag(parsed, 'cell'), 'state-dir': stringFlag(parsed, 'state-dir'), output: stringFlag(parsed, 'output'), qr: parsed.values.qr === true };
  if (positionals.length !== 1) throw new UsageError('pic credentials takes one PEER, e.g. pic credentials alice --cell DIR');
  const peer = positionals[0] as string;
  if (values.output !== undefined && values.output !== 'json' && values.output !== 'wireguard') throw new UsageError(`pic credentials: -o takes json, wireguard or nothing, not "${safeLine(values.output)}"`);
  if (values.qr && values.output === 'json') throw new UsageError('pic credentials: --qr prints the wg-quick file as a QR code; it does not combine with -o json');
  if (!values.cell) throw new UsageError('pic credentials needs --cell DIR (for the domain, the manifests and the service settings)');

  const state = await openStateDirForReading({ stateDir: values['state-dir'], cell: values.cell });
  await requireFolder(values.cell);
  // The account templates of the admitted packages: what the running services were given.
  const cell = await loadRunningCell(path.resolve(values.cell), state.root);
  if (!cell.cell) {
    io.err(`pic: ${safeLine(cell.dir)} has no valid Cell document; run pic validate ${safeLine(cell.dir)}`);
    return 1;
  }
  if (values.output === 'wireguard' || values.qr) {
    const doc = cell.docs.peers.find((p) => p.doc.metadata.name === peer && (cell.checked.byDocument.get(peerKey(peer)) ?? []).length === 0)?.doc;
    return printPeerWireguard(cell.cell, doc, peer, state.root, values.qr, io);
  }
  const store = new CredentialsStore(state.paths.credentials);
  const all = await store.all();
  const mine: Record<string, Record<string, string>> = {};
  for (const service of Object.keys(all)) {
    const creds = Object.prototype.hasOwnProperty.call(all[service], peer) ? all[service]![peer] : undefined;
    if (creds !== undefined) Object.defineProperty(mine, service, { value: creds, enumerable: true, writable: true, configurable: true });
  }
  const serviceIds = Object.keys(mine).sort();
  if (serviceIds.length === 0) {
    io.err(`pic: no credentials are stored for peer "${safeLine(peer)}" in ${safeLine(store.file)}`);
    return 1;
  }

  const services: Record<string, Record<string, string>> = {};
  let problems = 0;
  for (const id of serviceIds) {
    const manifest = cell.catalog?.services.get(id)?.manifest;
    let filled: Record<string, string>;
    if (manifest === undefined) {
      io.err(`pic: ${safeLine(id)} is not a valid service of the catalog; showing the stored credentials as they are`);
      filled = { ...mine[id] };
    } else {
      try {
        filled = fillPeerConfig(manifest, { domain: cell.cell.spec.domain, peer, credentials: mine, config: cell.checked.configs.get(id) ?? {} });
      } catch (err) {
        if (!(err instanceof PeerConfigError)) throw err;
        io.err(`pic: ${safeLine(err.message)}`);
        problems++;
        continue;
      }
    }
    Object.defineProperty(services, id, { value: filled, enumerable: true, writable: true, configurable: true });
  }

  if (values.output === 'json') {
    io.out(toJsonText({ peer, services }));
  } else {
    const blocks = Object.entries(services).map(([id, fields]) => {
      const width = Math.max(...Object.keys(fields).map((k) => k.length), 0) + 1;
      return [safeLine(id), ...Object.entries(fields).map(([k, v]) => `  ${`${safeLine(k)}:`.padEnd(width)}  ${safeLine(v)}`)].join('\n');
    });
    io.out([`Peer ${safeLine(peer)}`, ...blocks].join('\n\n'));
  }
  return problems > 0 ? 1 : 0;
}
