import { afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_QUIET_MS, isDocumentPath, isScratchName, watchCellFolder } from '../../controllers/sources/file-watch.js';

/** Collects the watcher's callbacks; `next()` resolves with the next one (or one already queued). */
class Changes {
  all: string[][] = [];
  #unread: string[][] = [];
  #waiting: ((paths: string[]) => void)[] = [];

  onChange = (paths: string[]): void => {
    this.all.push(paths);
    const waiter = this.#waiting.shift();
    if (waiter !== undefined) waiter(paths);
    else this.#unread.push(paths);
  };

  next(): Promise<string[]> {
    const unread = this.#unread.shift();
    if (unread !== undefined) return Promise.resolve(unread);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}

const doc = (name: string): string => `apiVersion: pic.ngo/v1\nkind: ServiceInstall\nmetadata: {name: ${name}}\n`;

describe('watchCellFolder', () => {
  let cell: string;
  let changes: Changes;
  let watcher: { close(): Promise<void> } | undefined;
  const at = (...segments: string[]): string => path.join(cell, ...segments);

  /**
   * Proves that nothing else was reported: a sentinel written last comes back alone. Any earlier
   * change still on its way would arrive before it or in the same call.
   */
  async function expectNothingElse(): Promise<void> {
    await writeFile(at('peers', 'sentinel.yaml'), `kind: PeerAccount\n# ${Date.now()}\n`);
    expect(await changes.next()).toEqual([at('peers', 'sentinel.yaml')]);
  }

  beforeEach(async () => {
    cell = await mkdtemp(path.join(tmpdir(), 'pic-file-watch-'));
    for (const folder of ['services', 'peers', 'connections', 'store']) await mkdir(at(folder));
    await writeFile(at('cell.yaml'), 'kind: Cell\n');
    await writeFile(at('services', 'existing.yaml'), doc('existing'));
    changes = new Changes();
    watcher = await watchCellFolder(cell, changes.onChange, { debounceMs: 200 });
  });

  afterEach(async () => {
    await watcher?.close();
    await rm(cell, { recursive: true, force: true });
  });

  test('one write gives one callback; files present at start are not reported', async () => {
    await writeFile(at('services', 'notes.yaml'), doc('notes'));
    expect(await changes.next()).toEqual([at('services', 'notes.yaml')]);
    await expectNothingElse();
  });

  test('a burst of ten writes gives one callback with every path, sorted', async () => {
    const names = ['j', 'c', 'a', 'h', 'e', 'b', 'i', 'd', 'g', 'f'];
    for (const name of names) await writeFile(at('services', `${name}.yaml`), doc(name));
    await writeFile(at('services', 'a.yaml'), doc('a-again'));
    await writeFile(at('cell.yaml'), 'kind: Cell\n# edited\n');
    expect(await changes.next()).toEqual([
      at('cell.yaml'),
      ...[...names].sort().map((name) => at('services', `${name}.yaml`)),
    ]);
    await expectNothingElse();
  });

  test('an editor-style save is one callback naming only the document', async () => {
    await writeFile(at('services', '.notes.yaml.swp'), 'swap');
    await writeFile(at('services', '4913'), '');
    await unlink(at('services', '4913'));
    await writeFile(at('services', 'notes.yaml~'), doc('backup'));
    await writeFile(at('services', 'notes.yaml.tmp'), doc('notes'));
    await rename(at('services', 'notes.yaml.tmp'), at('services', 'notes.yaml'));
    await unlink(at('services', '.notes.yaml.swp'));
    expect(await changes.next()).toEqual([at('services', 'notes.yaml')]);
    await expectNothingElse();
  });

  test('a vim-style save of an existing document (move aside, write anew) names only the document', async () => {
    await writeFile(at('services', '.existing.yaml.swp'), 'swap');
    await rename(at('services', 'existing.yaml'), at('services', 'existing.yaml~'));
    await writeFile(at('services', 'existing.yaml'), doc('existing-edited'));
    await unlink(at('services', 'existing.yaml~'));
    await unlink(at('services', '.existing.yaml.swp'));
    expect(await changes.next()).toEqual([at('services', 'existing.yaml')]);
    await expectNothingElse();
  });

  test('deleting a document is reported', async () => {
    await unlink(at('services', 'existing.yaml'));
    expect(await changes.next()).toEqual([at('services', 'existing.yaml')]);
  });

  test('a document folder that is removed or created is reported with its documents', async () => {
    await rm(at('services'), { recursive: true });
    expect(await changes.next()).toEqual([at('services'), at('services', 'existing.yaml')]);
    await mkdir(at('services'));
    expect(await changes.next()).toEqual([at('services')]);
    await writeFile(at('services', 'notes.yml'), doc('notes'));
    expect(await changes.next()).toEqual([at('services', 'notes.yml')]);
  });

  test('files outside the document folders or not YAML are not reported', async () => {
    await writeFile(at('store', 'index.yaml'), 'not a document');
    await writeFile(at('README.yaml'), 'not a document');
    await writeFile(at('services', 'notes.json'), '{}');
    await writeFile(at('services', 'notes.txt'), 'text');
    await writeFile(at('services', '#notes.yaml#'), doc('emacs'));
    await mkdir(at('services', 'nested'));
    await writeFile(at('services', 'nested', 'deep.yaml'), doc('deep'));
    await mkdir(at('other'));
    await writeFile(at('other', 'x.yaml'), doc('x'));
    await expectNothingElse();
    expect(changes.all).toHaveLength(1);
  });
});

describe('watchCellFolder with its default timing', () => {
  let cell: string;
  let watcher: { close(): Promise<void> } | undefined;

  beforeEach(async () => {
    cell = await mkdtemp(path.join(tmpdir(), 'pic-file-watch-'));
    await mkdir(path.join(cell, 'services'));
  });

  afterEach(async () => {
    await watcher?.close();
    await rm(cell, { recursive: true, force: true });
  });

  test('a document written in pieces is reported once, whole', async () => {
    const file = path.join(cell, 'services', 'notes.yaml');
    const seen: string[] = [];
    let resolveFirst: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (resolveFirst = resolve));
    watcher = await watchCellFolder(cell, () => {
      seen.push(readFileSync(file, 'utf8'));
      resolveFirst();
    });
    const pieces = ['apiVersion: pic.ngo/v1\n', 'kind: ServiceInstall\n', 'metadata: {name: notes}\n', 'spec: {config: {greeting: hello}}\n'];
    const handle = await open(file, 'w');
    // A writer pausing under the quiet time. On a loaded machine a timer can fire late: the gaps
    // the writer really left are measured, and a gap past the quiet time is a writer that stopped.
    let widestGapMs = 0;
    let last = performance.now();
    for (const piece of pieces) {
      await handle.write(piece);
      await new Promise((resolve) => setTimeout(resolve, 15));
      const now = performance.now();
      widestGapMs = Math.max(widestGapMs, now - last);
      last = now;
    }
    await handle.close();
    await first;
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (widestGapMs < DEFAULT_QUIET_MS * 0.8) expect(seen).toEqual([pieces.join('')]);
    else expect(seen[seen.length - 1]).toBe(pieces.join('')); // reported again, whole, once it settled
  });

  test('an atomic replace is reported with its path', async () => {
    const file = path.join(cell, 'services', 'notes.yaml');
    const reported = new Promise<string[]>((resolve) => {
      void watchCellFolder(cell, resolve).then((w) => {
        watcher = w;
        void writeFile(`${file}.tmp`, doc('notes')).then(() => rename(`${file}.tmp`, file));
      });
    });
    expect(await reported).toEqual([file]);
  });
});

describe('document and scratch names', () => {
  const cell = path.join(path.sep, 'srv', 'cell');
  test.each([
    { p: 'cell.yaml', expected: true },
    { p: 'cell.yml', expected: true },
    { p: 'other.yaml', expected: false },
    { p: 'services/notes.yaml', expected: true },
    { p: 'peers/alice.yml', expected: true },
    { p: 'connections/vpn.YAML', expected: true },
    { p: 'services/.notes.yaml', expected: false },
    { p: 'services/notes.yaml.swp', expected: false },
    { p: 'services/notes.yaml~', expected: false },
    { p: 'services/nested/notes.yaml', expected: false },
    { p: 'store/notes.yaml', expected: false },
    { p: '../services/notes.yaml', expected: false },
  ])('$p is a document: $expected', ({ p, expected }) => {
    expect(isDocumentPath(cell, path.join(cell, p))).toBe(expected);
  });

  test.each([
    { name: '.notes.yaml.swp', expected: true },
    { name: '.notes.yaml.swx', expected: true },
    { name: '#notes.yaml#', expected: true },
    { name: 'notes.yaml~', expected: true },
    { name: '4913', expected: true },
    { name: 'notes.yaml.tmp', expected: true },
    { name: 'notes.yaml.part', expected: true },
    { name: 'notes.yaml', expected: false },
  ])('$name is scratch: $expected', ({ name, expected }) => {
    expect(isScratchName(name)).toBe(expected);
  });
});
