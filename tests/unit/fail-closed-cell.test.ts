/**
 * ADR 001: a verification mode that cannot be read means enforce. A Cell whose only problems are
 * in spec.imageVerification is read with that section as enforce (keys it names kept when they
 * can be read), and the problems are still reported; any other problem refuses the Cell as before.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadCell } from '../../state/cell.js';

const EXAMPLE_CELL = path.join(process.cwd(), 'examples', 'cell');
const EXAMPLE_STORE = path.join(process.cwd(), 'examples', 'store');
let root: string;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-failclosed-'));
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const ROWS: [string, string, { mode: string; publicKey?: string; publicKeys?: string[] } | undefined][] = [
  ['a misspelt mode', '  imageVerification:\n    mode: enforced\n', { mode: 'enforce' }],
  ['a mode of the wrong type', '  imageVerification:\n    mode: 3\n    publicKey: ./cosign.pub\n', { mode: 'enforce', publicKey: './cosign.pub' }],
  ['a key of the wrong type', '  imageVerification:\n    mode: warn\n    publicKey: 7\n    publicKeys: [./a.pub]\n', { mode: 'enforce', publicKeys: ['./a.pub'] }],
  ['a section that is not a mapping', '  imageVerification: yes please\n', { mode: 'enforce' }],
  ['an unknown field in the section', '  imageVerification:\n    mode: off\n    moed: off\n', { mode: 'enforce' }],
  ['a valid section', '  imageVerification:\n    mode: off\n', { mode: 'off' }],
];

describe('a Cell whose image verification cannot be read', () => {
  test.each(ROWS.map((r, i) => [...r, i] as const))('%s', async (_what, section, expected, i) => {
    const dir = path.join(root, `row${i}`);
    await fs.cp(EXAMPLE_CELL, path.join(dir, 'cell'), { recursive: true });
    await fs.cp(EXAMPLE_STORE, path.join(dir, 'store'), { recursive: true });
    const file = path.join(dir, 'cell', 'cell.yaml');
    const text = await fs.readFile(file, 'utf8');
    await fs.writeFile(file, text.replace(/ {2}imageVerification:\n {4}mode: warn\n/, section));
    const cell = await loadCell(path.join(dir, 'cell'));
    expect(cell.cell?.spec.imageVerification).toEqual(expected);
    const reported = cell.checked.general.filter((p) => p.pointer.startsWith('/spec/imageVerification'));
    if (expected?.mode === 'off') expect(reported).toEqual([]);
    else {
      expect(reported.length).toBeGreaterThan(0);
      for (const p of reported) expect(p.message).toContain('taken as "enforce"');
    }
  });

  test('another problem in the Cell refuses it as before', async () => {
    const dir = path.join(root, 'other');
    await fs.cp(EXAMPLE_CELL, path.join(dir, 'cell'), { recursive: true });
    const file = path.join(dir, 'cell', 'cell.yaml');
    const text = await fs.readFile(file, 'utf8');
    await fs.writeFile(file, text.replace('mode: warn', 'mode: sure').replace('domain: demo.pic.test', 'domain: 42'));
    const cell = await loadCell(path.join(dir, 'cell'));
    expect(cell.cell).toBeUndefined();
  });
});
