/**
 * The command line as an admin uses it, against the real dockerd: plan, run (as a daemon and
 * --once), watch, get, describe, and a clean stop on SIGTERM; the state directory the operator
 * records in the cell folder; and a hostile document whose escape sequences never reach the
 * terminal raw.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createTestCell, removeStaleTestCells, removeTestCell, waitFor, type TestCell } from '../support/cell.js';
import { startPic, type RunningPic } from '../support/pic-cli.js';

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

function start(...args: string[]): RunningPic {
  const running = startPic(args, { PIC_STATE_DIR: cell.stateDir });
  children.push(running.child);
  return running;
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
    // watch only reads: it refuses a state directory that does not exist yet, so start it once the operator made one.
    await waitFor('the operator holds its state directory', async () => ((await fs.stat(path.join(cell.stateDir, 'operator.lock')).catch(() => undefined)) ? true : undefined));
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

  test('run records its state directory in the cell folder; get, describe and watch given --cell find it', async () => {
    const env = { ...process.env };
    delete env.PIC_STATE_DIR;
    const recorded = (await fs.readFile(path.join(cell.cellDir, '.pic', 'state-dir'), 'utf8')).trim();
    expect(recorded).toBe(path.resolve(cell.stateDir));
    const get = await run(PIC, ['get', 'ServiceInstall', '-o', 'name', '--cell', cell.cellDir], { env }).catch((e) => e as { stdout: string });
    expect(get.stdout.split('\n')).toContain('ServiceInstall/web');
    // Inside the cell folder, no flag at all.
    const inside = await run(PIC, ['get', 'ServiceInstall/web', '-o', 'jsonpath={.phase}'], { env, cwd: path.join(cell.cellDir, 'services') });
    expect(inside.stdout.trim()).toBe('Ready');
    const describe = await run(PIC, ['--cell', cell.cellDir, 'describe', 'ServiceInstall/web'], { env });
    expect(describe.stdout).toMatch(/^Name:\s+web$/m);
  });

  test('a hostile document: its escape sequences reach no output raw, in validate, run, logs, get, describe and watch', async () => {
    const fake = '\u001b[2J\u001b[H\rServiceInstall   api   True   Ready\u202e\u009b2J\u0007';
    await cell.writeService('api', { [`evil${fake}`]: `x${fake}` });
    // Everything a terminal would act on; newline excluded (it separates lines).
    // eslint-disable-next-line no-control-regex
    const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/u;
    const outputs: [string, string][] = [];
    const record = (what: string, r: { stdout: string; stderr: string }) => {
      outputs.push([`${what} stdout`, r.stdout], [`${what} stderr`, r.stderr]);
    };
    const validate = await pic('validate', cell.cellDir);
    expect(validate.code).toBe(1);
    record('validate', validate);
    for (const format of ['text', 'json']) {
      const once = await pic('run', '--once', '--cell', cell.cellDir, '--log-format', format);
      expect(once.code).toBe(1);
      record(`run --once --log-format ${format}`, once);
    }
    for (const args of [['get'], ['get', '-o', 'wide'], ['get', '-o', 'json'], ['get', '-o', 'yaml'], ['get', '-o', 'name'], ['get', 'si', '-o', 'jsonpath={range .items[*]}{.conditions[*].message}{"\\n"}{end}'], ['describe', 'ServiceInstall/api']]) {
      const r = await pic(...args);
      expect(r.code).toBe(0);
      record(args.join(' '), r);
    }
    const watcher = start('watch');
    await waitFor('watch shows api', async () => (/ServiceInstall\s+api\s/.test(watcher.output()) ? true : undefined));
    watcher.child.kill('SIGTERM');
    expect(await watcher.exited).toBe(0);
    outputs.push(['watch', watcher.output()]);

    for (const [what, text] of outputs) {
      const raw = RAW.exec(text);
      if (raw) throw new Error(`${what} carries U+${raw[0].codePointAt(0)!.toString(16).padStart(4, '0')} raw at ${raw.index}: ${JSON.stringify(text.slice(Math.max(0, raw.index - 40), raw.index + 40))}`);
    }
    // The value did reach them, escaped: the proof that the check above looked at it.
    const shown = outputs.filter(([, text]) => text.includes('evil\\e[2J\\e[H\\rServiceInstall')).map(([what]) => what);
    expect(shown).toEqual(expect.arrayContaining(['validate stdout', 'get -o wide stdout', 'describe ServiceInstall/api stdout']));
    // No fake Ready row: api's own row says it is not Ready.
    const table = outputs.find(([what]) => what === 'get -o wide stdout')![1];
    expect(table.split('\n').filter((l) => /^ServiceInstall\s+api\s/.test(l))).toEqual([expect.stringMatching(/^ServiceInstall\s+api\s+False\s+Stalled/)]);
    const json = JSON.parse(outputs.find(([what]) => what === 'get -o json stdout')![1]) as { items: { name: string; conditions: { message: string }[] }[] };
    expect(json.items.find((i) => i.name === 'api')!.conditions.some((c) => c.message.includes(fake))).toBe(true);
  });
});
