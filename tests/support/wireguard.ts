/**
 * A stand-in for `cell-wireguard` in tests: an image holding the host's iptables-nft
 * (`xtables-nft-multi` as iptables, iptables-restore, iptables-save, its extension modules) and
 * iproute2's `ip`, each with the libraries `ldd` lists copied at the same paths, plus busybox for
 * `sh` and `sleep`. Imported with `docker import` (no registry) and run with NET_ADMIN, so its
 * own network namespace has a real netfilter and real policy routing to converge.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { CellDocument, ConnectionDocument, ConnectionType, EgressType, IptablesRule, Manifest } from '../../crds/types.js';
import { execInContainer, type ExecResult } from '../../reconcilers/shared/exec.js';
import type { CellRouting, InstalledService } from '../../reconcilers/shared/types.js';
import { docker, followStream, recordDockerEvents, TEST_LABEL, TEST_LABELS, uniqueName } from './docker.js';

const run = promisify(execFile);

/** Carried by the image and the containers of this helper, to find leftovers of a killed run. */
export const WIREGUARD_TEST_LABEL = 'ngo.pic.test-wireguard';

const BUSYBOX = process.env.BUSYBOX ?? '/bin/busybox';
const XTABLES = '/usr/sbin/xtables-nft-multi';
const XTABLES_EXTENSIONS = '/usr/lib/x86_64-linux-gnu/xtables';
const IP_CANDIDATES = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'];
/** What the image's PATH finds first; busybox's own `ip` applet is left out so it cannot shadow iproute2. */
const TOOL_LINKS = ['iptables', 'iptables-restore', 'iptables-save', 'iptables-nft', 'iptables-nft-restore', 'iptables-nft-save'];

/** Builds the image under a tag of its own and returns the tag. */
export async function buildWireguardImage(tag = `pictest/wireguard:${uniqueName('img').slice(4)}`): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), 'pictest-wg-image-'));
  try {
    const root = join(work, 'rootfs');
    for (const dir of ['bin', 'sbin', 'usr/sbin', 'etc', 'tmp', 'run', 'root']) await mkdir(join(root, dir), { recursive: true });
    await chmod(join(root, 'tmp'), 0o1777);

    await copyInto(root, BUSYBOX, '/bin/busybox');
    const { stdout: applets } = await run(BUSYBOX, ['--list']);
    for (const applet of applets.split('\n').map((s) => s.trim())) {
      if (!applet || applet === 'busybox' || applet === 'ip' || applet.startsWith('iptables') || !/^[A-Za-z0-9_.[-]+$/.test(applet)) continue;
      await symlink('busybox', join(root, 'bin', applet));
    }

    await copyInto(root, XTABLES, XTABLES);
    for (const name of TOOL_LINKS) await symlink('xtables-nft-multi', join(root, 'usr/sbin', name));
    const ip = await firstExisting(IP_CANDIDATES);
    await copyInto(root, ip, '/usr/sbin/ip');

    const extensions = (await readdir(XTABLES_EXTENSIONS)).filter((f) => f.endsWith('.so')).map((f) => join(XTABLES_EXTENSIONS, f));
    for (const file of extensions) await copyInto(root, file, file);

    const libraries = new Set<string>();
    for (const binary of [XTABLES, ip, ...extensions]) for (const lib of await sharedLibraries(binary)) libraries.add(lib);
    for (const lib of [...libraries].sort()) await copyInto(root, lib, lib);

    const tarPath = join(work, 'rootfs.tar');
    await run('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarPath, '.']);
    const colon = tag.lastIndexOf(':');
    const labels = { ...TEST_LABELS, [WIREGUARD_TEST_LABEL]: '1' };
    const changes = [
      'ENV PATH=/usr/sbin:/sbin:/usr/bin:/bin',
      'CMD ["sleep", "2147483647"]',
      ...Object.entries(labels).map(([k, v]) => `LABEL ${JSON.stringify(k)}=${JSON.stringify(v)}`),
    ];
    const stream = await docker.importImage(createReadStream(tarPath), { repo: tag.slice(0, colon), tag: tag.slice(colon + 1), changes });
    await followStream(stream, `import of ${tag}`);
    return tag;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export interface WireguardTestContainer {
  name: string;
  id: string;
  /** Runs a program in it (through the same exec adapter the reconcilers use). */
  exec(argv: string[], stdin?: string): Promise<ExecResult>;
  /** Like `exec`, but a non-zero exit is an Error carrying stderr; resolves to stdout. */
  sh(argv: string[], stdin?: string): Promise<string>;
}

/** Starts `pictest-wg-<hex>` from `image` with NET_ADMIN, and checks that iptables and ip work in it. */
export async function startWireguardContainer(image: string, labels: Record<string, string> = {}): Promise<WireguardTestContainer> {
  const name = uniqueName('pictest-wg');
  const container = await docker.createContainer({
    name,
    Image: image,
    Cmd: ['sleep', '2147483647'],
    Labels: { ...labels, ...TEST_LABELS, [WIREGUARD_TEST_LABEL]: '1' },
    // PID 1 ignores SIGTERM: do not wait for it on removal.
    StopTimeout: 1,
    HostConfig: { CapAdd: ['NET_ADMIN'], NetworkMode: 'none' },
  });
  await container.start();
  const exec = (argv: string[], stdin?: string) => execInContainer(docker, name, argv, stdin === undefined ? {} : { stdin });
  const sh = async (argv: string[], stdin?: string) => {
    const result = await exec(argv, stdin);
    if (result.exitCode !== 0) throw new Error(`${argv.join(' ')} in ${name} exited ${result.exitCode}: ${result.stderr.trim()}`);
    return result.stdout;
  };
  const handle: WireguardTestContainer = { name, id: container.id, exec, sh };
  await sh(['iptables', '-S']);
  await sh(['ip', 'rule', 'show']);
  return handle;
}

/**
 * Adds an interface `name` inside the container and brings it up: a dummy where the kernel has
 * the dummy driver, otherwise one end of a veth pair (`<name>p` the other end, also up).
 */
export async function addTestInterface(container: WireguardTestContainer, name: string): Promise<void> {
  const dummy = await container.exec(['ip', 'link', 'add', name, 'type', 'dummy']);
  if (dummy.exitCode !== 0) {
    await container.sh(['ip', 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`]);
    await container.sh(['ip', 'link', 'set', `${name}p`, 'up']);
  }
  await container.sh(['ip', 'link', 'set', name, 'up']);
}

/** Removes the container (if still there). */
export async function removeWireguardContainer(container: WireguardTestContainer): Promise<void> {
  try {
    await docker.getContainer(container.id).remove({ force: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
}

/** Removes the image (if still there). */
export async function removeWireguardImage(tag: string): Promise<void> {
  try {
    await docker.getImage(tag).remove({ force: true });
  } catch (err) {
    const code = (err as { statusCode?: number }).statusCode;
    if (code !== 404 && code !== 409) throw err;
  }
}

/** Containers and images of this helper left by runs that ended more than `olderThanMs` ago (e.g. killed). */
export async function removeWireguardLeftovers(olderThanMs = 30 * 60_000): Promise<void> {
  const cutoff = Date.now() - olderThanMs;
  const filters = { label: [`${WIREGUARD_TEST_LABEL}=1`, `${TEST_LABEL}=1`] };
  for (const c of await docker.listContainers({ all: true, filters })) {
    if (c.Created * 1000 >= cutoff) continue;
    await removeWireguardContainer({ name: '', id: c.Id } as WireguardTestContainer);
  }
  for (const image of await docker.listImages({ filters })) {
    if (image.Created * 1000 >= cutoff) continue;
    try {
      await docker.getImage(image.Id).remove({ force: true });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code !== 404 && code !== 409) throw err;
    }
  }
}

/**
 * Records the commands run in `container` through the exec API while `action` runs, from Docker's
 * own event stream (`exec_create: <cmd>`). A marker exec after the action shows that every
 * earlier event has arrived; it is not included.
 */
export async function recordExecs(container: WireguardTestContainer, action: () => Promise<unknown>): Promise<string[]> {
  const recording = await recordDockerEvents({ type: ['container'], container: [container.id], event: ['exec_create'] });
  try {
    await action();
  } catch (err) {
    recording.close();
    throw err;
  }
  const actions = await recording.stop((marker) => container.sh(['echo', marker]));
  return actions.map((a) => a.replace(/^exec_create:\s*/, ''));
}

async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run('ldd', [binary]);
  return [...stdout.matchAll(/(\/\S+)\s+\(0x[0-9a-f]+\)/g)].map((m) => m[1] as string);
}

async function copyInto(root: string, source: string, target: string): Promise<void> {
  const destination = join(root, target.replace(/^\/+/, ''));
  await mkdir(dirname(destination), { recursive: true });
  await copyFile(await realpath(source), destination);
  await chmod(destination, 0o755);
}

async function firstExisting(paths: string[]): Promise<string> {
  for (const candidate of paths) {
    try {
      return await realpath(candidate);
    } catch {
      continue;
    }
  }
  throw new Error(`iproute2's ip not found at ${paths.join(', ')} (install iproute2)`);
}

/** A minimal valid manifest for a service with these `iptables_rules`. */
export function testManifest(id: string, rules: IptablesRule[] = [], egress?: EgressType[]): Manifest {
  const manifest: Manifest = {
    schema_version: 3,
    kind: 'store',
    id,
    name: `Test ${id}`,
    description: 'A test service',
    version: '1.0.0',
    author: 'pic tests',
    capabilities: {
      has_subdomain: false,
      has_accounts: false,
      has_admin_config: false,
      has_storage: false,
      has_egress: egress !== undefined,
      has_api_hooks: false,
    },
    image: `git.pic.ngo/roof/${id}:1`,
    container_name: `cell-${id}`,
    compose: null,
  };
  if (rules.length > 0) manifest.iptables_rules = rules;
  if (egress !== undefined) manifest.egress = { default: 'default', allowed: egress };
  return manifest;
}

export interface TestServiceShape {
  name: string;
  ip: string;
  rules?: IptablesRule[];
  /** A Connection name; `default` when absent. */
  connection?: string;
}

export interface TestConnectionShape {
  name: string;
  type?: ConnectionType;
  interface?: string;
  failOpen?: boolean;
}

/** The input of the shared-resource reconcilers for a cell whose wireguard container is `container`. */
export function testRouting(container: string, services: TestServiceShape[], connections: TestConnectionShape[] = []): CellRouting {
  const cell: CellDocument = {
    apiVersion: 'pic.ngo/v1alpha1',
    kind: 'Cell',
    metadata: { name: 'pictest' },
    spec: {
      domain: 'pictest.pic.ngo',
      store: { path: './store' },
      network: { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' },
      imageVerification: { mode: 'off' },
      allowedImagePrefix: 'git.pic.ngo/roof/',
      wireguard: { container },
    },
  };
  const documents: ConnectionDocument[] = connections.map((c) => {
    const spec: ConnectionDocument['spec'] = { type: c.type ?? 'wireguard_ext' };
    if (c.failOpen !== undefined) spec.failOpen = c.failOpen;
    return { apiVersion: 'pic.ngo/v1alpha1', kind: 'Connection', metadata: { name: c.name }, spec };
  });
  const installed: InstalledService[] = services.map((s) => {
    const connection = s.connection ?? 'default';
    const document = documents.find((d) => d.metadata.name === connection);
    const egress: InstalledService['egress'] = {
      connection,
      type: document?.spec.type ?? 'default',
      failOpen: document?.spec.failOpen ?? false,
    };
    return {
      name: s.name,
      manifest: testManifest(s.name, s.rules ?? [], s.connection === undefined ? undefined : ['default', egress.type]),
      config: {},
      serviceIp: s.ip,
      egress,
    };
  });
  const byName = <T>(key: (x: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
  return {
    cell,
    services: installed.sort(byName((s) => s.name)),
    connections: documents.sort(byName((c) => c.metadata.name)),
  };
}
