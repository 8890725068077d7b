/**
 * The other end of the cell's VPN, as a person's laptop would be: a container with its own
 * network namespace holding wg-quick (and the bash it is written in), wireguard-go and wg, ip,
 * curl and dig, each copied from the host with the libraries `ldd` lists, plus a `resolvconf`
 * that writes /etc/resolv.conf (what wg-quick calls for its DNS line). Configured only from the
 * files a test gives it: the wg-quick file of `pic credentials -o wireguard` and the CA of `pic ca`.
 *
 * Also builds the core images (examples/images/build-core.sh) under a test prefix.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { execInContainer, type ExecResult } from '../../reconcilers/shared/exec.js';
import { docker, followStream, TEST_LABEL, TEST_LABELS, uniqueName } from './docker.js';

const run = promisify(execFile);

export const CORE_IMAGE_PREFIX = 'pictest/core-';
export const CORE_IMAGES = { caddy: `${CORE_IMAGE_PREFIX}caddy:1.0.0`, dns: `${CORE_IMAGE_PREFIX}dns:1.0.0`, wireguard: `${CORE_IMAGE_PREFIX}wireguard:1.0.0` } as const;

/** Where a test cell's core containers run: their names and addresses, the VPN and its published port. */
export interface TestCoreStack {
  caddy: { container: string; address: string };
  dns: { container: string; address: string };
  wireguard: { container: string; address: string; subnet: string; hostIp: string; port: number };
}

/** The Cell's `caddy`, `dns` and `wireguard` run sections (testCellDocument's `extra` lines) for the test core images. */
export function coreStackLines(c: TestCoreStack): string[] {
  const w = c.wireguard;
  return [
    `  caddy: {run: {image: "${CORE_IMAGES.caddy}", address: ${c.caddy.address}, container: ${c.caddy.container}}}`,
    `  dns: {run: {image: "${CORE_IMAGES.dns}", address: ${c.dns.address}, container: ${c.dns.container}}}`,
    `  wireguard:`,
    `    subnet: ${w.subnet}`,
    `    endpoint: "${w.hostIp}:${w.port}"`,
    `    run: {image: "${CORE_IMAGES.wireguard}", address: ${w.address}, container: ${w.container}, publish: {hostIp: ${w.hostIp}, port: ${w.port}}}`,
  ];
}

const CORE_COMPONENTS = ['caddy', 'dns', 'wireguard'] as const;
/** On the test images: which build of the real core images (make images) they were made beside. */
const CORE_SOURCE_LABEL = `${TEST_LABEL}.core-source`;

/** A digest of the IDs of the real core images `make images` loaded; undefined when one is missing. */
async function realCoreStamp(): Promise<string | undefined> {
  const ids: string[] = [];
  for (const name of CORE_COMPONENTS) {
    const id = await docker.getImage(`git.pic.ngo/roof/pic-core-${name}:1.0.0`).inspect().then((i) => i.Id, () => undefined);
    if (id === undefined) return undefined;
    ids.push(id);
  }
  return `sha256:${createHash('sha256').update(ids.join('\n')).digest('hex')}`;
}

/**
 * Builds (or finds up to date) the three core images under the test prefix, labelled as test images.
 * Staging them costs a minute of CPU, and many test files ask: when the test images were built
 * beside the real ones `make images` loaded (same inputs, so the same real IDs), they are reused.
 */
export async function buildCoreImages(): Promise<Record<string, string>> {
  const stamp = await realCoreStamp();
  if (stamp !== undefined) {
    const found: [string, string][] = [];
    for (const name of CORE_COMPONENTS) {
      const tag = `${CORE_IMAGE_PREFIX}${name}:1.0.0`;
      const image = await docker.getImage(tag).inspect().catch(() => undefined);
      if (image?.Config?.Labels?.[CORE_SOURCE_LABEL] === stamp) found.push([tag, image.Id]);
    }
    if (found.length === CORE_COMPONENTS.length) return Object.fromEntries(found);
  }
  const script = join(process.cwd(), 'examples', 'images', 'build-core.sh');
  const labels = ['--label', `${TEST_LABEL}=1`, ...(stamp ? ['--label', `${CORE_SOURCE_LABEL}=${stamp}`] : [])];
  const { stdout } = await run(script, ['--prefix', CORE_IMAGE_PREFIX, ...labels], { maxBuffer: 1 << 20 });
  return Object.fromEntries(stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
}

const BUSYBOX = process.env.BUSYBOX ?? '/bin/busybox';
const TOOLS: [string, string][] = [
  ['/usr/bin/bash', '/bin/bash'],
  ['/usr/bin/wg-quick', '/usr/bin/wg-quick'],
  ['/usr/bin/wg', '/usr/bin/wg'],
  ['/usr/bin/wireguard-go', '/usr/bin/wireguard-go'],
  ['/usr/bin/curl', '/usr/bin/curl'],
  ['/usr/bin/dig', '/usr/bin/dig'],
];
const IP_CANDIDATES = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'];
const RESOLVCONF = `#!/bin/sh
# What wg-quick needs of resolvconf: -a writes the nameserver lines it is given, -d forgets them.
case "$1" in
  -a) cat > /etc/resolv.conf ;;
  -d) : ;;
esac
`;

/**
 * `extraFiles`: more files of the host copied in at the same paths (executables with the libraries
 * ldd lists), e.g. a client a test runs from the peer's side (litmus and its test programs).
 */
export async function buildPeerImage(tag = `pictest/peer:${uniqueName('img').slice(4)}`, extraFiles: string[] = []): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), 'pictest-peer-image-'));
  try {
    const root = join(work, 'rootfs');
    for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/wireguard', 'tmp', 'run', 'root', 'var/run/wireguard']) await mkdir(join(root, dir), { recursive: true });
    await chmod(join(root, 'tmp'), 0o1777);
    await copyInto(root, BUSYBOX, '/bin/busybox');
    const { stdout: applets } = await run(BUSYBOX, ['--list']);
    for (const applet of applets.split('\n').map((s) => s.trim())) {
      if (!applet || applet === 'busybox' || applet === 'ip' || applet === 'bash' || !/^[A-Za-z0-9_.[-]+$/.test(applet)) continue;
      await symlink('busybox', join(root, 'bin', applet));
    }
    let ip = '';
    for (const candidate of IP_CANDIDATES) {
      try {
        ip = await realpath(candidate);
        break;
      } catch {
        continue;
      }
    }
    const binaries: [string, string][] = [...TOOLS, [ip, '/usr/sbin/ip'], ...extraFiles.map((f): [string, string] => [f, f])];
    const libraries = new Set<string>();
    for (const [source, target] of binaries) {
      await copyInto(root, source, target);
      for (const lib of await sharedLibraries(source)) libraries.add(lib);
    }
    for (const lib of [...libraries].sort()) await copyInto(root, lib, lib);
    await writeFile(join(root, 'sbin', 'resolvconf'), RESOLVCONF, { mode: 0o755 });
    await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    await writeFile(join(root, 'etc', 'group'), 'root:x:0:\n');
    await writeFile(join(root, 'etc', 'nsswitch.conf'), 'hosts: files dns\n');

    const tarPath = join(work, 'rootfs.tar');
    await run('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarPath, '.']);
    const colon = tag.lastIndexOf(':');
    const changes = ['ENV PATH=/usr/sbin:/sbin:/usr/bin:/bin', 'CMD ["sleep", "2147483647"]', ...Object.entries(TEST_LABELS).map(([k, v]) => `LABEL ${JSON.stringify(k)}=${JSON.stringify(v)}`)];
    await followStream(await docker.importImage(createReadStream(tarPath), { repo: tag.slice(0, colon), tag: tag.slice(colon + 1), changes }), `import of ${tag}`);
    return tag;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export interface PeerContainer {
  name: string;
  id: string;
  exec(argv: string[], stdin?: string): Promise<ExecResult>;
  sh(argv: string[], stdin?: string): Promise<string>;
}

/** A peer on its own network (not the cell's), with what wg-quick needs: NET_ADMIN and /dev/net/tun. */
export async function startPeerContainer(image: string, network: string, labels: Record<string, string>): Promise<PeerContainer> {
  const name = uniqueName('pictest-peer');
  const container = await docker.createContainer({
    name,
    Image: image,
    Cmd: ['sleep', '2147483647'],
    Labels: { ...labels, ...TEST_LABELS },
    StopTimeout: 1,
    HostConfig: { CapAdd: ['NET_ADMIN'], Devices: [{ PathOnHost: '/dev/net/tun', PathInContainer: '/dev/net/tun', CgroupPermissions: 'rwm' }], NetworkMode: network },
  });
  await container.start();
  const exec = (argv: string[], stdin?: string) => execInContainer(docker, name, argv, stdin === undefined ? { timeoutMs: 60_000 } : { stdin, timeoutMs: 60_000 });
  const sh = async (argv: string[], stdin?: string) => {
    const result = await exec(argv, stdin);
    if (result.exitCode !== 0) throw new Error(`${argv.join(' ')} in ${name} exited ${result.exitCode}: ${result.stderr.trim()}`);
    return result.stdout;
  };
  return { name, id: container.id, exec, sh };
}

/** Puts the wg-quick file and the CA into the peer (through stdin, never a shell line) and brings the tunnel up. */
export async function configurePeer(peer: PeerContainer, wgQuickFile: string, caPem: string): Promise<void> {
  await peer.sh(['sh', '-c', 'umask 077; cat > /etc/wireguard/wg0.conf'], `${wgQuickFile}\n`);
  await peer.sh(['sh', '-c', 'cat > /root/cell-ca.pem'], `${caPem}\n`);
  await peer.sh(['wg-quick', 'up', 'wg0']);
}

export async function removeContainer(id: string): Promise<void> {
  await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
}

async function sharedLibraries(binary: string): Promise<string[]> {
  try {
    const { stdout } = await run('ldd', [binary]);
    return [...stdout.matchAll(/(\/\S+)\s+\(0x[0-9a-f]+\)/g)].map((m) => m[1] as string);
  } catch {
    return [];
  }
}

async function copyInto(root: string, source: string, target: string): Promise<void> {
  const destination = join(root, target.replace(/^\/+/, ''));
  await mkdir(dirname(destination), { recursive: true });
  await copyFile(await realpath(source), destination);
  await chmod(destination, 0o755);
}
