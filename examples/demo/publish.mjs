#!/usr/bin/env node
// Stands in for the store's publish pipeline (ADR 001), for `make demo`: pushes the example
// images that examples/images/build.sh loaded into the demo registry, signs each pushed digest
// as `cosign sign --key` does (the legacy `.sig` tag), and writes what a publisher ships and an
// admin runs:
//
//   DEMO_DIR/store   examples/store with every image pinned to its registry digest
//   DEMO_DIR/cell    examples/cell under imageVerification enforce, trusting demo-cosign.pub,
//                    with git.pic.ngo mirrored to the demo registry, and the core stack's images
//                    (spec.{caddy,dns,wireguard}.run.image, built by examples/images/build-core.sh)
//                    pushed and signed the same way and pinned as name:tag@sha256:<registry digest>
//
// Under enforce the core containers pass the same image gate as the services, so every image
// the demo runs has been verified against the demo key.
//
// Usage: node examples/demo/publish.mjs DEMO_DIR     (PIC_DEMO_REGISTRY, default 127.0.0.1:5000)
//
// demo-cosign.key is a DEMO KEY, public in this repository: what it signs proves nothing.
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLES = path.dirname(HERE);
const REGISTRY = process.env.PIC_DEMO_REGISTRY ?? '127.0.0.1:5000';
const SOURCE_REGISTRY = 'git.pic.ngo';
const demoDir = process.argv[2];
if (!demoDir) {
  console.error('usage: node examples/demo/publish.mjs DEMO_DIR');
  process.exit(2);
}
const key = createPrivateKey(readFileSync(path.join(HERE, 'demo-cosign.key'), 'utf8'));
const PIN = /(git\.pic\.ngo\/(roof\/[a-z0-9-]+))@(sha256:[0-9a-f]{64})/g;

function docker(...args) {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

function request(method, url, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { ...headers, ...(body ? { 'content-length': body.length } : {}) }, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const digestOf = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function pushBlob(repository, bytes) {
  const start = await request('POST', `http://${REGISTRY}/v2/${repository}/blobs/uploads/`);
  if (start.status !== 202) throw new Error(`blob upload to ${repository}: ${start.status}`);
  const location = new URL(start.headers.location, `http://${REGISTRY}`);
  location.searchParams.set('digest', digestOf(bytes));
  const done = await request('PUT', location.href, bytes, { 'content-type': 'application/octet-stream' });
  if (done.status !== 201) throw new Error(`blob PUT to ${repository}: ${done.status} ${done.body}`);
  return { digest: digestOf(bytes), size: bytes.length };
}

/** `cosign sign --key demo-cosign.key <image>@<digest>`, legacy format, one signature per tag. */
async function signLegacy(repository, dockerReference, digest) {
  const payload = Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' }, optional: null }));
  const layer = await pushBlob(repository, payload);
  const config = await pushBlob(repository, Buffer.from(JSON.stringify({ architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: {} })));
  const mediaType = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', ...layer, annotations: { 'dev.cosignproject.cosign/signature': sign('sha256', payload, key).toString('base64') } }] }));
  const put = await request('PUT', `http://${REGISTRY}/v2/${repository}/manifests/${digest.replace(':', '-')}.sig`, manifest, { 'content-type': mediaType });
  if (put.status !== 201) throw new Error(`signature of ${repository}: ${put.status} ${put.body}`);
}

/** Push the local image `id` as REGISTRY/<repository>; its registry digest. */
function push(id, repository) {
  const target = `${REGISTRY}/${repository}`;
  docker('tag', id, `${target}:demo`);
  let repoDigests;
  try {
    docker('push', '--quiet', `${target}:demo`);
    repoDigests = JSON.parse(docker('image', 'inspect', '--format', '{{json .RepoDigests}}', id));
  } finally {
    docker('rmi', '--no-prune', `${target}:demo`);
  }
  const mine = repoDigests.find((d) => d.startsWith(`${target}@`));
  if (!mine) throw new Error(`after pushing ${id}, Docker records no digest for ${target}`);
  return mine.slice(target.length + 1);
}

const storeOut = path.join(demoDir, 'store');
const cellOut = path.join(demoDir, 'cell');
rmSync(storeOut, { recursive: true, force: true });
rmSync(cellOut, { recursive: true, force: true });
mkdirSync(demoDir, { recursive: true });
cpSync(path.join(EXAMPLES, 'store'), storeOut, { recursive: true });
cpSync(path.join(EXAMPLES, 'cell'), cellOut, { recursive: true });

const published = new Map(); // pinned image ID → registry digest
for (const service of readdirSync(path.join(storeOut, 'services')).sort()) {
  for (const name of ['manifest.json', 'compose-template.yml']) {
    const file = path.join(storeOut, 'services', service, name);
    let text = readFileSync(file, 'utf8');
    for (const [, reference, repository, id] of [...text.matchAll(PIN)]) {
      if (!published.has(reference + id)) {
        const digest = push(id, repository);
        await signLegacy(repository, reference, digest);
        published.set(reference + id, digest);
        console.log(`published ${reference}@${digest} (signed with the demo key)`);
      }
      text = text.split(`${reference}@${id}`).join(`${reference}@${published.get(reference + id)}`);
    }
    writeFileSync(file, text);
  }
}

const cellFile = path.join(cellOut, 'cell.yaml');
const cell = readFileSync(cellFile, 'utf8');
const verification = / {2}imageVerification:\n {4}mode: warn\n/;
if (!verification.test(cell)) throw new Error(`${cellFile}: no "imageVerification: mode: warn" block to replace`);
writeFileSync(
  cellFile,
  `# Written by examples/demo/publish.mjs from examples/cell/cell.yaml: the same cell, under enforce.\n` +
    cell.replace(
      verification,
      `  imageVerification:\n    mode: enforce\n    # The DEMO key: never trust it on a real cell.\n    publicKeys: [${JSON.stringify(path.join(HERE, 'demo-cosign.pub'))}]\n\n  # Pulls and signature look-ups for git.pic.ngo go to the demo registry.\n  registries:\n    mirrors: {${SOURCE_REGISTRY}: "${REGISTRY}"}\n`,
    ),
);
// The core stack: each run.image (git.pic.ngo/roof/<name>:<tag>) pushed, signed and pinned.
const CORE_REFERENCE = /^(git\.pic\.ngo\/(roof\/[a-z0-9-]+)):([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$/;
const cellSpec = parseYaml(cell).spec ?? {};
let pinnedCell = readFileSync(cellFile, 'utf8');
for (const section of ['caddy', 'dns', 'wireguard']) {
  const reference = cellSpec[section]?.run?.image;
  if (typeof reference !== 'string') continue;
  const parts = CORE_REFERENCE.exec(reference);
  if (!parts) throw new Error(`${cellFile}: spec.${section}.run.image ${reference} is not git.pic.ngo/roof/<name>:<tag>; the demo publishes only such images`);
  const [, name, repository] = parts;
  let id;
  try {
    id = docker('image', 'inspect', '--format', '{{.Id}}', reference);
  } catch {
    throw new Error(`${cellFile}: spec.${section}.run.image ${reference} is not loaded; build it with examples/images/build-core.sh`);
  }
  const digest = push(id, repository);
  await signLegacy(repository, name, digest);
  const line = `image: ${reference}\n`;
  if (pinnedCell.split(line).length !== 2) throw new Error(`${cellFile}: expected exactly one line "${line.trim()}" to pin`);
  pinnedCell = pinnedCell.replace(line, `image: ${reference}@${digest}\n`);
  console.log(`published core ${section}: ${reference}@${digest} (signed with the demo key)`);
}
writeFileSync(cellFile, pinnedCell);
console.log(`wrote ${storeOut} (pinned to registry digests) and ${cellOut} (imageVerification enforce, core images pinned and signed)`);
