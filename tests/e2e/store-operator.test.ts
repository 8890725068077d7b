/**
 * A cell whose catalog is a published store (spec.store.url) served by a real HTTP server on
 * loopback, converged by `pic run --once` against the real engine: installed from the remote
 * catalog; a second cell reading the same URL gets the same packages; a 304 rewrites nothing;
 * with the store down the cell converges from the cache and says why; a garbled index is refused
 * with its URL; a new version is reported and applied only once spec.version asks for it.
 *
 * The tests run in order and share the cell. Names start with `sto-`.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { storeCacheDir } from '../../state/store/cache.js';
import { createTestCell, removeTestCell, writeDocumentFile, type TestCell } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { runPic } from '../support/pic-cli.js';
import { startStoreServer, type StoreServer } from '../support/store-server.js';

const PREFIX = 'sto-';
let cell: TestCell;
let second: TestCell;
let server: StoreServer;

const pic = (target: TestCell, ...args: string[]) => runPic(args, { PIC_STATE_DIR: target.stateDir });

async function useStoreUrl(target: TestCell, url: string): Promise<void> {
  const file = path.join(target.cellDir, 'cell.yaml');
  const text = await fs.readFile(file, 'utf8');
  const edited = text.replace('store: {path: ../store}', `store: {url: "${url}"}`);
  if (edited === text) throw new Error('the test cell document changed shape: no store: {path: ../store} to replace');
  await writeDocumentFile(file, edited);
}

/** Every file below the store cache of `target`: path, inode, mtime, content hash. */
async function cacheTree(target: TestCell): Promise<string[]> {
  const out: string[] = [];
  const dir = storeCacheDir(target.stateDir, server.url);
  const walk = async (d: string) => {
    for (const entry of (await fs.readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, entry.name);
      const st = await fs.lstat(p, { bigint: true });
      if (entry.isSymbolicLink()) out.push(`${path.relative(dir, p)} -> ${await fs.readlink(p)} ${st.ino}`);
      else if (entry.isDirectory()) await walk(p);
      else out.push(`${path.relative(dir, p)} ${st.ino} ${st.mtimeNs} ${createHash('sha256').update(await fs.readFile(p)).digest('hex')}`);
    }
  };
  await walk(dir);
  return out;
}

/** The catalog files of the cache in use, by path below it, with their content hashes. */
async function cachedPackages(target: TestCell): Promise<string[]> {
  const current = path.join(storeCacheDir(target.stateDir, server.url), 'current');
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of (await fs.readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else out.push(`${path.relative(current, p)} ${createHash('sha256').update(await fs.readFile(p)).digest('hex')}`);
    }
  };
  await walk(current);
  return out;
}

async function cellStatus(target: TestCell): Promise<{ phase: string; conditions: { type: string; reason: string; message: string }[]; facts?: { store?: Record<string, unknown> } }> {
  const r = await pic(target, 'get', 'Cell', '-o', 'json');
  expect(r.code).toBe(0);
  const list = JSON.parse(r.stdout) as { items: { name: string; phase: string; conditions: { type: string; reason: string; message: string }[]; facts?: { store?: Record<string, unknown> } }[] };
  const item = list.items.find((i) => i.name === target.name);
  if (!item) throw new Error(`no Cell status for ${target.name}: ${r.stdout}`);
  return item;
}

async function bumpStoreVersion(version: string): Promise<void> {
  const manifestFile = path.join(cell.storeDir, 'services', 'web', 'manifest.json');
  const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as { version: string };
  manifest.version = version;
  await fs.writeFile(manifestFile, JSON.stringify(manifest, null, 2));
  const indexFile = path.join(cell.storeDir, 'index.json');
  const index = JSON.parse(await fs.readFile(indexFile, 'utf8')) as { id: string; version: string }[];
  await fs.writeFile(indexFile, JSON.stringify(index.map((e) => ({ ...e, version }))));
}

beforeAll(async () => {
  cell = await createTestCell([{ id: 'web' }], { prefix: PREFIX });
  second = await createTestCell([{ id: 'web' }], { prefix: PREFIX });
  server = await startStoreServer(cell.storeDir);
  await useStoreUrl(cell, server.url);
  await useStoreUrl(second, server.url);
  // The second cell's own catalog folder is not what it reads: take it away.
  await fs.rm(second.storeDir, { recursive: true });
});

afterAll(async () => {
  await server?.close();
  if (cell) await removeTestCell(cell);
  if (second) await removeTestCell(second);
});

describe('a cell on a published store', () => {
  test('installs from the remote catalog end to end', async () => {
    await cell.writeService('web');
    const run = await pic(cell, 'run', '--once', '--cell', cell.cellDir, '--log-format', 'json');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/web\s+True\s+Ready/);
    const c = await docker.getContainer(cell.containerName('web')).inspect();
    expect(c.State.Running).toBe(true);
    expect(server.log.map((l) => `${l.path} ${l.status}`)).toEqual(expect.arrayContaining(['/index.json 200', '/services/web/manifest.json 200', '/services/web/compose-template.yml 200', '/services/web/install.sh 404']));
    const status = await cellStatus(cell);
    expect(status.conditions.find((x) => x.type === 'Ready')).toMatchObject({ reason: 'StoreCatalog', message: expect.stringMatching(new RegExp(`^the catalog of ${server.url} in use was fetched \\S+, unsigned$`)) as unknown });
    expect(status.facts?.store).toMatchObject({ url: server.url });
    expect(status.facts?.store?.lastFailure).toBeUndefined();
  });

  test('a second cell reading the same URL gets the same packages', async () => {
    await fs.mkdir(second.stateDir, { mode: 0o700 });
    const refresh = await pic(second, 'catalog', 'refresh', '--cell', second.cellDir, '-o', 'json');
    expect(refresh.code).toBe(0);
    expect(JSON.parse(refresh.stdout)).toMatchObject({ outcome: 'updated', url: server.url });
    expect(await cachedPackages(second)).toEqual(await cachedPackages(cell));
    const list = await pic(second, 'catalog', 'list', '--cell', second.cellDir, '-o', 'json');
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { items: { id: string; catalogVersion: string }[] }).items).toEqual([expect.objectContaining({ id: 'web', catalogVersion: '1.0.0' })]);
    expect(list.stderr).toContain(`the catalog of ${server.url} in use was fetched`);
  });

  test('a 304 rewrites nothing', async () => {
    const before = await cacheTree(cell);
    server.log.length = 0;
    const refresh = await pic(cell, 'catalog', 'refresh', '--cell', cell.cellDir);
    expect(refresh.code).toBe(0);
    expect(refresh.stdout).toContain('unchanged, the store answered 304 (1 request, 0 bytes, 0 writes)');
    expect(server.log).toEqual([{ path: '/index.json', status: 304, conditional: true }]);
    expect(await cacheTree(cell)).toEqual(before);
  });

  test('a garbled index is refused with its URL, the cache untouched, the service running', async () => {
    const before = (await cacheTree(cell)).filter((l) => !l.startsWith('meta.json '));
    server.misbehave('/index.json', { kind: 'html' });
    try {
      const run = await pic(cell, 'run', '--once', '--cell', cell.cellDir, '--log-format', 'json');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/web\s+True\s+Ready/);
      expect(run.stderr + run.stdout).toContain(`${server.url}index.json: answered an HTML page, not the JSON index`);
      expect((await cacheTree(cell)).filter((l) => !l.startsWith('meta.json '))).toEqual(before);
      const status = await cellStatus(cell);
      expect(status.conditions.find((x) => x.type === 'Ready')!.message).toContain(`: ${server.url}index.json: answered an HTML page`);
      expect(status.facts?.store?.lastFailure).toMatchObject({ url: `${server.url}index.json` });
    } finally {
      server.misbehave('/index.json', undefined);
    }
  });

  test('store down: converging from the cache, the status says why; back up, the failure clears', async () => {
    await server.down();
    const down = await pic(cell, 'run', '--once', '--cell', cell.cellDir, '--log-format', 'json');
    expect(down.code).toBe(0);
    expect(down.stdout).toMatch(/web\s+True\s+Ready/);
    const status = await cellStatus(cell);
    expect(status.conditions.find((x) => x.type === 'Ready')!.message).toMatch(new RegExp(`refreshing it fails since .*: ${server.url}index.json: cannot be fetched: .*ECONNREFUSED`));
    const list = await pic(cell, 'catalog', 'list', '--cell', cell.cellDir);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/web\s+Test web\s+1\.0\.0/);

    await bumpStoreVersion('1.1.0');
    await server.up();
    const back = await pic(cell, 'run', '--once', '--cell', cell.cellDir, '--log-format', 'json');
    expect(back.code).toBe(0);
    const cleared = await cellStatus(cell);
    expect(cleared.conditions.find((x) => x.type === 'Ready')!.message).not.toContain('fails');
    expect(cleared.facts?.store?.lastFailure).toBeUndefined();
  });

  test('a new catalog version shows in get -o wide and is applied only when spec.version asks for it', async () => {
    const wide = await pic(cell, 'get', 'ServiceInstall', '-o', 'wide');
    expect(wide.code).toBe(0);
    // UPDATE 1.1.0, VERSION 1.0.0: the catalog moved on, what runs did not.
    expect(wide.stdout).toMatch(/ServiceInstall\s+web\s+True\s+Ready\s+1\.1\.0\s+\S+\s+\S*\s*1\.0\.0/);
    await writeDocumentFile(path.join(cell.cellDir, 'services', 'web.yaml'), 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: web}\nspec:\n  version: 1.1.0\n  config: {}\n  minReadySeconds: 0\n');
    const upgraded = await pic(cell, 'run', '--once', '--cell', cell.cellDir, '--log-format', 'json');
    expect(upgraded.code).toBe(0);
    const after = await pic(cell, 'get', 'ServiceInstall', 'web', '-o', 'json');
    expect(JSON.parse(after.stdout)).toMatchObject({ phase: 'Ready', facts: { version: '1.1.0' } });
  });
});
