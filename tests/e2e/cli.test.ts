/**
 * The command line as an admin uses it, against the real dockerd: plan, run (as a daemon and
 * --once), watch, get, describe, and a clean stop on SIGTERM.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTestCell, removeStaleTestCells, removeTestCell, waitFor, type TestCell } from '../support/cell.js';

const run = promisify(execFile);
const PIC = path.join(process.cwd(), 'bin', 'pic');
let cell: TestCell;
const children: ChildProcess[] = [];

async function pic(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(PIC, args, { env: { ...process.env, PIC_STATE_DIR: cell.stateDir } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

function start(...args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(PIC, args, { env: { ...process.env, PIC_STATE_DIR: cell.stateDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (out += String(d)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

beforeAll(async () => {
  await removeStaleTestCells();
  cell = await createTestCell([{ id: 'web' }, { id: 'api' }]);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (cell) await removeTestCell(cell);
});

describe('pic command line', () => {
  test('plan shows pending changes (exit 2) before anything runs', async () => {
    await cell.writeService('web');
    const r = await pic('plan', '--cell', cell.cellDir);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('ServiceInstall/web:');
    expect(r.stdout).toMatch(/\+ allocate IP \d+\.\d+\.\d+\.20/);
    expect(r.stdout).toContain(`+ create container ${cell.containerName('web')}`);
  });

  test('run converges, watch follows it, get and describe report it, SIGTERM stops both cleanly', async () => {
    const operator = start('run', '--cell', cell.cellDir, '--log-format', 'json');
    const watcher = start('watch');
    await waitFor('watch shows web Ready', async () => (/ServiceInstall\s+web\s+True\s+Ready/.test(watcher.output()) ? true : undefined));
    await cell.writeService('api');
    await waitFor('watch shows api Ready', async () => (/ServiceInstall\s+api\s+True\s+Ready/.test(watcher.output()) ? true : undefined));

    const get = await pic('get', 'ServiceInstall', '-o', 'json');
    expect(get.code).toBe(0);
    const items = (JSON.parse(get.stdout) as { items: { name: string; phase: string; facts: { serviceIp: string } }[] }).items;
    expect(items.map((i) => [i.name, i.phase])).toEqual([['api', 'Ready'], ['web', 'Ready']]);

    const describe = await pic('describe', 'ServiceInstall/web');
    expect(describe.code).toBe(0);
    expect(describe.stdout).toMatch(/Conditions:[\s\S]*Ready\s+True/);
    expect(describe.stdout).toMatch(/Events:[\s\S]*Created/);

    const plan = await pic('plan', '--cell', cell.cellDir);
    expect(plan.stdout).toContain('in sync');
    expect(plan.code).toBe(0);

    watcher.child.kill('SIGTERM');
    operator.child.kill('SIGTERM');
    expect(await watcher.exited).toBe(0);
    expect(await operator.exited).toBe(0);
    expect(operator.output()).toContain('stopping');
  });

  test('run --once exits 0 when everything is Ready, 1 naming the field when a document is broken', async () => {
    const ok = await pic('run', '--once', '--cell', cell.cellDir, '--log-format', 'json');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/web\s+True\s+Ready/);

    await cell.writeFile('services/bad.yaml', 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: web2}\nspec: {version: 1.0.0}\n');
    const bad = await pic('run', '--once', '--cell', cell.cellDir, '--log-format', 'json');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/ServiceInstall\/web2 is Stalled: .*\/metadata\/name: no service "web2" in the catalog/);
    expect(bad.stdout).toMatch(/web\s+True\s+Ready/);
  });

  test('a second operator on the same state directory is refused', async () => {
    const first = start('run', '--cell', cell.cellDir, '--log-format', 'json');
    // bin/pic execs node, so the lock holds the spawned process's pid.
    await waitFor('first operator holds the lock', async () => ((await fs.readFile(path.join(cell.stateDir, 'operator.lock'), 'utf8').catch(() => '')).trim() === String(first.child.pid) ? true : undefined));
    const second = await pic('run', '--once', '--cell', cell.cellDir);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain('another pic operator');
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
  });
});
