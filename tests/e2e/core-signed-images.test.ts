/**
 * The core stack under `enforce`, with its images in a real registry (docker-registry on
 * loopback, reached through a mirror of git.pic.ngo) and the Cell trusting one key: the Caddy
 * image signed with it runs, from exactly the image that verified; the DNS image nobody signed is
 * refused (Core/dns Stalled, Unsigned: the reason a service gets for the same image) and no
 * container of it is created. Under `warn` the same unsigned image runs, and its status says
 * it did not verify.
 *
 * The core images are the real ones (examples/images/build-core.sh, under the test prefix).
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { EventLog } from '../../state/events.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { createTestCell, removeStaleTestCells, removeTestCell, testCellDocument, waitFor, writeDocumentFile, type TestCell } from '../support/cell.js';
import { generateTestKey, signLegacy, writePublicKey } from '../support/cosign-signer.js';
import { docker } from '../support/docker.js';
import { buildCoreImages, CORE_IMAGES } from '../support/peer.js';
import { pushLocalImage, startRegistry, type TestRegistry } from '../support/registry.js';

let registry: TestRegistry | undefined;
let cell: TestCell | undefined;
let operator: Operator | undefined;
let status: StatusStore;
let caddyImage: string;
let dnsImage: string;
let caddyId: string;

function cellDocument(c: TestCell, mode: 'enforce' | 'warn'): string {
  const base = c.subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  return testCellDocument({
    name: c.name,
    domain: `${c.tag}.pic.test`,
    subnet: c.subnet,
    poolEnd: 100,
    allowedImagePrefix: 'git.pic.ngo/roof/',
    extra: [
      `  registries: {mirrors: {git.pic.ngo: "${registry!.host}"}}`,
      `  caddy: {run: {image: "${caddyImage}", address: ${base}.10, container: cell-${c.tag}-caddy}}`,
      `  dns: {run: {image: "${dnsImage}", address: ${base}.11, container: cell-${c.tag}-dns}}`,
    ],
  }).replace('  imageVerification: {mode: warn}\n', `  imageVerification: {mode: ${mode}, publicKeys: [./trusted.pub]}\n`);
}

async function startOperator(c: TestCell): Promise<Operator> {
  const op = new Operator({ cellDir: c.cellDir, stateDir: new StateDir(c.stateDir), docker, logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }), resyncIntervalMs: 60 * 60_000 });
  await op.stateDirReady();
  await op.start();
  return op;
}

async function containerNamed(name: string) {
  const list = await docker.listContainers({ all: true, filters: { label: [`ngo.pic.cell=${cell!.name}`], name: [name] } });
  return list.find((x) => x.Names.includes(`/${name}`));
}

const statusWhere = (key: string, what: string, accept: (s: DocumentStatus) => boolean) =>
  waitFor(`${key} ${what}`, async () => {
    const s = await status.get(key);
    return s && accept(s) ? s : undefined;
  });

const stalledWith = (reason: string) => (s: DocumentStatus) => s.phase === 'Stalled' && s.conditions.some((c) => c.type === 'Stalled' && c.reason === reason);

beforeAll(async () => {
  await removeStaleTestCells();
  await buildCoreImages();
  registry = await startRegistry();
  // One catalog entry, never installed: the cell runs only its core stack.
  cell = await createTestCell([{ id: 'idle' }]);
  status = new StatusStore(path.join(cell.stateDir, 'status'));
  const key = generateTestKey();
  await writePublicKey(cell.cellDir, 'trusted.pub', key);
  // The trusted key signs the Caddy image; nothing signs the DNS image.
  const caddyRepository = `roof/${cell.tag}-core-caddy`;
  const caddyDigest = await pushLocalImage(CORE_IMAGES.caddy, registry.host, caddyRepository, '1.0.0');
  await signLegacy(registry.host, caddyRepository, `git.pic.ngo/${caddyRepository}`, caddyDigest, key);
  const dnsRepository = `roof/${cell.tag}-core-dns`;
  const dnsDigest = await pushLocalImage(CORE_IMAGES.dns, registry.host, dnsRepository, '1.0.0');
  // A tag and a digest for Caddy, a digest alone for the DNS server: both forms are accepted.
  caddyImage = `git.pic.ngo/${caddyRepository}:1.0.0@${caddyDigest}`;
  dnsImage = `git.pic.ngo/${dnsRepository}@${dnsDigest}`;
  caddyId = (await docker.getImage(CORE_IMAGES.caddy).inspect()).Id;
  await writeDocumentFile(path.join(cell.cellDir, 'cell.yaml'), cellDocument(cell, 'enforce'));
}, 300_000);

afterAll(async () => {
  await operator?.stop();
  await removeTestCell(cell ?? { name: 'pictest-none', network: 'pictest-none' }).catch(() => undefined);
  await registry?.stop();
  // The pushed names (tags were removed by the push); the core images themselves are kept.
  for (const image of await docker.listImages({ filters: { reference: [`${registry?.host ?? 'none'}/roof/*`] } })) {
    for (const ref of [...(image.RepoDigests ?? []), ...(image.RepoTags ?? [])]) if (ref.startsWith(`${registry!.host}/`)) await docker.getImage(ref).remove({ noprune: true }).catch(() => undefined);
  }
});

test('under enforce the signed core image runs, the unsigned one is refused and nothing of it is created', async () => {
  const c = cell!;
  operator = await startOperator(c);

  const caddy = await statusWhere('Core/caddy', 'Ready', (s) => s.phase === 'Ready');
  expect(caddy.facts?.verification).toMatch(/^enforce: git\.pic\.ngo\/roof\/.*-core-caddy:1\.0\.0@sha256:[0-9a-f]{12}… verified with .*trusted\.pub \(key [0-9a-f]{16}, cosign-legacy\)$/);
  expect(caddy.facts?.images).toEqual([{ container: `cell-${c.tag}-caddy`, reference: caddyImage, verified: true }]);
  const running = await docker.getContainer(`cell-${c.tag}-caddy`).inspect();
  expect(running.State.Running).toBe(true);
  // Created from the local image that carries the verified registry digest, by its Id.
  expect(running.Image).toBe(caddyId);
  expect(running.Config.Image).toBe(caddyId);
  // Pulled by its digest through the mirror (the push left the engine no name for that digest).
  const events = await new EventLog(new StateDir(c.stateDir).paths.events).recent({ key: 'Core/caddy', limit: 50 });
  expect(events.map((e) => e.reason)).toEqual(expect.arrayContaining(['Verified', 'Pulled']));
  expect(events.find((e) => e.reason === 'Pulled')?.message).toContain(`pulled ${registry!.host}/roof/${c.tag}-core-caddy@sha256:`);

  const dns = await statusWhere('Core/dns', 'Stalled (Unsigned)', stalledWith('Unsigned'));
  expect(dns.conditions.find((x) => x.type === 'Stalled')?.message).toMatch(/no cosign signature found .*; image verification is enforce, so nothing of Core\/dns is created$/);
  expect(dns.facts?.images).toEqual([{ container: `cell-${c.tag}-dns`, reference: dnsImage, verified: false }]);
  await operator.queue.whenSettled();
  expect(await containerNamed(`cell-${c.tag}-dns`)).toBeUndefined();

  // The same unsigned image under warn: it runs, and its status says it did not verify. A new
  // operator reads the edited Cell (a running one re-checks core images on its next resync: the
  // core keys are not requeued by a change of imageVerification alone).
  await operator.stop();
  operator = undefined;
  await writeDocumentFile(path.join(c.cellDir, 'cell.yaml'), cellDocument(c, 'warn'));
  operator = await startOperator(c);
  const warned = await statusWhere('Core/dns', 'created under warn', (s) => s.facts?.state === 'running' && String(s.facts?.verification).startsWith('warn:'));
  expect(warned.facts?.verification).toMatch(/^warn: git\.pic\.ngo\/roof\/.*-core-dns@sha256:[0-9a-f]{12}… NOT verified: Unsigned$/);
  expect(warned.facts?.images).toEqual([{ container: `cell-${c.tag}-dns`, reference: dnsImage, verified: false }]);
  expect((await containerNamed(`cell-${c.tag}-dns`))?.State).toBe('running');
});
