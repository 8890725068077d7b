/** `pic validate STORE CELL` reads and checks the catalog once, and reports its problems once. */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runValidate } from '../../controllers/cli/validate.js';
import { DEFAULT_MANIFEST_POLICY } from '../../crds/validate-manifest.js';
import { loadCatalog, withCatalogMemo } from '../../state/catalog.js';

let tmp: string;
beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-validate-once-'));
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

async function breakNotes(store: string): Promise<string> {
  const file = path.join(store, 'services', 'notes', 'manifest.json');
  const m = JSON.parse(await fs.readFile(file, 'utf8'));
  m.container_name = 'notes';
  await fs.writeFile(file, JSON.stringify(m, null, 2));
  return file;
}

describe('loadCatalog inside withCatalogMemo', () => {
  test('reads a folder once per real path and policy; outside, every call reads', async () => {
    const { store } = await copyExamples();
    const link = `${store}-link`;
    await fs.symlink(store, link);
    await withCatalogMemo(async () => {
      const first = await loadCatalog(store, DEFAULT_MANIFEST_POLICY);
      expect(await loadCatalog(link, { ...DEFAULT_MANIFEST_POLICY })).toBe(first);
      expect(await loadCatalog(store, { ...DEFAULT_MANIFEST_POLICY, imageVerification: 'warn' })).not.toBe(first);
      expect(await loadCatalog(store, { ...DEFAULT_MANIFEST_POLICY, allowedImagePrefix: 'git.pic.ngo/' })).not.toBe(first);
    });
    expect(await loadCatalog(store, DEFAULT_MANIFEST_POLICY)).not.toBe(await loadCatalog(store, DEFAULT_MANIFEST_POLICY));
  });
});

describe('runValidate', () => {
  test("a catalog problem is reported once when the cell names the catalog given before it", async () => {
    const { store, cell } = await copyExamples();
    const notes = await breakNotes(store);
    // The example cell says imageVerification warn; the same override gives both paths one policy.
    const run = (paths: string[]) => runValidate(paths, 'warn');
    const both = await run([store, cell]);
    const notesLines = both.lines.filter((l) => l.startsWith(`${notes}: /container_name: `));
    expect(notesLines).toHaveLength(1);
    expect(both.exitCode).toBe(1);
    // Each path alone still reports it, and the lines of both runs together are those of the two alone, less the repeat.
    const storeAlone = await run([store]);
    const cellAlone = await run([cell]);
    expect(storeAlone.lines).toContain(notesLines[0]);
    expect(cellAlone.lines).toContain(notesLines[0]);
    expect(both.lines).toEqual([...storeAlone.lines, ...cellAlone.lines.filter((l) => !storeAlone.lines.includes(l))]);
    // The cell checks its store under its own policy (warn); a problem both policies find is still one line.
    expect((await runValidate([store, cell])).lines.filter((l) => l.startsWith(`${notes}: /container_name: `))).toHaveLength(1);
  });

  test('a cell named twice reports each problem once', async () => {
    const { cell } = await copyExamples();
    await fs.writeFile(path.join(cell, 'services', 'homepage.yaml'), 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: homepage}\nspec: {version: 1.0.0, colour: red}\n');
    const once = await runValidate([cell]);
    const twice = await runValidate([cell, cell]);
    expect(once.lines.length).toBeGreaterThan(0);
    expect(twice.lines).toEqual(once.lines);
  });

  test('the bundled examples are valid', async () => {
    expect(await runValidate([path.join('examples', 'store'), path.join('examples', 'cell')])).toEqual({ lines: [], notices: [], exitCode: 0, summary: '1 cell, 5 services, 2 peers, 10 packages: valid' });
  });

  test('an empty document file is a notice, not a problem: the run stays valid and says so', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-notice-'));
    try {
      await fs.cp(path.join('examples', 'cell'), path.join(dir, 'cell'), { recursive: true });
      await fs.cp(path.join('examples', 'store'), path.join(dir, 'store'), { recursive: true });
      await fs.writeFile(path.join(dir, 'cell', 'services', 'empty.yaml'), '# nothing here\n');
      const result = await runValidate([path.join(dir, 'cell')]);
      expect(result.exitCode).toBe(0);
      expect(result.notices).toEqual([expect.stringMatching(/^notice: .*empty\.yaml: \/: holds no document/)]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
