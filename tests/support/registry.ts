/**
 * A real registry for tests: Debian's `docker-registry` (distribution 2.8, no referrers API) on
 * 127.0.0.1 at a free port, storing into a temporary folder, stopped and removed by `stop()`.
 * Also the plain OCI push calls a signer needs (blobs, manifests), and `pushLocalImage` to put a
 * Docker image into it the way `docker push` does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { docker, followStream } from './docker.js';

export const REGISTRY_BINARY = process.env.PIC_TEST_REGISTRY ?? '/usr/bin/docker-registry';

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  root: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface RegistryOptions {
  /** Reuse this folder (and the images in it); it is kept by stop(). Default: a new temporary one, removed by stop(). */
  root?: string;
  /** More top-level config, e.g. an `auth:` section. */
  extraConfig?: string;
}

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const root = options.root ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-registry-')));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const config = path.join(root, 'config.yml');
    await fs.writeFile(
      config,
      `version: 0.1\nlog:\n  level: error\n  accesslog: {disabled: true}\nstorage:\n  filesystem: {rootdirectory: ${path.join(root, 'data')}}\n  delete: {enabled: true}\nhttp:\n  addr: 127.0.0.1:${port}\n${options.extraConfig ?? ''}`,
    );
    const child = spawn(REGISTRY_BINARY, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const host = `127.0.0.1:${port}`;
    if (await answers(host, child)) {
      return {
        host,
        root,
        async stop() {
          await stopChild(child);
          if (!options.root) await fs.rm(root, { recursive: true, force: true });
        },
      };
    }
    await stopChild(child);
    if (attempt >= 2) throw new Error(`docker-registry did not start on ${host}: ${stderr}`);
  }
}

async function answers(host: string, child: ChildProcess): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) return false;
    const status = await httpStatus(`http://${host}/v2/`).catch(() => 0);
    if (status === 200 || status === 401) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(url: string, method: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function httpStatus(url: string): Promise<number> {
  return (await request(url, 'GET')).status;
}

export function digestOf(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Upload a blob (monolithic POST + PUT); returns its descriptor parts. */
export async function pushBlob(host: string, repository: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = digestOf(bytes);
  const start = await request(`http://${host}/v2/${repository}/blobs/uploads/`, 'POST');
  if (start.status !== 202) throw new Error(`blob upload to ${repository} answered ${start.status}: ${start.body.toString()}`);
  const location = new URL(String(start.headers.location), `http://${host}`);
  location.searchParams.set('digest', digest);
  const done = await request(location.href, 'PUT', bytes, { 'content-type': 'application/octet-stream' });
  if (done.status !== 201) throw new Error(`blob PUT to ${repository} answered ${done.status}: ${done.body.toString()}`);
  return { digest, size: bytes.length };
}

/** Put a manifest under a tag or its digest; returns its digest. */
export async function pushManifest(host: string, repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
  const answer = await request(`http://${host}/v2/${repository}/manifests/${reference}`, 'PUT', bytes, { 'content-type': mediaType });
  if (answer.status !== 201) throw new Error(`manifest PUT ${repository}:${reference} answered ${answer.status}: ${answer.body.toString()}`);
  return digestOf(bytes);
}

export async function deleteManifest(host: string, repository: string, digest: string): Promise<void> {
  const answer = await request(`http://${host}/v2/${repository}/manifests/${digest}`, 'DELETE');
  if (answer.status !== 202 && answer.status !== 404) throw new Error(`manifest DELETE answered ${answer.status}`);
}

export async function getManifest(host: string, repository: string, reference: string): Promise<{ bytes: Buffer; mediaType: string } | undefined> {
  const answer = await request(`http://${host}/v2/${repository}/manifests/${reference}`, 'GET', undefined, {
    accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json',
  });
  if (answer.status === 404) return undefined;
  return { bytes: answer.body, mediaType: String(answer.headers['content-type']) };
}

/**
 * A small synthetic image (config + one layer) pushed straight through the API: enough for
 * signature checks that never run it. Different `seed`s give different digests.
 */
export async function pushSyntheticImage(host: string, repository: string, seed: string): Promise<{ digest: string; size: number; mediaType: string }> {
  const layer = await pushBlob(host, repository, Buffer.from(`layer ${seed}`));
  const config = await pushBlob(host, repository, Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: { Labels: { seed } } })));
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }] }));
  const digest = await pushManifest(host, repository, seed, manifest, mediaType);
  return { digest, size: manifest.length, mediaType };
}

/** `docker push` a local image into the registry as `<host>/<repository>:<tag>`; returns the manifest digest. */
export async function pushLocalImage(localRef: string, host: string, repository: string, tag: string): Promise<string> {
  const target = `${host}/${repository}`;
  await docker.getImage(localRef).tag({ repo: target, tag });
  try {
    const stream = await docker.getImage(`${target}:${tag}`).push({ authconfig: { username: '', password: '', serveraddress: host } });
    const events = await followStream(stream, `push of ${target}:${tag}`);
    const aux = events.map((e) => (e as { aux?: { Digest?: string } }).aux?.Digest).find((d) => typeof d === 'string');
    if (!aux) throw new Error(`push of ${target}:${tag} reported no digest`);
    return aux;
  } finally {
    await docker.getImage(`${target}:${tag}`).remove({ noprune: true }).catch(() => undefined);
  }
}
