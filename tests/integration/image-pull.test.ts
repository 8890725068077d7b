/**
 * Pulling through dockerd from a real registry: Debian's docker-registry (distribution) started
 * on 127.0.0.1 with its storage in a temporary folder. dockerd trusts 127.0.0.0/8 without TLS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imageForCreate, pullImage, resolveImage } from '../../reconcilers/containers/image.js';
import { buildBusyboxImage, docker, followStream, uniqueName } from '../support/docker.js';

const REGISTRY_BIN = process.env.DOCKER_REGISTRY ?? '/usr/bin/docker-registry';
const runName = uniqueName('pictest');

let registry: ChildProcess | undefined;
let registryLog = '';
let workDir = '';
let port = 0;
let repo = '';
let imageId = '';
let pushedDigest = '';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function startRegistry(): Promise<void> {
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(workDir, 'storage')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n');
  const configPath = join(workDir, 'config.yml');
  await writeFile(configPath, config);
  registry = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  registry.stdout?.on('data', (d: Buffer) => (registryLog += d.toString()));
  registry.stderr?.on('data', (d: Buffer) => (registryLog += d.toString()));
  const spawned = registry;
  const exited = new Promise<never>((_, reject) => {
    spawned.once('error', (err) => reject(new Error(`cannot start ${REGISTRY_BIN} (install docker-registry): ${err.message}`)));
    spawned.once('exit', (code) => reject(new Error(`docker-registry exited with ${code}: ${registryLog}`)));
  });
  const ready = (async () => {
    for (let i = 0; i < 100; i++) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v2/`);
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`docker-registry did not answer on 127.0.0.1:${port}: ${registryLog}`);
  })();
  await Promise.race([ready, exited]);
  exited.catch(() => {});
}

async function stopRegistry(): Promise<void> {
  const child = registry;
  registry = undefined;
  if (!child || child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function removeLocalImage(): Promise<void> {
  try {
    await docker.getImage(imageId).remove({ force: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'pictest-registry-'));
  port = await freePort();
  await startRegistry();
  repo = `127.0.0.1:${port}/pictest/bb`;
  // A file of its own makes a layer no other local image has, so the pull really downloads it.
  imageId = await buildBusyboxImage(`${repo}:1`, { rebuild: true, files: { '/etc/pictest-run': `${runName}\n` } });
  const push = await docker.getImage(repo).push({ tag: '1', authconfig: {} });
  const output = await followStream(push, `push of ${repo}:1`);
  const aux = output.map((e) => e.aux as { Digest?: string } | undefined).find((a) => a?.Digest);
  pushedDigest = aux?.Digest ?? '';
  expect(pushedDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
  await removeLocalImage();
});

afterAll(async () => {
  await stopRegistry();
  await removeLocalImage();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe('pulling images from a registry', () => {
  test('by tag: absent before, present after, progress summarised', async () => {
    const ref = `${repo}:1`;
    expect(await resolveImage(docker, ref)).toEqual({ present: false });

    const lines: string[] = [];
    await pullImage(docker, ref, (line) => lines.push(line));
    expect(await resolveImage(docker, ref)).toEqual({ present: true, id: imageId });

    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.startsWith(`${ref}: `))).toBe(true);
    expect(lines.some((l) => /Pull complete/.test(l))).toBe(true);
    // At most one line per state of each layer: no line twice.
    expect(new Set(lines).size).toBe(lines.length);
  });

  test('by digest: the pinned reference is satisfied through RepoDigests', async () => {
    await removeLocalImage();
    const ref = `${repo}@${pushedDigest}`;
    expect(await resolveImage(docker, ref)).toEqual({ present: false });

    await pullImage(docker, ref);
    const resolved = await resolveImage(docker, ref);
    expect(resolved).toEqual({ present: true, id: imageId });
    expect((await docker.getImage(imageId).inspect()).RepoDigests).toContain(ref);
    // A registry digest is not the image Id: create uses the reference as it is.
    expect(imageForCreate(ref, resolved)).toBe(ref);
  });

  test('a reference pinned to a local image Id is satisfied by the Id', async () => {
    const ref = `git.pic.ngo/roof/pictest-not-in-any-registry@${imageId}`;
    const resolved = await resolveImage(docker, ref);
    expect(resolved).toEqual({ present: true, id: imageId });
    expect(imageForCreate(ref, resolved)).toBe(imageId);
    const other = `git.pic.ngo/roof/pictest-not-in-any-registry@sha256:${'0'.repeat(64)}`;
    expect(await resolveImage(docker, other)).toEqual({ present: false });
  });

  test('a missing tag rejects with the registry message', async () => {
    const err = await rejection(pullImage(docker, `${repo}:missing`));
    expect(err.message).toContain(`${repo}:missing`);
    expect(err.message).toMatch(/manifest unknown|not found/i);
  });

  test('a failure reported inside the pull stream rejects (a blob gone from the registry)', async () => {
    await removeLocalImage();
    const res = await fetch(`http://127.0.0.1:${port}/v2/pictest/bb/manifests/1`, {
      headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    const manifest = (await res.json()) as { layers: { digest: string }[] };
    const layer = manifest.layers[0]?.digest.replace(/^sha256:/, '') ?? '';
    expect(layer).toMatch(/^[0-9a-f]{64}$/);
    const blobDir = join(workDir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', layer.slice(0, 2), layer);
    expect(await readdir(blobDir)).toContain('data');
    await rm(join(blobDir, 'data'));

    const lines: string[] = [];
    const err = await rejection(pullImage(docker, `${repo}:1`, (line) => lines.push(line)));
    expect(err.message).toContain(`pull of ${repo}:1 failed`);
    // The pull had started (Docker answered 200 and streamed progress) before the failure.
    expect(lines.length).toBeGreaterThan(0);
    expect((await resolveImage(docker, `${repo}:1`)).present).toBe(false);
  });

  test('a registry that is down rejects', async () => {
    await stopRegistry();
    const err = await rejection(pullImage(docker, `${repo}:1`));
    expect(err.message).toContain(`pull of ${repo}:1 failed`);
    expect(err.message).toMatch(/connection refused|connect/i);
  });
});
