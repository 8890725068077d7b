/**
 * A Cell with no core sections (no caddy, dns or wireguard settings at all): pic runs no core
 * container, the routed services still converge, and `pic run --once` exits 0. What cannot be
 * derived (the address the A records would point at) is a notice in the DNS status, not a
 * Stalled resource that fails the run.
 */
import path from 'node:path';
import { main } from '../../controllers/cli/main.js';
import { StatusStore } from '../../state/status-store.js';
import { testCellDocument, writeDocumentFile } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { createRoutingCell, removeRoutingCell, removeStaleRoutingCells, type RoutingCell } from '../support/routing-cell.js';

const SUITE = 'core-absent';
let cell: RoutingCell | undefined;

beforeAll(async () => {
  await removeStaleRoutingCells(SUITE);
  cell = await createRoutingCell([{ id: 'alpha' }], SUITE);
  await writeDocumentFile(
    path.join(cell.cellDir, 'cell.yaml'),
    testCellDocument({ name: cell.name, domain: cell.domain, subnet: cell.subnet, poolEnd: 120, allowedImagePrefix: 'pictest/' }),
  );
  await cell.writeService('alpha');
});

afterAll(async () => {
  if (cell) await removeRoutingCell(cell);
});

test('no core sections: no core container, the service converges, run --once exits 0 with a notice', async () => {
  const c = cell!;
  const out: string[] = [];
  const code = await main(['run', '--once', '--cell', c.cellDir, '--state-dir', c.stateDir, '--timeout', '120'], { out: (l) => out.push(l), err: (l) => out.push(l) });
  expect({ code, out }).toMatchObject({ code: 0 });
  const status = new StatusStore(path.join(c.stateDir, 'status'));
  expect((await status.get('ServiceInstall/alpha'))?.phase).toBe('Ready');
  const dns = await status.get('Resource/dns');
  expect(dns?.phase).toBe('Ready');
  expect(dns?.facts?.notices).toEqual([expect.stringContaining('spec.dns.address is not set')]);
  expect((await status.list()).filter((s) => s.kind === 'Core')).toEqual([]);
  const containers = await docker.listContainers({ all: true, filters: { label: [`ngo.pic.cell=${c.name}`] } });
  expect(containers.map((x) => x.Labels['ngo.pic.owner'])).toEqual(['ServiceInstall/alpha']);
});
