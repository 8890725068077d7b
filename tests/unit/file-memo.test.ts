import { mkdirSync, mkdtempSync, rmSync, writeFileSync, renameSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, test } from '@jest/globals';
import { CellReadMemo } from '../../state/cell.js';
import { FileMemo } from '../../state/file-memo.js';
import { loadCellFolder } from '../../state/desired.js';
import { serviceInstallDocument } from '../support/cell.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'pictest-file-memo-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Seconds from now, as the memo's clock: files written now look settled then. */
const later = (seconds: number) => Date.now() + seconds * 1000;

let n = 0;
function fresh(content = 'a: 1\n'): string {
  const file = path.join(root, `f${n++}.yaml`);
  writeFileSync(file, content);
  return file;
}

describe('FileMemo', () => {
  test.each([
    ['a settled, unchanged file is computed once', (_f: string) => undefined, 1],
    ['rewritten in place with the same size: computed again', (f: string) => writeFileSync(f, 'a: 2\n'), 2],
    ['replaced by a rename: computed again', (f: string) => (writeFileSync(`${f}.tmp`, 'a: 1\n'), renameSync(`${f}.tmp`, f)), 2],
    ['times set back to what they were: the ctime still tells', (f: string) => (writeFileSync(f, 'a: 3\n'), utimesSync(f, 1, 1)), 2],
    ['removed: computed again', (f: string) => rmSync(f), 2],
  ])('%s', async (_what, change, computations) => {
    const memo = new FileMemo<{ n: number }>();
    const file = fresh();
    utimesSync(file, 1, 1);
    let computed = 0;
    const get = () => memo.get([file], '', () => ({ n: ++computed }), later(10));
    get();
    await sleep(5); // a new kernel tick for the change
    change(file);
    get();
    expect(computed).toBe(computations);
  });

  test('a file changed within the last two seconds is read every time, until it settles', () => {
    const memo = new FileMemo<number>();
    const file = fresh();
    let computed = 0;
    memo.get([file], '', () => ++computed);
    memo.get([file], '', () => ++computed);
    expect(computed).toBe(2);
    memo.get([file], '', () => ++computed, later(3));
    memo.get([file], '', () => ++computed, later(3));
    expect(computed).toBe(3);
  });

  test('the variant and every file of the set are part of the key', () => {
    const memo = new FileMemo<string>();
    const [a, b] = [fresh(), fresh()];
    const calls: string[] = [];
    const get = (files: string[], variant: string) => memo.get(files, variant, () => (calls.push(`${files.length}${variant}`), 'x'), later(10));
    get([a, b], 'p');
    get([a, b], 'p');
    get([a, b], 'q');
    get([a], 'p');
    expect(calls).toEqual(['2p', '2q', '1p']);
    writeFileSync(b, 'changed: true\n');
    get([a, b], 'p');
    expect(calls).toHaveLength(4);
  });

  test('values are frozen, deeply', () => {
    const memo = new FileMemo<{ list: { x: number }[] }>();
    const value = memo.get([fresh()], '', () => ({ list: [{ x: 1 }] }), later(10));
    expect(() => {
      value.list[0]!.x = 2;
    }).toThrow(TypeError);
    expect(() => value.list.push({ x: 3 })).toThrow(TypeError);
  });

  test('it holds at most maxEntries, dropping the oldest', () => {
    const memo = new FileMemo<number>(2);
    const files = [fresh(), fresh(), fresh()];
    let computed = 0;
    for (const f of files) memo.get([f], '', () => ++computed, later(10));
    expect(memo.size).toBe(2);
    memo.get([files[2]!], '', () => ++computed, later(10));
    expect(computed).toBe(3);
    memo.get([files[0]!], '', () => ++computed, later(10));
    expect(computed).toBe(4);
  });
});

describe('loadCellFolder with the reader\'s memo reads again only what changed', () => {
  test('settled documents come back as the same objects; an edited one is read anew; without the memo all are', async () => {
    const dir = path.join(root, 'cell');
    const services = path.join(dir, 'services');
    mkdirSync(services, { recursive: true });
    const doc = (name: string, greeting: string) => serviceInstallDocument(name, { greeting });
    writeFileSync(path.join(services, 'a.yaml'), doc('a', 'one'));
    writeFileSync(path.join(services, 'b.yaml'), doc('b', 'one'));
    await sleep(2100); // past the racy window

    const memo = new CellReadMemo().documents;
    const first = await loadCellFolder(dir, memo);
    writeFileSync(path.join(services, 'b.yaml'), doc('b', 'two'));
    const second = await loadCellFolder(dir, memo);
    const byName = (docs: typeof first) => new Map(docs.services.map((s) => [s.doc.metadata.name, s]));
    expect(byName(await loadCellFolder(dir)).get('a')).not.toBe(byName(first).get('a'));
    expect(byName(second).get('a')).toBe(byName(first).get('a'));
    expect(byName(second).get('b')).not.toBe(byName(first).get('b'));
    expect(byName(second).get('b')!.doc.spec.config).toEqual({ greeting: 'two' });
    expect(Object.isFrozen(byName(second).get('a')!.doc.spec)).toBe(true);
  });
});
