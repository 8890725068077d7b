/**
 * The containers reconciler against the real dockerd: observe → plan → apply, round after round,
 * on a network, containers and volumes of its own (a fake cell named `pictest-<random>`).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { Manifest } from '../../crds/types.js';
import { applyContainerActions, type ApplyEvent } from '../../reconcilers/containers/apply.js';
import { checkBindSources } from '../../reconcilers/containers/bind-sources.js';
import type { ServiceInputs } from '../../reconcilers/containers/desired.js';
import { reconcileServiceContainers, type ApplyHooks } from '../../reconcilers/containers/index.js';
import { ensureNetwork } from '../../reconcilers/containers/network.js';
import { listOwnedContainers } from '../../reconcilers/containers/observe.js';
import { planContainers } from '../../reconcilers/containers/plan.js';
import { isContainerChange, type ContainerAction, type DesiredContainer, type ObservedContainer, type ServicePlan } from '../../reconcilers/containers/types.js';
import { isTerminal, TerminalError } from '../../reconcilers/errors.js';
import { buildBusyboxImage, cleanupTestResources, docker, pickSubnet, TEST_LABELS, uniqueName } from '../support/docker.js';
import { readComposeTemplate } from '../../state/compose-template.js';

const IMAGE_TAG = 'pictest/busybox:1';
const run = uniqueName('pictest');
const cell = run;
const owner = `ServiceInstall/${run}`;
/** On everything this file creates: the fake cell, the test marker, and this run. */
const labels = { 'ngo.pic.cell': cell, ...TEST_LABELS, 'ngo.pic.test-run': run };
const events: ApplyEvent[] = [];

let imageId = '';
let subnet = '';
let network = { name: run, subnet: '' };

function ipOf(host: number): string {
  return subnet.replace(/\.0\/24$/, `.${host}`);
}

interface Shape {
  cmd: string[];
  env?: string[];
  host: number;
  dependsOn?: string[];
  volume?: string;
  image?: string;
  healthcheck?: boolean;
}

function desiredContainer(service: string, shape: Shape): DesiredContainer {
  const name = `${run}-${service}`;
  const create: Dockerode.ContainerCreateOptions = {
    Image: shape.image ?? IMAGE_TAG,
    Cmd: shape.cmd,
    Env: shape.env ?? [],
    // PID 1 ignores SIGTERM: keep the stop timeout short.
    StopTimeout: 1,
    HostConfig: {
      NetworkMode: network.name,
      Binds: shape.volume ? [`${shape.volume}:/data`] : [],
      RestartPolicy: { Name: 'unless-stopped' },
    },
    NetworkingConfig: {
      EndpointsConfig: { [network.name]: { IPAMConfig: { IPv4Address: ipOf(shape.host) }, Aliases: [service] } },
    },
  };
  if (shape.healthcheck) {
    create.Healthcheck = { Test: ['CMD', 'true'], Interval: 500_000_000, Timeout: 1_000_000_000, Retries: 3 };
  }
  const specHash = createHash('sha256').update(JSON.stringify(create)).digest('hex').slice(0, 16);
  create.Labels = { 'ngo.pic.owner': owner, 'ngo.pic.service': service, 'ngo.pic.spec-hash': specHash };
  return { name, create, dependsOn: (shape.dependsOn ?? []).map((d) => `${run}-${d}`), specHash };
}

const volumeName = `${run}-data`;

function servicePlan(overrides: { workerEnv?: string[]; without?: string[]; extra?: string[] } = {}): ServicePlan {
  const all: Record<string, Shape> = {
    db: { cmd: ['sh', '-c', 'echo ready > /data/state; exec sleep 3600'], host: 10, volume: volumeName, healthcheck: true },
    web: { cmd: ['httpd', '-f', '-p', '80', '-h', '/www'], host: 11, dependsOn: ['db'] },
    // Pinned to the image Id: there is no registry digest for a locally imported image.
    worker: {
      cmd: ['sleep', '3600'],
      host: 12,
      env: overrides.workerEnv ?? ['MODE=one'],
      image: `git.pic.ngo/roof/pictest-worker@${imageId}`,
    },
  };
  for (const extra of overrides.extra ?? []) all[extra] = { cmd: ['sleep', '3600'], host: 20 + Object.keys(all).length };
  const containers = Object.entries(all)
    .filter(([service]) => !(overrides.without ?? []).includes(service))
    .map(([service, shape]) => desiredContainer(service, shape));
  return {
    containers,
    volumes: [{ name: volumeName, labels: { 'ngo.pic.owner': owner } }],
  };
}

const observe = () => listOwnedContainers(docker, { cell, owner, network: network.name });
const plan = (desired: ServicePlan | null, observed: ObservedContainer[]) =>
  planContainers(desired, observed, { imagePresent: () => true, owner, labels });
const apply = (actions: ContainerAction[]) =>
  applyContainerActions(docker, actions.filter(isContainerChange), { network, labels, log: (e) => events.push(e) });

/** One full pass: observe, plan, apply; returns what was planned. */
async function reconcile(desired: ServicePlan | null): Promise<ContainerAction[]> {
  const actions = plan(desired, await observe());
  await apply(actions);
  return actions;
}

function types(actions: ContainerAction[]): string[] {
  return actions.map((a) => ('container' in a ? `${a.type} ${a.container.name.slice(run.length + 1)}` : 'name' in a && a.type === 'remove' ? `remove ${a.name.slice(run.length + 1)}` : a.type));
}

function byService(observed: ObservedContainer[]): Record<string, ObservedContainer> {
  return Object.fromEntries(observed.map((o) => [o.name.slice(run.length + 1), o]));
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  // Leftovers of crashed runs; recent ones may belong to a suite running right now.
  await cleanupTestResources('ngo.pic.test-run', { olderThanMs: 30 * 60_000 });
  imageId = await buildBusyboxImage(IMAGE_TAG);
  for (let attempt = 0; ; attempt++) {
    subnet = await pickSubnet();
    network = { name: run, subnet };
    try {
      await ensureNetwork(docker, { ...network, labels });
      break;
    } catch (err) {
      // Another suite took the same subnet between the pick and the creation.
      if (attempt >= 5 || !/overlap/i.test((err as Error).message)) throw err;
    }
  }
});

/** The pipeline's own fake cell: what it creates carries this cell label (and no test-run label). */
const pipelineCell = `${run}-p`;
let dataRoot = '';

afterAll(async () => {
  await cleanupTestResources(`ngo.pic.cell=${pipelineCell}`);
  await cleanupTestResources(`ngo.pic.test-run=${run}`);
  if (dataRoot) await fs.rm(dataRoot, { recursive: true, force: true });
});

describe('containers adapter against dockerd', () => {
  test('from nothing: volume, then containers in dependency order, all running', async () => {
    const actions = await reconcile(servicePlan());
    expect(types(actions)).toEqual(['ensure-network', 'create-volume', 'create db', 'create web', 'create worker']);

    const observed = byService(await observe());
    expect(Object.keys(observed).sort()).toEqual(['db', 'web', 'worker']);
    for (const [service, host] of [['db', 10], ['web', 11], ['worker', 12]] as const) {
      const o = observed[service]!;
      expect(o.state).toBe('running');
      expect(o.owner).toBe(owner);
      expect(o.cell).toBe(cell);
      expect(o.service).toBe(service);
      expect(o.ip).toBe(ipOf(host));
      expect(o.networks).toEqual([network.name]);
      expect(o.labels['ngo.pic.test-run']).toBe(run);
    }
    // The pinned reference was created from the image Id.
    expect(observed.worker!.imageId).toBe(imageId);

    const volume = await docker.getVolume(volumeName).inspect();
    expect(volume.Labels).toMatchObject({ 'ngo.pic.owner': owner, 'ngo.pic.cell': cell });
    expect(events.map((e) => e.reason)).toEqual(expect.arrayContaining(['VolumeCreated', 'Created']));
  });

  test('in sync: the plan is empty', async () => {
    expect(plan(servicePlan(), await observe())).toEqual([]);
  });

  test('the health of a container with a healthcheck is observed', async () => {
    let health: string | undefined;
    for (let i = 0; i < 60 && health !== 'healthy'; i++) {
      health = byService(await observe()).db?.health;
      if (health !== 'healthy') await new Promise((r) => setTimeout(r, 500));
    }
    expect(health).toBe('healthy');
    expect(byService(await observe()).web?.health).toBeUndefined();
  });

  test('a changed spec recreates only that container', async () => {
    const before = byService(await observe());
    const actions = await reconcile(servicePlan({ workerEnv: ['MODE=two'] }));
    expect(types(actions)).toEqual(['ensure-network', 'create-volume', 'recreate worker']);

    const after = byService(await observe());
    expect(after.db!.id).toBe(before.db!.id);
    expect(after.web!.id).toBe(before.web!.id);
    expect(after.worker!.id).not.toBe(before.worker!.id);
    expect(after.worker!.state).toBe('running');
    const env = (await docker.getContainer(after.worker!.id).inspect()).Config.Env;
    expect(env).toContain('MODE=two');
    expect(plan(servicePlan({ workerEnv: ['MODE=two'] }), await observe())).toEqual([]);
  });

  test('a container stopped by hand is started again, same id', async () => {
    const before = byService(await observe());
    await docker.getContainer(before.web!.id).stop({ t: 1 });

    const actions = await reconcile(servicePlan({ workerEnv: ['MODE=two'] }));
    expect(types(actions)).toEqual(['start web']);
    const after = byService(await observe());
    expect(after.web!.id).toBe(before.web!.id);
    expect(after.web!.state).toBe('running');
  });

  test('a paused container is brought back by the start action', async () => {
    const before = byService(await observe());
    await docker.getContainer(before.worker!.id).pause();
    expect(byService(await observe()).worker!.state).toBe('paused');

    const actions = await reconcile(servicePlan({ workerEnv: ['MODE=two'] }));
    expect(types(actions)).toEqual(['start worker']);
    expect(byService(await observe()).worker).toMatchObject({ id: before.worker!.id, state: 'running' });
  });

  test('a container removed by hand is created again; beforeStart runs between its create and its start', async () => {
    const before = byService(await observe());
    await docker.getContainer(before.web!.id).remove({ force: true });

    const actions = plan(servicePlan({ workerEnv: ['MODE=two'] }), await observe());
    expect(types(actions)).toEqual(['ensure-network', 'create-volume', 'create web']);
    // Every request Docker gets, and the hook, in the order they happen.
    const seen: string[] = [];
    const modem = docker.modem as unknown as { dial: (options: { method?: string; path?: string }, callback: unknown) => unknown };
    const dial = modem.dial;
    modem.dial = function (this: unknown, options, callback) {
      seen.push(`${options.method} ${(options.path ?? '').replace(/\/containers\/[0-9a-f]{64}\//, '/containers/{id}/').replace(/\?.*$/, '')}`);
      return dial.call(this, options, callback);
    };
    try {
      await applyContainerActions(docker, actions.filter(isContainerChange), { network, labels, log: (e) => events.push(e), beforeStart: () => void seen.push('beforeStart') });
    } finally {
      modem.dial = dial;
    }
    const after = byService(await observe());
    expect(after.web!.state).toBe('running');
    expect(after.db!.id).toBe(before.db!.id);
    const last = seen.slice(seen.indexOf('POST /containers/create'));
    expect(last).toEqual(['POST /containers/create', 'beforeStart', 'POST /containers/{id}/start']);
  });

  test('a leftover of the same service under another name is removed', async () => {
    const desired = servicePlan({ workerEnv: ['MODE=two'] });
    const web = desired.containers.find((c) => c.name === `${run}-web`)!;
    const leftover = await docker.createContainer({
      name: `${run}-web-old`,
      Image: IMAGE_TAG,
      Cmd: ['sleep', '3600'],
      Labels: { ...labels, 'ngo.pic.owner': owner, 'ngo.pic.service': 'web', 'ngo.pic.spec-hash': 'stale' },
    });
    expect(web).toBeDefined();

    const actions = await reconcile(desired);
    expect(types(actions)).toEqual(['remove web-old']);
    await expect(docker.getContainer(leftover.id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(plan(desired, await observe())).toEqual([]);
  });

  test('a leftover of ours holding the name at create time is replaced (409 handled)', async () => {
    const desired = servicePlan({ workerEnv: ['MODE=two'], extra: ['late'] });
    const stale = plan(desired, await observe());
    expect(types(stale)).toEqual(['ensure-network', 'create-volume', 'create late']);
    // Another pass (or a crashed one) created the container after this pass observed.
    const racer = await docker.createContainer({
      name: `${run}-late`,
      Image: IMAGE_TAG,
      Cmd: ['sleep', '3600'],
      Labels: { ...labels, 'ngo.pic.owner': owner, 'ngo.pic.service': 'late', 'ngo.pic.spec-hash': 'other' },
    });

    await apply(stale);
    const late = byService(await observe()).late!;
    expect(late.state).toBe('running');
    expect(late.id).not.toBe(racer.id);
    expect(events.map((e) => e.reason)).toContain('LeftoverRemoved');
  });

  test('removed from the desired state: its container goes, its volume stays', async () => {
    const before = byService(await observe());
    const actions = await reconcile(servicePlan({ workerEnv: ['MODE=two'], without: ['db'], extra: ['late'] }));
    expect(types(actions)).toEqual(['remove db']);

    const after = byService(await observe());
    expect(after.db).toBeUndefined();
    expect(after.web!.id).toBe(before.web!.id);
    const volume = await docker.getVolume(volumeName).inspect();
    expect(volume.Name).toBe(volumeName);
  });

  test('a container we do not own holding a desired name is a conflict and is left untouched', async () => {
    // Same cell label, no owner label: a listing of the whole cell (as a resync takes) sees it,
    // and the plan reports it.
    const foreign = await docker.createContainer({
      name: `${run}-db`,
      Image: IMAGE_TAG,
      Cmd: ['sleep', '3600'],
      Labels: { ...labels },
    });
    try {
      const wholeCell = await listOwnedContainers(docker, { cell, network: network.name });
      expect(wholeCell.find((o) => o.id === foreign.id)).toMatchObject({ owner: '', cell });
      const actions = plan(servicePlan({ workerEnv: ['MODE=two'], extra: ['late'] }), wholeCell);
      expect(types(actions)).toEqual(['conflict']);
      expect(actions[0]).toMatchObject({ type: 'conflict', name: `${run}-db` });
      expect((actions[0] as { message: string }).message).toContain(`is held by a container of cell ${cell} with no pic owner (id ${foreign.id.slice(0, 12)})`);

      const err = await rejection(apply(actions));
      expect(isTerminal(err)).toBe(true);
      expect((err as TerminalError).reason).toBe('ContainerNameConflict');
      const info = await docker.getContainer(foreign.id).inspect();
      expect(info.Name).toBe(`/${run}-db`);
      expect(info.State.Status).toBe('created');
    } finally {
      await docker.getContainer(foreign.id).remove({ force: true });
    }
  });

  test('a container without any pic label holding a desired name fails the create clearly, untouched', async () => {
    // Not in the cell's listing at all: only the create's 409 reveals it.
    const foreign = await docker.createContainer({
      name: `${run}-db`,
      Image: IMAGE_TAG,
      Cmd: ['sleep', '3600'],
      Labels: { ...TEST_LABELS, 'ngo.pic.test-run': run },
    });
    try {
      const actions = plan(servicePlan({ workerEnv: ['MODE=two'], extra: ['late'] }), await observe());
      expect(types(actions)).toEqual(['ensure-network', 'create-volume', 'create db']);

      const err = await rejection(apply(actions));
      expect(isTerminal(err)).toBe(true);
      expect((err as TerminalError).reason).toBe('ContainerNameConflict');
      expect(err.message).toContain(`${run}-db`);
      expect(err.message).toContain(`is held by a container with no pic labels (id ${foreign.id.slice(0, 12)})`);
      const info = await docker.getContainer(foreign.id).inspect();
      expect(info.State.Status).toBe('created');
      expect(info.Config.Labels?.['ngo.pic.owner']).toBeUndefined();
    } finally {
      await docker.getContainer(foreign.id).remove({ force: true });
    }
  });

  test('the kept volume is reused when the container comes back', async () => {
    const actions = await reconcile(servicePlan({ workerEnv: ['MODE=two'], extra: ['late'] }));
    expect(types(actions)).toEqual(['ensure-network', 'create-volume', 'create db']);
    const db = byService(await observe()).db!;
    const exec = await docker.getContainer(db.id).exec({ Cmd: ['cat', '/data/state'], AttachStdout: true });
    const stream = await exec.start({});
    const output = await new Promise<string>((resolve) => {
      let text = '';
      stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
      stream.on('end', () => resolve(text));
    });
    expect(output).toContain('ready');
  });

  test('a volume of the same name owned by someone else is an error', async () => {
    const name = `${run}-contested`;
    await docker.createVolume({ Name: name, Labels: { ...labels, 'ngo.pic.owner': 'ServiceInstall/other' } });
    const err = await rejection(apply([{ type: 'create-volume', volume: { name, labels: { 'ngo.pic.owner': owner } } }]));
    expect(isTerminal(err)).toBe(true);
    expect((err as TerminalError).reason).toBe('VolumeConflict');
    expect(err.message).toContain('ServiceInstall/other');
    const volume = await docker.getVolume(name).inspect();
    expect(volume.Labels?.['ngo.pic.owner']).toBe('ServiceInstall/other');
  });

  test('errors carry the container name and Docker message', async () => {
    const broken = desiredContainer('broken', { cmd: ['sleep', '1'], host: 40, image: 'pictest/does-not-exist:never' });
    const err = await rejection(apply([{ type: 'create', container: broken }]));
    expect(err.message).toContain(`${run}-broken`);
    expect(err.message).toMatch(/no such image/i);
  });

  test('the service removed: every container goes, volumes stay', async () => {
    const actions = await reconcile(null);
    expect(types(actions).sort()).toEqual(['remove db', 'remove late', 'remove web', 'remove worker']);
    expect(await observe()).toEqual([]);
    expect((await docker.getVolume(volumeName).inspect()).Name).toBe(volumeName);
    expect(plan(null, [])).toEqual([]);
  });

  test('ensureNetwork accepts the same subnet and refuses another one', async () => {
    await expect(ensureNetwork(docker, { ...network, labels })).resolves.toEqual({ created: false });
    const other = subnet.replace(/^10\.213\./, '10.214.');
    const err = await rejection(ensureNetwork(docker, { name: network.name, subnet: other, labels }));
    expect(isTerminal(err)).toBe(true);
    expect((err as TerminalError).reason).toBe('NetworkConflict');
    expect(err.message).toContain(subnet);
    expect(err.message).toContain(other);
    expect(err.message).toContain(`docker network rm ${network.name}`);
  });
});

describe('the containers pipeline: bind sources are walked without following symlinks', () => {
  const containerName = `cell-${run}`;
  const owner = `ServiceInstall/${run}`;
  let dataDir = '';
  let outside = '';

  const manifest = (): Manifest => ({
    schema_version: 3,
    kind: 'store',
    id: run,
    name: 'Bind test',
    description: 'A container with a bind mount.',
    version: '1.0.0',
    author: 'tests',
    capabilities: { has_subdomain: false, has_accounts: false, has_admin_config: false, has_storage: false, has_egress: false, has_api_hooks: false },
    image: IMAGE_TAG,
    container_name: containerName,
  });
  const known = manifest();

  const inputs = (): ServiceInputs => ({
    manifest: known,
    template: readComposeTemplate([
      'services:',
      '  app:',
      `    image: ${IMAGE_TAG}`,
      `    container_name: ${containerName}`,
      '    command: ["sleep", "3600"]',
      '    stop_grace_period: 1s',
      '    volumes:',
      '      - ${PIC_DATA_DIR}/${PIC_SERVICE_ID}/cfg:/cfg',
      '    networks: [cell-network]',
      'networks:',
      '  cell-network: {external: true}',
      '',
    ].join('\n'), 'services/bind/compose-template.yml'),
    templateFile: 'services/bind/compose-template.yml',
    manifestFile: 'services/bind/manifest.json',
    config: {},
    secrets: {},
    serviceIp: ipOf(40),
    cell: { name: pipelineCell, corePorts: [], domain: 'bind.test', dataDir, networkName: network.name, allowedImagePrefix: 'pictest/', imageVerification: 'off' },
  });
  const hooks = (): ApplyHooks => ({ network, event: (e) => events.push(e), log: () => undefined });
  const ours = async () => docker.listContainers({ all: true, filters: { label: [`ngo.pic.cell=${pipelineCell}`] } });

  beforeAll(async () => {
    dataRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-binds-'));
    dataDir = path.join(dataRoot, 'data');
    outside = path.join(dataRoot, 'outside');
    await fs.mkdir(path.join(dataDir, run), { recursive: true });
    await fs.mkdir(path.join(dataDir, 'app'), { recursive: true });
    await fs.mkdir(outside);
    await fs.writeFile(path.join(outside, 'secret'), 'not for the container');
  });

  test('a symlink a container planted in its data directory is refused, path named, nothing created', async () => {
    const planted = path.join(dataDir, run, 'cfg');
    await fs.symlink(outside, planted);
    const result = await reconcileServiceContainers(docker, { owner, cellName: pipelineCell, inputs: inputs() }, hooks());
    expect(result.outcome).toBe('refused');
    if (result.outcome !== 'refused') return;
    expect(result.reason).toBe('BindSourceRefused');
    expect(result.message).toContain(`"${planted}" is a symbolic link`);
    expect(await ours()).toEqual([]);
    // pic plan says the same, without touching anything either.
    const preview = await reconcileServiceContainers(docker, { owner, cellName: pipelineCell, inputs: inputs() }, 'dry-run');
    expect(preview.outcome).toBe('refused');
    expect((await fs.lstat(planted)).isSymbolicLink()).toBe(true);
    await fs.unlink(planted);
  });

  test('a symlink higher up the path is refused, and nothing is made through it', async () => {
    const app = path.join(dataDir, run);
    await fs.rm(app, { recursive: true });
    await fs.symlink(outside, app);
    const result = await reconcileServiceContainers(docker, { owner, cellName: pipelineCell, inputs: inputs() }, hooks());
    expect(result.outcome === 'refused' && result.reason).toBe('BindSourceRefused');
    expect(result.outcome === 'refused' && result.message).toContain(`"${app}" is a symbolic link`);
    expect(await fs.readdir(outside)).toEqual(['secret']);
    expect(await ours()).toEqual([]);
    await fs.unlink(app);
  });

  test('a dry run says what would be created, and creates nothing, not even the bind source', async () => {
    const preview = await reconcileServiceContainers(docker, { owner, cellName: pipelineCell, inputs: inputs() }, 'dry-run');
    expect(preview.outcome === 'converged' && preview.actions.map((a) => a.type)).toEqual(['ensure-network', 'create']);
    expect(preview.outcome === 'converged' && preview.changed).toBe(false);
    expect(await ours()).toEqual([]);
    await expect(fs.lstat(path.join(dataDir, run))).rejects.toThrow(/ENOENT/);
  });

  test('once the link is gone: the bind source is made as real directories and the container runs; the next pass does nothing', async () => {
    const result = await reconcileServiceContainers(docker, { owner, cellName: pipelineCell, inputs: inputs() }, hooks());
    expect(result.outcome).toBe('converged');
    const cfg = await fs.lstat(path.join(dataDir, run, 'cfg'));
    expect(cfg.isDirectory()).toBe(true);
    expect(cfg.mode & 0o777).toBe(0o750);
    const [info] = await ours();
    expect(info?.State).toBe('running');
    expect(info?.Mounts.find((m) => m.Destination === '/cfg')?.Source).toBe(path.join(dataDir, run, 'cfg'));
    const again = await reconcileServiceContainers(docker, { owner, cellName: pipelineCell, inputs: inputs() }, hooks());
    expect(again.outcome === 'converged' && again.changed).toBe(false);
  });

  test('checkBindSources: the data directory itself may be a link (the admin\'s), a file may be bound, a link below it may not', async () => {
    const linkedData = path.join(dataRoot, 'data-link');
    await fs.symlink(dataDir, linkedData);
    await fs.writeFile(path.join(dataDir, 'app', 'settings.conf'), 'x=1\n');
    await fs.symlink('/etc/passwd', path.join(dataDir, 'app', 'passwd'));
    const refusals = await checkBindSources(linkedData, [
      `${linkedData}/app/cfg`,
      `${linkedData}/app/settings.conf`,
      `${linkedData}/app/new/deeper`,
      `${linkedData}/app/passwd`,
    ], 'prepare');
    expect(refusals.map((r) => r.path)).toEqual([`${linkedData}/app/passwd`]);
    expect((await fs.lstat(path.join(dataDir, 'app', 'new', 'deeper'))).isDirectory()).toBe(true);
  });
});
