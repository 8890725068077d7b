/**
 * Signed images end to end: the operator on a test cell under `enforce`, with its images in a
 * real registry (docker-registry on loopback) reached through a mirror mapping of git.pic.ngo.
 * Signed images are pulled by digest and run; every refused one leaves nothing behind, while
 * what ran before keeps running; keys rotate.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { main } from '../../controllers/cli/main.js';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { createTestCell, removeStaleTestCells, removeTestCell, testCellDocument, TEST_IMAGE, waitFor, writeDocumentFile, type TestCell } from '../support/cell.js';
import { generateTestKey, signBundle, signLegacy, writePublicKey, type TestKey } from '../support/cosign-signer.js';
import { buildBusyboxImage, docker } from '../support/docker.js';
import { getManifest, pushLocalImage, pushSyntheticImage, startRegistry, type TestRegistry } from '../support/registry.js';

const SERVICES = ['legacy', 'bundle', 'unsigned', 'stranger', 'replay', 'malformed', 'late'] as const;
type ServiceId = (typeof SERVICES)[number];

let registry: TestRegistry;
let cell: TestCell;
let operator: Operator | undefined;
let status: StatusStore;
let oldKey: TestKey;
let newKey: TestKey;
let imageId: string;
const pulled: string[] = [];
const refs = new Map<ServiceId, { repository: string; ref: string; digest: string }>();

function cellDocument(keys: string[], mode = 'enforce'): string {
  const base = testCellDocument({ name: cell.name, domain: `${cell.tag}.pic.test`, subnet: cell.subnet, poolEnd: 100, allowedImagePrefix: 'git.pic.ngo/roof/', extra: [`  registries: {mirrors: {git.pic.ngo: "${registry.host}"}}`] });
  return base.replace('  imageVerification: {mode: warn}\n', `  imageVerification: {mode: ${mode}, publicKeys: [${keys.join(', ')}]}\n`);
}

async function pinCatalog(id: ServiceId, ref: string): Promise<void> {
  const dir = path.join(cell.storeDir, 'services', id);
  for (const file of ['manifest.json', 'compose-template.yml']) {
    const p = path.join(dir, file);
    await fs.writeFile(p, (await fs.readFile(p, 'utf8')).split(TEST_IMAGE).join(ref));
  }
}

async function startOperator(): Promise<Operator> {
  const op = new Operator({ cellDir: cell.cellDir, stateDir: new StateDir(cell.stateDir), docker, logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }), resyncIntervalMs: 60 * 60_000 });
  await op.stateDirReady();
  await op.start();
  return op;
}

async function containerOf(id: ServiceId) {
  const list = await docker.listContainers({ all: true, filters: { label: [`ngo.pic.cell=${cell.name}`], name: [cell.containerName(id)] } });
  return list.find((c) => c.Names.includes(`/${cell.containerName(id)}`));
}

const phaseOf = (id: ServiceId, phase: DocumentStatus['phase'], reason?: string) =>
  waitFor(`ServiceInstall/${id} ${phase}${reason ? ` (${reason})` : ''}`, async () => {
    const s = await status.get(`ServiceInstall/${id}`);
    if (s?.phase !== phase) return undefined;
    if (reason && !s.conditions.some((c) => c.status === 'True' && c.type !== 'Ready' && c.reason === reason)) return undefined;
    return s;
  });

beforeAll(async () => {
  await removeStaleTestCells();
  registry = await startRegistry();
  imageId = await buildBusyboxImage(TEST_IMAGE);
  cell = await createTestCell(SERVICES.map((id) => ({ id })));
  status = new StatusStore(`${cell.stateDir}/status`);
  [oldKey, newKey] = [generateTestKey(), generateTestKey()];
  const stranger = generateTestKey();
  await writePublicKey(cell.cellDir, 'old.pub', oldKey);
  await writePublicKey(cell.cellDir, 'new.pub', newKey);
  const other = await pushSyntheticImage(registry.host, `roof/${cell.tag}-other`, 'other');
  for (const id of SERVICES) {
    const repository = `roof/${cell.tag}-${id}`;
    const digest = await pushLocalImage(TEST_IMAGE, registry.host, repository, '1');
    const dockerReference = `git.pic.ngo/${repository}`;
    const ref = `${dockerReference}@${digest}`;
    refs.set(id, { repository, ref, digest });
    pulled.push(`${registry.host}/${repository}@${digest}`);
    await pinCatalog(id, ref);
    const m = (await getManifest(registry.host, repository, digest))!;
    const subject = { digest, size: m.bytes.length, mediaType: m.mediaType };
    if (id === 'legacy' || id === 'late') await signLegacy(registry.host, repository, dockerReference, digest, oldKey);
    if (id === 'bundle') await signBundle(registry.host, repository, dockerReference, subject, newKey);
    if (id === 'stranger') await signLegacy(registry.host, repository, dockerReference, digest, stranger);
    if (id === 'replay') await signLegacy(registry.host, repository, dockerReference, digest, oldKey, { claimedDigest: other.digest });
    if (id === 'malformed') await signBundle(registry.host, repository, dockerReference, subject, oldKey, { bundleText: 'not json' });
  }
  await writeDocumentFile(path.join(cell.cellDir, 'cell.yaml'), cellDocument(['./old.pub', './new.pub']));
}, 180_000);

afterAll(async () => {
  await operator?.stop();
  if (cell) await removeTestCell(cell);
  for (const ref of pulled) await docker.getImage(ref).remove({ noprune: true }).catch(() => undefined);
  await registry?.stop();
}, 60_000);

/** Every file under `dir` (none when it does not exist). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name)).sort();
}

describe('under enforce', () => {
  test('pic plan runs the image gate the operator runs: an unsigned image is the refusal, not a create; nothing is written', async () => {
    for (const id of SERVICES.filter((s) => s !== 'late')) await cell.writeService(id);
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['plan', '--cell', cell.cellDir, '--state-dir', cell.stateDir], { out: (l) => out.push(l), err: (l) => err.push(l) });
    expect(code).toBe(1);
    const said = out.join('\n');
    // Signed images verify (from the registry, through the mirror): their containers are promised.
    expect(said).toContain(`+ create container ${cell.containerName('legacy')}`);
    expect(said).toContain(`+ create container ${cell.containerName('bundle')}`);
    // The others are refused as the operator refuses them, each naming its image and the reason.
    for (const [id, reason] of [['unsigned', 'Unsigned'], ['stranger', 'UnknownKey'], ['replay', 'DigestMismatch'], ['malformed', 'Malformed']] as const) {
      expect(said).not.toContain(`create container ${cell.containerName(id)}`);
      expect(err.find((l) => l.includes(`ServiceInstall/${id} is refused (${reason}): `))).toContain(refs.get(id)!.ref);
    }
    // A dry run: no verification cached, no status, no address, no secret, no container.
    expect(await filesUnder(cell.stateDir)).toEqual([]);
    expect(await containerOf('legacy')).toBeUndefined();
  }, 120_000);

  test('signed images (legacy and bundle) are pulled by digest through the mirror and run', async () => {
    operator = await startOperator();
    for (const id of SERVICES.filter((s) => s !== 'late')) await cell.writeService(id);
    const legacy = await phaseOf('legacy', 'Ready');
    const bundle = await phaseOf('bundle', 'Ready');
    expect(legacy.facts?.signatures).toEqual([expect.objectContaining({ reference: refs.get('legacy')!.ref, verified: true, format: 'cosign-legacy', keyId: oldKey.id.slice(0, 16) })]);
    expect(bundle.facts?.signatures).toEqual([expect.objectContaining({ verified: true, format: 'sigstore-bundle-tag-index', keyId: newKey.id.slice(0, 16) })]);
    expect(String(legacy.facts?.verification)).toContain('verified with');
    expect(legacy.facts?.images).toEqual([{ container: cell.containerName('legacy'), reference: refs.get('legacy')!.ref, verified: true }]);
    // The container runs the very image that was verified, named by its Id.
    expect((await containerOf('legacy'))?.ImageID).toBe(imageId);
    // The verification and the pull are events of the service.
    const { EventLog } = await import('../../state/events.js');
    const reasons = (await new EventLog(new StateDir(cell.stateDir).paths.events).recent({ key: 'ServiceInstall/legacy' })).map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Verified', 'Pulling', 'Pulled']));
    const local = await docker.getImage(`${registry.host}/${refs.get('legacy')!.repository}@${refs.get('legacy')!.digest}`).inspect();
    expect(local.RepoDigests).toContain(`${registry.host}/${refs.get('legacy')!.repository}@${refs.get('legacy')!.digest}`);
  }, 180_000);

  test.each([
    ['unsigned', 'Unsigned'],
    ['stranger', 'UnknownKey'],
    ['replay', 'DigestMismatch'],
    ['malformed', 'Malformed'],
  ] as const)('%s is Stalled with %s and nothing of it is created', async (id, reason) => {
    const s = await phaseOf(id, 'Stalled', reason);
    expect(s.conditions.find((c) => c.type === 'Stalled')?.message).toContain(refs.get(id)!.ref);
    expect(await containerOf(id)).toBeUndefined();
    const volumes = (await docker.listVolumes({ filters: { label: [`ngo.pic.owner=ServiceInstall/${id}`, `ngo.pic.cell=${cell.name}`] } })).Volumes ?? [];
    expect(volumes).toEqual([]);
  }, 120_000);

  test('removing the old key refuses its image at the next reconcile; the running version keeps running', async () => {
    const before = await containerOf('legacy');
    expect(before?.State).toBe('running');
    await writeDocumentFile(path.join(cell.cellDir, 'cell.yaml'), cellDocument(['./new.pub']));
    await phaseOf('legacy', 'Stalled', 'UnknownKey');
    const after = await containerOf('legacy');
    expect(after?.Id).toBe(before?.Id);
    expect(after?.State).toBe('running');
    // The image signed by the new key still verifies.
    expect((await status.get('ServiceInstall/bundle'))?.phase).toBe('Ready');
    // Both keys listed again: the old image verifies again.
    await writeDocumentFile(path.join(cell.cellDir, 'cell.yaml'), cellDocument(['./old.pub', './new.pub']));
    await phaseOf('legacy', 'Ready');
  }, 120_000);

  test('under warn a refused image runs, with the reason in its status; back under enforce it is refused and keeps running', async () => {
    await writeDocumentFile(path.join(cell.cellDir, 'cell.yaml'), cellDocument(['./old.pub', './new.pub'], 'warn'));
    const s = await phaseOf('unsigned', 'Ready');
    expect(s.facts?.signatures).toEqual([expect.objectContaining({ verified: false, reason: 'Unsigned' })]);
    expect(String(s.facts?.verification)).toContain('NOT verified: Unsigned');
    const running = await containerOf('unsigned');
    expect(running?.State).toBe('running');
    await writeDocumentFile(path.join(cell.cellDir, 'cell.yaml'), cellDocument(['./old.pub', './new.pub']));
    await phaseOf('unsigned', 'Stalled', 'Unsigned');
    expect((await containerOf('unsigned'))?.Id).toBe(running?.Id);
  }, 120_000);

  test('a registry that cannot be reached: a new service is retried, not created; verified ones stay Ready', async () => {
    await registry.stop();
    await cell.writeService('late');
    const s = await waitFor('late retrying with RegistryUnreachable', async () => {
      const st = await status.get('ServiceInstall/late');
      return st?.conditions.some((c) => c.type === 'Reconciling' && c.status === 'True' && c.reason === 'RegistryUnreachable') ? st : undefined;
    });
    expect(s.phase).not.toBe('Stalled');
    expect(await containerOf('late')).toBeUndefined();
    expect((await status.get('ServiceInstall/legacy'))?.phase).toBe('Ready');
  }, 120_000);

  test('an imageVerification section that cannot be read behaves as enforce: signed images still run, nothing unverified is admitted', async () => {
    const before = await containerOf('legacy');
    const unsigned = await containerOf('unsigned');
    // Under warn the unsigned image would be admitted: first make it so, to see the fallback refuse it.
    await writeDocumentFile(path.join(cell.cellDir, 'cell.yaml'), cellDocument(['./old.pub', './new.pub'], 'warn'));
    await phaseOf('unsigned', 'Ready');
    const changedAt = new Date().toISOString();
    await writeDocumentFile(path.join(cell.cellDir, 'cell.yaml'), cellDocument(['./old.pub', './new.pub']).replace('mode: enforce', 'mode: strict'));
    // Refused as enforce would (the registry is down since the last test, so it is retried: not
    // admitted either way), and what ran keeps running.
    await waitFor('unsigned refused under the fallback', async () => {
      const st = await status.get('ServiceInstall/unsigned');
      return st && st.updatedAt > changedAt && st.phase !== 'Ready' && st.conditions.some((c) => c.status === 'True' && ['Unsigned', 'RegistryUnreachable'].includes(c.reason)) ? st : undefined;
    });
    expect((await containerOf('unsigned'))?.Id).toBe(unsigned?.Id);
    // The same keys verified these before (cached): they stay Ready under the enforce it falls back to.
    await waitFor('legacy checked again under the fallback', async () => {
      const st = await status.get('ServiceInstall/legacy');
      return st && st.updatedAt > changedAt && st.phase === 'Ready' && String(st.facts?.verification).includes('verified with') ? st : undefined;
    });
    expect((await status.get('ServiceInstall/bundle'))?.phase).toBe('Ready');
    expect((await containerOf('legacy'))?.Id).toBe(before?.Id);
    expect(await containerOf('late')).toBeUndefined();
  }, 120_000);
});
