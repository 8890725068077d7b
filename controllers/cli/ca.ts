/**
 * `pic ca --cell DIR`: the PEM of the root certificate peers trust for the cell's HTTPS (Caddy's
 * internal CA), on stdout and nothing else, so it can be redirected into a file.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fetchRootCertificate } from '../../reconcilers/caddy/ca.js';
import { withCoreDefaults } from '../../reconcilers/core/spec.js';
import { loadCell } from '../../state/cell.js';
import { UsageError, type Io } from './usage.js';

export async function caCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { cell: { type: 'string' }, 'state-dir': { type: 'string' } } });
  if (positionals.length > 0) throw new UsageError('pic ca takes no arguments besides --cell DIR');
  if (!values.cell) throw new UsageError('pic ca needs --cell DIR (to find Caddy\'s admin address)');
  const cell = await loadCell(path.resolve(values.cell));
  if (!cell.cell) {
    io.err(`pic: ${cell.dir} has no valid Cell document; run pic validate ${cell.dir}`);
    return 1;
  }
  const admin = withCoreDefaults(cell.cell).spec.caddy?.adminAddress;
  if (!admin) {
    io.err('pic: the Cell gives no Caddy admin address (spec.caddy.adminAddress) and pic does not run Caddy (spec.caddy.run)');
    return 1;
  }
  io.out((await fetchRootCertificate(admin)).replace(/\n$/, ''));
  return 0;
}
