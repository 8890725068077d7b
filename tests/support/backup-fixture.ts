/**
 * A fake installed service for backup tests: containers and named volumes labelled the way the
 * containers pipeline labels them (cell, owner, service key, volume key), data written into the
 * volumes by a throwaway busybox container, and a fingerprint of a volume's tree computed inside a
 * container by busybox itself (find, stat, sha256sum) — independent of the engine's own tar reader.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { LABEL } from '../../reconcilers/containers/labels.js';
import type { HelperSettings } from '../../reconcilers/backup/helper.js';
import { buildBusyboxImage, docker, TEST_LABELS } from './docker.js';

const exec = promisify(execFile);

export const BUSYBOX_IMAGE = 'pictest/busybox:1';
export const HELPER_IMAGE = 'pictest/backup-helper:1';
export const NO_TAR_IMAGE = 'pictest/no-tar:1';

export interface FakeCell {
  name: string;
  tag: string;
  labels: Record<string, string>;
  helper: HelperSettings;
  dataDir: string;
  root: string;
}

export async function createFakeCell(): Promise<FakeCell> {
  await buildBusyboxImage(BUSYBOX_IMAGE);
  const tag = `pt${randomBytes(4).toString('hex')}`;
  const name = `pictest-${tag}`;
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-backup-'));
  const dataDir = path.join(root, 'data');
  await fs.mkdir(dataDir, { recursive: true });
  const labels = { [LABEL.cell]: name, ...TEST_LABELS, 'ngo.pic.test-run': name };
  return { name, tag, labels, helper: { image: HELPER_IMAGE, labels, namePrefix: `pictest-${tag}` }, dataDir, root };
}

/** Everything of the fake cell: containers, volumes (helpers' too: they carry the cell label), folders. */
export async function removeFakeCell(cell: FakeCell): Promise<void> {
  const filters = { label: [`ngo.pic.test-run=${cell.name}`] };
  for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
  await fs.rm(cell.root, { recursive: true, force: true });
}

export async function createServiceVolume(cell: FakeCell, service: string, key: string): Promise<string> {
  const name = `${cell.tag}-${service}-${key}`;
  await docker.createVolume({ Name: name, Labels: { ...cell.labels, [LABEL.owner]: `ServiceInstall/${service}`, [LABEL.volume]: key } });
  return name;
}

export interface FakeContainerSpec {
  service: string;
  key: string;
  image?: string;
  cmd?: string[];
  mounts: { volume?: string; bind?: string; target: string }[];
}

export async function createServiceContainer(cell: FakeCell, spec: FakeContainerSpec): Promise<Dockerode.Container> {
  const container = await docker.createContainer({
    name: `cell-${cell.tag}-${spec.service}-${spec.key}`,
    Image: spec.image ?? BUSYBOX_IMAGE,
    Cmd: spec.cmd ?? ['sleep', '100000'],
    Labels: { ...cell.labels, [LABEL.owner]: `ServiceInstall/${spec.service}`, [LABEL.service]: spec.key },
    StopTimeout: 1,
    HostConfig: {
      NetworkMode: 'none',
      Mounts: spec.mounts.map((m) => (m.volume ? { Type: 'volume' as const, Source: m.volume, Target: m.target } : { Type: 'bind' as const, Source: m.bind as string, Target: m.target })),
    },
  });
  await container.start();
  return container;
}

/** Run a busybox script with `volume` at /d; its output. The script is a constant of the test. */
export async function inVolume(cell: Pick<FakeCell, 'labels'>, volume: string, script: string, args: string[] = []): Promise<string> {
  const c = await docker.createContainer({
    Image: BUSYBOX_IMAGE,
    Cmd: ['sh', '-c', script, 'sh', ...args],
    Labels: cell.labels,
    // A volume by name, or a folder on the Docker host by its absolute path.
    HostConfig: { NetworkMode: 'none', Mounts: [{ Type: volume.startsWith('/') ? 'bind' : 'volume', Source: volume, Target: '/d' }] },
  });
  try {
    await c.start();
    const { StatusCode } = (await c.wait()) as { StatusCode: number };
    const logs = await c.logs({ stdout: true, stderr: true });
    const text = demux(logs);
    if (StatusCode !== 0) throw new Error(`script in ${volume} failed (${StatusCode}): ${text}`);
    return text;
  } finally {
    await c.remove({ force: true });
  }
}

function demux(buf: Buffer): string {
  const parts: string[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const len = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + len).toString('utf8'));
    i += 8 + len;
  }
  return parts.join('');
}

/** Files of several shapes: nested folders, an owner other than root, a symlink inside, an empty file, 2 MiB of random bytes. */
export const FILL_SCRIPT = [
  'set -e',
  'mkdir -p /d/notes/2026/12 /d/empty-dir',
  'echo "first note" > /d/notes/2026/12/01.md',
  'printf "" > /d/notes/empty.txt',
  'echo secret > /d/notes/private && chmod 600 /d/notes/private && chown 1000:1000 /d/notes/private',
  'ln -s 2026/12/01.md /d/notes/latest',
  'dd if=/dev/urandom of=/d/big.bin bs=1024 count=2048 2>/dev/null',
  'echo "$1" > /d/marker',
].join('\n');

/** One line per entry: path, type, size, mode, owner, link target and content hash. Sorted. */
export const FINGERPRINT_SCRIPT = [
  'cd /d',
  'find . -mindepth 1 | sort | while read -r p; do',
  '  if [ -L "$p" ]; then echo "$p link $(readlink "$p") $(stat -c "%u:%g" "$p")";',
  '  elif [ -d "$p" ]; then echo "$p dir $(stat -c "%a %u:%g" "$p")";',
  '  else echo "$p file $(stat -c "%s %a %u:%g" "$p") $(sha256sum "$p" | cut -d" " -f1)"; fi',
  'done',
].join('\n');

export async function fingerprint(cell: FakeCell, volume: string): Promise<string> {
  return inVolume(cell, volume, FINGERPRINT_SCRIPT);
}

/** An image with no tar and no busybox: `sleep` from coreutils and the libraries ldd lists. */
export async function buildNoTarImage(): Promise<void> {
  try {
    await docker.getImage(NO_TAR_IMAGE).inspect();
    return;
  } catch {
    // build it
  }
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-notar-'));
  try {
    const root = path.join(work, 'rootfs');
    const sleep = (await exec('sh', ['-c', 'command -v sleep'])).stdout.trim();
    const files = [sleep];
    const { stdout } = await exec('ldd', [sleep]);
    for (const m of stdout.matchAll(/(\/[^\s)]+)/g)) files.push(m[1] as string);
    for (const f of files) {
      const real = await fs.realpath(f);
      const target = path.join(root, f);
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.copyFile(real, target);
      await fs.chmod(target, 0o755);
    }
    await fs.mkdir(path.join(root, 'data'), { recursive: true });
    const tarFile = path.join(work, 'rootfs.tar');
    await exec('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarFile, '.']);
    const { createReadStream } = await import('node:fs');
    const changes = [`CMD ["${sleep}", "100000"]`, ...Object.entries(TEST_LABELS).map(([k, v]) => `LABEL ${JSON.stringify(k)}=${JSON.stringify(v)}`)];
    const stream = await docker.importImage(createReadStream(tarFile), { repo: NO_TAR_IMAGE.split(':')[0], tag: NO_TAR_IMAGE.split(':')[1], changes });
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

export async function sleepBinary(): Promise<string> {
  return (await exec('sh', ['-c', 'command -v sleep'])).stdout.trim();
}

/** Wait until the background removals of a restore's previous trees (cleanup helpers) of this cell are done. */
export async function cleanupsDone(cell: FakeCell): Promise<void> {
  const filters = { label: [`ngo.pic.test-run=${cell.name}`, 'ngo.pic.backup.role=cleanup'] };
  const deadline = Date.now() + 120_000;
  while ((await docker.listContainers({ all: true, filters })).length > 0) {
    if (Date.now() > deadline) throw new Error('a cleanup helper is still running after 2 minutes');
    await new Promise((r) => setTimeout(r, 200));
  }
}
