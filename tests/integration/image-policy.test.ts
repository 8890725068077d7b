/**
 * Under `enforce`, nothing whose image signature cannot be verified ever runs (fail closed). Here
 * the example cell (examples/cell: five services and the core stack, Caddy, BIND and WireGuard)
 * trusts no key: no service and no core container is created, no volume, no network; every
 * service is Stalled with UnknownKey and every core container with the gate's reason (its images
 * are named by tag, so NotPinned), exactly what a service gets for the same image.
 *
 * The copy is renamed so nothing in it can meet the demo on this engine: the cell, its network
 * and subnet, the service and core container names, and WireGuard's UDP port (published on
 * 127.0.0.1 at a free port, never 51820). Whatever a faulty run created is removed afterwards.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { removeStaleTestCells, removeTestCell, waitFor } from '../support/cell.js';
import { docker, pickSubnet } from '../support/docker.js';
import { renameContainers } from '../support/example-cell.js';

const EXAMPLES = path.join(process.cwd(), 'examples');
const CORE = ['caddy', 'dns', 'wireguard'] as const;

const tag = `pt${randomBytes(4).toString('hex')}`;
const cellName = `pictest-enforce-${tag}`;
let root: string;
let cellDir: string;

/** A UDP port nothing on 127.0.0.1 holds right now. */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

async function copyRenamed(from: string, to: string): Promise<void> {
  await fs.mkdir(to, { recursive: true });
  for (const entry of await fs.readdir(from, { withFileTypes: true })) {
    if (entry.isDirectory()) await copyRenamed(path.join(from, entry.name), path.join(to, entry.name));
    else await fs.writeFile(path.join(to, entry.name), renameContainers(await fs.readFile(path.join(from, entry.name), 'utf8'), tag));
  }
}

beforeAll(async () => {
  await removeStaleTestCells();
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-enforce-'));
  cellDir = path.join(root, 'cell');
  await fs.cp(path.join(EXAMPLES, 'cell'), cellDir, { recursive: true });
  await copyRenamed(path.join(EXAMPLES, 'store', 'services'), path.join(root, 'store', 'services'));
  await fs.copyFile(path.join(EXAMPLES, 'store', 'index.json'), path.join(root, 'store', 'index.json'));

  const subnet = await pickSubnet();
  const base = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  const cellYaml = path.join(cellDir, 'cell.yaml');
  const cell = parseYaml(await fs.readFile(cellYaml, 'utf8')) as { metadata: { name: string }; spec: Record<string, any> };
  const spec = cell.spec;
  // The example cell as it is, except for what would meet the demo's names, and under enforce.
  expect(spec.imageVerification).toEqual({ mode: 'warn' });
  expect(CORE.every((c) => typeof spec[c]?.run?.image === 'string')).toBe(true);
  cell.metadata.name = cellName;
  spec.store.path = '../store';
  spec.network = { name: cellName, subnet, servicePool: `${base}.20-${base}.254` };
  spec.imageVerification = { mode: 'enforce' };
  for (const c of CORE) {
    const run = spec[c].run;
    run.address = `${base}.${String(run.address).split('.')[3]}`;
    run.container = `cell-${tag}-${c}`;
  }
  spec.wireguard.run.publish = { hostIp: '127.0.0.1', port: await freeUdpPort() };
  await fs.writeFile(cellYaml, stringifyYaml(cell));
});

afterAll(async () => {
  await removeTestCell({ name: cellName, network: cellName, root });
});

test('enforce without a trusted key stalls every service and every core container, and creates nothing', async () => {
  const stateDir = path.join(root, 'state');
  const op = new Operator({
    cellDir,
    stateDir: new StateDir(stateDir),
    docker,
    logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }),
    resyncIntervalMs: 60 * 60_000,
    watch: false,
  });
  await op.stateDirReady();
  await op.start();
  const store = new StatusStore(path.join(stateDir, 'status'));
  const stalled = (s: DocumentStatus) => s.phase === 'Stalled';
  let statuses: DocumentStatus[];
  try {
    statuses = await waitFor('every service and core container Stalled', async () => {
      const all = (await store.list()).filter((s) => s.kind === 'ServiceInstall' || s.kind === 'Core');
      return all.length === 8 && all.every(stalled) ? all : undefined;
    });
    await op.queue.whenSettled();
  } finally {
    await op.stop();
  }

  const services = statuses.filter((s) => s.kind === 'ServiceInstall');
  expect(services.map((s) => s.name).sort()).toEqual(['calendar', 'email', 'files', 'homepage', 'notes']);
  for (const s of services) expect(s.conditions.find((c) => c.type === 'Stalled')?.reason).toBe('UnknownKey');

  const core = statuses.filter((s) => s.kind === 'Core');
  expect(core.map((s) => s.key).sort()).toEqual(['Core/caddy', 'Core/dns', 'Core/wireguard']);
  for (const s of core) {
    const condition = s.conditions.find((c) => c.type === 'Stalled');
    expect(condition?.reason).toBe('NotPinned');
    expect(condition?.message).toContain(`nothing of ${s.key} is created`);
    expect(s.facts?.verification).toMatch(/^enforce: .* NOT verified: NotPinned$/);
  }

  expect(await docker.listContainers({ all: true, filters: { label: [`ngo.pic.cell=${cellName}`] } })).toEqual([]);
  expect(await docker.listContainers({ all: true, filters: { name: [tag] } })).toEqual([]);
  expect((await docker.listVolumes({ filters: { label: [`ngo.pic.cell=${cellName}`] } })).Volumes ?? []).toEqual([]);
  expect(await docker.listNetworks({ filters: { name: [cellName] } })).toEqual([]);
});
