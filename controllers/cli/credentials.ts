/**
 * `pic credentials PEER [-o json] [--cell DIR] [--state-dir DIR]`: what a peer's devices need to
 * use its accounts — the filled `peer_config_template` of every service the peer has stored
 * credentials for (the raw credentials where a service has no template).
 *
 * This prints passwords, by design: it is how they reach the peer. It writes nothing, logs
 * nothing and records no event.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fillPeerConfig, PeerConfigError } from '../../reconcilers/accounts/template.js';
import { loadCell } from '../../state/cell.js';
import { CredentialsStore } from '../../state/credentials.js';
import { StateDir, resolveStateDir } from '../../state/state-dir.js';
import { UsageError, type Io } from './usage.js';
import { printPeerWireguard } from './wireguard.js';

export async function credentialsCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { cell: { type: 'string' }, 'state-dir': { type: 'string' }, output: { type: 'string', short: 'o' }, qr: { type: 'boolean' } },
  });
  if (positionals.length !== 1) throw new UsageError('pic credentials takes one PEER, e.g. pic credentials alice --cell DIR');
  const peer = positionals[0] as string;
  if (values.output !== undefined && values.output !== 'json' && values.output !== 'wireguard') throw new UsageError('pic credentials takes -o json, -o wireguard or no -o');
  if (values.qr && values.output === 'json') throw new UsageError('--qr prints the wg-quick file as a QR code; it does not combine with -o json');
  if (!values.cell) throw new UsageError('pic credentials needs --cell DIR (for the domain, the manifests and the service settings)');

  const cell = await loadCell(path.resolve(values.cell));
  if (!cell.cell) {
    io.err(`pic: ${cell.dir} has no valid Cell document; run pic validate ${cell.dir}`);
    return 1;
  }
  const stateDir = new StateDir(resolveStateDir(values['state-dir']));
  if (values.output === 'wireguard' || values.qr) {
    const doc = cell.docs.peers.find((p) => p.doc.metadata.name === peer && (cell.checked.byDocument.get(`PeerAccount/${peer}`) ?? []).length === 0)?.doc;
    return printPeerWireguard(cell.cell, doc, peer, stateDir.root, values.qr === true, io);
  }
  const store = new CredentialsStore(stateDir.paths.credentials);
  const all = await store.all();
  const mine: Record<string, Record<string, string>> = {};
  for (const service of Object.keys(all)) {
    const creds = Object.prototype.hasOwnProperty.call(all[service], peer) ? all[service]![peer] : undefined;
    if (creds !== undefined) Object.defineProperty(mine, service, { value: creds, enumerable: true, writable: true, configurable: true });
  }
  const serviceIds = Object.keys(mine).sort();
  if (serviceIds.length === 0) {
    io.err(`pic: no credentials are stored for peer "${peer}" in ${store.file}`);
    return 1;
  }

  const services: Record<string, Record<string, string>> = {};
  let problems = 0;
  for (const id of serviceIds) {
    const manifest = cell.catalog?.services.get(id)?.manifest;
    let filled: Record<string, string>;
    if (manifest === undefined) {
      io.err(`pic: ${id} is not a valid service of the catalog; showing the stored credentials as they are`);
      filled = { ...mine[id] };
    } else {
      try {
        filled = fillPeerConfig(manifest, { domain: cell.cell.spec.domain, peer, credentials: mine, config: cell.checked.configs.get(id) ?? {} });
      } catch (err) {
        if (!(err instanceof PeerConfigError)) throw err;
        io.err(`pic: ${err.message}`);
        problems++;
        continue;
      }
    }
    Object.defineProperty(services, id, { value: filled, enumerable: true, writable: true, configurable: true });
  }

  if (values.output === 'json') {
    io.out(JSON.stringify({ peer, services }, null, 2));
  } else {
    const blocks = Object.entries(services).map(([id, fields]) => {
      const width = Math.max(...Object.keys(fields).map((k) => k.length), 0) + 1;
      return [id, ...Object.entries(fields).map(([k, v]) => `  ${`${k}:`.padEnd(width)}  ${v}`)].join('\n');
    });
    io.out([`Peer ${peer}`, ...blocks].join('\n\n'));
  }
  return problems > 0 ? 1 : 0;
}
