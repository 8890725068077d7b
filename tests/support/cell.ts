/**
 * A throwaway cell for end-to-end tests: a catalog of small busybox services, a cell folder, a
 * state directory, and a network of its own. Names start with `pt<hex>` / `pictest-` so nothing
 * can meet a real cell's containers, and `removeTestCell` deletes exactly what the cell created.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadEgressAllocations } from '../../reconcilers/egress/index.js';
import { egressChainsOf } from '../../reconcilers/egress/render.js';
import { buildBusyboxImage, docker, pickSubnet } from './docker.js';

const run = promisify(execFile);

export const TEST_IMAGE = 'pictest/busybox:1';

export interface TestService {
  id: string;
  /** Add a health check that passes once httpd answers. */
  healthcheck?: boolean;
  /** Extra config fields with defaults (all strings). */
  config?: Record<string, string>;
}

export interface TestCell {
  name: string;
  tag: string;
  root: string;
  cellDir: string;
  storeDir: string;
  stateDir: string;
  network: string;
  subnet: string;
  containerName(id: string): string;
  writeService(id: string, config?: Record<string, string | number | boolean>): Promise<void>;
  removeServiceFile(id: string): Promise<void>;
  writeFile(relative: string, text: string): Promise<void>;
}

function manifestOf(tag: string, s: TestService) {
  return {
    schema_version: 3,
    id: s.id,
    name: `Test ${s.id}`,
    description: 'A test service',
    version: '1.0.0',
    author: 'pic tests',
    kind: 'store',
    capabilities: { has_subdomain: false, has_accounts: false, has_admin_config: true, has_storage: false, has_egress: false, has_api_hooks: false },
    config_schema: {
      greeting: { type: 'string', label: 'Greeting', default: 'hello' },
      ...Object.fromEntries(Object.entries(s.config ?? {}).map(([k, v]) => [k, { type: 'string', label: k, default: v }])),
    },
    image: TEST_IMAGE,
    container_name: `cell-${tag}-${s.id}`,
    volumes: [{ name: `${s.id}-data`, mount: '/data' }],
    compose: null,
  };
}

/**
 * What a test service runs: httpd beside a shell that exits on SIGTERM, as a real service stops
 * when asked. (httpd as PID 1 ignores SIGTERM, so every stop, recreate and removal would wait out
 * Docker's 10 s stop timeout and then kill it.)
 */
export const SERVICE_SCRIPT = "trap 'exit 0' TERM; echo ok > /www/index.html && httpd -f -p 8080 -h /www & wait";

function templateOf(tag: string, s: TestService): string {
  const health = s.healthcheck
    ? `    healthcheck:\n      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]\n      interval: 1s\n      timeout: 2s\n      retries: 30\n`
    : '';
  return `services:
  ${s.id}:
    image: ${TEST_IMAGE}
    container_name: cell-${tag}-${s.id}
    command: ["sh", "-c", "${SERVICE_SCRIPT}"]
    environment:
      GREETING: "\${PIC_CFG_GREETING}"
      TOKEN: "\${PIC_SECRET_TOKEN}"
      DOMAIN: "\${PIC_DOMAIN}"
    volumes:
      - data:/data
    networks:
      cell-network:
        ipv4_address: "\${SERVICE_IP}"
    restart: unless-stopped
${health}volumes:
  data: {}
networks:
  cell-network:
    external: true
`;
}

/** Replace a document file as an editor would: write beside (a name the watcher ignores), then rename over. */
export async function writeDocumentFile(file: string, body: string): Promise<void> {
  await fs.writeFile(`${file}.tmp`, body);
  await fs.rename(`${file}.tmp`, file);
}

/**
 * The stability window (ServiceInstall spec.minReadySeconds) of the services test cells install:
 * `'default'` leaves the field out, so the loop's own window (2 s) applies; a number sets it.
 */
export type ReadyWindow = number | 'default';

/**
 * Test cells install their services with no stability window: each Ready would otherwise come 2 s
 * after its containers start, on every install and recreate of every end-to-end test. Where the
 * window is what is tested (e2e/operator.test.ts, the upgrade tests) or measured (the benchmarks),
 * the cell asks for `'default'` or its own figure.
 */
export const TEST_READY_WINDOW: ReadyWindow = 0;

/** A ServiceInstall document admitting version 1.0.0 with `config` and, when given, an egress connection. */
export function serviceInstallDocument(id: string, config: Record<string, unknown> = {}, connection?: string, window: ReadyWindow = TEST_READY_WINDOW): string {
  const egress = connection ? `\n  egress: {connection: ${connection}}` : '';
  const minReady = window === 'default' ? '' : `\n  minReadySeconds: ${window}`;
  return `apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: ${id}}\nspec:\n  version: 1.0.0\n  config: ${JSON.stringify(config)}${egress}${minReady}\n`;
}

export interface TestCellSpec {
  name: string;
  domain: string;
  subnet: string;
  /** Last octet of the service pool, which starts at .20 of the subnet's first /24. */
  poolEnd: number;
  /** The whole service pool (FIRST-LAST), instead of .20 to `poolEnd` of the first /24. */
  servicePool?: string;
  allowedImagePrefix: string;
  /** Further `spec:` lines, each already indented by two spaces. */
  extra?: string[];
}

/** The Cell document of a test cell: its own network and pool, images verified in warn mode. */
export function testCellDocument(c: TestCellSpec): string {
  const base = c.subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  return `apiVersion: pic.ngo/v1alpha1
kind: Cell
metadata: {name: ${c.name}}
spec:
  domain: ${c.domain}
  store: {path: ../store}
  network: {name: ${c.name}, subnet: ${c.subnet}, servicePool: ${c.servicePool ?? `${base}.20-${base}.${c.poolEnd}`}}
  imageVerification: {mode: warn}
  allowedImagePrefix: ${c.allowedImagePrefix}
${(c.extra ?? []).map((l) => `${l}\n`).join('')}`;
}

/**
 * `prefix` starts the cell's name (its network, its labels) and its temporary folder; default
 * `pictest-`. `window` is the stability window `writeService` asks for (TEST_READY_WINDOW).
 */
export async function createTestCell(services: TestService[], options: { prefix?: string; window?: ReadyWindow } = {}): Promise<TestCell> {
  await buildBusyboxImage(TEST_IMAGE);
  const tag = `pt${randomBytes(4).toString('hex')}`;
  const prefix = options.prefix ?? 'pictest-';
  const name = `${prefix}${tag}`;
  const root = await fs.mkdtemp(path.join(os.tmpdir(), options.prefix ?? 'pictest-cell-'));
  const cellDir = path.join(root, 'cell');
  const storeDir = path.join(root, 'store');
  const stateDir = path.join(root, 'state');
  const subnet = await pickSubnet();
  for (const d of ['services', 'peers', 'connections']) await fs.mkdir(path.join(cellDir, d), { recursive: true });
  for (const s of services) {
    const dir = path.join(storeDir, 'services', s.id);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifestOf(tag, s), null, 2));
    await fs.writeFile(path.join(dir, 'compose-template.yml'), templateOf(tag, s));
  }
  await fs.writeFile(
    path.join(storeDir, 'index.json'),
    JSON.stringify(services.map((s) => ({ id: s.id, name: `Test ${s.id}`, description: 'A test service', version: '1.0.0', author: 'pic tests' }))),
  );
  await fs.writeFile(path.join(cellDir, 'cell.yaml'), testCellDocument({ name, domain: `${tag}.pic.test`, subnet, poolEnd: 100, allowedImagePrefix: 'pictest/' }));
  const cell: TestCell = {
    name,
    tag,
    root,
    cellDir,
    storeDir,
    stateDir,
    network: name,
    subnet,
    containerName: (id) => `cell-${tag}-${id}`,
    async writeService(id, config = {}) {
      await writeDocumentFile(path.join(cellDir, 'services', `${id}.yaml`), serviceInstallDocument(id, config, undefined, options.window));
    },
    async removeServiceFile(id) {
      await fs.rm(path.join(cellDir, 'services', `${id}.yaml`), { force: true });
    },
    async writeFile(relative, text) {
      await fs.writeFile(path.join(cellDir, relative), text);
    },
  };
  return cell;
}

/** Remove every container, volume and the network of one test cell, and its folders. */
export async function removeTestCell(cell: { name: string; root?: string; network: string; stateDir?: string }): Promise<void> {
  const label = `ngo.pic.cell=${cell.name}`;
  for (const c of await docker.listContainers({ all: true, filters: { label: [label] } })) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
  const volumes = (await docker.listVolumes({ filters: { label: [label] } })).Volumes ?? [];
  for (const v of volumes) await docker.getVolume(v.Name).remove().catch(() => undefined);
  await docker.getNetwork(cell.network).remove().catch(() => undefined);
  await removeEgressChains(cell.name);
  if (cell.stateDir) await removeEgressRoutes(cell.stateDir);
  if (cell.root) await fs.rm(cell.root, { recursive: true, force: true });
}

/** The host chains egress made for a cell (reconcilers/egress/render.ts), with their jumps. */
export async function removeEgressChains(cellName: string): Promise<void> {
  const chains = egressChainsOf(cellName);
  const quiet = (args: string[]) => run('iptables', args).catch(() => undefined);
  for (const [table, chain, parents] of [['filter', chains.fence, ['DOCKER-USER', 'FORWARD']], ['mangle', chains.marks, ['PREROUTING']], ['nat', chains.dns, ['PREROUTING']]] as const) {
    for (const parent of parents) await quiet(['-t', table, '-D', parent, '-j', chain]);
    await quiet(['-t', table, '-F', chain]);
    await quiet(['-t', table, '-X', chain]);
  }
}

/** The policy rules and routing tables of the connections egress allocated in a cell's state directory. */
export async function removeEgressRoutes(stateDir: string): Promise<void> {
  const allocations = await loadEgressAllocations(stateDir).catch(() => undefined);
  for (const a of Object.values(allocations?.connections ?? {})) {
    while (await run('ip', ['rule', 'del', 'lookup', String(a.table)]).then(() => true, () => false));
    await run('ip', ['route', 'flush', 'table', String(a.table)]).catch(() => undefined);
  }
}

/** Leftovers of test cells from runs that were killed: cells named pictest-* older than 30 minutes. */
export async function removeStaleTestCells(): Promise<void> {
  const cutoff = Date.now() / 1000 - 30 * 60;
  const containers = await docker.listContainers({ all: true, filters: { label: ['ngo.pic.cell'] } });
  const stale = new Set<string>();
  for (const c of containers) {
    const cellName = c.Labels['ngo.pic.cell'] ?? '';
    if (cellName.startsWith('pictest-') && c.Created < cutoff) stale.add(cellName);
  }
  for (const name of stale) await removeTestCell({ name, network: name });
}

/** Poll until `check` returns a value (not undefined), or fail after `timeoutMs` with `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
