/**
 * Helpers for the Caddy and DNS tests: CellRouting fixtures built from a few fields, golden
 * inputs, a real Caddy process on the host, a Caddy container image made from Debian's binary,
 * a loopback proxy that counts the calls made to Caddy's admin API, and plain HTTP requests with
 * a chosen Host header.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { CellDocument, CellSpec, Manifest } from '../../crds/types.js';
import { httpRequest } from '../../reconcilers/shared/http.js';
import type { CellRouting, InstalledService, ResourceContext } from '../../reconcilers/shared/types.js';
import { docker, followStream, TEST_LABELS } from './docker.js';
import { waitFor } from './cell.js';

const run = promisify(execFile);

export const CADDY_BINARY = process.env.CADDY ?? '/usr/bin/caddy';

// ---------------------------------------------------------------------------------------------
// Fixtures

export type CellFields = Pick<CellSpec, 'domain'> & Partial<Pick<CellSpec, 'caddy' | 'dns'>>;

/** A manifest of a routed (or not) service with only the fields the routes look at set by the test. */
export function testManifest(name: string, fields: Partial<Manifest> = {}): Manifest {
  return {
    schema_version: 3,
    kind: 'store',
    id: name,
    name: `Test ${name}`,
    description: 'A test service',
    version: '1.0.0',
    author: 'pic tests',
    image: 'pictest/busybox:1',
    container_name: `cell-${name}`,
    ...fields,
    capabilities: {
      has_subdomain: typeof fields.subdomain === 'string',
      has_accounts: false,
      has_admin_config: false,
      has_storage: false,
      has_egress: false,
      has_api_hooks: false,
      ...(fields.capabilities ?? {}),
    },
  };
}

export function testCell(fields: CellFields): CellDocument {
  return {
    apiVersion: 'pic.ngo/v1alpha1',
    kind: 'Cell',
    metadata: { name: fields.domain.split('.')[0] ?? 'cell' },
    spec: {
      store: { path: './store' },
      network: { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' },
      imageVerification: { mode: 'warn' },
      allowedImagePrefix: 'pictest/',
      ...fields,
    },
  };
}

/** A CellRouting from a Cell's fields and services given as name → manifest fields. */
export function testRouting(cell: CellFields, services: Record<string, Partial<Manifest>> = {}): CellRouting {
  const installed: InstalledService[] = Object.entries(services)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, fields], i) => ({
      name,
      manifest: testManifest(name, fields),
      config: {},
      serviceIp: `172.20.0.${20 + i}`,
      egress: { connection: 'default', type: 'default', failOpen: false },
    }));
  return { cell: testCell(cell), services: installed, connections: [] };
}

/** A context for the shared-resource reconcilers that records the events it is given. */
export function testContext(stateRoot: string, cellDir: string): ResourceContext & { events: { reason: string; message: string; type: string }[] } {
  const events: { reason: string; message: string; type: string }[] = [];
  return {
    docker,
    stateRoot,
    cellDir,
    events,
    event: (reason, message, type = 'Normal') => {
      events.push({ reason, message, type });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Golden files: `<case>.input.json` beside the expected output.

export interface GoldenInput {
  comment?: string;
  cell: CellFields;
  services?: Record<string, Partial<Manifest>>;
  /** Caddy: the admin address Caddy runs with. */
  adminListen?: string;
  /** DNS: the SOA serial to render with. */
  serial?: number;
}

export const GOLDEN_ROOT = path.join(process.cwd(), 'tests', 'golden');

/** The cases of one golden folder: their names, inputs and the path of their expected output. */
export async function goldenCases(folder: 'caddy' | 'dns', outputSuffix: string): Promise<{ name: string; input: GoldenInput; expectedFile: string }[]> {
  const dir = path.join(GOLDEN_ROOT, folder);
  const names = (await fs.readdir(dir)).filter((f) => f.endsWith('.input.json')).sort();
  return Promise.all(
    names.map(async (f) => {
      const name = f.slice(0, -'.input.json'.length);
      const input = JSON.parse(await fs.readFile(path.join(dir, f), 'utf8')) as GoldenInput;
      return { name, input, expectedFile: path.join(dir, `${name}${outputSuffix}`) };
    }),
  );
}

/** The files of one golden folder that end in `suffix`. */
export async function goldenOutputs(folder: 'caddy' | 'dns', suffix: string): Promise<string[]> {
  const dir = path.join(GOLDEN_ROOT, folder);
  return (await fs.readdir(dir)).filter((f) => f.endsWith(suffix)).sort().map((f) => path.join(dir, f));
}

// ---------------------------------------------------------------------------------------------
// Network helpers

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** A GET to 127.0.0.1:`port` with the given Host header. */
export async function httpGet(port: number, host: string, urlPath = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'GET', headers: { Host: host }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}${urlPath} via 127.0.0.1:${port}: no answer`)));
    req.on('error', reject);
    req.end();
  });
}

/** Caddy's running config, through its admin API. */
export async function caddyConfig(adminAddress: string): Promise<unknown> {
  // Not fetch: it can leave a request to a starting container's published port unsettled.
  const res = await httpRequest(`http://${adminAddress}/config/`, { timeoutMs: 5000 });
  if (res.status !== 200) throw new Error(`GET /config/ of ${adminAddress}: HTTP ${res.status}`);
  return JSON.parse(res.text) as unknown;
}

export interface CountingProxy {
  /** host:port of the proxy, to use as adminAddress. */
  address: string;
  /** "METHOD /path" of every request that went through. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * An HTTP proxy on loopback in front of Caddy's admin API that records each request, so a test
 * can tell whether the reconciler called /load. Requests are passed on with the Host header Caddy
 * expects for its own listen address.
 */
export async function startCountingProxy(target: () => string): Promise<CountingProxy> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const [host, port] = splitHostPort(target());
    const upstream = http.request(
      { host, port, method: req.method, path: req.url, headers: { ...req.headers, host: `${host}:${port}` } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => {
      // Like a closed port: the reconciler sees the connection drop.
      req.socket.destroy();
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function splitHostPort(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}

// ---------------------------------------------------------------------------------------------
// A Caddy process on the host

export interface HostCaddy {
  adminAddress: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Runs `caddy run --config <file> --adapter caddyfile` with its data and autosave kept in
 * `homeDir`, and waits until its admin API at `adminAddress` answers.
 */
export async function startHostCaddy(configFile: string, adminAddress: string, homeDir: string): Promise<HostCaddy> {
  await fs.mkdir(homeDir, { recursive: true });
  const log = await fs.open(path.join(homeDir, 'caddy.log'), 'a');
  const child = spawn(CADDY_BINARY, ['run', '--config', configFile, '--adapter', 'caddyfile'], {
    env: { ...process.env, HOME: homeDir, XDG_DATA_HOME: path.join(homeDir, 'data'), XDG_CONFIG_HOME: path.join(homeDir, 'config') },
    stdio: ['ignore', log.fd, log.fd],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let gone = false;
  void exited.then(() => {
    gone = true;
    void log.close();
  });
  await waitFor(`Caddy admin API at ${adminAddress}`, async () => {
    if (gone) throw new Error(`caddy exited; see ${path.join(homeDir, 'caddy.log')}`);
    await caddyConfig(adminAddress);
    return true;
  }, 30_000);
  return {
    adminAddress,
    process: child,
    async stop() {
      if (gone) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** `caddy adapt` of one Caddyfile: resolves with the JSON, rejects with Caddy's message. */
export async function caddyAdapt(file: string): Promise<{ json: string; warnings: string }> {
  const { stdout, stderr } = await run(CADDY_BINARY, ['adapt', '--config', file, '--adapter', 'caddyfile'], { env: { ...process.env, HOME: tmpdir() } });
  return { json: stdout, warnings: stderr };
}

// ---------------------------------------------------------------------------------------------
// A Caddy container image, built from the host's binary without a registry

export const CADDY_IMAGE = 'pictest/caddy:1';

/** The Caddyfile the test image starts with: the admin API open on every address of the container. */
export const CONTAINER_BOOT_CADDYFILE = '{\n\tadmin 0.0.0.0:2019\n\tauto_https off\n}\n';

/**
 * Builds (like `docker import`) an image with the host's caddy binary, the shared libraries `ldd`
 * lists for it, and a boot Caddyfile. Returns the image Id; an existing tag is reused.
 */
export async function buildCaddyImage(tag = CADDY_IMAGE): Promise<string> {
  try {
    return (await docker.getImage(tag).inspect()).Id;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  const work = await fs.mkdtemp(path.join(tmpdir(), 'pictest-caddy-image-'));
  try {
    const root = path.join(work, 'rootfs');
    const put = async (source: string, target = source) => {
      const dest = path.join(root, target);
      await fs.mkdir(path.dirname(dest), { recursive: true });
      await fs.copyFile(source, dest);
      await fs.chmod(dest, 0o755);
    };
    await put(CADDY_BINARY, '/usr/bin/caddy');
    for (const lib of await sharedLibraries(CADDY_BINARY)) await put(lib);
    for (const dir of ['tmp', 'data', 'config', 'etc/caddy']) await fs.mkdir(path.join(root, dir), { recursive: true });
    await fs.chmod(path.join(root, 'tmp'), 0o1777);
    await fs.writeFile(path.join(root, 'etc', 'caddy', 'Caddyfile'), CONTAINER_BOOT_CADDYFILE);
    await fs.writeFile(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/tmp:/bin/false\n');
    await fs.writeFile(path.join(root, 'etc', 'group'), 'root:x:0:\n');
    await fs.writeFile(path.join(root, 'etc', 'nsswitch.conf'), 'hosts: files dns\n');
    const tar = path.join(work, 'rootfs.tar');
    await run('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tar, '.']);
    const [repo, version] = tag.split(':') as [string, string];
    const changes = [
      'ENV HOME=/tmp XDG_DATA_HOME=/data XDG_CONFIG_HOME=/config',
      `CMD ${JSON.stringify(['/usr/bin/caddy', 'run', '--config', '/etc/caddy/Caddyfile', '--adapter', 'caddyfile'])}`,
      ...Object.entries(TEST_LABELS).map(([k, v]) => `LABEL ${JSON.stringify(k)}=${JSON.stringify(v)}`),
    ];
    await followStream(await docker.importImage(createReadStream(tar), { repo, tag: version, changes }), `import of ${tag}`);
    return (await docker.getImage(tag).inspect()).Id;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** The absolute paths of the shared libraries (and loader) a dynamic binary needs; [] if static. */
async function sharedLibraries(binary: string): Promise<string[]> {
  let out: string;
  try {
    out = (await run('ldd', [binary])).stdout;
  } catch {
    return []; // "not a dynamic executable"
  }
  return [...out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1]!);
}
