/**
 * Names and volumes pic did not create, through the real operator (issue 18):
 *
 * - A store container holds the core WireGuard's name before the core exists (the core stopped
 *   and removed; its ServiceInstall no longer valid, so pic keeps what it has). pic never execs
 *   into it: Core/wireguard is Stalled saying who holds the name and its id, and every resource
 *   that lives in that container (peer set, firewall, tunnel; egress lives on the host) is Stalled naming it too.
 * - A volume without pic's labels under the name pic would give a service's volume: the service
 *   is Stalled naming the volume, nothing of it is created, and the volume is left as it was.
 *
 * Names: the cell is `pictest-exec-<tag>`, its WireGuard container `pictest-exec-<tag>-wg`.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { inVolume } from '../support/backup-fixture.js';
import { createTestCell, removeTestCell, serviceInstallDocument, TEST_IMAGE, testCellDocument, waitFor, writeDocumentFile, type TestCell } from '../support/cell.js';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import { cleanupTestResources, docker, recordDockerEvents, TEST_LABELS } from '../support/docker.js';

const SUITE_LABEL = 'ngo.pic.test-held-name';
const labels = { ...TEST_LABELS, [SUITE_LABEL]: '1' };

let cell: TestCell | undefined;
let name = '';
let operator: Operator | undefined;
let status: StatusStore;

async function startOperator(c: TestCell): Promise<Operator> {
  const op = new Operator({ cellDir: c.cellDir, stateDir: new StateDir(c.stateDir), docker, logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }), resyncIntervalMs: 60 * 60_000 });
  await op.stateDirReady();
  await op.start();
  return op;
}

const stalled = (key: string, reason: string) =>
  waitFor(`${key} Stalled (${reason})`, async () => {
    const s = await status.get(key);
    return s?.phase === 'Stalled' && s.conditions.some((x) => x.type === 'Stalled' && x.reason === reason) ? s : undefined;
  });

const stalledMessage = (s: DocumentStatus) => s.conditions.find((x) => x.type === 'Stalled')?.message ?? '';

async function containersOf(owner: string): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`ngo.pic.owner=${owner}`, `ngo.pic.cell=${name}`] } });
  return list.map((x) => x.Id);
}

beforeAll(async () => {
  await cleanupTestResources(`${SUITE_LABEL}=1`, { olderThanMs: 30 * 60_000 });
  cell = await createTestCell([{ id: 'alpha' }]);
  name = `pictest-exec-${cell.tag}`;
  cell.network = name;
  const base = cell.subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  // The core's image only has to be present: its container is never created while the name is held.
  await writeDocumentFile(
    path.join(cell.cellDir, 'cell.yaml'),
    testCellDocument({ name, domain: `${cell.tag}.pic.test`, subnet: cell.subnet, poolEnd: 100, allowedImagePrefix: 'pictest/', extra: [`  wireguard: {run: {image: "${TEST_IMAGE}", address: ${base}.12, container: ${name}-wg}}`] }),
  );
  status = new StatusStore(path.join(cell.stateDir, 'status'));
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  await cleanupTestResources(`${SUITE_LABEL}=1`);
  if (cell) await removeTestCell({ name, network: name, root: cell.root });
});

test('a store container holding the core WireGuard\'s name: never exec\'d into, and Core/wireguard says who holds it', async () => {
  const c = cell!;
  // What an earlier install of a store package "evil" left: its container under the core's name.
  const evil = await docker.createContainer({
    name: `${name}-wg`,
    Image: TEST_IMAGE,
    Cmd: ['sleep', '3600'],
    Labels: { ...labels, 'ngo.pic.owner': 'ServiceInstall/evil', 'ngo.pic.cell': name, 'ngo.pic.service': 'evil' },
    StopTimeout: 1,
    HostConfig: { NetworkMode: 'none' },
  });
  await evil.start();
  const short = evil.id.slice(0, 12);
  // The package is no longer in the catalog: the document is Stalled and its container kept.
  await writeDocumentFile(path.join(c.cellDir, 'services', 'evil.yaml'), serviceInstallDocument('evil'));
  await c.writeService('alpha');

  const recording = await recordDockerEvents({ type: ['container'], container: [evil.id], event: ['exec_create', 'kill'] });
  try {
    operator = await startOperator(c);
    const core = await stalled('Core/wireguard', 'ContainerNameConflict');
    expect(stalledMessage(core)).toContain(`container name "${name}-wg" is held by ServiceInstall/evil (id ${short}), so Core/wireguard cannot create it`);
    for (const key of ['Resource/wireguard', 'Resource/firewall', 'Resource/tunnel']) {
      const s = await stalled(key, 'ContainerNotOwned');
      expect(stalledMessage(s)).toBe(`${name}-wg is held by ServiceInstall/evil (container ${short}…), not by pic's WireGuard: pic will not exec into it`);
    }
    await waitFor('ServiceInstall/alpha Ready', async () => ((await status.get('ServiceInstall/alpha'))?.phase === 'Ready' ? true : undefined));
    await operator.queue.whenSettled();
  } catch (err) {
    recording.close();
    throw err;
  }
  expect(await recording.stop((marker) => execInContainer(docker, `${name}-wg`, ['echo', marker]))).toEqual([]);
  expect((await docker.getContainer(evil.id).inspect()).State.Running).toBe(true);
  expect(await containersOf('Core/wireguard')).toEqual([]);
  // Once the holder is gone (its removal is an event of the core's name), pic creates the core
  // container at once, not at the next resync an hour later.
  await docker.getContainer(evil.id).remove({ force: true });
  await waitFor('Core/wireguard created once the name is free', async () => ((await containersOf('Core/wireguard')).length > 0 ? true : undefined), 60_000);
});

test('an unlabelled volume under the name pic would give the service\'s volume: Stalled naming it, and left as it was', async () => {
  const c = cell!;
  await operator?.stop();
  operator = undefined;
  // The name pic gave alpha's volume; then alpha's container and volume are gone, and someone
  // else's volume, with data of its own, has that name.
  const volumes = (await docker.listVolumes({ filters: { label: [`ngo.pic.owner=ServiceInstall/alpha`, `ngo.pic.cell=${name}`] } })).Volumes ?? [];
  expect(volumes).toHaveLength(1);
  const volume = volumes[0]!.Name;
  for (const id of await containersOf('ServiceInstall/alpha')) await docker.getContainer(id).remove({ force: true });
  await docker.getVolume(volume).remove();
  await docker.createVolume({ Name: volume, Labels: labels });
  await inVolume({ labels }, volume, 'echo someone else > /d/data');

  operator = await startOperator(c);
  const alpha = await stalled('ServiceInstall/alpha', 'VolumeConflict');
  expect(stalledMessage(alpha)).toContain(`volume "${volume}" already exists, held by a volume with no pic labels, and pic did not create it for ServiceInstall/alpha`);
  await operator.queue.whenSettled();
  expect(await containersOf('ServiceInstall/alpha')).toEqual([]);
  expect((await docker.getVolume(volume).inspect()).Labels).toEqual(labels);
  expect(await inVolume({ labels }, volume, 'ls -A /d; cat /d/data')).toBe('data\nsomeone else\n');
});
