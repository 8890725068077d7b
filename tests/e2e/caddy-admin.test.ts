/**
 * Caddy's admin API belongs to pic alone. The real operator runs a cell whose core stack it runs
 * itself (Caddy, BIND, WireGuard from examples/images/build-core.sh) with one routed service; a
 * probe container on the cell's network (started here), the service's own container and a peer
 * through the tunnel each try Caddy's admin API and get nowhere, while pic still loads the routes
 * into it. A Caddy restarted from its own boot config serves the last routes with no operator
 * running, and a Caddy removed by hand comes back with them.
 *
 * Steps run in order, each on the state the previous one left.
 */
import { jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createLogger } from '../../controllers/logging.js';
import { main } from '../../controllers/cli/main.js';
import { Operator } from '../../controllers/operator.js';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { testCellDocument, waitFor, writeDocumentFile } from '../support/cell.js';
import { docker, pickSubnet, TEST_LABEL, TEST_LABELS, uniqueName } from '../support/docker.js';
import { buildCoreImages, buildPeerImage, configurePeer, coreStackLines, removeContainer, startPeerContainer, type PeerContainer } from '../support/peer.js';
import { createRoutingCell, removeRoutingCell, removeStaleRoutingCells, SUITE_LABEL, type RoutedService, type RoutingCell } from '../support/routing-cell.js';

const SUITE = 'caddy-admin';
const ALPHA: RoutedService = { id: 'alpha' };
/** The port Caddy's admin API listens on by default and in the core image's own boot file. */
const ADMIN_PORT = 2019;

let cell: RoutingCell | undefined;
let operator: Operator | undefined;
let status: StatusStore;
let peerImage: string | undefined;
let peerNetwork: { name: string; gateway: string } | undefined;
let peer: PeerContainer | undefined;
let probe: string | undefined;
const wgPort = 40000 + (randomBytes(2).readUInt16BE(0) % 20000);
const vpnSubnet = `100.65.${randomBytes(1)[0]! % 250}.0/24`;

const c = () => {
  if (!cell) throw new Error('the test cell did not start (see beforeAll)');
  return cell;
};
const core = (name: string) => `${c().name}-${name}`;
const address = (last: number) => `${c().base}.${last}`;
const caddyAddress = () => address(10);

async function phaseOf(key: string, phase: DocumentStatus['phase']): Promise<DocumentStatus | undefined> {
  const s = await status.get(key);
  return s?.phase === phase ? s : undefined;
}
const waitPhase = (key: string) => waitFor(`${key} Ready`, () => phaseOf(key, 'Ready'), 180_000);

async function pic(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const state = args[0] === 'ca' ? [] : ['--state-dir', c().stateDir];
  const code = await main([...args, '--cell', c().cellDir, ...state], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function startOperator(): Promise<Operator> {
  const op = new Operator({
    cellDir: c().cellDir,
    stateDir: new StateDir(c().stateDir),
    docker,
    logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }),
    resyncIntervalMs: 60 * 60_000,
    watch: true,
  });
  return op.stateDirReady().then(() => op.start()).then(() => op);
}

/**
 * An admin API request from inside `container`, written by hand to busybox nc (the busybox wget
 * of the test image crashes), with a Host header Caddy's admin API accepts on a network address
 * (anyone can send it): the answer when it is a 2xx, undefined when nothing answered so.
 */
async function adminAttempt(container: string, port: number, route: '/config/' | '/load', target = caddyAddress()): Promise<string | undefined> {
  const body = '{"apps":{}}';
  const head = route === '/load' ? [`POST /load HTTP/1.1`, 'Content-Type: application/json', `Content-Length: ${body.length}`] : ['GET /config/ HTTP/1.1'];
  const request = `${[...head, `Host: localhost:${port}`, 'Connection: close'].join('\r\n')}\r\n\r\n${route === '/load' ? body : ''}`;
  const r = await execInContainer(docker, container, ['nc', '-w', '3', target, String(port)], { stdin: request, timeoutMs: 30_000 });
  return /^HTTP\/1\.[01] 2\d\d /.test(r.stdout) ? r.stdout : undefined;
}

/** The page Caddy serves for alpha over HTTPS, asked at Caddy's own address from the probe container. */
async function pageFromProbe(): Promise<string | undefined> {
  const host = c().host('alpha');
  const r = await execInContainer(docker, probe!, ['curl', '-sS', '-k', '--max-time', '3', '--resolve', `${host}:443:${caddyAddress()}`, `https://${host}/`], { timeoutMs: 30_000 });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

/** TCP ports some process in `container` listens on (from /proc/net/tcp, state 0A = LISTEN). */
async function listeningTcpPorts(container: string): Promise<number[]> {
  const ports = new Set<number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const r = await execInContainer(docker, container, ['cat', file], { timeoutMs: 30_000 });
    if (r.exitCode !== 0) continue;
    for (const line of r.stdout.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === '0A') ports.add(parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

async function containerId(name: string): Promise<string | undefined> {
  const list = await docker.listContainers({ all: true, filters: { name: [`^/${name}$`] } });
  return list[0]?.Id;
}

beforeAll(async () => {
  await removeStaleRoutingCells(SUITE);
  for (const n of await docker.listNetworks({ filters: { label: [`${SUITE_LABEL}=${SUITE}`, `${TEST_LABEL}=1`] } })) {
    if (n.Name.startsWith('pictest-') && n.Name.endsWith('-peers') && Date.parse(n.Created) < Date.now() - 30 * 60_000) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
  await buildCoreImages();
  peerImage = await buildPeerImage();
  cell = await createRoutingCell([ALPHA], SUITE);

  const subnet = await pickSubnet();
  const base = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  peerNetwork = { name: `${cell.name}-peers`, gateway: `${base}.1` };
  await docker.createNetwork({ Name: peerNetwork.name, Driver: 'bridge', CheckDuplicate: true, Labels: cell.labels, IPAM: { Driver: 'default', Config: [{ Subnet: subnet, Gateway: peerNetwork.gateway }] } });

  // A container of nobody's on the cell network (curl, busybox): what any other container there could do.
  probe = uniqueName('pictest-probe');
  const created = await docker.createContainer({
    name: probe,
    Image: peerImage,
    Cmd: ['sleep', '2147483647'],
    Labels: { ...cell.labels, ...TEST_LABELS },
    StopTimeout: 1,
    HostConfig: { NetworkMode: cell.network },
  });
  await created.start();

  await writeDocumentFile(
    path.join(cell.cellDir, 'cell.yaml'),
    testCellDocument({
      name: cell.name,
      domain: cell.domain,
      subnet: cell.subnet,
      poolEnd: 120,
      allowedImagePrefix: 'pictest/',
      extra: coreStackLines({
        caddy: { container: core('caddy'), address: caddyAddress() },
        dns: { container: core('dns'), address: address(11) },
        wireguard: { container: core('wg'), address: address(12), subnet: vpnSubnet, hostIp: peerNetwork.gateway, port: wgPort },
      }),
    }),
  );
  await cell.writeService(ALPHA.id);
  await writeDocumentFile(path.join(cell.cellDir, 'peers', 'alice.yaml'), 'apiVersion: pic.ngo/v1alpha1\nkind: PeerAccount\nmetadata: {name: alice}\nspec: {services: []}\n');

  status = new StatusStore(path.join(cell.stateDir, 'status'));
  operator = await startOperator();
}, 600_000);

afterAll(async () => {
  await operator?.stop();
  if (peer) await removeContainer(peer.id);
  if (probe) await removeContainer(probe);
  if (peerNetwork) await docker.getNetwork(peerNetwork.name).remove().catch(() => undefined);
  if (cell) await removeRoutingCell(cell);
  if (peerImage) await docker.getImage(peerImage).remove({ force: true }).catch(() => undefined);
}, 300_000);

jest.setTimeout(300_000);

describe("Caddy's admin API, when pic runs Caddy, is pic's alone", () => {
  test('pic loads the routes into its Caddy', async () => {
    for (const key of ['Core/caddy', 'Core/dns', 'Core/wireguard', 'ServiceInstall/alpha', 'Resource/caddy', 'Resource/wireguard']) await waitPhase(key);
    expect(await waitFor('alpha through Caddy', pageFromProbe, 120_000)).toBe(c().page('alpha'));
    expect((await status.get('Resource/caddy'))?.conditions.find((x) => x.type === 'Ready')?.message).toMatch(/1 route/);
  });

  test('a container on the cell network cannot reach it, nor load a config through it', async () => {
    expect(await adminAttempt(probe!, ADMIN_PORT, '/config/')).toBeUndefined();
    expect(await adminAttempt(probe!, ADMIN_PORT, '/load')).toBeUndefined();
    // By its container name as well (Docker's DNS on the cell network).
    expect(await adminAttempt(probe!, ADMIN_PORT, '/config/', core('caddy'))).toBeUndefined();
    // No TCP port Caddy listens on answers as its admin API (whose config always names `admin`).
    const ports = await listeningTcpPorts(core('caddy'));
    expect(ports).toEqual(expect.arrayContaining([80, 443]));
    for (const port of ports) expect((await adminAttempt(probe!, port, '/config/')) ?? '').not.toMatch(/"admin"/);
    // The routes are untouched.
    expect(await pageFromProbe()).toBe(c().page('alpha'));
  });

  test('a service container cannot reach it', async () => {
    const service = c().containerName('alpha');
    expect(await adminAttempt(service, ADMIN_PORT, '/config/')).toBeUndefined();
    expect(await adminAttempt(service, ADMIN_PORT, '/load')).toBeUndefined();
  });

  test('a peer cannot reach it through the tunnel, and still gets its page over HTTPS', async () => {
    const file = await pic(['credentials', 'alice', '-o', 'wireguard']);
    expect(file.code).toBe(0);
    const ca = await waitFor('pic ca', async () => {
      const r = await pic(['ca']);
      return r.code === 0 ? r.out : undefined;
    }, 120_000);
    expect(ca).toMatch(/^-----BEGIN CERTIFICATE-----/);
    peer = await startPeerContainer(peerImage!, peerNetwork!.name, c().labels);
    await configurePeer(peer, file.out, ca);
    const page = await waitFor('alpha over HTTPS from the peer', async () => {
      const r = await peer!.exec(['curl', '-sS', '--max-time', '3', '--cacert', '/root/cell-ca.pem', `https://${c().host('alpha')}/`]);
      return r.exitCode === 0 ? r.stdout.trim() : undefined;
    }, 120_000);
    expect(page).toBe(c().page('alpha'));
    const admin = await peer.exec(['curl', '-sS', '-f', '--max-time', '3', '-H', `Host: localhost:${ADMIN_PORT}`, `http://${caddyAddress()}:${ADMIN_PORT}/config/`]);
    expect(admin.exitCode).not.toBe(0);
  });

  test('the admin socket sits in an owner-only folder of the state directory that only Caddy mounts', async () => {
    const folder = path.join(c().stateDir, 'caddy-admin');
    const stat = await fs.lstat(folder);
    expect(stat.isDirectory()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o700);
    expect((await fs.lstat(path.join(folder, 'admin.sock'))).isSocket()).toBe(true);
    const mounting: string[] = [];
    for (const info of await docker.listContainers({ all: true, filters: { label: [`ngo.pic.cell=${c().name}`] } })) {
      if ((info.Mounts ?? []).some((m) => m.Source === folder)) mounting.push(info.Names[0]!.replace(/^\//, ''));
    }
    expect(mounting).toEqual([core('caddy')]);
  });

  test('Caddy removed by hand comes back with its routes', async () => {
    const old = await containerId(core('caddy'));
    await docker.getContainer(core('caddy')).remove({ force: true });
    await waitFor(`${core('caddy')} back`, async () => {
      const id = await containerId(core('caddy'));
      return id && id !== old && (await docker.getContainer(id).inspect()).State.Running ? id : undefined;
    }, 120_000);
    expect(await waitFor('alpha through the new Caddy', pageFromProbe, 120_000)).toBe(c().page('alpha'));
    expect(await adminAttempt(probe!, ADMIN_PORT, '/config/')).toBeUndefined();
  });

  test('Caddy restarted from its own boot config serves the last routes with no operator running', async () => {
    await operator!.stop();
    operator = undefined;
    await docker.getContainer(core('caddy')).restart({ t: 5 });
    expect(await waitFor('alpha after the restart', pageFromProbe, 60_000)).toBe(c().page('alpha'));
    expect(await adminAttempt(probe!, ADMIN_PORT, '/config/')).toBeUndefined();
    // pic, started again, finds Caddy on its socket serving what the Caddyfile says: nothing to load.
    operator = await startOperator();
    await operator.resyncAndSettle(120_000);
    expect((await status.get('Resource/caddy'))?.conditions.find((x) => x.type === 'Ready')?.message).toMatch(/unchanged/);
  });
});
