/**
 * `pic ca --cell DIR`: the PEM of the root certificate peers trust for the cell's HTTPS (Caddy's
 * internal CA), on stdout and nothing else, so it can be redirected into a file.
 */
import path from 'node:path';
import { fetchRootCertificate, readRootCertificate } from '../../reconcilers/caddy/ca.js';
import { coreComponents, coreContainerClaim } from '../../reconcilers/core/spec.js';
import { resolveOwnedContainer } from '../../reconcilers/shared/owned-container.js';
import { dockerClient } from '../docker-client.js';
import { loadCell } from '../../state/cell.js';
import { safeLine } from '../safe-text.js';
import { CELL_FLAG, stringFlag, type Command, type Parsed } from './command.js';
import { requireFolder } from './run.js';
import { UsageError, type Io } from './usage.js';

export const caCommand: Command = {
  name: 'ca',
  summary: "The root certificate peers trust for the cell's HTTPS (Caddy's internal CA), as PEM",
  args: '',
  description: "Reads it from the data volume of the Caddy pic runs (through Docker), or asks the admin's Caddy through its admin API; prints the PEM and nothing else, so it can be redirected into a file. Exit 1 when Caddy cannot be asked.",
  flags: [CELL_FLAG],
  examples: ['pic ca --cell .demo/cell > cell-ca.pem'],
  run: (parsed, ctx) => printCa(parsed, ctx.io),
};

async function printCa(parsed: Parsed, io: Io): Promise<number> {
  const positionals = parsed.positionals;
  const values = { cell: stringFlag(parsed, 'cell') };
  if (positionals.length > 0) throw new UsageError('pic ca takes no arguments besides --cell DIR');
  if (!values.cell) throw new UsageError('pic ca needs --cell DIR (to find Caddy\'s admin address)');
  await requireFolder(values.cell);
  const cell = await loadCell(path.resolve(values.cell));
  if (!cell.cell) {
    io.err(`pic: ${safeLine(cell.dir)} has no valid Cell document; run pic validate ${safeLine(cell.dir)}`);
    return 1;
  }
  if (coreComponents(cell.cell).some((c) => c.name === 'caddy')) {
    const docker = await dockerClient();
    const caddy = await resolveOwnedContainer(docker, coreContainerClaim(cell.cell, 'caddy', 'read from'));
    io.out((await readRootCertificate(docker, caddy)).replace(/\n$/, ''));
    return 0;
  }
  const admin = cell.cell.spec.caddy?.adminAddress;
  if (!admin) {
    io.err('pic: the Cell gives no Caddy admin address (spec.caddy.adminAddress) and pic does not run Caddy (spec.caddy.run)');
    return 1;
  }
  io.out((await fetchRootCertificate(admin)).replace(/\n$/, ''));
  return 0;
}
