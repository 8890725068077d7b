/**
 * Helpers for tests that run against the real dockerd: a busybox image built without a registry,
 * unique names, a free test subnet, and removal of what tests leave behind.
 *
 * Everything a test creates should carry `TEST_LABELS` (plus a label of its own run, e.g.
 * `ngo.pic.test-run=<name>`), so that its afterAll can remove exactly its own resources and a
 * crashed run's leftovers can be found later.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';

const run = promisify(execFile);

/** A client for the local engine on its default socket. */
export const docker = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });

/** The label every test resource carries. */
export const TEST_LABEL = 'ngo.pic.test';
export const TEST_LABELS: Record<string, string> = { [TEST_LABEL]: '1' };

/** Where the busybox of Debian's busybox-static package lives. */
const BUSYBOX = process.env.BUSYBOX ?? '/bin/busybox';

export interface BusyboxImageOptions {
  /** Extra files, path inside the image → content; e.g. a unique file makes a unique layer. */
  files?: Record<string, string>;
  /** Import again even if the tag exists (a new image Id each time). */
  rebuild?: boolean;
  /** Default command; `sh` when not given. */
  cmd?: string[];
  /** Image labels; TEST_LABELS are always added. */
  labels?: Record<string, string>;
}

/**
 * Builds (like `docker import`) an image holding busybox and a link for each of its applets
 * (sh, httpd, nc, sleep, wget, tar...), /etc/passwd with root and nobody, and empty /tmp and
 * /www. Returns the image Id. With an existing tag and no `rebuild`, the existing image is used.
 */
export async function buildBusyboxImage(tag: string, options: BusyboxImageOptions = {}): Promise<string> {
  if (!options.rebuild) {
    try {
      return (await docker.getImage(tag).inspect()).Id;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
  }
  const work = await mkdtemp(join(tmpdir(), 'pictest-image-'));
  try {
    const root = join(work, 'rootfs');
    for (const dir of ['bin', 'etc', 'tmp', 'www', 'root', 'var', 'data']) await mkdir(join(root, dir), { recursive: true });
    await chmod(join(root, 'tmp'), 0o1777);
    try {
      await copyFile(BUSYBOX, join(root, 'bin', 'busybox'));
    } catch (err) {
      throw new Error(`cannot copy ${BUSYBOX} (install Debian's busybox-static): ${(err as Error).message}`);
    }
    await chmod(join(root, 'bin', 'busybox'), 0o755);
    const { stdout } = await run(BUSYBOX, ['--list']);
    for (const applet of stdout.split('\n').map((s) => s.trim())) {
      if (applet && applet !== 'busybox' && /^[A-Za-z0-9_.[-]+$/.test(applet)) {
        await symlink('busybox', join(root, 'bin', applet));
      }
    }
    await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
    await writeFile(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    for (const [path, content] of Object.entries(options.files ?? {})) {
      const target = join(root, path.replace(/^\/+/, ''));
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, content);
    }
    const tarPath = join(work, 'rootfs.tar');
    await run('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarPath, '.']);

    const { repo, tag: version } = splitTag(tag);
    const labels = { ...(options.labels ?? {}), ...TEST_LABELS };
    const changes = [
      'ENV PATH=/bin',
      `CMD ${JSON.stringify(options.cmd ?? ['sh'])}`,
      ...Object.entries(labels).map(([k, v]) => `LABEL ${JSON.stringify(k)}=${JSON.stringify(v)}`),
    ];
    const stream = await docker.importImage(createReadStream(tarPath), { repo, tag: version, changes });
    await followStream(stream, `import of ${tag}`);
    return (await docker.getImage(tag).inspect()).Id;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Reads a Docker progress stream to its end; rejects on an `{"error": ...}` event in it. */
export async function followStream(stream: NodeJS.ReadableStream, what: string): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, output: Record<string, unknown>[]) => {
      if (err) return reject(new Error(`${what} failed: ${err.message}`));
      const failed = output.find((e) => e.error !== undefined || e.errorDetail !== undefined);
      if (failed) return reject(new Error(`${what} failed: ${String((failed.error as string | undefined) ?? JSON.stringify(failed.errorDetail))}`));
      resolve(output);
    });
  });
}

/** `prefix-<8 hex>`: unique enough for names that tests running side by side create. */
/**
 * The actions of Docker's events that match `filters`, from now until `stop(mark)`: `mark` makes an
 * event the filters see and that carries the marker it is given (e.g. an exec of `echo <marker>` in
 * a watched container). Docker sends events in order, so every event before the marker's is in the
 * list stop returns. `close` ends the recording without waiting (for a test that failed).
 */
export async function recordDockerEvents(filters: Record<string, string[]>): Promise<{ stop(mark: (marker: string) => Promise<unknown>): Promise<string[]>; close(): void }> {
  const marker = `pictest-marker-${randomBytes(4).toString('hex')}`;
  const stream = (await docker.getEvents({ filters })) as NodeJS.ReadableStream & { destroy(): void };
  const seen: string[] = [];
  let buffered = '';
  let sawMarker: () => void = () => undefined;
  const markerSeen = new Promise<void>((resolve) => (sawMarker = resolve));
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (!line) continue;
      const action = String((JSON.parse(line) as { Action?: string }).Action ?? '');
      if (action.includes(marker)) sawMarker();
      else seen.push(action);
    }
  });
  return {
    async stop(mark) {
      try {
        await mark(marker);
        await markerSeen;
        return seen;
      } finally {
        stream.destroy();
      }
    },
    close: () => stream.destroy(),
  };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/**
 * A /24 inside 10.213.0.0/16 that no existing Docker network overlaps. Another test may take it
 * between this call and the network's creation: callers retry on an overlap error.
 */
export async function pickSubnet(prefixLength = 24): Promise<string> {
  const networks = await docker.listNetworks();
  const used = networks
    .flatMap((n) => n.IPAM?.Config ?? [])
    .map((c) => parseCidr(c.Subnet ?? ''))
    .filter((r): r is [number, number] => r !== undefined);
  // A /22 spans four /24s: its third octet is a multiple of four.
  const step = 2 ** (24 - Math.min(24, prefixLength));
  const start = randomBytes(1)[0] ?? 0;
  for (let i = 0; i < 256; i += step) {
    const third = Math.floor(((start + i) % 256) / step) * step;
    const candidate = `10.213.${third}.0/${prefixLength}`;
    const [lo, hi] = parseCidr(candidate) as [number, number];
    if (!used.some(([ulo, uhi]) => ulo <= hi && lo <= uhi)) return candidate;
  }
  throw new Error(`no free /${prefixLength} left in 10.213.0.0/16: remove leftover test networks (docker network ls)`);
}

/** The first and last address of an IPv4 CIDR, as numbers. */
function parseCidr(cidr: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) return undefined;
  const address = m.slice(1, 5).reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(m[5]));
  const base = Math.floor(address / size) * size;
  return [base, base + size - 1];
}

export interface CleanupOptions {
  /**
   * Only resources created longer ago than this. Use it for leftovers of earlier runs, so a
   * suite running at the same time (another jest worker, another checkout) keeps its own.
   */
  olderThanMs?: number;
  /** Also remove images carrying the label (off by default: images are shared between suites). */
  images?: boolean;
}

/**
 * Removes containers (with their anonymous volumes), then networks and named volumes, carrying
 * `label` ("key" or "key=value"). Returns how many of each went.
 */
export async function cleanupTestResources(
  label: string,
  options: CleanupOptions = {},
): Promise<{ containers: number; networks: number; volumes: number; images: number }> {
  const filters = { label: [label] };
  const cutoff = options.olderThanMs === undefined ? Infinity : Date.now() - options.olderThanMs;
  const old = (createdMs: number) => Number.isNaN(createdMs) || createdMs < cutoff;
  const counts = { containers: 0, networks: 0, volumes: 0, images: 0 };

  for (const c of await docker.listContainers({ all: true, filters })) {
    if (!old(c.Created * 1000)) continue;
    if (await ignoreMissing(docker.getContainer(c.Id).remove({ force: true, v: true }))) counts.containers++;
  }
  for (const n of await docker.listNetworks({ filters })) {
    if (!old(Date.parse(n.Created))) continue;
    if (await ignoreMissing(docker.getNetwork(n.Id).remove())) counts.networks++;
  }
  const { Volumes } = await docker.listVolumes({ filters });
  for (const v of Volumes ?? []) {
    const created = (v as { CreatedAt?: string }).CreatedAt;
    if (!old(created ? Date.parse(created) : NaN)) continue;
    if (await ignoreMissing(docker.getVolume(v.Name).remove())) counts.volumes++;
  }
  if (options.images) {
    for (const i of await docker.listImages({ filters })) {
      if (!old(i.Created * 1000)) continue;
      if (await ignoreMissing(docker.getImage(i.Id).remove({ force: true }))) counts.images++;
    }
  }
  return counts;
}

/** true when done, false when the thing was already gone (or is being removed by someone else). */
async function ignoreMissing(call: Promise<unknown>): Promise<boolean> {
  try {
    await call;
    return true;
  } catch (err) {
    const code = (err as { statusCode?: number }).statusCode;
    if (code === 404 || code === 409) return false;
    throw err;
  }
}

function splitTag(ref: string): { repo: string; tag: string } {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { repo: ref, tag: 'latest' };
}
