import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cellFilesSignature } from '../../state/cell.js';

/** A reading a minute from now, when every change the test made is out of the racy window. */
const later = () => Date.now() + 60_000;

describe('cellFilesSignature', () => {
  let root: string;
  let cell: string;
  let store: string;

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-signature-'));
    cell = path.join(root, 'cell');
    store = path.join(root, 'store');
    await fs.mkdir(path.join(cell, 'services'), { recursive: true });
    await fs.mkdir(path.join(store, 'services', 'notes'), { recursive: true });
    await fs.writeFile(path.join(cell, 'cell.yaml'), 'kind: Cell\n');
    await fs.writeFile(path.join(cell, 'services', 'notes.yaml'), 'kind: ServiceInstall\n');
    await fs.writeFile(path.join(store, 'index.json'), '[]');
    await fs.writeFile(path.join(store, 'services', 'notes', 'manifest.json'), '{}');
    await fs.writeFile(path.join(store, 'services', 'notes', 'compose-template.yml'), 'services: {}\n');
  });

  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  test('nothing changed: the same fingerprint', () => {
    const first = cellFilesSignature(cell, store, later());
    expect(first).toBeDefined();
    expect(cellFilesSignature(cell, store, later())).toBe(first);
  });

  const changes: [string, (cell: string, store: string) => Promise<void>][] = [
    ['a document rewritten in place with the same size', (c) => fs.writeFile(path.join(c, 'services', 'notes.yaml'), 'kind: ServiceInstalX\n')],
    ['a document added', (c) => fs.writeFile(path.join(c, 'services', 'files.yaml'), 'kind: ServiceInstall\n')],
    ['a document removed', (c) => fs.rm(path.join(c, 'services', 'notes.yaml'))],
    ['a peers folder created', (c) => fs.mkdir(path.join(c, 'peers'))],
    ['cell.yaml replaced by rename', async (c) => {
      await fs.writeFile(path.join(c, '.cell.yaml.tmp'), 'kind: Cell\n');
      await fs.rename(path.join(c, '.cell.yaml.tmp'), path.join(c, 'cell.yaml'));
    }],
    ['a catalog template edited', (_c, s) => fs.writeFile(path.join(s, 'services', 'notes', 'compose-template.yml'), 'services: {x: 1}\n')],
    ['a catalog service added', async (_c, s) => {
      await fs.mkdir(path.join(s, 'services', 'files'));
      await fs.writeFile(path.join(s, 'services', 'files', 'manifest.json'), '{}');
    }],
    ['the catalog index edited', (_c, s) => fs.writeFile(path.join(s, 'index.json'), '[1]')],
  ];
  test.each(changes)('%s: another fingerprint', async (_name, change) => {
    const before = cellFilesSignature(cell, store, later());
    await change(cell, store);
    const after = cellFilesSignature(cell, store, later());
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
  });

  test('a file changed within the last two seconds: no fingerprint (its timestamps cannot be trusted)', async () => {
    await fs.writeFile(path.join(cell, 'services', 'notes.yaml'), 'kind: ServiceInstall\n');
    expect(cellFilesSignature(cell, store)).toBeUndefined();
  });

  test('without a catalog folder, only the cell folder counts', async () => {
    const first = cellFilesSignature(cell, undefined, later());
    await fs.writeFile(path.join(store, 'index.json'), '[2]');
    expect(cellFilesSignature(cell, undefined, later())).toBe(first);
  });
});
