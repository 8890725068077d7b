/**
 * `pic verify IMAGE [--key FILE]... [--cell DIR] [--mirror REGISTRY=HOST]... [--insecure HOST]... [-o json]`:
 * the cell's signature check of one image, from the command line, for service developers and
 * admins. Keys come from --key, else from the Cell in --cell (which also gives its mirrors and
 * insecure registries). Always asks the registry (no cache). Exit 0 verified, 1 refused.
 */
import path from 'node:path';
import { dockerCredentials } from '../../reconcilers/images/credentials.js';
import { loadPublicKeys } from '../../reconcilers/images/keys.js';
import { registrySettingsOf, trustedKeyFiles } from '../../reconcilers/images/policy.js';
import type { RegistrySettings } from '../../reconcilers/images/reference.js';
import { RegistryClient } from '../../reconcilers/images/registry.js';
import { verifyImage } from '../../reconcilers/images/verify.js';
import { loadCell } from '../../state/cell.js';
import { safeLine } from '../safe-text.js';
import { CELL_FLAG, listFlag, stringFlag, type Command, type Parsed } from './command.js';
import { UsageError, type Io } from './usage.js';

export const verifyCommand: Command = {
  name: 'verify',
  summary: "The cell's signature check of one image, from the command line",
  args: 'IMAGE',
  description:
    'IMAGE is name@sha256:<digest>. Keys come from --key, else from the Cell of --cell (which also gives its mirrors and insecure registries). Always asks the registry; keeps nothing. Exit 0 verified, 1 refused (the reason is printed), 2 usage.',
  flags: [
    { name: 'key', type: 'string', multiple: true, value: 'FILE', help: 'a PEM public key to trust (more than once for several)', complete: 'file' },
    CELL_FLAG,
    { name: 'mirror', type: 'string', multiple: true, value: 'REGISTRY=HOST', help: 'look the registry up at HOST instead (more than once)' },
    { name: 'insecure', type: 'string', multiple: true, value: 'HOST', help: 'a registry reached over plain HTTP (loopback always is)' },
    { name: 'output', short: 'o', type: 'string', value: 'json', help: 'the verdict as JSON', complete: ['json'] },
  ],
  examples: ['pic verify git.pic.ngo/roof/pic-notes@sha256:<64 hex> --key cosign.pub', 'pic verify 127.0.0.1:5000/roof/pic-notes@sha256:<64 hex> --cell .demo/cell'],
  completeArgs: 'file',
  run: (parsed, ctx) => verify(parsed, ctx.io),
};

async function verify(parsed: Parsed, io: Io): Promise<number> {
  const positionals = parsed.positionals;
  const values = { key: listFlag(parsed, 'key'), cell: stringFlag(parsed, 'cell'), mirror: listFlag(parsed, 'mirror'), insecure: listFlag(parsed, 'insecure'), output: stringFlag(parsed, 'output') };
  if (positionals.length !== 1) throw new UsageError('pic verify takes one IMAGE, e.g. pic verify git.pic.ngo/roof/notes@sha256:<hex> --key cosign.pub');
  if (values.output !== undefined && values.output !== 'json') throw new UsageError(`pic verify: -o takes json or nothing, not "${safeLine(values.output)}"`);
  const reference = positionals[0] as string;

  let keyFiles = (values.key ?? []).map((k) => path.resolve(k));
  let settings: RegistrySettings = { mirrors: {}, insecure: [] };
  if (values.cell) {
    const cell = await loadCell(path.resolve(values.cell));
    if (!cell.cell) {
      io.err(`pic: ${safeLine(cell.dir)} has no valid Cell document; run pic validate ${safeLine(cell.dir)}`);
      return 1;
    }
    settings = registrySettingsOf(cell.cell.spec);
    if (keyFiles.length === 0) keyFiles = trustedKeyFiles(cell.cell.spec.imageVerification, cell.dir);
  }
  for (const m of values.mirror ?? []) {
    const eq = m.indexOf('=');
    if (eq <= 0 || eq === m.length - 1) throw new UsageError(`--mirror takes REGISTRY=HOST, e.g. git.pic.ngo=127.0.0.1:5000, not "${safeLine(m)}"`);
    settings.mirrors[m.slice(0, eq)] = m.slice(eq + 1);
  }
  settings.insecure.push(...(values.insecure ?? []));
  if (keyFiles.length === 0) throw new UsageError('pic verify needs a key: --key FILE, or --cell DIR whose Cell lists publicKey or publicKeys');

  const keys = await loadPublicKeys(keyFiles);
  // No cache: the command line always asks the registry, and keeps nothing.
  const credentials = dockerCredentials();
  const verdict = await verifyImage(reference, { keys, settings, clientFor: (endpoint) => new RegistryClient(endpoint, { credentials }) });
  if (values.output === 'json') io.out(JSON.stringify(verdict, null, 2));
  else if (verdict.ok) io.out(`verified: ${safeLine(reference)}\n  key:    ${safeLine(verdict.keyFile)} (sha256 ${verdict.keyId})\n  format: ${verdict.format}${verdict.transparencyLog ? ' (transparency-log entry present, not checked)' : ''}`);
  else io.out(`refused: ${verdict.reason}: ${safeLine(verdict.message)}`);
  return verdict.ok ? 0 : 1;
}

