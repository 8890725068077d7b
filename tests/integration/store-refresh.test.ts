/**
 * A published store's cache against a real HTTP server on loopback (tests/support/store-server.ts)
 * serving a copy of examples/store: the first refresh, a 304 that writes nothing, a new version,
 * packages as ZIP, and every kind of garbage refused with its URL named and the cache untouched.
 */
import { createHash, sign } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkStoreUrl } from '../../crds/store-url.js';
import { DEFAULT_MANIFEST_POLICY } from '../../crds/validate-manifest.js';
import { loadCatalog } from '../../state/catalog.js';
import { storeSignaturePolicy } from '../../controllers/store-refresh.js';
import type { CellDocument } from '../../crds/types.js';
import { catalogLocation } from '../../state/cell.js';
import { readStoreMeta, storeCacheDir, storeCatalogDir, storeStateLine } from '../../state/store/cache.js';
import { signStoreFolder } from '../../state/store/sign.js';
import { generateTestKey, writePublicKey } from '../support/cosign-signer.js';
import { runPic } from '../support/pic-cli.js';
import { refreshStore, type RefreshReport } from '../../state/store/refresh.js';
import { startStoreServer, zipArchive, type StoreServer } from '../support/store-server.js';

let root: string;
let runs = 0;

interface Fixture {
  store: string;
  state: string;
  server: StoreServer;
  url: URL;
  refresh: (limits?: Parameters<typeof refreshStore>[0]['limits']) => Promise<RefreshReport>;
  cacheDir: string;
}

const fixtures: Fixture[] = [];

async function fixture(): Promise<Fixture> {
  const dir = path.join(root, `run-${++runs}`);
  const store = path.join(dir, 'store');
  const state = path.join(dir, 'state');
  await fs.cp(path.join(process.cwd(), 'examples', 'store'), store, { recursive: true });
  await fs.mkdir(state, { mode: 0o700 });
  const server = await startStoreServer(store);
  const url = checkStoreUrl(server.url).url!;
  const f: Fixture = {
    store,
    state,
    server,
    url,
    refresh: (limits) => refreshStore({ stateRoot: state, url, policy: DEFAULT_MANIFEST_POLICY, ...(limits ? { limits } : {}) }),
    cacheDir: storeCacheDir(state, url.href),
  };
  fixtures.push(f);
  return f;
}

/** Every file below `dir`: path, inode, mtime and content hash; equal trees mean nothing was written, replaced or deleted. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of (await fs.readdir(d, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, entry.name);
      const st = await fs.lstat(p, { bigint: true });
      if (entry.isSymbolicLink()) out.push(`${p} -> ${await fs.readlink(p)} ${st.ino}`);
      else if (entry.isDirectory()) await walk(p);
      else out.push(`${p} ${st.ino} ${st.mtimeNs} ${createHash('sha256').update(await fs.readFile(p)).digest('hex')}`);
    }
  };
  await walk(dir);
  return out;
}

/** The catalog's files other than meta.json (which records the failure): the set the loader reads. */
const catalogTree = async (f: Fixture) => (await tree(f.cacheDir)).filter((line) => !line.includes(`${path.sep}meta.json `));

async function editJson(file: string, edit: (value: unknown) => unknown): Promise<void> {
  await fs.writeFile(file, `${JSON.stringify(edit(JSON.parse(await fs.readFile(file, 'utf8'))), null, 2)}\n`);
}

/** Make the index differ (a trailing space), so a refresh goes on to the packages. */
const touchIndex = async (f: Fixture) => fs.appendFile(path.join(f.store, 'index.json'), ' ');

async function bumpNotes(f: Fixture, version: string): Promise<void> {
  await editJson(path.join(f.store, 'services', 'notes', 'manifest.json'), (m) => ({ ...(m as object), version }));
  await editJson(path.join(f.store, 'index.json'), (idx) => (idx as { id: string }[]).map((e) => (e.id === 'notes' ? { ...e, version } : e)));
}

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-store-refresh-'));
});

afterAll(async () => {
  for (const f of fixtures) await f.server.close().catch(() => undefined);
  await fs.rm(root, { recursive: true, force: true });
});

describe('a published store, refreshed into the cache', () => {
  it('fetches the index and every package, and the cache reads as the local catalog does', async () => {
    const f = await fixture();
    const report = await f.refresh();
    expect(report.outcome).toBe('updated');
    const local = await loadCatalog(f.store, DEFAULT_MANIFEST_POLICY);
    const cached = await loadCatalog(storeCatalogDir(f.state, f.url.href), DEFAULT_MANIFEST_POLICY);
    expect(cached.problems).toEqual([]);
    expect([...cached.services.keys()]).toEqual([...local.services.keys()]);
    for (const [id, s] of local.services) {
      expect(cached.services.get(id)!.manifest).toEqual(s.manifest);
      expect(cached.services.get(id)!.template).toBe(s.template);
      expect(cached.services.get(id)!.installScript).toBe(s.installScript);
    }
    // The index, the two signature files it may have (404 here), then manifest, template and
    // install.sh (404 where there is none) per service.
    expect(report.requests).toBe(1 + 2 + 3 * local.services.size);
    expect(report.fetchedAt).toBeDefined();
    expect((await readStoreMeta(f.cacheDir, f.url.href)).lastFailure).toBeUndefined();
  });

  it('a 304 answer rewrites nothing: one conditional request, no write', async () => {
    const f = await fixture();
    await f.refresh();
    const before = await tree(f.cacheDir);
    f.server.log.length = 0;
    const report = await f.refresh();
    expect(report).toMatchObject({ outcome: 'unchanged', requests: 1, writes: 0 });
    expect(f.server.log).toEqual([{ path: '/index.json', status: 304, conditional: true }]);
    expect(await tree(f.cacheDir)).toEqual(before);
  });

  it('a new version replaces the set; unchanged package files are asked for conditionally and answered 304', async () => {
    const f = await fixture();
    await f.refresh();
    await bumpNotes(f, '1.1.0');
    f.server.log.length = 0;
    const report = await f.refresh();
    expect(report.outcome).toBe('updated');
    const cached = await loadCatalog(storeCatalogDir(f.state, f.url.href), DEFAULT_MANIFEST_POLICY);
    expect(cached.services.get('notes')!.manifest.version).toBe('1.1.0');
    expect(f.server.log.find((l) => l.path === '/services/notes/manifest.json')).toMatchObject({ status: 200, conditional: true });
    expect(f.server.log.find((l) => l.path === '/services/homepage/manifest.json')).toMatchObject({ status: 304, conditional: true });
    // The set before stays on disk beside the new one (a reader may be in it); older ones go.
    const generations = (await fs.readdir(f.cacheDir)).filter((n) => n.startsWith('gen-'));
    expect(generations).toHaveLength(2);
  });

  it('follows a redirect within the origin', async () => {
    const f = await fixture();
    await fs.copyFile(path.join(f.store, 'index.json'), path.join(f.store, 'index-moved.json'));
    f.server.misbehave('/index.json', { kind: 'redirect', to: '/index-moved.json' });
    expect((await f.refresh()).outcome).toBe('updated');
  });

  it('reads a package shipped as a ZIP, and refuses archives with ../ or a link, writing nothing of them', async () => {
    const f = await fixture();
    const home = path.join(f.store, 'services', 'homepage');
    const files = { manifest: await fs.readFile(path.join(home, 'manifest.json')), template: await fs.readFile(path.join(home, 'compose-template.yml')) };
    await fs.mkdir(path.join(f.store, 'packages'));
    await fs.rm(home, { recursive: true });
    await editJson(path.join(f.store, 'index.json'), (idx) => (idx as { id: string }[]).map((e) => (e.id === 'homepage' ? { ...e, package: 'packages/homepage-1.0.0.zip' } : e)));
    const zip = (extra: { name: string; data: string; mode?: number }[]) =>
      zipArchive([{ name: 'manifest.json', data: files.manifest }, { name: 'compose-template.yml', data: files.template }, ...extra]);
    await fs.writeFile(path.join(f.store, 'packages', 'homepage-1.0.0.zip'), zip([{ name: 'install.sh', data: '#!/bin/sh\necho hi\n', mode: 0o100755 }]));
    expect((await f.refresh()).outcome).toBe('updated');
    const cached = await loadCatalog(storeCatalogDir(f.state, f.url.href), DEFAULT_MANIFEST_POLICY);
    expect(cached.problems).toEqual([]);
    expect(cached.services.get('homepage')!.template).toBe(files.template.toString('utf8'));
    expect(cached.services.get('homepage')!.installScript).toBe(true);

    const cases: [string, { name: string; data: string; mode?: number }[], RegExp][] = [
      ['../', [{ name: '../../evil.sh', data: 'x' }], /entry "\.\.\/\.\.\/evil\.sh" climbs out of the package/],
      ['a symbolic link', [{ name: 'install.sh', data: '/etc/shadow', mode: 0o120777 }], /entry "install\.sh" is a symbolic link/],
      ['an absolute path', [{ name: '/etc/cron.d/evil', data: 'x' }], /has an absolute path/],
      ['a duplicate', [{ name: 'manifest.json', data: '{}' }], /entry "manifest\.json" appears twice/],
    ];
    for (const [name, extra, message] of cases) {
      await fs.writeFile(path.join(f.store, 'packages', 'homepage-1.0.0.zip'), zip(extra));
      await touchIndex(f);
      const before = await catalogTree(f);
      const report = await f.refresh();
      expect([name, report.outcome]).toEqual([name, 'failed']);
      expect(report.failure!.url).toBe(`${f.url.href}packages/homepage-1.0.0.zip`);
      expect(report.failure!.message).toMatch(message);
      expect(await catalogTree(f)).toEqual(before);
      // Nothing of the archive reached the disk, not even in a folder being built.
      expect((await fs.readdir(f.cacheDir)).filter((n) => n.startsWith('.gen-'))).toEqual([]);
    }
  });
});

describe('never worse than the cache', () => {
  type Case = [string, (f: Fixture, other: StoreServer) => Promise<void>, (f: Fixture) => string, RegExp];
  const cases: Case[] = [
    ['an HTML page answered with 200', async (f) => f.server.misbehave('/index.json', { kind: 'html' }), (f) => `${f.url.href}index.json`, /answered an HTML page, not the JSON index/],
    ['a truncated index', async (f) => f.server.misbehave('/index.json', { kind: 'truncated' }), (f) => `${f.url.href}index.json`, /not valid JSON \(truncated or garbled\)/],
    ['an oversized index', async (f) => f.server.misbehave('/index.json', { kind: 'oversized', bytes: 2 * 1024 * 1024 }), (f) => `${f.url.href}index.json`, /more than the 1048576 (bytes )?allowed/],
    [
      'an oversized manifest',
      async (f) => {
        await touchIndex(f);
        f.server.misbehave('/services/notes/manifest.json', { kind: 'oversized', bytes: 1024 * 1024 + 1 });
      },
      (f) => `${f.url.href}services/notes/manifest.json`,
      /more than the 1048576 (bytes )?allowed/,
    ],
    ['a redirect to another host', async (f, other) => f.server.misbehave('/index.json', { kind: 'redirect', to: `${other.url}index.json` }), (f) => `${f.url.href}index.json`, /a redirect to another origin \(http:\/\/127\.0\.0\.1:\d+\)/],
    ['a connection reset', async (f) => f.server.misbehave('*', { kind: 'reset' }), (f) => `${f.url.href}index.json`, /cannot be fetched/],
    ['a 500', async (f) => f.server.misbehave('/index.json', { kind: 'status', code: 500 }), (f) => `${f.url.href}index.json`, /answered HTTP 500/],
    ['no index at all', async (f) => f.server.misbehave('/index.json', { kind: 'status', code: 404 }), (f) => `${f.url.href}index.json`, /404 Not Found/],
    ['the store down', async (f) => f.server.down(), (f) => `${f.url.href}index.json`, /cannot be fetched: .*ECONNREFUSED/],
    [
      'a package that fails validation',
      async (f) => {
        await editJson(path.join(f.store, 'services', 'notes', 'manifest.json'), (m) => ({ ...(m as object), image: 'docker.io/evil/notes:1' }));
        await touchIndex(f);
      },
      (f) => `${f.url.href}services/notes/manifest.json`,
      /\/image: .*; the cached catalog stays in use/,
    ],
    [
      'a listed package that is missing',
      async (f) => {
        await fs.rm(path.join(f.store, 'services', 'notes', 'compose-template.yml'));
        await touchIndex(f);
      },
      (f) => `${f.url.href}services/notes/compose-template.yml`,
      /404 Not Found; the index lists the service/,
    ],
  ];

  it.each(cases)('%s: refused with the URL named, the cache untouched, the failure recorded once', async (_name, breakIt, failingUrl, message) => {
    const f = await fixture();
    const other = await startStoreServer(f.store);
    try {
      expect((await f.refresh()).outcome).toBe('updated');
      const before = await catalogTree(f);
      const served = await loadCatalog(storeCatalogDir(f.state, f.url.href), DEFAULT_MANIFEST_POLICY);
      await breakIt(f, other);
      const report = await f.refresh({ timeoutMs: 5000 });
      expect(report.outcome).toBe('failed');
      expect(report.failure!.url).toBe(failingUrl(f));
      expect(report.failure!.message).toMatch(message);
      expect(report.fetchedAt).toBeDefined();
      expect(await catalogTree(f)).toEqual(before);
      const after = await loadCatalog(storeCatalogDir(f.state, f.url.href), DEFAULT_MANIFEST_POLICY);
      expect([...after.services.keys()]).toEqual([...served.services.keys()]);
      expect(after.problems).toEqual([]);
      const meta = await readStoreMeta(f.cacheDir, f.url.href);
      expect(meta.lastFailure).toMatchObject({ url: failingUrl(f) });
      // The same failure again is not news: meta.json is not rewritten.
      const metaTree = await tree(f.cacheDir);
      expect((await f.refresh({ timeoutMs: 5000 })).outcome).toBe('failed');
      expect(await tree(f.cacheDir)).toEqual(metaTree);
    } finally {
      await other.close();
    }
  });

  it('store down, then back: the failure is cleared by a 304 and the set stays the same', async () => {
    const f = await fixture();
    await f.refresh();
    const before = await catalogTree(f);
    await f.server.down();
    expect((await f.refresh()).outcome).toBe('failed');
    await f.server.up();
    const back = await f.refresh();
    expect(back).toMatchObject({ outcome: 'unchanged', requests: 1 });
    expect((await readStoreMeta(f.cacheDir, f.url.href)).lastFailure).toBeUndefined();
    expect(await catalogTree(f)).toEqual(before);
  });

  it('garbage with no cache yet leaves no cache (nothing half-built to read)', async () => {
    const f = await fixture();
    f.server.misbehave('/index.json', { kind: 'truncated' });
    const report = await f.refresh();
    expect(report.outcome).toBe('failed');
    expect(report.fetchedAt).toBeUndefined();
    await expect(fs.stat(storeCatalogDir(f.state, f.url.href))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('a signed store', () => {
  /** A Cell trusting `keys` (files in `dir`), with requireSignature when asked. */
  const cellDoc = (url: string, keyFiles: string[], requireSignature = false): CellDocument =>
    ({
      apiVersion: 'pic.ngo/v1alpha1',
      kind: 'Cell',
      metadata: { name: 'signed' },
      spec: { domain: 'signed.pic.test', store: { url, ...(requireSignature ? { requireSignature } : {}) }, imageVerification: { mode: 'warn', publicKeys: keyFiles }, allowedImagePrefix: 'git.pic.ngo/roof/', network: { name: 'n', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.100' } },
    });

  async function signedFixture(requireSignature = false) {
    const f = await fixture();
    const key = generateTestKey();
    const other = generateTestKey();
    const keyDir = path.join(f.state, '..', 'keys');
    await fs.mkdir(keyDir);
    const pub = await writePublicKey(keyDir, 'store.pub', key);
    const privatePem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const refresh = async (keyFiles = [pub], require = requireSignature) =>
      refreshStore({ stateRoot: f.state, url: f.url, policy: DEFAULT_MANIFEST_POLICY, signature: await storeSignaturePolicy(cellDoc(f.url.href, keyFiles, require), keyDir), limits: { timeoutMs: 5000 } });
    return { f, key, other, keyDir, pub, privatePem, refresh };
  }

  it('pic catalog sign writes the hashes and a signature that verifies; the status names the key', async () => {
    const { f, pub, privatePem, keyDir, refresh } = await signedFixture(true);
    const keyFile = path.join(keyDir, 'store.key');
    await fs.writeFile(keyFile, privatePem, { mode: 0o600 });
    const sign = await runPic(['catalog', 'sign', '--store', f.store, '--key', keyFile]);
    expect(sign.code).toBe(0);
    expect(sign.stdout).toContain('index.json.sig: signed with');
    const index = JSON.parse(await fs.readFile(path.join(f.store, 'index.json'), 'utf8')) as { id: string; sha256: Record<string, string> }[];
    const notes = index.find((e) => e.id === 'notes')!;
    expect(notes.sha256['manifest.json']).toBe(createHash('sha256').update(await fs.readFile(path.join(f.store, 'services', 'notes', 'manifest.json'))).digest('hex'));
    const report = await refresh();
    expect(report).toMatchObject({ outcome: 'updated', signedBy: pub });
    expect(storeStateLine(await readStoreMeta(f.cacheDir, f.url.href))).toContain(`signed by ${pub}`);
  });

  it('a sigstore bundle (cosign sign-blob --bundle) verifies too', async () => {
    const { f, key, pub, refresh } = await signedFixture(true);
    await signStoreFolder(f.store);
    const index = await fs.readFile(path.join(f.store, 'index.json'));
    const bundle = {
      mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      verificationMaterial: { publicKey: { hint: key.id }, tlogEntries: [] },
      messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: createHash('sha256').update(index).digest('base64') }, signature: sign('sha256', index, key.privateKey).toString('base64') },
    };
    await fs.writeFile(path.join(f.store, 'index.json.sigstore.json'), JSON.stringify(bundle));
    expect(await refresh()).toMatchObject({ outcome: 'updated', signedBy: pub });
  });

  /** The maintainer publishes a new signed index (a description changed), as pic catalog sign writes it. */
  async function resign(s: Awaited<ReturnType<typeof signedFixture>>): Promise<void> {
    await editJson(path.join(s.f.store, 'index.json'), (idx) => (idx as { id: string; description: string }[]).map((e) => (e.id === 'homepage' ? { ...e, description: `${e.description} (new)` } : e)));
    await signStoreFolder(s.f.store, { pem: s.privatePem, file: path.join(s.keyDir, 'store.key') });
  }

  type Tamper = [string, (s: Awaited<ReturnType<typeof signedFixture>>) => Promise<void>, (f: Fixture) => string, RegExp];
  const tampering: Tamper[] = [
    [
      'an index changed after signing',
      async ({ f }) => editJson(path.join(f.store, 'index.json'), (idx) => (idx as { id: string; description: string }[]).map((e) => ({ ...e, description: `${e.description}!` }))),
      (f) => `${f.url.href}index.json.sig`,
      /verifies with none of the trusted keys .*; the index is refused/,
    ],
    [
      'a package file changed after signing',
      async (s) => {
        await resign(s);
        await fs.appendFile(path.join(s.f.store, 'services', 'notes', 'compose-template.yml'), '# changed\n');
      },
      (f) => `${f.url.href}services/notes/compose-template.yml`,
      /the signed index lists [0-9a-f]{64}: the file was changed after the index was signed/,
    ],
    [
      'an install.sh slipped in after signing',
      async (s) => {
        await resign(s);
        await fs.writeFile(path.join(s.f.store, 'services', 'notes', 'install.sh'), '#!/bin/sh\n');
      },
      (f) => `${f.url.href}services/notes/install.sh`,
      /is published but the signed index lists no sha256 for it/,
    ],
    [
      'signed by another key',
      async ({ f, other }) => {
        await editJson(path.join(f.store, 'index.json'), (idx) => (idx as { id: string; description: string }[]).map((e) => ({ ...e, description: `${e.description} (other)` })));
        await signStoreFolder(f.store);
        const index = await fs.readFile(path.join(f.store, 'index.json'));
        await fs.writeFile(path.join(f.store, 'index.json.sig'), sign('sha256', index, other.privateKey).toString('base64'));
      },
      (f) => `${f.url.href}index.json.sig`,
      /verifies with none of the trusted keys/,
    ],
    [
      'a signed index without hashes',
      async ({ f, key }) => {
        const index = JSON.parse(await fs.readFile(path.join(f.store, 'index.json'), 'utf8')) as Record<string, unknown>[];
        const bare = Buffer.from(JSON.stringify(index.map(({ sha256: _h, ...rest }) => rest)));
        await fs.writeFile(path.join(f.store, 'index.json'), bare);
        await fs.writeFile(path.join(f.store, 'index.json.sig'), sign('sha256', bare, key.privateKey).toString('base64'));
      },
      (f) => `${f.url.href}index.json`,
      /is signed but entry "\w[\w-]*" lists no sha256/,
    ],
    [
      'an unsigned index with requireSignature',
      async ({ f }) => {
        await fs.rm(path.join(f.store, 'index.json.sig'));
        await touchIndex(f);
      },
      (f) => `${f.url.href}index.json`,
      /is not signed \(no index\.json\.sig or index\.json\.sigstore\.json beside it\), and spec\.store\.requireSignature is true/,
    ],
  ];

  it.each(tampering)('%s: refused with the URL named, the signed cache untouched', async (_name, tamper, failingUrl, message) => {
    const s = await signedFixture(true);
    const keyFile = path.join(s.keyDir, 'store.key');
    await fs.writeFile(keyFile, s.privatePem, { mode: 0o600 });
    await signStoreFolder(s.f.store, { pem: s.privatePem, file: keyFile });
    expect((await s.refresh()).outcome).toBe('updated');
    const before = await catalogTree(s.f);
    await tamper(s);
    const report = await s.refresh();
    expect(report.outcome).toBe('failed');
    expect(report.failure).toMatchObject({ url: failingUrl(s.f) });
    expect(report.failure!.message).toMatch(message);
    expect(report.signedBy).toBe(s.pub);
    expect(await catalogTree(s.f)).toEqual(before);
  });

  it('an unsigned store is taken without requireSignature, and recorded as unsigned', async () => {
    const { f, refresh } = await signedFixture(false);
    const report = await refresh();
    expect(report.outcome).toBe('updated');
    expect(report.signedBy).toBeUndefined();
    expect(storeStateLine(await readStoreMeta(f.cacheDir, f.url.href))).toMatch(/, unsigned$/);
  });

  it('turning requireSignature on: a cached unsigned index is not confirmed by a 304, and the cell does not read it', async () => {
    const { f, refresh } = await signedFixture(false);
    expect((await refresh()).outcome).toBe('updated');
    f.server.log.length = 0;
    const strict = await refresh(undefined, true);
    expect(strict.outcome).toBe('failed');
    expect(f.server.log[0]).toMatchObject({ path: '/index.json', conditional: false, status: 200 });
    const location = catalogLocation(path.join(f.state, '..'), cellDoc(f.url.href, [], true), f.state);
    expect(location.dir).toBeUndefined();
    expect(location.problem?.message).toMatch(/the cached catalog is not signed, and spec\.store\.requireSignature is true/);
  });
});

describe('pic catalog on a published store', () => {
  it('refresh, list and show with -o json|yaml, through --store URL and a state directory', async () => {
    const f = await fixture();
    const pic = (...args: string[]) => runPic(args, { PIC_STATE_DIR: '' });
    const before = await pic('catalog', 'list', '--store', f.server.url, '--state-dir', f.state);
    expect(before.code).toBe(1);
    expect(before.stderr).toContain(`the store ${f.server.url} has no cached copy in ${f.state} yet; run pic catalog refresh --store ${f.server.url}`);

    const refresh = await pic('catalog', 'refresh', '--store', f.server.url, '--state-dir', f.state, '-o', 'yaml');
    expect(refresh.code).toBe(0);
    expect(refresh.stdout).toMatch(/^outcome: updated$/m);
    const again = await pic('catalog', 'refresh', '--store', f.server.url, '--state-dir', f.state);
    expect(again.stdout).toBe(`${f.server.url}: unchanged, the store answered 304 (1 request, 0 bytes, 0 writes); the catalog in use was fetched ${(await readStoreMeta(f.cacheDir, f.url.href)).fetchedAt}\n`);

    const list = await pic('catalog', 'list', '--store', f.server.url, '--state-dir', f.state, '-o', 'json');
    expect(list.code).toBe(0);
    const local = await loadCatalog(f.store, DEFAULT_MANIFEST_POLICY);
    expect((JSON.parse(list.stdout) as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([...local.services.keys()].sort());
    expect(list.stderr).toMatch(new RegExp(`the catalog of ${f.server.url} in use was fetched \\S+ \\(\\d+s ago\\), unsigned`));

    const show = await pic('catalog', 'show', 'notes', '--store', f.server.url, '--state-dir', f.state, '-o', 'yaml');
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('id: notes');

    await f.server.down();
    const down = await pic('catalog', 'refresh', '--store', f.server.url, '--state-dir', f.state);
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(new RegExp(`refresh failed: ${f.server.url}index\\.json: cannot be fetched: .*; the catalog in use was fetched \\S+, and it stays in use`));
    const listDown = await pic('catalog', 'list', '--store', f.server.url, '--state-dir', f.state);
    expect(listDown.code).toBe(0);
    expect(listDown.stderr).toMatch(new RegExp(`refreshing it fails since \\S+: ${f.server.url}index\\.json: cannot be fetched`));

    const plain = await pic('catalog', 'list', '--store', 'http://192.168.1.1/', '--state-dir', f.state);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain('plain http is allowed only to a loopback address');
  });
});
