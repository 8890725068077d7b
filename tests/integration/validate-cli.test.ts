/** `pic validate` as an admin runs it: the real executable on real folders. */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { main } from '../../controllers/cli/main.js';

const run = promisify(execFile);
const PIC = path.join(process.cwd(), 'bin', 'pic');

async function pic(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(PIC, args, { cwd: process.cwd() });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-validate-'));
});
afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function copyExamples(): Promise<{ store: string; cell: string }> {
  const dest = await fs.mkdtemp(path.join(tmp, 'ex-'));
  await fs.cp(path.join(process.cwd(), 'examples', 'store'), path.join(dest, 'store'), { recursive: true });
  await fs.cp(path.join(process.cwd(), 'examples', 'cell'), path.join(dest, 'cell'), { recursive: true });
  return { store: path.join(dest, 'store'), cell: path.join(dest, 'cell') };
}

describe('pic validate', () => {
  test('the bundled catalog and cell are valid: exit 0 and one summary line', async () => {
    const r = await pic('validate', 'examples/store', 'examples/cell');
    expect(r.stdout).toBe('1 cell, 5 services, 2 peers, 10 packages: valid\n');
    expect(r.code).toBe(0);
  });

  test('each service folder and manifest of the catalog validates on its own', async () => {
    const services = await fs.readdir('examples/store/services');
    const r = await pic('validate', ...services.map((s) => `examples/store/services/${s}`), ...services.map((s) => `examples/store/services/${s}/manifest.json`));
    expect(r.stdout).toBe(`${services.length} packages: valid\n`);
    expect(r.code).toBe(0);
  });

  test('every problem at once, one line each, naming file and field; exit 1', async () => {
    const { store, cell } = await copyExamples();
    const notes = path.join(store, 'services', 'notes', 'manifest.json');
    const m = JSON.parse(await fs.readFile(notes, 'utf8'));
    m.container_name = 'notes';
    m.volumes = [{ name: 'x', mount: '/var/../etc' }];
    m.image = m.image.replace('git.pic.ngo/roof/', 'git.pic.ngo/roofx/');
    await fs.writeFile(notes, JSON.stringify(m, null, 2));
    await fs.writeFile(path.join(cell, 'services', 'homepage.yaml'), 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: homepage}\nspec: {version: 1.0.0, colour: red}\n');
    const r = await pic('validate', store, cell);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^${notes}: /container_name: `)),
        expect.stringMatching(new RegExp(`^${notes}: /volumes/0/mount: `)),
        expect.stringMatching(new RegExp(`^${notes}: /image: `)),
        expect.stringMatching(/services\/homepage\.yaml: \/spec\/colour: /),
      ]),
    );
    expect(r.stderr).toMatch(/\d+ problems? found/);
  });

  test('tag-only images are refused by default and allowed with --image-verification warn', async () => {
    const { store } = await copyExamples();
    const file = path.join(store, 'services', 'homepage', 'manifest.json');
    const m = JSON.parse(await fs.readFile(file, 'utf8'));
    const digestPinned = m.image;
    m.image = 'git.pic.ngo/roof/pic-homepage:1.0.0';
    await fs.writeFile(file, JSON.stringify(m, null, 2));
    const template = path.join(store, 'services', 'homepage', 'compose-template.yml');
    await fs.writeFile(template, (await fs.readFile(template, 'utf8')).replace(digestPinned, m.image));
    const strict = await pic('validate', file);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toMatch(/\/image: .*digest/);
    const relaxed = await pic('validate', '--image-verification', 'warn', file);
    expect(relaxed.stdout).toBe('1 package: valid\n');
    expect(relaxed.code).toBe(0);
  });

  test.each([
    [['validate'], 'needs at least one PATH'],
    [['validate', '--image-verification', 'loose', 'x'], 'must be one of'],
    [['validate', '--bogus', 'x'], 'validate has no flag --bogus; it takes --image-verification, --help/-h'],
    [['validate', '--state-dir', '/tmp', 'x'], 'validate does not take --state-dir'],
    [['frobnicate'], 'unknown command'],
  ])('usage errors exit 2: %j', async (args, fragment) => {
    const r = await pic(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(fragment);
  });

  test('each problem once: a store named directly and again as the cell\'s store (under another policy)', async () => {
    const { store, cell } = await copyExamples();
    const notes = path.join(store, 'services', 'notes', 'manifest.json');
    const m = JSON.parse(await fs.readFile(notes, 'utf8'));
    m.container_name = 'notes';
    await fs.writeFile(notes, JSON.stringify(m, null, 2));
    const r = await pic('validate', store, cell);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.filter((l) => l.startsWith(`${notes}: /container_name: `))).toHaveLength(1);
    expect(new Set(lines).size).toBe(lines.length);
    expect(r.stderr).toBe(`${lines.length} problem${lines.length === 1 ? '' : 's'} found\n`);
  });

  test('a broken Cell is reported alone, without a false "no service X in the catalog" per service', async () => {
    const { cell } = await copyExamples();
    const file = path.join(cell, 'cell.yaml');
    await fs.writeFile(file, (await fs.readFile(file, 'utf8')).replace('domain: demo.pic.test', 'domain: 3'));
    const r = await pic('validate', cell);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`${file}: /spec/domain: must be a string\n`);
  });

  test('a key that is a list or a map is a problem of the file, not a warning of Node\'s', async () => {
    const { cell } = await copyExamples();
    const file = path.join(cell, 'services', 'notes.yaml');
    await fs.writeFile(file, 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: notes}\nspec:\n  version: 1.0.0\n  ? [a, b]\n  : 1\n  config: {? {x: 1} : 2}\n');
    const r = await pic('validate', cell);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${file}: /spec/[ a, b ]: is not a known field`);
    expect(r.stderr).not.toMatch(/Warning|node:/);
  });

  test('control characters and escape sequences in a quoted value are escaped, never printed raw', async () => {
    const { cell } = await copyExamples();
    const fake = '\u001b[2J\u001b[H\rServiceInstall   notes   True   Ready\u202e\u009b';
    await fs.writeFile(path.join(cell, 'services', 'notes.yaml'), `apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: notes}\nspec:\n  version: 1.0.0\n  config: ${JSON.stringify({ [`evil${fake}`]: 1 })}\n`);
    const r = await pic('validate', cell);
    expect(r.code).toBe(1);
    // eslint-disable-next-line no-control-regex
    expect(r.stdout + r.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/u);
    expect(r.stdout).toContain('/spec/config/evil\\e[2J\\e[H\\rServiceInstall   notes   True   Ready\\u{202e}\\x9b: ');
  });

  test('a missing path or an unknown folder is a problem (exit 1), not a crash', async () => {
    const r = await pic('validate', path.join(tmp, 'nope'), tmp);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('no such file or folder');
    expect(r.stdout).toContain('not something pic validates');
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  test('arbitrary file contents never crash it', async () => {
    const dir = await fs.mkdtemp(path.join(tmp, 'prop-'));
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify(v))), fc.constantFrom('manifest.json', 'doc.yaml'), async (text, name) => {
        const file = path.join(dir, `${n++}-${name}`);
        await fs.writeFile(file, text);
        const lines: string[] = [];
        const code = await main(['validate', file], { out: (l) => lines.push(l), err: (l) => lines.push(l) });
        return (code === 0 || code === 1) && lines.every((l) => !/^\s+at /.test(l));
      }),
      { numRuns: 200 },
    );
  });
});
