/**
 * A stale table must not look live (issue 19, defect 5): after `pic run --once` no operator runs,
 * and get, describe and watch say so; with `pic run` going they show it live; after the operator
 * is killed (SIGKILL: its lock stays behind) they say it is gone.
 */
import type { ChildProcess } from 'node:child_process';
import type { OperatorPresence } from '../../state/operator-presence.js';
import { createTestCell, removeTestCell, waitFor, type TestCell } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { runPic, startPic, type RunningPic } from '../support/pic-cli.js';

let cell: TestCell;
const children: ChildProcess[] = [];

const pic = (...args: string[]) => runPic([...args, '--state-dir', cell.stateDir]);

async function operatorOf(): Promise<OperatorPresence> {
  const r = await pic('get', '-o', 'json');
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { operator: OperatorPresence }).operator;
}

function start(...args: string[]): RunningPic {
  const running = startPic([...args, '--state-dir', cell.stateDir]);
  children.push(running.child);
  return running;
}

/** The first frame `pic watch` prints (to a pipe: the frame, then a blank line before the next). */
async function firstWatchFrame(): Promise<string> {
  const watch = start('watch');
  try {
    return await waitFor('watch prints its first frame', async () => (/\n\nKIND\s[^\n]*\n[^\n]+\n/.test(watch.output()) ? watch.output() : undefined), 30_000);
  } finally {
    watch.child.kill('SIGTERM');
    await watch.exited;
  }
}

beforeAll(async () => {
  cell = await createTestCell([{ id: 'web' }], { prefix: 'pictest-stale-' });
  await cell.writeService('web');
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (cell) await removeTestCell(cell);
});

describe('whether an operator keeps the statuses current', () => {
  test('after pic run --once, get, describe and watch say no operator runs, even as the container is removed', async () => {
    const once = await runPic(['run', '--once', '--cell', cell.cellDir, '--state-dir', cell.stateDir, '--log-format', 'json']);
    expect(once.code).toBe(0);

    const get = await pic('get');
    expect(get.code).toBe(0);
    const lines = get.stdout.split('\n');
    expect(lines[0]).toMatch(/^No operator running; last converged by pic run --once at \d\d:\d\d:\d\d UTC — statuses may be stale$/);
    expect(lines[1]).toMatch(/^KIND\s.*\sAS OF\s+MESSAGE$/);
    expect(await operatorOf()).toMatchObject({ running: false, stale: true, mode: 'once' });

    // The defect as reported: the container is gone, the last status still says it runs — and now says as of when.
    await docker.getContainer(cell.containerName('web')).remove({ force: true });
    const wide = await pic('get', '-o', 'wide');
    expect(wide.stdout.split('\n')[0]).toMatch(/^No operator running; last converged by pic run --once at/);
    expect(wide.stdout).toMatch(/ServiceInstall\s+web\s+True\s+Ready\s.*1\/1 running\s+\S+\s+\d\d:\d\d:\d\d\s/);

    const describe = await pic('describe', 'ServiceInstall/web');
    expect(describe.stdout).toMatch(/^Operator:\s+no operator running; last converged by pic run --once at .* — statuses may be stale$/m);
    expect(describe.stdout).toMatch(/^As of:\s+\d\d:\d\d:\d\d UTC; nothing has checked it since$/m);

    const frame = await firstWatchFrame();
    expect(frame.split('\n')[0]).toMatch(/^\d+\/\d+ Ready {3}\S+ \S+ UTC {3}no operator running; last converged by pic run --once at .* — statuses may be stale$/);

    // --no-headers keeps the rows alone on stdout and says it on stderr.
    const bare = await pic('get', '--no-headers');
    expect(bare.stdout.split('\n')[0]).toMatch(/^\S+\s+\S+\s+(True|False|Unknown)\s/);
    expect(bare.stderr).toMatch(/^pic: no operator running; last converged by pic run --once at/);
  });

  test('with pic run going they show it live; after SIGKILL (its lock left behind) they say it is gone', async () => {
    const operator = start('run', '--cell', cell.cellDir, '--log-format', 'json');
    const live = await waitFor('get shows the operator running', async () => {
      const o = await operatorOf();
      return o.running && o.lastPass !== undefined ? o : undefined;
    });
    expect(live).toMatchObject({ running: true, stale: false, pid: operator.child.pid, mode: 'run', resyncIntervalSeconds: 600 });
    // It recreates what was removed by hand, and the table is then an ordinary one.
    await waitFor('web runs again', async () => ((await docker.getContainer(cell.containerName('web')).inspect().catch(() => undefined))?.State.Running ? true : undefined));
    const get = await pic('get');
    expect(get.stdout.split('\n')[0]).toMatch(/^KIND\s+NAME\s+READY\s+STATUS\s+UPDATE\s+AGE\s+BACKUP\s+MESSAGE$/);
    const frame = await firstWatchFrame();
    expect(frame.split('\n')[0]).toMatch(new RegExp(`^\\d+/\\d+ Ready {3}\\S+ \\S+ UTC {3}operator running \\(pid ${operator.child.pid}\\), last pass \\d\\d:\\d\\d:\\d\\d UTC$`));
    expect((await pic('describe', 'ServiceInstall/web')).stdout).toMatch(new RegExp(`^Operator:\\s+operator running \\(pid ${operator.child.pid}\\)`, 'm'));

    operator.child.kill('SIGKILL');
    await operator.exited;
    const gone = await operatorOf();
    expect(gone).toMatchObject({ running: false, stale: true, mode: 'run' });
    expect(gone.pid).toBeUndefined();
    const after = await pic('get');
    expect(after.stdout.split('\n')[0]).toMatch(/^No operator since \d\d:\d\d:\d\d UTC — statuses may be stale$/);
    const lastFrame = await firstWatchFrame();
    expect(lastFrame.split('\n')[0]).toMatch(/ {3}no operator since \d\d:\d\d:\d\d UTC — statuses may be stale$/);
  });
});
