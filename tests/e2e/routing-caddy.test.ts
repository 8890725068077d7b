/**
 * Routes end to end: a Caddy container (Debian's caddy binary in a test image) and two busybox
 * web servers named like store-service backends share a test network. The Caddy reconciler,
 * reaching Caddy's admin API through a published port, makes Caddy send each subdomain to its own
 * service, withdraws a removed service's route, and leaves everything alone when nothing changed.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { createCaddyReconciler } from '../../reconcilers/caddy/index.js';
import { liveRoutes } from '../../reconcilers/caddy/observe.js';
import { waitFor } from '../support/cell.js';
import { buildBusyboxImage, cleanupTestResources, docker, pickSubnet, TEST_LABELS } from '../support/docker.js';
import {
  buildCaddyImage,
  CADDY_IMAGE,
  caddyConfig,
  httpGet,
  startCountingProxy,
  testContext,
  testRouting,
  type CountingProxy,
} from '../support/caddy.js';

const SUITE_LABEL = 'ngo.pic.test-suite=routing-caddy';
const BUSYBOX_IMAGE = 'pictest/busybox:1';

const tag = `pt${randomBytes(4).toString('hex')}`;
const domain = `${tag}.pic.test`;
const network = `pictest-${tag}`;
const labels = { ...TEST_LABELS, 'ngo.pic.test-suite': 'routing-caddy', 'ngo.pic.test-run': tag };
const reconciler = createCaddyReconciler({ adminTimeoutMs: 10_000 });

let work: string;
let proxy: CountingProxy | undefined;
let adminHostPort: number;
let httpHostPort: number;

async function createNetwork(): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const subnet = await pickSubnet();
    try {
      await docker.createNetwork({ Name: network, Driver: 'bridge', Labels: labels, IPAM: { Config: [{ Subnet: subnet }] } });
      return;
    } catch (err) {
      // Another test took the subnet between the pick and the create: pick again.
      if (attempt < 5 && /overlap/i.test((err as Error).message)) continue;
      throw err;
    }
  }
}

async function runContainer(options: Dockerode.ContainerCreateOptions): Promise<Dockerode.ContainerInspectInfo> {
  const container = await docker.createContainer({ ...options, Labels: labels, HostConfig: { NetworkMode: network, ...options.HostConfig } });
  await container.start();
  return container.inspect();
}

async function runService(id: string, page: string): Promise<void> {
  await runContainer({
    name: `cell-${tag}-${id}`,
    Image: BUSYBOX_IMAGE,
    Cmd: ['sh', '-c', `echo '${page}' > /www/index.html && exec httpd -f -p 8080 -h /www`],
  });
}

function publishedPort(info: Dockerode.ContainerInspectInfo, port: string): number {
  const binding = info.NetworkSettings.Ports[port]?.[0];
  if (!binding) throw new Error(`port ${port} of ${info.Name} is not published`);
  return Number(binding.HostPort);
}

/** The Cell as the operator would pass it: plain HTTP, Caddy's admin API reached through the proxy. */
function routing(ids: string[]) {
  return testRouting(
    { domain, caddy: { adminAddress: proxy!.address, tls: { mode: 'off' } } },
    Object.fromEntries(ids.map((id) => [id, { subdomain: id, backend: `cell-${tag}-${id}:8080`, container_name: `cell-${tag}-${id}` }])),
  );
}

const ctx = () => testContext(path.join(work, 'state'), path.join(work, 'cell'));
const caddyfile = () => path.join(work, 'state', 'caddy', 'Caddyfile');

beforeAll(async () => {
  // Leftovers of a run that was killed before its afterAll.
  await cleanupTestResources(SUITE_LABEL, { olderThanMs: 30 * 60_000 });
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-routing-'));
  await buildBusyboxImage(BUSYBOX_IMAGE);
  await buildCaddyImage(CADDY_IMAGE);
  await createNetwork();
  await runService('one', `service one of ${tag}`);
  await runService('two', `service two of ${tag}`);
  const caddy = await runContainer({
    name: `pictest-${tag}-caddy`,
    Image: CADDY_IMAGE,
    ExposedPorts: { '2019/tcp': {}, '80/tcp': {} },
    HostConfig: {
      PortBindings: { '2019/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }], '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    },
  });
  adminHostPort = publishedPort(caddy, '2019/tcp');
  httpHostPort = publishedPort(caddy, '80/tcp');
  await waitFor('the Caddy container’s admin API', () => caddyConfig(`127.0.0.1:${adminHostPort}`).then(() => true), 60_000);
  proxy = await startCountingProxy(() => `127.0.0.1:${adminHostPort}`);
});

afterAll(async () => {
  await proxy?.close();
  await cleanupTestResources(`ngo.pic.test-run=${tag}`);
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('Caddy routes to store services', () => {
  test('each subdomain reaches its own service', async () => {
    const outcome = await reconciler.reconcile(routing(['one', 'two']), ctx());
    expect(outcome.changed).toBe(true);
    for (const id of ['one', 'two']) {
      // The busybox servers may still be starting: wait for the page, not for a time.
      const page = await waitFor(`${id}.${domain} through Caddy`, async () => {
        const res = await httpGet(httpHostPort, `${id}.${domain}`);
        return res.status === 200 && res.body.includes('service') ? res.body : undefined;
      }, 60_000);
      expect(page.trim()).toBe(`service ${id} of ${tag}`);
    }
    // Caddy's admin API stays on every address of its container, although pic reaches it on a published port.
    expect(liveRoutes(await caddyConfig(`127.0.0.1:${adminHostPort}`)).adminListen).toBe('0.0.0.0:2019');
    expect(await fs.readFile(caddyfile(), 'utf8')).toContain('\tadmin 0.0.0.0:2019\n');
  });

  test('a removed service is no longer reached', async () => {
    const outcome = await reconciler.reconcile(routing(['one']), ctx());
    expect(outcome).toMatchObject({ changed: true, summary: `1 route; Caddyfile written and loaded into Caddy at ${proxy!.address}` });
    const two = await httpGet(httpHostPort, `two.${domain}`);
    expect(two.body).not.toContain('service two');
    expect((await httpGet(httpHostPort, `one.${domain}`)).body.trim()).toBe(`service one of ${tag}`);
    expect([...liveRoutes(await caddyConfig(`127.0.0.1:${adminHostPort}`)).hosts.keys()]).toEqual([`one.${domain}`]);
  });

  test('nothing changed: no write, no reload', async () => {
    const before = await fs.stat(caddyfile());
    proxy!.requests.length = 0;
    const outcome = await reconciler.reconcile(routing(['one']), ctx());
    expect(outcome).toMatchObject({ changed: false, summary: '1 route; Caddyfile unchanged' });
    expect(proxy!.requests).toEqual(['GET /config/']);
    const after = await fs.stat(caddyfile());
    expect({ ino: after.ino, mtimeMs: after.mtimeMs }).toEqual({ ino: before.ino, mtimeMs: before.mtimeMs });
  });
});
