/** Under `enforce`, a service whose image signature cannot be verified never runs (fail closed): here the Cell trusts no key. */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';

let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-enforce-'));
  const cellDir = path.join(root, 'cell');
  await fs.cp(path.join(process.cwd(), 'examples', 'cell'), cellDir, { recursive: true });
  const cellYaml = path.join(cellDir, 'cell.yaml');
  const text = (await fs.readFile(cellYaml, 'utf8'))
    .replace(/mode: warn/, 'mode: enforce')
    .replace(/path: \.\.\/store/, `path: ${path.join(process.cwd(), 'examples', 'store')}`)
    .replace(/name: demo\b/, 'name: pictest-enforce');
  await fs.writeFile(cellYaml, text);
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

test('enforce without a trusted key stalls every service and creates nothing', async () => {
  const docker = new Dockerode();
  const op = new Operator({
    cellDir: path.join(root, 'cell'),
    stateDir: new StateDir(path.join(root, 'state')),
    docker,
    logger: createLogger({ json: true, level: 'error' }),
    watch: false,
  });
  await op.stateDirReady();
  await op.start();
  await op.queue.whenIdle(30_000);
  await op.stop();
  const statuses = (await new StatusStore(path.join(root, 'state', 'status')).list()).filter((s) => s.kind === 'ServiceInstall');
  expect(statuses.length).toBe(5);
  for (const s of statuses) {
    expect(s.phase).toBe('Stalled');
    expect(s.conditions.find((c) => c.type === 'Stalled')?.reason).toBe('UnknownKey');
  }
  const created = await docker.listContainers({ all: true, filters: { label: ['ngo.pic.cell=pictest-enforce'] } });
  expect(created).toEqual([]);
});
