/**
 * A throwaway cell built from the real example catalog (examples/store), for end-to-end tests and
 * benchmarks that run the operator against the example images (`git.pic.ngo/roof/pic-*`, built
 * and loaded by examples/images/build.sh).
 *
 * The example packages name their containers `cell-notes`, `cell-files`, `cell-webdav`... which
 * the demo cell uses on the same engine. So the packages a test needs are copied into a temporary
 * catalog with every container name rewritten to `cell-pt<hex>-<name>` (container_name, backend,
 * extra backends, containers, backup containers, the compose template), and the Cell is named
 * `pictest-pt<hex>` with a network and subnet of its own. Nothing else in a package is changed:
 * images, templates, health checks, account managers and peer templates are the catalog's own.
 *
 * The names follow tests/support/cell.ts, so `removeTestCell` deletes exactly what the cell
 * created (by its `ngo.pic.cell` label) and `removeStaleTestCells` sweeps what a killed run left.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { httpRequest } from '../../reconcilers/shared/http.js';
import type { CredentialsFile } from '../../state/credentials.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { ensureExampleImages } from './accounts-service.js';
import { removeStaleTestCells, removeTestCell, serviceInstallDocument, testCellDocument, writeDocumentFile, type ReadyWindow } from './cell.js';
import { docker, pickSubnet } from './docker.js';

export type ExampleServiceId = 'notes' | 'files' | 'calendar' | 'email';

const EXAMPLE_STORE = path.join(process.cwd(), 'examples', 'store');
/** Temporary folders of example cells start with this, so a later run can sweep a killed one's. */
const ROOT_PREFIX = 'pictest-example-';
const STALE_AFTER_MS = 30 * 60_000;

export interface ExampleCell {
  /** `pictest-pt<hex>`: the Cell's name and its network's name. */
  name: string;
  /** `pt<hex>`, in every container name. */
  tag: string;
  root: string;
  cellDir: string;
  storeDir: string;
  stateDir: string;
  network: string;
  subnet: string;
  /** `pt<hex>.pic.test`. */
  domain: string;
  credentialsFile: string;
  status: StatusStore;
  /** The test name of an example container: `cell-notes` → `cell-pt<hex>-notes`. */
  containerName(exampleName: string): string;
  writeService(id: ExampleServiceId, config?: Record<string, string | number | boolean>): Promise<void>;
  writePeer(name: string, services: string[]): Promise<void>;
  removePeer(name: string): Promise<void>;
}

/** Every example container name (`cell-<word>`) except the network, in a package file's text. */
export function renameContainers(text: string, tag: string): string {
  return text.replace(/\bcell-(?!network\b)([a-z][a-z0-9]*)\b/g, `cell-${tag}-$1`);
}

/** A PeerAccount document listing `services`. */
export function peerDocument(peer: string, services: string[]): string {
  return `apiVersion: pic.ngo/v1alpha1\nkind: PeerAccount\nmetadata: {name: ${peer}}\nspec: {services: ${JSON.stringify(services)}}\n`;
}


/**
 * Copies the example packages `ids` into a temporary catalog (container names rewritten) and
 * writes a Cell for them. Installs nothing: `writeService` does (with the stability window
 * `options.window`, TEST_READY_WINDOW unless given), and an operator converges it.
 */
export async function createExampleCell(ids: ExampleServiceId[], options: { window?: ReadyWindow } = {}): Promise<ExampleCell> {
  await ensureExampleImages();
  const tag = `pt${randomBytes(4).toString('hex')}`;
  const name = `pictest-${tag}`;
  const domain = `${tag}.pic.test`;
  const root = await fs.mkdtemp(path.join(os.tmpdir(), ROOT_PREFIX));
  const cellDir = path.join(root, 'cell');
  const storeDir = path.join(root, 'store');
  const stateDir = path.join(root, 'state');
  const subnet = await pickSubnet();

  for (const d of ['services', 'peers', 'connections']) await fs.mkdir(path.join(cellDir, d), { recursive: true });
  const index = JSON.parse(await fs.readFile(path.join(EXAMPLE_STORE, 'index.json'), 'utf8')) as { id: string }[];
  for (const id of ids) {
    const from = path.join(EXAMPLE_STORE, 'services', id);
    const to = path.join(storeDir, 'services', id);
    await fs.mkdir(to, { recursive: true });
    for (const file of await fs.readdir(from)) {
      await fs.writeFile(path.join(to, file), renameContainers(await fs.readFile(path.join(from, file), 'utf8'), tag));
    }
  }
  await fs.writeFile(path.join(storeDir, 'index.json'), `${JSON.stringify(index.filter((e) => (ids as string[]).includes(e.id)), null, 2)}\n`);
  await fs.writeFile(
    path.join(cellDir, 'cell.yaml'),
    testCellDocument({ name, domain, subnet, poolEnd: 100, allowedImagePrefix: 'git.pic.ngo/roof/', extra: ['  dns: {address: 10.0.0.1}'] }),
  );

  return {
    name,
    tag,
    root,
    cellDir,
    storeDir,
    stateDir,
    network: name,
    subnet,
    domain,
    credentialsFile: path.join(stateDir, 'credentials.json'),
    status: new StatusStore(path.join(stateDir, 'status')),
    containerName: (exampleName) => renameContainers(exampleName, tag),
    async writeService(id, config = {}) {
      await writeDocumentFile(path.join(cellDir, 'services', `${id}.yaml`), serviceInstallDocument(id, config, undefined, options.window));
    },
    async writePeer(peer, services) {
      await writeDocumentFile(path.join(cellDir, 'peers', `${peer}.yaml`), peerDocument(peer, services));
    },
    async removePeer(peer) {
      await fs.rm(path.join(cellDir, 'peers', `${peer}.yaml`), { force: true });
    },
  };
}

/** Removes the cell's containers, volumes, network and folders. */
export async function removeExampleCell(cell: ExampleCell | undefined): Promise<void> {
  if (cell) await removeTestCell(cell);
}

/**
 * What killed runs left: test cells older than 30 minutes (containers, volumes, networks) and
 * this helper's temporary folders of that age.
 */
export async function removeStaleExampleCells(): Promise<void> {
  await removeStaleTestCells();
  const cutoff = Date.now() - STALE_AFTER_MS;
  for (const entry of await fs.readdir(os.tmpdir()).catch(() => [] as string[])) {
    if (!entry.startsWith(ROOT_PREFIX)) continue;
    const dir = path.join(os.tmpdir(), entry);
    const stat = await fs.stat(dir).catch(() => undefined);
    if (stat && stat.mtimeMs < cutoff) await fs.rm(dir, { recursive: true, force: true });
  }
}

/** An operator on the cell as `pic run` makes one, quiet unless PIC_TEST_LOG names a level. */
export async function startExampleOperator(cell: ExampleCell, options: { watch?: boolean; resyncIntervalMs?: number } = {}): Promise<Operator> {
  const op = new Operator({
    cellDir: cell.cellDir,
    stateDir: new StateDir(cell.stateDir),
    docker,
    logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }),
    resyncIntervalMs: options.resyncIntervalMs ?? 60 * 60_000,
    watch: options.watch ?? true,
  });
  await op.stateDirReady();
  await op.start();
  return op;
}

/** The stored status of `key` once `accept` takes it (the status store is read from disk each time). */
export async function statusWhere(cell: ExampleCell, key: string, accept: (s: DocumentStatus) => boolean): Promise<DocumentStatus | undefined> {
  const s = await cell.status.get(key);
  return s && accept(s) ? s : undefined;
}

/** The credentials file as stored, or {} when there is none. */
export async function readCredentials(cell: ExampleCell): Promise<CredentialsFile> {
  try {
    return JSON.parse(await fs.readFile(cell.credentialsFile, 'utf8')) as CredentialsFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
}

export interface ExecOutcome {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** `docker exec [-i] [-u USER] CONTAINER ARGV...`, like an admin at a shell. */
export function dockerExec(container: string, argv: string[], options: { user?: string; stdin?: string } = {}): Promise<ExecOutcome> {
  const args = ['exec', ...(options.stdin === undefined ? [] : ['-i']), ...(options.user ? ['-u', options.user] : []), container, ...argv];
  return new Promise((resolve, reject) => {
    const child = execFile('docker', args, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code;
      if (err instanceof Error && typeof code !== 'number') reject(err);
      else resolve({ stdout, stderr, exitCode: typeof code === 'number' ? code : 0 });
    });
    child.stdin?.end(options.stdin ?? '');
  });
}

/** The lines an account command prints (`files-account list`, `cal-account list`). */
export async function commandAccounts(container: string, argv: string[]): Promise<string[]> {
  const { stdout, stderr, exitCode } = await dockerExec(container, argv);
  if (exitCode !== 0) throw new Error(`${argv.join(' ')} in ${container} exited ${exitCode}: ${stderr.trim()}`);
  return stdout.split('\n').filter((l) => l !== '');
}

/** GET /service-api/accounts of an http-managed example service (notes) at its address. */
export async function httpAccounts(ip: string, port = 8080): Promise<string[]> {
  const response = await httpRequest(`http://${ip}:${port}/service-api/accounts`, { timeoutMs: 10_000 });
  if (response.status !== 200) throw new Error(`GET /service-api/accounts at ${ip} answered ${response.status}`);
  return (JSON.parse(response.text) as { accounts: string[] }).accounts;
}

/** The address of a container on the cell's network (e.g. cell-webdav, which has no fixed one). */
export async function containerIp(cell: ExampleCell, container: string): Promise<string> {
  const info = await docker.getContainer(container).inspect();
  const ip = info.NetworkSettings.Networks[cell.network]?.IPAddress;
  if (!ip) throw new Error(`${container} has no address on ${cell.network}`);
  return ip;
}
