/**
 * A throwaway cell whose services are routed: a catalog of busybox web servers that each claim a
 * subdomain (and, when asked, `iptables_rules` and a choice of egress), a cell folder, a state
 * directory, the cell's network created beforehand, and a Caddy container attached to it with
 * its admin API and HTTP port published on loopback. For the end-to-end routing test and the
 * routing benchmark, which run the real operator on it.
 *
 * Names: the cell is `pictest-pt<hex>`, service containers `cell-pt<hex>-<id>`, the Caddy
 * container `pictest-pt<hex>-caddy`. Everything created carries TEST_LABELS, the cell label and
 * `ngo.pic.test-run=pt<hex>`, so `removeRoutingCell` removes exactly its own resources and
 * `removeStaleRoutingCells` finds the leftovers of a killed run.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { EgressType, IptablesRule } from '../../crds/types.js';
import { httpRequest } from '../../reconcilers/shared/http.js';
import { buildCaddyImage, CADDY_IMAGE, caddyConfig } from './caddy.js';
import { removeStaleTestCells, serviceInstallDocument, testCellDocument, waitFor, writeDocumentFile, type ReadyWindow } from './cell.js';
import { buildBusyboxImage, docker, pickSubnet, TEST_LABEL, TEST_LABELS } from './docker.js';

export const ROUTING_IMAGE = 'pictest/busybox:1';
export const CELL_LABEL = 'ngo.pic.cell';
export const RUN_LABEL = 'ngo.pic.test-run';
export const SUITE_LABEL = 'ngo.pic.test-suite';

/** PID 1 is a shell that exits on SIGTERM (httpd runs beside it), so removals take no stop timeout. */
function serviceCommand(page: string): string[] {
  return ['sh', '-c', `echo '${page}' > /www/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait`];
}

export interface RoutedService {
  id: string;
  /** Default: the id. */
  subdomain?: string;
  iptablesRules?: IptablesRule[];
  /** Egress types the manifest allows besides `default`; absent: has_egress false. */
  egress?: EgressType[];
}

export interface CellDocumentOptions {
  /** spec.caddy.adminAddress. */
  adminAddress: string;
  /** spec.wireguard.container; absent: no firewall or egress resources. */
  wireguardContainer?: string;
  /** spec.dns.address; default 192.0.2.53. */
  dnsAddress?: string;
}

export interface RoutingCell {
  name: string;
  tag: string;
  suite: string;
  root: string;
  cellDir: string;
  storeDir: string;
  stateDir: string;
  network: string;
  subnet: string;
  domain: string;
  /** First three octets of the subnet, e.g. `10.213.7`. */
  base: string;
  /** Labels for anything a test creates for this cell. */
  labels: Record<string, string>;
  services: RoutedService[];
  containerName(id: string): string;
  /** `<subdomain>.<domain>` of a service. */
  host(id: string): string;
  /** The page a service's web server answers with. */
  page(id: string): string;
  /** The command its container runs (also for a bare `docker run` of the same container). */
  command(id: string): string[];
  /** Where the operator keeps the Caddyfile and the zone (the Cell's defaults). */
  caddyfile: string;
  zoneFile: string;
  writeCellDocument(options: CellDocumentOptions): Promise<void>;
  /** Write a ServiceInstall as an editor would: beside, then renamed over. */
  writeService(id: string, options?: { connection?: string }): Promise<void>;
  removeServiceFile(id: string): Promise<void>;
  writeConnection(name: string, spec: { type: Exclude<EgressType, 'default'>; interface?: string; failOpen?: boolean }): Promise<void>;
}

function manifestOf(tag: string, s: RoutedService) {
  const manifest: Record<string, unknown> = {
    schema_version: 3,
    id: s.id,
    name: `Routed ${s.id}`,
    description: 'A routed test service',
    version: '1.0.0',
    author: 'pic tests',
    kind: 'store',
    capabilities: {
      has_subdomain: true,
      has_accounts: false,
      has_admin_config: false,
      has_storage: false,
      has_egress: s.egress !== undefined,
      has_api_hooks: false,
    },
    subdomain: s.subdomain ?? s.id,
    backend: `cell-${tag}-${s.id}:8080`,
    image: ROUTING_IMAGE,
    container_name: `cell-${tag}-${s.id}`,
    volumes: [{ name: `${s.id}-data`, mount: '/data' }],
    compose: null,
  };
  if (s.iptablesRules) manifest.iptables_rules = s.iptablesRules;
  if (s.egress) manifest.egress = { default: 'default', allowed: ['default', ...s.egress] };
  return manifest;
}

function templateOf(tag: string, s: RoutedService, command: string[]): string {
  return `services:
  ${s.id}:
    image: ${ROUTING_IMAGE}
    container_name: cell-${tag}-${s.id}
    command: ${JSON.stringify(command)}
    environment:
      DOMAIN: "\${PIC_DOMAIN}"
    volumes:
      - data:/data
    networks:
      cell-network:
        ipv4_address: "\${SERVICE_IP}"
    restart: unless-stopped
volumes:
  data: {}
networks:
  cell-network:
    external: true
`;
}

/**
 * The catalog, the folders and the network of a new routed cell (no Cell document yet: it names
 * Caddy's admin address, known once Caddy runs). The service pool is .20–.120 of a free /24;
 * Docker's own addresses (Caddy's) come from .128/25, as the operator would configure.
 */
export async function createRoutingCell(services: RoutedService[], suite: string, cellOptions: { window?: ReadyWindow; prefix?: string } = {}): Promise<RoutingCell> {
  const readyWindow = cellOptions.window;
  await buildBusyboxImage(ROUTING_IMAGE);
  const tag = `pt${randomBytes(4).toString('hex')}`;
  const name = `${cellOptions.prefix ?? 'pictest-'}${tag}`;
  const domain = `${tag}.pic.test`;
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-routing-cell-'));
  const cellDir = path.join(root, 'cell');
  const storeDir = path.join(root, 'store');
  const stateDir = path.join(root, 'state');
  const labels = { ...TEST_LABELS, [CELL_LABEL]: name, [RUN_LABEL]: tag, [SUITE_LABEL]: suite };
  const { subnet, base } = await createCellNetwork(name, labels);
  const page = (id: string) => `page of ${id} in ${tag}`;
  const command = (id: string) => serviceCommand(page(id));

  for (const d of ['services', 'peers', 'connections']) await fs.mkdir(path.join(cellDir, d), { recursive: true });
  await fs.mkdir(path.join(storeDir, 'services'), { recursive: true });
  for (const s of services) {
    const dir = path.join(storeDir, 'services', s.id);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifestOf(tag, s), null, 2));
    await fs.writeFile(path.join(dir, 'compose-template.yml'), templateOf(tag, s, command(s.id)));
  }
  await fs.writeFile(
    path.join(storeDir, 'index.json'),
    JSON.stringify(services.map((s) => ({ id: s.id, name: `Routed ${s.id}`, description: 'A routed test service', version: '1.0.0', author: 'pic tests' }))),
  );

  const replace = writeDocumentFile;
  const byId = new Map(services.map((s) => [s.id, s]));
  return {
    name,
    tag,
    suite,
    root,
    cellDir,
    storeDir,
    stateDir,
    network: name,
    subnet,
    domain,
    base,
    labels,
    services,
    containerName: (id) => `cell-${tag}-${id}`,
    host: (id) => `${byId.get(id)?.subdomain ?? id}.${domain}`,
    page,
    command,
    caddyfile: path.join(stateDir, 'caddy', 'Caddyfile'),
    zoneFile: path.join(stateDir, 'dns', `${domain}.zone`),
    async writeCellDocument(options) {
      const wireguard = options.wireguardContainer ? `\n  wireguard: {container: ${options.wireguardContainer}}` : '';
      await replace(
        path.join(cellDir, 'cell.yaml'),
        testCellDocument({
          name,
          domain,
          subnet,
          poolEnd: 120,
          allowedImagePrefix: 'pictest/',
          extra: [`  caddy: {adminAddress: "${options.adminAddress}", tls: {mode: "off"}}`, `  dns: {address: ${options.dnsAddress ?? '192.0.2.53'}}${wireguard}`],
        }),
      );
    },
    async writeService(id, options = {}) {
      await replace(path.join(cellDir, 'services', `${id}.yaml`), serviceInstallDocument(id, {}, options.connection, readyWindow));
    },
    async removeServiceFile(id) {
      await fs.rm(path.join(cellDir, 'services', `${id}.yaml`), { force: true });
    },
    async writeConnection(connection, spec) {
      await replace(
        path.join(cellDir, 'connections', `${connection}.yaml`),
        `apiVersion: pic.ngo/v1alpha1\nkind: Connection\nmetadata: {name: ${connection}}\nspec: ${JSON.stringify(spec)}\n`,
      );
    },
  };
}

/**
 * The cell's network, made before the operator runs so Caddy can join it: the operator accepts an
 * existing network with its subnet. Retries when another test takes the picked subnet first.
 */
async function createCellNetwork(name: string, labels: Record<string, string>): Promise<{ subnet: string; base: string }> {
  for (let attempt = 0; ; attempt++) {
    const subnet = await pickSubnet();
    const base = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
    try {
      await docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Labels: labels,
        IPAM: { Driver: 'default', Config: [{ Subnet: subnet, IPRange: `${base}.128/25` }] },
      });
      return { subnet, base };
    } catch (err) {
      if (attempt < 5 && /overlap/i.test((err as Error).message)) continue;
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The cell's Caddy

export interface CellCaddy {
  name: string;
  id: string;
  /** The published admin port on 127.0.0.1 (it can change when the container starts again). */
  adminPort: number;
  httpPort: number;
  /** Its address on the cell's network (port 80 there is Caddy itself, without Docker's port proxy). */
  address: string;
  /** `docker stop`. */
  stop(): Promise<void>;
  /** `docker start`; the published ports are read again. */
  start(): Promise<void>;
}

/**
 * Caddy (Debian's binary in a test image) on the cell's network, its admin API listening on every
 * address of the container (`admin 0.0.0.0:2019` in the boot Caddyfile, which the reconciler keeps)
 * and published with port 80 on random loopback ports. Resolves once the admin API answers.
 */
export async function startCellCaddy(cell: RoutingCell): Promise<CellCaddy> {
  await buildCaddyImage(CADDY_IMAGE);
  const name = `pictest-${cell.tag}-caddy`;
  const container = await docker.createContainer({
    name,
    Image: CADDY_IMAGE,
    Labels: cell.labels,
    ExposedPorts: { '2019/tcp': {}, '80/tcp': {} },
    StopTimeout: 5,
    HostConfig: {
      NetworkMode: cell.network,
      PortBindings: { '2019/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }], '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    },
  });
  const caddy: CellCaddy = {
    name,
    id: container.id,
    adminPort: 0,
    httpPort: 0,
    address: '',
    async stop() {
      await container.stop();
    },
    async start() {
      await container.start();
      const info = await container.inspect();
      caddy.adminPort = publishedPort(info, '2019/tcp');
      caddy.httpPort = publishedPort(info, '80/tcp');
      caddy.address = info.NetworkSettings.Networks[cell.network]?.IPAddress ?? '';
    },
  };
  await caddy.start();
  await waitFor('the Caddy container’s admin API', () => caddyConfig(`127.0.0.1:${caddy.adminPort}`).then(() => true), 60_000);
  return caddy;
}

function publishedPort(info: Dockerode.ContainerInspectInfo, port: string): number {
  const binding = info.NetworkSettings.Ports[port]?.[0];
  if (!binding) throw new Error(`port ${port} of ${info.Name} is not published`);
  return Number(binding.HostPort);
}

// ---------------------------------------------------------------------------------------------
// Requests

export interface Answer {
  status: number;
  body: string;
}

/** One GET of `http://<host>:<port>/` (host an IP or 127.0.0.1) with an optional Host header; short time-out. */
export async function httpAnswer(address: string, port: number, hostHeader?: string, timeoutMs = 2000): Promise<Answer> {
  const answer = await httpRequest(`http://${address}:${port}/`, { headers: hostHeader ? { Host: hostHeader } : {}, timeoutMs });
  return { status: answer.status, body: answer.text };
}

/**
 * How a request reaches Caddy: through its published port 80 on loopback (as a client of the host
 * would), or at its own address on the cell's network (no Docker port proxy on the way).
 */
export type CaddyEntry = 'published' | 'cell-network';

/** What Caddy answers for a service's host name. */
export function throughCaddy(cell: RoutingCell, caddy: CellCaddy, id: string, via: CaddyEntry = 'published'): Promise<Answer> {
  return via === 'published' ? httpAnswer('127.0.0.1', caddy.httpPort, cell.host(id)) : httpAnswer(caddy.address, 80, cell.host(id));
}

/** Whether Caddy answers a service's host name with that service's own page. */
export async function routeAnswers(cell: RoutingCell, caddy: CellCaddy, id: string, via: CaddyEntry = 'published'): Promise<boolean> {
  try {
    const answer = await throughCaddy(cell, caddy, id, via);
    return answer.status === 200 && answer.body.trim() === cell.page(id);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup

/** Every container, volume and the network of one routed cell (the operator's and the test's), and its folders. */
export async function removeRoutingCell(cell: Pick<RoutingCell, 'name' | 'network'> & { root?: string }): Promise<void> {
  const filters = { label: [`${CELL_LABEL}=${cell.name}`] };
  for (const c of await docker.listContainers({ all: true, filters })) {
    await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
  }
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
  await docker.getNetwork(cell.network).remove().catch(() => undefined);
  if (cell.root) await fs.rm(cell.root, { recursive: true, force: true });
}

/**
 * Leftovers of runs of `suite` that were killed before their cleanup, older than `olderThanMs`:
 * their containers and volumes (through the cell label), networks that never got a container,
 * and, for all test cells, the sweep of tests/support/cell.ts.
 */
export async function removeStaleRoutingCells(suite: string, olderThanMs = 30 * 60_000, prefix = 'pictest-'): Promise<void> {
  await removeStaleTestCells();
  const cutoff = Date.now() - olderThanMs;
  const filters = { label: [`${SUITE_LABEL}=${suite}`, `${TEST_LABEL}=1`] };
  const stale = new Set<string>();
  for (const c of await docker.listContainers({ all: true, filters })) {
    if (c.Created * 1000 < cutoff && c.Labels[CELL_LABEL]) stale.add(c.Labels[CELL_LABEL]);
  }
  for (const n of await docker.listNetworks({ filters })) {
    if (Date.parse(n.Created) < cutoff && n.Labels?.[CELL_LABEL]) stale.add(n.Labels[CELL_LABEL]);
  }
  for (const name of stale) if (name.startsWith(prefix)) await removeRoutingCell({ name, network: name });
}
