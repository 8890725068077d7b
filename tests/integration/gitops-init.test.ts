/**
 * `pic init DIR --domain DOMAIN` (issue 21): a new folder that validates as written, a Git
 * repository with one commit, the systemd settings for `pic run --git`; never an existing folder.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { cellNameOf } from '../../controllers/cli/init.js';
import { runPic } from '../support/pic-cli.js';

const run = promisify(execFile);
let tmp: string;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'gto-init-'));
});

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

test.each([
  ['home', 'home'],
  ['/srv/My Cell', 'my-cell'],
  ['2024-cell', 'cell'],
  ['___', 'cell'],
  ['Cell_Nine.', 'cell-nine'],
])('cellNameOf(%j) = %j', (dir, name) => {
  expect(cellNameOf(dir)).toBe(name);
});

test('pic init writes a cell that validates, as a Git repository with one commit, and prints the systemd settings', async () => {
  const dir = path.join(tmp, 'home');
  const r = await runPic(['init', dir, '--domain', 'home.example.org', '--endpoint', '203.0.113.7:51820']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('PIC_GIT_URL=');
  expect(r.stdout).toContain('PIC_GIT_PATH=.');
  for (const file of ['cell.yaml', '.gitignore', 'README.md', 'services/example.yaml', 'peers/example.yaml', 'store/index.json']) await fs.access(path.join(dir, file));
  expect(await fs.readFile(path.join(dir, '.gitignore'), 'utf8')).toContain('.pic/');
  expect(await fs.readFile(path.join(dir, 'cell.yaml'), 'utf8')).toContain('endpoint: 203.0.113.7:51820');
  const validate = await runPic(['validate', dir]);
  expect(validate.code).toBe(0);
  expect(validate.stdout).toContain('1 cell, 0 packages: valid');
  const { stdout: log } = await run('git', ['log', '--format=%s', 'main'], { cwd: dir });
  expect(log.trim().split('\n')).toHaveLength(1);
  const { stdout: status } = await run('git', ['status', '--porcelain'], { cwd: dir });
  expect(status).toBe('');
});

test('pic init never writes into a folder that exists, even an empty one', async () => {
  const dir = path.join(tmp, 'taken');
  await fs.mkdir(dir);
  await fs.writeFile(path.join(dir, 'keep.txt'), 'mine');
  const r = await runPic(['init', dir, '--domain', 'home.example.org']);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain('exists');
  expect(await fs.readdir(dir)).toEqual(['keep.txt']);
  const empty = path.join(tmp, 'empty');
  await fs.mkdir(empty);
  expect((await runPic(['init', empty, '--domain', 'home.example.org'])).code).toBe(2);
  expect(await fs.readdir(empty)).toEqual([]);
});

test('pic init --store uses an existing catalog (the examples\' one validates with the cell)', async () => {
  const dir = path.join(tmp, 'with-store');
  const store = path.join(process.cwd(), 'examples', 'store');
  const r = await runPic(['init', dir, '--domain', 'cell.example.org', '--store', store]);
  expect(r.code).toBe(0);
  await expect(fs.access(path.join(dir, 'store'))).rejects.toThrow(/ENOENT/);
  const validate = await runPic(['validate', dir]);
  expect(validate.stdout + validate.stderr).toMatch(/valid/);
  expect(validate.code).toBe(0);
});

test.each([
  [['--domain', 'Not A Domain'], /not a domain name/],
  [['--domain', 'x.example.org', '--endpoint', 'host'], /not HOST:PORT/],
  [['--domain', 'x.example.org', '--endpoint', 'host:70000'], /not HOST:PORT/],
  [['--domain', 'x.example.org', '--store', '/nonexistent/store'], /no such folder/],
  [['--domain', 'x.example.org', '--store', 'https://store.example.org/'], /give a catalog folder's PATH/],
  [[], /needs --domain/],
])('pic init %j is a usage error and writes nothing', async (args, why) => {
  const dir = path.join(tmp, `bad-${Math.random().toString(16).slice(2)}`);
  const r = await runPic(['init', dir, ...args]);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(why);
  await expect(fs.access(dir)).rejects.toThrow(/ENOENT/);
});
