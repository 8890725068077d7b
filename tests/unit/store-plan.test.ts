import { checkStoreUrl, isLoopbackHost, redirectTarget, storeFileUrl } from '../../crds/store-url.js';
import { storeStateLine } from '../../state/store/cache.js';
import { decideRefresh, listedHash, packageFiles, readFetchedIndex, unlistedHashes, type FetchEntry, type RefreshObservation } from '../../state/store/plan.js';
import { zipEntryProblem, type ZipEntryFacts } from '../../state/store/zip.js';

describe('checkStoreUrl: https anywhere, plain http only to loopback', () => {
  const cases: [string, string, string | RegExp][] = [
    ['https base', 'https://git.pic.ngo/roof/pic-services/raw/branch/main/', 'https://git.pic.ngo/roof/pic-services/raw/branch/main/'],
    ['https without the trailing slash gets one', 'https://git.pic.ngo/roof/store', 'https://git.pic.ngo/roof/store/'],
    ['http to 127.0.0.1', 'http://127.0.0.1:8123/', 'http://127.0.0.1:8123/'],
    ['http to 127.5.6.7', 'http://127.5.6.7/store/', 'http://127.5.6.7/store/'],
    ['http to localhost', 'http://localhost:80/x/', 'http://localhost/x/'],
    ['http to ::1', 'http://[::1]:9/', 'http://[::1]:9/'],
    ['http to a LAN host', 'http://192.168.1.10/', /plain http is allowed only to a loopback address/],
    ['http to a name', 'http://store.example.org/', /plain http is allowed only to a loopback address/],
    ['http to a name that starts like loopback', 'http://127.0.0.1.nip.io/', /plain http is allowed only/],
    ['ftp', 'ftp://127.0.0.1/', /ftp: URLs are not fetched/],
    ['file', 'file:///srv/store/', /file: URLs are not fetched/],
    ['credentials', 'https://user:pw@git.pic.ngo/', /user name or password/],
    ['query', 'https://git.pic.ngo/store/?ref=main', /query or a fragment/],
    ['fragment', 'https://git.pic.ngo/store/#x', /query or a fragment/],
    ['not a URL', 'store', /is not a URL/],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    const got = checkStoreUrl(input);
    if (typeof expected === 'string') expect(got.url?.href).toBe(expected);
    else expect(got.problem).toMatch(expected);
  });

  it.each([
    ['localhost', true],
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['[::1]', true],
    ['128.0.0.1', false],
    ['0.0.0.0', false],
    ['localhost.example', false],
  ] as const)('isLoopbackHost(%s) is %s', (host, expected) => expect(isLoopbackHost(host)).toBe(expected));
});

describe('storeFileUrl: only below the base', () => {
  const base = new URL('https://git.pic.ngo/roof/store/');
  it.each([
    ['services/notes/manifest.json', 'https://git.pic.ngo/roof/store/services/notes/manifest.json'],
    ['packages/notes-1.0.0.zip', 'https://git.pic.ngo/roof/store/packages/notes-1.0.0.zip'],
    ['../other/x.zip', undefined],
    ['services/../../x.zip', undefined],
    ['/etc/passwd', undefined],
    ['https://evil.example/x.zip', undefined],
    ['//evil.example/x.zip', undefined],
    ['services/%2e%2e/x.zip', undefined],
    ['a\\b.zip', undefined],
    ['x.zip?y=1', undefined],
    ['', undefined],
  ])('%s', (relative, expected) => expect(storeFileUrl(base, relative)?.href).toBe(expected));
});

describe('redirectTarget: the same origin only', () => {
  const from = new URL('http://127.0.0.1:8000/store/index.json');
  it.each([
    ['a path on the same origin', '/elsewhere/index.json', 'http://127.0.0.1:8000/elsewhere/index.json', undefined],
    ['relative', 'v2/index.json', 'http://127.0.0.1:8000/store/v2/index.json', undefined],
    ['another port', 'http://127.0.0.1:8001/store/index.json', undefined, /another origin \(http:\/\/127\.0\.0\.1:8001\)/],
    ['another host', 'http://127.0.0.2:8000/store/index.json', undefined, /another origin/],
    ['https upgrade is another origin', 'https://127.0.0.1:8000/store/index.json', undefined, /another origin/],
    ['no Location', null, undefined, /without a Location/],
  ] as const)('%s', (_name, location, url, problem) => {
    const got = redirectTarget(from, location);
    expect(got.url?.href).toBe(url);
    if (problem) expect(got.problem).toMatch(problem);
    else expect(got.problem).toBeUndefined();
  });
});

describe('readFetchedIndex: garbage is named, never taken for an index', () => {
  const base = new URL('http://127.0.0.1:1/');
  const body = (s: string) => Buffer.from(s, 'utf8');
  it.each([
    ['an HTML page with 200', '<!DOCTYPE html><html><body>Sign in</body></html>', 'text/html; charset=utf-8', /an HTML page/],
    ['HTML served as JSON', '  <html></html>', 'application/json', /an HTML page/],
    ['truncated JSON', '[{"id": "notes", "name": "No', 'application/json', /not valid JSON \(truncated or garbled\)/],
    ['an object', '{"services": []}', 'application/json', /not a JSON array/],
    ['an entry without an id', '[{"name": "x"}]', undefined, /entry 0 has no valid id/],
    ['a bad id', '[{"id": "../x"}]', undefined, /entry 0 has no valid id/],
    ['an id twice', '[{"id": "a"}, {"id": "a"}]', undefined, /lists service "a" twice/],
    ['a package outside the base', '[{"id": "a", "package": "../a-1.zip"}]', undefined, /not a \.zip path below/],
    ['a package on another host', '[{"id": "a", "package": "https://evil.example/a-1.zip"}]', undefined, /not a \.zip path below/],
    ['a package that is not a zip', '[{"id": "a", "package": "a-1.tar"}]', undefined, /not a \.zip path below/],
  ])('%s', (_name, text, type, problem) => expect(readFetchedIndex(body(text), type, base).problem).toMatch(problem));

  it('reads ids and package paths', () => {
    const read = readFetchedIndex(body('[{"id": "notes", "version": "1.0.0"}, {"id": "home", "package": "packages/home-1.0.0.zip"}]'), 'application/json', base);
    expect(read).toEqual({ entries: [{ id: 'notes' }, { id: 'home', package: 'packages/home-1.0.0.zip' }] });
    expect(packageFiles(read.entries![0]!).map((f) => [f.remote, f.optional])).toEqual([
      ['services/notes/manifest.json', false],
      ['services/notes/compose-template.yml', false],
      ['services/notes/install.sh', true],
    ]);
    expect(packageFiles(read.entries![1]!)).toEqual([{ remote: 'packages/home-1.0.0.zip', local: 'services/home', optional: false, archive: true }]);
  });
});

describe('decideRefresh: never worse than the cache', () => {
  const cases: [string, RefreshObservation, boolean, string][] = [
    ['304 with a cache: nothing to write', { index: 'not-modified' }, true, 'unchanged'],
    ['304 without a cache: refused', { index: 'not-modified' }, false, 'keep'],
    ['store down with a cache: the cache stays', { index: 'failed', problem: 'connection refused' }, true, 'keep'],
    ['store down without a cache: nothing to keep, still no replace', { index: 'failed', problem: 'connection refused' }, false, 'keep'],
    ['a garbled index: the cache stays', { index: 'fetched', problem: 'not valid JSON' }, true, 'keep'],
    ['a package refused: the cache stays', { index: 'fetched', problem: 'manifest invalid' }, true, 'keep'],
    ['a complete, checked set: replaces', { index: 'fetched' }, true, 'replace'],
    ['a first complete, checked set: replaces', { index: 'fetched' }, false, 'replace'],
  ];
  it.each(cases)('%s', (_name, observed, hasCache, action) => expect(decideRefresh(observed, hasCache).action).toBe(action));
});

describe('zipEntryProblem: refused before anything is written', () => {
  const limits = { maxEntryBytes: 1000, maxEntries: 16 };
  const entry = (name: string, extra: Partial<ZipEntryFacts> = {}): ZipEntryFacts => ({ name, mode: 0o100644, uncompressedSize: 10, encrypted: false, ...extra });
  const cases: [string, ZipEntryFacts, string[], RegExp | undefined][] = [
    ['manifest.json', entry('manifest.json'), [], undefined],
    ['compose-template.yml without a mode (an archiver that records none)', entry('compose-template.yml', { mode: 0 }), [], undefined],
    ['install.sh', entry('install.sh', { mode: 0o100755 }), [], undefined],
    ['an absolute path', entry('/etc/cron.d/x'), [], /has an absolute path/],
    ['a Windows drive', entry('C:/x'), [], /has an absolute path/],
    ['a backslash', entry('..\\x'), [], /has an absolute path/],
    ['..', entry('../manifest.json'), [], /climbs out of the package/],
    ['.. inside', entry('a/../../manifest.json'), [], /climbs out/],
    ['a symbolic link', entry('install.sh', { mode: 0o120777 }), [], /is a symbolic link/],
    ['a device', entry('manifest.json', { mode: 0o020644 }), [], /is not a regular file/],
    ['a duplicate', entry('manifest.json'), ['manifest.json'], /appears twice/],
    ['oversize', entry('manifest.json', { uncompressedSize: 1001 }), [], /1001 bytes, more than the 1000 allowed/],
    ['exactly the limit', entry('manifest.json', { uncompressedSize: 1000 }), [], undefined],
    ['encrypted', entry('manifest.json', { encrypted: true }), [], /is encrypted/],
    ['a folder', entry('notes/', { mode: 0o040755 }), [], /is a folder/],
    ['a file in a folder', entry('notes/manifest.json'), [], /is not a package file/],
    ['another file', entry('README.md'), [], /is not a package file/],
    ['an empty name', entry(''), [], /empty name/],
  ];
  it.each(cases)('%s', (_name, facts, seen, problem) => {
    const got = zipEntryProblem(facts, new Set(seen), limits);
    if (problem) expect(got).toMatch(problem);
    else expect(got).toBeUndefined();
  });
});

describe('storeStateLine', () => {
  const url = 'http://127.0.0.1:1/';
  it.each([
    ['nothing cached', { url }, undefined, `no catalog of ${url} is cached yet`],
    ['cached', { url, fetchedAt: '2026-01-01T00:00:00.000Z' }, new Date('2026-01-01T03:00:00Z'), `the catalog of ${url} in use was fetched 2026-01-01T00:00:00.000Z (3h ago), unsigned`],
    ['cached, no clock', { url, fetchedAt: '2026-01-01T00:00:00.000Z' }, undefined, `the catalog of ${url} in use was fetched 2026-01-01T00:00:00.000Z, unsigned`],
    ['signed', { url, fetchedAt: '2026-01-01T00:00:00.000Z', signedBy: '/cell/cosign.pub' }, undefined, `the catalog of ${url} in use was fetched 2026-01-01T00:00:00.000Z, signed by /cell/cosign.pub`],
    [
      'failing',
      { url, fetchedAt: '2026-01-01T00:00:00.000Z', lastFailure: { url: `${url}index.json`, message: 'answered an HTML page', since: '2026-01-01T01:00:00.000Z' } },
      undefined,
      `the catalog of ${url} in use was fetched 2026-01-01T00:00:00.000Z, unsigned; refreshing it fails since 2026-01-01T01:00:00.000Z: ${url}index.json: answered an HTML page`,
    ],
  ] as const)('%s', (_name, meta, now, expected) => expect(storeStateLine(meta, now)).toBe(expected));
});

describe('a signed index lists the sha256 of every package file', () => {
  const h = 'a'.repeat(64);
  const base = new URL('http://127.0.0.1:1/');
  it.each([
    ['loose files, all listed', [{ id: 'notes', sha256: { 'manifest.json': h, 'compose-template.yml': h } }], undefined],
    ['loose files, install.sh need not be listed when absent', [{ id: 'notes', sha256: { 'manifest.json': h, 'compose-template.yml': h } }], undefined],
    ['a template not listed', [{ id: 'notes', sha256: { 'manifest.json': h } }], /entry "notes" lists no sha256 for compose-template\.yml/],
    ['nothing listed', [{ id: 'notes' }], /entry "notes" lists no sha256 for manifest\.json/],
    ['an archive listed', [{ id: 'home', package: 'home-1.zip', sha256: h }], undefined],
    ['an archive not listed', [{ id: 'home', package: 'home-1.zip' }], /entry "home" lists no sha256 for its archive/],
  ] as [string, FetchEntry[], RegExp | undefined][])('%s', (_name, entries, problem) => {
    const got = unlistedHashes(entries);
    if (problem) expect(got).toMatch(problem);
    else expect(got).toBeUndefined();
  });

  it('listedHash finds the file by name, the archive by its string', () => {
    const entry: FetchEntry = { id: 'notes', sha256: { 'manifest.json': h } };
    const [manifest, template] = packageFiles(entry);
    expect(listedHash(entry, manifest!)).toBe(h);
    expect(listedHash(entry, template!)).toBeUndefined();
  });

  it.each([
    ['a short digest', '[{"id": "a", "sha256": {"manifest.json": "abc"}}]', /sha256 that is not a map/],
    ['an unknown file', `[{"id": "a", "sha256": {"README.md": "${h}"}}]`, /sha256 that is not a map/],
    ['an archive with a map', `[{"id": "a", "package": "a.zip", "sha256": {"manifest.json": "${h}"}}]`, /the archive's sha256/],
    ['capitals', `[{"id": "a", "sha256": {"manifest.json": "${h.toUpperCase()}"}}]`, /sha256 that is not a map/],
  ])('readFetchedIndex refuses %s', (_name, text, problem) => expect(readFetchedIndex(Buffer.from(text), 'application/json', base).problem).toMatch(problem));
});
