/**
 * Admitted versions and upgrades against the real engine: a service with data in a volume is
 * installed at 1.0.0; the catalog moving on changes nothing that runs; an upgrade to a version
 * that never becomes healthy is rolled back with the data as it was, and not retried; an upgrade
 * to a good version keeps the data; an operator killed with SIGKILL during an upgrade leaves the
 * service running, and no paused containers or scratch volumes, once it is started again.
 *
 * The tests run in order and share the cell.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Operator } from '../../controllers/operator.js';
import { renderDescribe, renderGet } from '../../controllers/cli/status-views.js';
import { LABEL } from '../../reconcilers/containers/labels.js';
import { BACKUP_LABEL } from '../../reconcilers/backup/labels.js';
import { EventLog } from '../../state/events.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { waitFor } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { PIC, runPic } from '../support/pic-cli.js';
import { containerFacts, createUpgradeCell, execIn, KEY, SERVICE, type UpgradeCell, type Version } from '../support/upgrade-cell.js';

let cell: UpgradeCell;
let cellName = '';
let cellDir = '';
let stateDir = '';
let operator: Operator | undefined;
let status: StatusStore;
const children: ChildProcess[] = [];
const image = (v: string) => cell.image(v);
const startOperator = () => cell.startOperator();
const container = async () => {
  const { ip: _ip, ...facts } = await containerFacts(cell.container);
  return facts;
};
const dataFile = async () => (await execIn(cell.container, ['cat', '/data/file'])).trim();

async function writeData(text: string): Promise<void> {
  await execIn(cell.container, ['sh', '-c', 'printf %s "$1" > /data/file', 'sh', text]);
  await waitFor('the data written', async () => ((await dataFile()) === text ? true : undefined), 20_000);
}

function statusWhere(check: (s: DocumentStatus) => boolean, what: string, timeoutMs = 120_000): Promise<DocumentStatus> {
  return waitFor(what, async () => {
    const s = await status.get(KEY);
    return s && check(s) ? s : undefined;
  }, timeoutMs);
}

const readyAt = (version: string) => statusWhere((s) => s.phase === 'Ready' && s.facts?.version === version, `${KEY} Ready at ${version}`);
const upgradeFailed = (target: string) =>
  statusWhere((s) => s.phase === 'Stalled' && s.conditions.some((c) => c.type === 'Stalled' && c.reason === 'UpgradeFailed' && c.message.includes(target)) && s.facts?.version !== undefined, `${KEY} UpgradeFailed (${target})`);

async function creates(since: number): Promise<number> {
  const until = Math.ceil(Date.now() / 1000) + 1;
  // The service's own containers (a backup helper, e.g. the one that frees a restored volume's
  // previous tree once the service is Ready, is not a retry of the upgrade).
  const stream = await docker.getEvents({ since, until, filters: { type: ['container'], event: ['create'], label: [`${LABEL.cell}=${cellName}`, `${LABEL.owner}=${KEY}`] } });
  const text = await new Promise<string>((resolve, reject) => {
    let all = '';
    stream.on('data', (c: Buffer) => (all += c.toString('utf8')));
    stream.on('end', () => resolve(all));
    stream.on('error', reject);
  });
  return text.split('\n').filter((l) => l.trim() !== '').length;
}

/** What an interrupted backup or upgrade could leave: paused containers, helper containers, scratch or staged volumes. */
async function leftovers(): Promise<string[]> {
  const out: string[] = [];
  for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABEL.cell}=${cellName}`] } })) {
    if (c.State === 'paused') out.push(`paused ${c.Names[0]}`);
    if (c.Labels[BACKUP_LABEL.role]) out.push(`helper container ${c.Names[0]}`);
  }
  for (const v of (await docker.listVolumes({ filters: { label: [`${LABEL.cell}=${cellName}`] } })).Volumes ?? []) {
    const role = v.Labels?.[BACKUP_LABEL.role];
    if (role === 'scratch' || role === 'staged') out.push(`${role} volume ${v.Name}`);
  }
  return out.sort();
}

/**
 * The stability window every upgrade here asks for (spec.minReadySeconds): shorter than the
 * default 10 s, which each upgrade and each rollback's restore would wait out, and still three
 * times as long as the crash loop below runs before it exits.
 */
const WINDOW = 3;

const V1: Version = { version: '1.0.0', prepare: '', healthcheck: 'passes' };
const V2_BROKEN: Version = { version: '2.0.0', prepare: 'echo migrated-by-2.0.0 > /data/file;', healthcheck: 'fails' };
const V2_GOOD: Version = { version: '2.1.0', prepare: 'echo 2.1.0 > /data/version;', healthcheck: 'passes' };
const V3_SLOW: Version = { version: '3.0.0', prepare: 'echo migrated-by-3.0.0 > /data/file;', healthcheck: 'slow' };
/** Dies right after it starts, with no restart policy and no health check: judged at one instant, it looked Ready. */
const V2_DIES: Version = { version: '2.2.0', prepare: 'echo migrated-by-2.2.0 > /data/file; exit 3;', healthcheck: 'none', restart: 'no' };
/** Runs a second, exits, and Docker starts it again: a crash loop that is "running" half the time. */
const V2_LOOPS: Version = { version: '2.3.0', prepare: 'echo migrated-by-2.3.0 > /data/file; sleep 1; exit 3;', healthcheck: 'none' };

beforeAll(async () => {
  cell = await createUpgradeCell();
  ({ name: cellName, cellDir, stateDir } = cell);
  await cell.publish(V1);
  status = new StatusStore(path.join(stateDir, 'status'));
}, 120_000);

afterAll(async () => {
  await operator?.stop();
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  if (cell) await cell.remove([V1, V2_BROKEN, V2_GOOD, V3_SLOW, V2_DIES, V2_LOOPS]);
});

describe('admitted versions and upgrades', () => {
  let installed: { id: string; specHash: string; image: string };

  test('installing admits the package: it is kept, owner-only, with its hashes', async () => {
    operator = await startOperator();
    await cell.writeInstall('1.0.0', 30, WINDOW);
    await readyAt('1.0.0');
    await writeData('precious-1');
    installed = await container();
    const dir = path.join(stateDir, 'packages', SERVICE, '1.0.0');
    for (const f of ['manifest.json', 'compose-template.yml', 'package.json']) expect((await fs.stat(path.join(dir, f))).mode & 0o777).toBe(0o600);
    const meta = JSON.parse(await fs.readFile(path.join(dir, 'package.json'), 'utf8')) as { manifestSha256: string; templateSha256: string };
    expect(meta.manifestSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(await fs.readFile(path.join(stateDir, 'packages', SERVICE, 'admitted.json'), 'utf8')).version).toBe('1.0.0');
  }, 180_000);

  test('a catalog update without a document change changes nothing that runs, and is reported', async () => {
    await cell.publish(V2_BROKEN);
    await operator!.resyncAndSettle(60_000);
    await operator!.resyncAndSettle(60_000);
    const now = await container();
    expect(now).toEqual({ ...installed, state: 'running' });
    const s = await statusWhere((x) => (x.facts?.update as { version?: string } | undefined)?.version === '2.0.0', 'the update notice');
    expect(s.phase).toBe('Ready');
    const table = renderGet([s], 'table', new Date());
    expect(table.split('\n')[0]).toMatch(/\bUPDATE\b/);
    expect(table.split('\n')[1]).toMatch(/\b2\.0\.0\b/);
    const describe = renderDescribe(s, [], new Date());
    expect(describe).toContain(`~ image: "${image('1.0.0')}" → "${image('2.0.0')}"`);
    expect(describe).toMatch(/template\.services\.keeper\.healthcheck\.test/);
    // pic plan sees the same: nothing to change, the newer version noted.
    const plan = await runPic(['plan', '--cell', cellDir, '--state-dir', stateDir]);
    expect(plan.stdout).toContain('version 2.0.0 is in the catalog (admitted: 1.0.0)');
    expect(plan.stdout.split('\n')).not.toContain(`${KEY}:`);
    expect(plan.stdout).toContain('in sync: nothing to change');
    expect(plan.code).toBe(0);
  }, 180_000);

  test('an upgrade to a version that never becomes healthy is rolled back with the data as it was, and not retried', async () => {
    await cell.writeInstall('2.0.0', 30, WINDOW);
    const failed = await upgradeFailed('2.0.0');
    expect(failed.facts?.version).toBe('1.0.0');
    const afterRollback = await container();
    expect(afterRollback.image).toBe(image('1.0.0'));
    expect(afterRollback.specHash).toBe(installed.specHash);
    expect(afterRollback.state).toBe('running');
    expect(await dataFile()).toBe('precious-1');
    expect(JSON.parse(await fs.readFile(path.join(stateDir, 'packages', SERVICE, 'admitted.json'), 'utf8'))).toMatchObject({ version: '1.0.0', failed: { version: '2.0.0' } });
    // Each step is an event of the document.
    const reasons = (await new EventLog(path.join(stateDir, 'events.jsonl')).recent({ key: KEY, limit: 200 })).map((e) => e.reason);
    for (const step of ['UpgradeStarted', 'UpgradeSnapshotVerified', 'UpgradeRollingBack', 'UpgradeFailed']) expect(reasons).toContain(step);
    // No retry loop: two more passes create no container.
    const since = Math.floor(Date.now() / 1000);
    await operator!.resyncAndSettle(60_000);
    await operator!.resyncAndSettle(60_000);
    expect(await creates(since)).toBe(0);
    expect((await container()).id).toBe(afterRollback.id);
    expect((await status.get(KEY))?.conditions.find((c) => c.type === 'Stalled')?.reason).toBe('UpgradeFailed');
    expect(await leftovers()).toEqual([]);
  }, 240_000);

  test('an upgrade to a good version works and keeps the data', async () => {
    await cell.publish(V2_GOOD);
    await cell.writeInstall('2.1.0', 30, WINDOW);
    await readyAt('2.1.0');
    const c = await container();
    expect(c.image).toBe(image('2.1.0'));
    expect(await dataFile()).toBe('precious-1');
    expect(JSON.parse(await fs.readFile(path.join(stateDir, 'packages', SERVICE, 'admitted.json'), 'utf8'))).toEqual(expect.objectContaining({ version: '2.1.0' }));
    // The previous package is pruned once the new one is Ready.
    expect((await fs.readdir(path.join(stateDir, 'packages', SERVICE))).filter((n) => /^\d/.test(n))).toEqual(['2.1.0']);
    // The old image stays on the machine (a rollback needs no registry).
    await docker.getImage(image('1.0.0')).inspect();
    await operator!.stop();
    operator = undefined;
  }, 240_000);

  test.each([
    ['exits right after it starts (no restart policy, no health check)', V2_DIES, /exited instead of running/],
    ['exits and is restarted by Docker (a crash loop)', V2_LOOPS, /restart/],
  ])('an upgrade to a version that %s fails within the stability window and rolls back with the data', async (_what, version, why) => {
    operator = await startOperator();
    // Running 2.1.0: Ready, or Stalled by the failed upgrade of the case before.
    await statusWhere((s) => s.facts?.version === '2.1.0' && (s.phase === 'Ready' || s.phase === 'Stalled'), `${KEY} at 2.1.0`);
    await cell.publish(version);
    await cell.writeInstall(version.version, 120, WINDOW);
    const failed = await upgradeFailed(version.version);
    const stalled = failed.conditions.find((c) => c.type === 'Stalled');
    expect(stalled?.message).toMatch(why);
    expect(failed.facts?.version).toBe('2.1.0');
    const c = await container();
    expect(c.image).toBe(image('2.1.0'));
    expect(c.state).toBe('running');
    expect(await dataFile()).toBe('precious-1');
    const reasons = (await new EventLog(path.join(stateDir, 'events.jsonl')).recent({ key: KEY, limit: 200 })).map((e) => e.reason);
    expect(reasons).toContain('UpgradeRollingBack');
    await operator.stop();
    operator = undefined;
  }, 240_000);

  test('an operator killed with SIGKILL during an upgrade: on restart the service runs, nothing is left paused or staged', async () => {
    await cell.publish(V3_SLOW);
    await cell.writeInstall('3.0.0', 15, WINDOW);
    const child = spawn(PIC, ['run', '--cell', cellDir, '--log-format', 'json'], { env: { ...process.env, ...cell.env, PIC_STATE_DIR: stateDir }, stdio: 'ignore' });
    children.push(child);
    const progressFile = path.join(stateDir, 'packages', SERVICE, 'upgrade.json');
    await waitFor('the upgrade to switch', async () => {
      const text = await fs.readFile(progressFile, 'utf8').catch(() => '');
      return text.includes('"step": "switch"') ? true : undefined;
    }, 180_000);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    operator = await startOperator();
    await upgradeFailed('3.0.0');
    const c = await container();
    expect(c.state).toBe('running');
    expect(c.image).toBe(image('2.1.0'));
    expect(await dataFile()).toBe('precious-1');
    await fs.access(progressFile).then(() => {
      throw new Error('upgrade.json is still there');
    }, () => undefined);
    // The restore frees the old tree with a short-lived helper in the background: it must go by itself.
    await waitFor('no paused container, helper or staged volume left', async () => ((await leftovers()).length === 0 ? true : undefined), 60_000).catch(() => undefined);
    expect(await leftovers()).toEqual([]);
  }, 300_000);

  test('uninstalling forgets the admission (a reinstall admits afresh) and keeps the data', async () => {
    await fs.rm(path.join(cellDir, 'services', `${SERVICE}.yaml`));
    await waitFor('the service uninstalled', async () => ((await status.get(KEY)) === undefined ? true : undefined), 60_000);
    await waitFor('its kept packages gone', async () => ((await fs.stat(path.join(stateDir, 'packages', SERVICE)).then(() => false, () => true)) ? true : undefined), 30_000);
    const volumes = (await docker.listVolumes({ filters: { label: [`${LABEL.cell}=${cellName}`] } })).Volumes ?? [];
    expect(volumes.some((v) => v.Labels?.[LABEL.owner] === KEY)).toBe(true);
  }, 120_000);
});
