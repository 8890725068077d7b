/**
 * The operator end to end against the real dockerd: documents in a temporary cell folder become
 * running containers; edits, deletions, hand-made damage and a broken document converge as an
 * admin would expect.
 */
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { docker } from '../support/docker.js';
import { createTestCell, removeStaleTestCells, removeTestCell, waitFor, type TestCell } from '../support/cell.js';
import { LOOP_MIN_READY_SECONDS } from '../../reconcilers/containers/readiness.js';

let cell: TestCell;
let operator: Operator | undefined;
let status: StatusStore;

async function startOperator(): Promise<Operator> {
  const op = new Operator({
    cellDir: cell.cellDir,
    stateDir: new StateDir(cell.stateDir),
    docker,
    logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }),
    resyncIntervalMs: 60 * 60_000,
  });
  await op.stateDirReady();
  await op.start();
  return op;
}

async function containers(): Promise<Map<string, { id: string; state: string; ip?: string }>> {
  const list = await docker.listContainers({ all: true, filters: { label: [`ngo.pic.cell=${cell.name}`] } });
  return new Map(
    list.map((c) => [
      c.Names[0]!.replace(/^\//, ''),
      { id: c.Id, state: c.State, ip: c.NetworkSettings?.Networks?.[cell.network]?.IPAddress || undefined },
    ]),
  );
}

function readyOf(s: DocumentStatus | undefined): DocumentStatus | undefined {
  return s?.phase === 'Ready' ? s : undefined;
}

async function waitReady(...ids: string[]): Promise<DocumentStatus[]> {
  return Promise.all(ids.map((id) => waitFor(`ServiceInstall/${id} Ready`, async () => readyOf(await status.get(`ServiceInstall/${id}`)))));
}

beforeAll(async () => {
  await removeStaleTestCells();
  // pic's own stability window (no spec.minReadySeconds), which other end-to-end cells set to 0.
  cell = await createTestCell([{ id: 'alpha' }, { id: 'beta', healthcheck: true }, { id: 'gamma' }, { id: 'delta' }], { window: 'default' });
  status = new StatusStore(`${cell.stateDir}/status`);
});

afterAll(async () => {
  await operator?.stop();
  if (cell) await removeTestCell(cell);
});

describe('operator end to end', () => {
  test('three services installed by dropping documents become Ready with stable IPs', async () => {
    operator = await startOperator();
    await cell.writeService('alpha');
    await cell.writeService('beta');
    await cell.writeService('gamma', { greeting: 'hi' });
    const [a, b, g] = await waitReady('alpha', 'beta', 'gamma');
    const live = await containers();
    for (const [id, s] of [['alpha', a], ['beta', b], ['gamma', g]] as const) {
      const c = live.get(cell.containerName(id));
      expect(c?.state).toBe('running');
      expect(c?.ip).toBe(s!.facts?.serviceIp);
    }
    expect(new Set([a!.facts?.serviceIp, b!.facts?.serviceIp, g!.facts?.serviceIp]).size).toBe(3);
    expect(b!.facts?.containers?.[0]?.health).toBe('healthy');
    // The loop's stability window: Ready only once the container has run 2 s (Docker's clock and
    // the status's are this machine's).
    for (const [id, s] of [['alpha', a], ['gamma', g]] as const) {
      const started = Date.parse((await docker.getContainer(cell.containerName(id)).inspect()).State.StartedAt);
      const readySince = Date.parse(s!.conditions.find((c) => c.type === 'Ready')!.lastTransitionTime);
      expect(readySince - started).toBeGreaterThanOrEqual(LOOP_MIN_READY_SECONDS * 1000);
    }
  });

  test('changing one config recreates only that container', async () => {
    const before = await containers();
    await cell.writeService('gamma', { greeting: 'bonjour' });
    await waitFor('gamma recreated', async () => {
      const c = (await containers()).get(cell.containerName('gamma'));
      return c && c.id !== before.get(cell.containerName('gamma'))!.id && c.state === 'running' ? c : undefined;
    });
    await waitReady('gamma');
    const after = await containers();
    expect(after.get(cell.containerName('alpha'))!.id).toBe(before.get(cell.containerName('alpha'))!.id);
    expect(after.get(cell.containerName('beta'))!.id).toBe(before.get(cell.containerName('beta'))!.id);
    expect(after.get(cell.containerName('gamma'))!.ip).toBe(before.get(cell.containerName('gamma'))!.ip);
  });

  test('a container removed by hand comes back', async () => {
    const victim = cell.containerName('alpha');
    const before = (await containers()).get(victim)!;
    await docker.getContainer(before.id).remove({ force: true });
    const back = await waitFor('alpha restored', async () => {
      const c = (await containers()).get(victim);
      return c && c.id !== before.id && c.state === 'running' ? c : undefined;
    });
    expect(back.ip).toBe(before.ip);
  });

  test('a broken document is Stalled naming the field while the others stay Ready', async () => {
    await cell.writeService('delta', { greeting: 42 });
    const stalled = await waitFor('delta Stalled', async () => {
      const s = await status.get('ServiceInstall/delta');
      return s?.phase === 'Stalled' ? s : undefined;
    });
    const cond = stalled.conditions.find((c) => c.type === 'Stalled')!;
    expect(cond.reason).toBe('InvalidSpec');
    expect(cond.message).toContain('/spec/config/greeting');
    expect(cond.message).toContain('must be a string');
    expect((await containers()).has(cell.containerName('delta'))).toBe(false);
    await waitReady('alpha', 'beta', 'gamma');
  });

  test('deleting a document removes its containers and keeps its volume', async () => {
    await cell.removeServiceFile('beta');
    await waitFor('beta removed', async () => ((await containers()).has(cell.containerName('beta')) ? undefined : true));
    await waitFor('beta status gone', async () => ((await status.get('ServiceInstall/beta')) ? undefined : true));
    const volumes = (await docker.listVolumes({ filters: { label: [`ngo.pic.cell=${cell.name}`] } })).Volumes ?? [];
    expect(volumes.map((v) => v.Name)).toEqual(expect.arrayContaining([expect.stringMatching(/beta/)]));
  });

  test('a restart mid-install converges with no duplicate container and the same IPs', async () => {
    await cell.writeService('delta', { greeting: 'fixed' });
    // Stop as soon as the operator starts on delta, before it settles.
    await waitFor('delta reconciling', async () => {
      const s = await status.get('ServiceInstall/delta');
      return s && s.phase !== 'Stalled' ? s : undefined;
    });
    await operator!.stop();
    const ipsBefore = new Map([...(await containers()).entries()].map(([n, c]) => [n, c.ip]));
    operator = await startOperator();
    await waitReady('alpha', 'gamma', 'delta');
    const live = await containers();
    const names = [...live.keys()].sort();
    expect(names).toEqual([cell.containerName('alpha'), cell.containerName('delta'), cell.containerName('gamma')].sort());
    for (const [name, ip] of ipsBefore) if (ip && live.has(name)) expect(live.get(name)!.ip).toBe(ip);
  });
});
