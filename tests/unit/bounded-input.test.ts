// Hostile input stays bounded: a file of 200,000 bad entries or 10,000 levels of nesting yields a
// short report naming the file, never a stack overflow; catalog files are never read through a
// symbolic link, and no message quotes more of a file than the offending value, cut short.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAX_PROBLEMS_PER_FILE } from '../../crds/problem-limit.js';
import { validateDocument } from '../../crds/validate-documents.js';
import { DEFAULT_MANIFEST_POLICY, validateManifest } from '../../crds/validate-manifest.js';
import { formatProblem, type Problem } from '../../crds/types.js';
import { loadCatalog, loadServicePackage, readManifestFile } from '../../state/catalog.js';
import { allProblems } from '../../state/check-desired.js';
import { loadCell } from '../../state/cell.js';
import { loadDocumentFiles } from '../../state/desired.js';
import { parseJsonText, parseYamlDocuments } from '../../state/yaml-documents.js';

const EXAMPLES = path.resolve('examples');
const policy = { ...DEFAULT_MANIFEST_POLICY, imageVerification: 'warn' as const };

function expectBounded(problems: Problem[], file: string): void {
  expect(problems.length).toBe(MAX_PROBLEMS_PER_FILE + 1);
  expect(problems[problems.length - 1]).toEqual({ file, pointer: '', message: expect.stringMatching(/^\d+ more problems not shown/) });
  for (const p of problems) expect(p.file).toBe(file);
}

describe('many problems in one file make a bounded report', () => {
  test('a PeerAccount listing 200,000 invalid services', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-many-'));
    try {
      const file = path.join(dir, 'alice.yaml');
      await fs.writeFile(file, `apiVersion: pic.ngo/v1alpha1\nkind: PeerAccount\nmetadata: {name: alice}\nspec:\n  services: [${Array(200_000).fill('X').join(',')}]\n`);
      const docs = await loadDocumentFiles([file]);
      expect(docs.rejected).toHaveLength(1);
      expectBounded(docs.rejected[0]!.problems, file);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  test('a manifest with 200,000 bad env entries', () => {
    const text = JSON.stringify({ schema_version: 3, env: Array(200_000).fill(1) });
    const parsed = parseJsonText(text, 'manifest.json');
    expect(parsed.problems).toEqual([]);
    expectBounded(validateManifest(parsed.value, 'manifest.json', policy), 'manifest.json');
  });

  test('a manifest with 130,000 semantic problems (env values naming unknown variables)', () => {
    const env = Array.from({ length: 130_000 }, (_, i) => ({ key: `K${i}`, value: '${NOPE}' }));
    expectBounded(validateManifest({ env }, 'manifest.json', policy), 'manifest.json');
  });

  test('a document of 200,000 unknown fields', () => {
    const spec: Record<string, number> = {};
    for (let i = 0; i < 200_000; i++) spec[`f${i}`] = i;
    expectBounded(validateDocument({ apiVersion: 'pic.ngo/v1alpha1', kind: 'Connection', metadata: { name: 'x' }, spec }, 'c.yaml'), 'c.yaml');
  });

  test('a YAML file of 150,000 syntax errors', () => {
    const r = parseYamlDocuments('a: 1\n' + ']\n'.repeat(150_000), 'bad.yaml');
    expect(r.problems.length).toBeLessThanOrEqual(MAX_PROBLEMS_PER_FILE + 1);
    for (const p of r.problems) expect(p.file).toBe('bad.yaml');
  });

  test('a catalog index of 200,000 bad entries', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-index-'));
    try {
      await fs.mkdir(path.join(dir, 'services'));
      await fs.writeFile(path.join(dir, 'index.json'), `[${Array(200_000).fill('1').join(',')}]`);
      const catalog = await loadCatalog(dir, policy);
      expectBounded(catalog.problems, path.join(dir, 'index.json'));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('deep nesting is refused before anything recurses into it', () => {
  test.each([
    ['a 10,000-deep flow sequence', `a: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`],
    ['a 100,000-deep flow sequence', `a: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`],
    ['an unclosed 10,000-deep flow mapping', `a: ${'{a: '.repeat(10_000)}\n`],
    ['10,000 compact block sequences', `${'- '.repeat(10_000)}x\n`],
    ['200 levels of block mappings', Array.from({ length: 200 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n') + ' 1\n'],
    ['a deep flow sequence after a quote-like apostrophe', `a: don't\nb: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`],
  ])('%s', (_name, text) => {
    const r = parseYamlDocuments(text, 'deep.yaml');
    expect(r.documents).toEqual([]);
    expect(r.problems.length).toBeGreaterThan(0);
    expect(r.problems.length).toBeLessThanOrEqual(MAX_PROBLEMS_PER_FILE + 1);
    for (const p of r.problems) {
      expect(p.file).toBe('deep.yaml');
      expect(p.message).not.toMatch(/Maximum call stack|RangeError|\n/);
    }
  });

  test('a 64-level document is still read', () => {
    const text = `a: ${'['.repeat(60)}1${']'.repeat(60)}\n`;
    expect(parseYamlDocuments(text, 'ok.yaml').problems).toEqual([]);
  });

  test.each([
    ['a 10,000-deep JSON array', '['.repeat(10_000) + ']'.repeat(10_000)],
    ['a 100,000-deep unclosed JSON object', '{"a":'.repeat(100_000)],
  ])('%s', (_name, text) => {
    const r = parseJsonText(text, 'manifest.json');
    expect(r.value).toBeUndefined();
    expect(r.problems).toEqual([expect.objectContaining({ file: 'manifest.json' })]);
    expect(r.problems[0]!.message).not.toMatch(/Maximum call stack/);
  });
});

describe('messages quote at most the offending value, cut short', () => {
  test('a long version is cut', () => {
    const problems = validateManifest({ version: `1.0.0-${'x'.repeat(100_000)}` }, 'manifest.json', policy);
    for (const p of problems) expect(p.message.length).toBeLessThanOrEqual(600);
    expect(problems.find((p) => p.pointer === '/version')?.message).toContain('…');
  });

  test('a long unknown key is cut in the pointer and the message', () => {
    const spec = { [`k${'y'.repeat(50_000)}`]: 1, type: 'tor' };
    for (const p of validateDocument({ apiVersion: 'pic.ngo/v1alpha1', kind: 'Connection', metadata: { name: 'x' }, spec }, 'c.yaml')) {
      expect(formatProblem(p).length).toBeLessThan(1000);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Catalog files and folders that are symbolic links.

describe('catalog files are never read through a symbolic link', () => {
  let work: string;
  let store: string;
  let secret: string;

  beforeEach(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-links-'));
    store = path.join(work, 'store');
    await fs.cp(path.join(EXAMPLES, 'store'), store, { recursive: true });
    await fs.cp(path.join(EXAMPLES, 'cell'), path.join(work, 'cell'), { recursive: true });
    // What a link would expose if followed: a file outside the catalog that must never be quoted.
    secret = path.join(work, 'secret.json');
    await fs.writeFile(secret, '{"root_password": "TOPSECRET-42"}\n');
  });
  afterEach(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  function expectNoLeak(problems: Problem[]): void {
    for (const p of problems) expect(formatProblem(p)).not.toContain('TOPSECRET');
  }

  test.each([['manifest.json'], ['compose-template.yml'], ['install.sh']])('a package file %s that is a link', async (name) => {
    const target = path.join(store, 'services', 'notes', name);
    await fs.rm(target, { force: true });
    await fs.symlink(secret, target);
    const catalog = await loadCatalog(store, policy);
    expect(catalog.services.has('notes')).toBe(false);
    expect(catalog.invalid.get('notes')).toEqual(expect.arrayContaining([{ file: target, pointer: '', message: expect.stringContaining('is a symbolic link') }]));
    expectNoLeak(catalog.problems);
    expect(catalog.services.has('files')).toBe(true);
  });

  test('a link to a file inside the same package is refused as well', async () => {
    const target = path.join(store, 'services', 'notes', 'compose-template.yml');
    await fs.rename(target, path.join(store, 'services', 'notes', 'real.yml'));
    await fs.symlink('real.yml', target);
    const loaded = await loadServicePackage(path.join(store, 'services', 'notes'), policy);
    expect(loaded.service).toBeUndefined();
    expect(loaded.problems).toEqual([expect.objectContaining({ file: target, message: expect.stringContaining('symbolic link') })]);
  });

  test('a service folder that is a link', async () => {
    const outside = path.join(work, 'outside-notes');
    await fs.rename(path.join(store, 'services', 'notes'), outside);
    await fs.writeFile(path.join(outside, 'manifest.json'), await fs.readFile(secret));
    await fs.symlink(outside, path.join(store, 'services', 'notes'));
    const catalog = await loadCatalog(store, policy);
    expect(catalog.services.has('notes')).toBe(false);
    expect(catalog.invalid.get('notes')).toEqual([expect.objectContaining({ file: path.join(store, 'services', 'notes'), message: expect.stringContaining('symbolic link') })]);
    expectNoLeak(catalog.problems);
    // The ServiceInstall that names it says why, instead of "no such service".
    const cell = await loadCell(path.join(work, 'cell'));
    const notes = cell.checked.byDocument.get('ServiceInstall/notes') ?? [];
    expect(notes).toEqual([expect.objectContaining({ message: expect.stringContaining('symbolic link') })]);
  });

  test('index.json that is a link', async () => {
    await fs.rm(path.join(store, 'index.json'));
    await fs.symlink(secret, path.join(store, 'index.json'));
    const catalog = await loadCatalog(store, policy);
    expect(catalog.problems).toEqual(expect.arrayContaining([{ file: path.join(store, 'index.json'), pointer: '', message: expect.stringContaining('symbolic link') }]));
    expectNoLeak(catalog.problems);
  });

  test('a services folder that is a link', async () => {
    await fs.rename(path.join(store, 'services'), path.join(work, 'elsewhere'));
    await fs.symlink(path.join(work, 'elsewhere'), path.join(store, 'services'));
    const catalog = await loadCatalog(store, policy);
    expect(catalog.services.size).toBe(0);
    expect(catalog.problems).toEqual(expect.arrayContaining([{ file: path.join(store, 'services'), pointer: '', message: expect.stringContaining('symbolic link') }]));
  });

  test('the catalog folder itself may be reached through a link (the admin chose it)', async () => {
    const link = path.join(work, 'store-link');
    await fs.symlink(store, link);
    const catalog = await loadCatalog(link, policy);
    expect(catalog.problems).toEqual([]);
    expect(catalog.services.size).toBe(10);
  });

  test('a manifest given directly: links refused, size limited', async () => {
    const file = path.join(store, 'services', 'notes', 'manifest.json');
    expect(readManifestFile(file).problems).toEqual([]);
    await fs.rm(file);
    await fs.symlink(secret, file);
    expect(readManifestFile(file).problems).toEqual([expect.objectContaining({ message: expect.stringContaining('symbolic link') })]);
    await fs.rm(file);
    await fs.writeFile(file, `{"a": "${'x'.repeat(2 * 1024 * 1024)}"}`);
    expect(readManifestFile(file).problems).toEqual([expect.objectContaining({ message: expect.stringContaining('more than the 1048576 allowed') })]);
  });

  test('the example cell is still valid', async () => {
    const cell = await loadCell(path.join(work, 'cell'));
    expect(allProblems(cell.checked).map(formatProblem)).toEqual([]);
  });
});
