/**
 * Backups with the real operator (`pic run`) and real Docker: the operator takes the Cell's
 * scheduled backup, verified, and `pic get` shows it; a backup run by the command line beside the
 * operator keeps the service stopped (the operator does not start it meanwhile); and kill -9 of
 * the operator during its scheduled backup, of `pic backup create` while it holds the service, and
 * of `pic backup restore` while the service is stopped: afterwards the service runs, nothing is
 * left paused, no helper, scratch or staged volume is left, and the data is the old or the new.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { BACKUP_LABEL } from '../../reconcilers/backup/labels.js';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import { HELPER_IMAGE } from '../support/backup-fixture.js';
import { createTestCell, removeStaleTestCells, removeTestCell, waitFor, type TestCell } from '../support/cell.js';
import { docker } from '../support/docker.js';

const run = promisify(execFile);
const PIC = path.join(process.cwd(), 'bin', 'pic');
let cell: TestCell;
let container = '';
const children: ChildProcess[] = [];

function environment(): NodeJS.ProcessEnv {
  return { ...process.env, PIC_STATE_DIR: cell.stateDir, PIC_BACKUP_HELPER_IMAGE: HELPER_IMAGE, PIC_BACKUP_NAME_PREFIX: cell.name };
}

async function pic(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(PIC, args, { env: environment(), maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A pic process in the background; its output kept for the failure message. */
function start(...args: string[]): { child: ChildProcess; output: () => string; exited: Promise<void> } {
  const child = spawn(PIC, args, { env: environment(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { child, output: () => out, exited };
}

async function stopOperator(op: { child: ChildProcess; exited: Promise<void> }): Promise<void> {
  if (op.child.exitCode === null && op.child.signalCode === null) op.child.kill('SIGTERM');
  await op.exited;
}

async function exec(cmd: string[]): Promise<string> {
  const r = await execInContainer(docker, container, cmd);
  return r.stdout + r.stderr;
}

async function state(): Promise<{ Running: boolean; Paused: boolean }> {
  return (await docker.getContainer(container).inspect()).State;
}

/** What the backup engine of this cell has standing in Docker: helper containers, scratch and staged volumes. */
async function leftovers(): Promise<{ helpers: string[]; volumes: string[] }> {
  const filters = { label: [`ngo.pic.cell=${cell.name}`, BACKUP_LABEL.role] };
  const helpers = (await docker.listContainers({ all: true, filters })).map((c) => c.Names[0] ?? c.Id);
  const volumes = ((await docker.listVolumes({ filters })).Volumes ?? []).filter((v) => v.Labels?.[BACKUP_LABEL.role] !== 'previous').map((v) => v.Name);
  return { helpers, volumes };
}

/** Helper containers of the backup engine that mount the service's live volume (they read it for an archive). */
async function liveVolumeReaders(): Promise<string[]> {
  const live = (await docker.getContainer(container).inspect()).Mounts.find((m) => m.Destination === '/data')?.Name ?? '';
  const filters = { label: [`ngo.pic.cell=${cell.name}`, BACKUP_LABEL.role], volume: [live] };
  return (await docker.listContainers({ all: true, filters })).map((c) => c.Id);
}

async function snapshots(): Promise<{ id: string; reason: string; verification: { ok: boolean } | null }[]> {
  const listed = await pic('backup', 'list', '--cell', cell.cellDir, '-o', 'json');
  if (listed.code !== 0) throw new Error(listed.stderr);
  return JSON.parse(listed.stdout);
}

async function deleteSnapshots(): Promise<void> {
  for (const s of await snapshots()) expect((await pic('backup', 'delete', s.id, '--cell', cell.cellDir)).code).toBe(0);
}

async function backupFolderClean(): Promise<void> {
  const root = path.join(cell.stateDir, 'backups');
  const names = await fs.readdir(root).catch(() => [] as string[]);
  expect(names.filter((n) => n.endsWith('.partial') || n.endsWith('.deleting'))).toEqual([]);
  expect(await fs.readdir(path.join(root, '.journal')).catch(() => [] as string[])).toEqual([]);
}

async function converge(): Promise<void> {
  const done = await pic('run', '--cell', cell.cellDir, '--once', '--timeout', '120');
  if (done.code !== 0) throw new Error(`pic run --once failed: ${done.stdout}${done.stderr}`);
}

beforeAll(async () => {
  await removeStaleTestCells();
  cell = await createTestCell([{ id: 'notes' }]);
  container = cell.containerName('notes');
  const manifestFile = path.join(cell.storeDir, 'services', 'notes', 'manifest.json');
  const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as Record<string, unknown> & { capabilities: Record<string, boolean> };
  manifest.capabilities.has_storage = true;
  manifest.backup = { volumes: [{ container, path: '/data', name: 'notes_data' }], config_paths: [] };
  manifest.storage = { primary_path: 'notes', quota_mb: null };
  await fs.writeFile(manifestFile, JSON.stringify(manifest, null, 2));
  const cellFile = path.join(cell.cellDir, 'cell.yaml');
  await fs.writeFile(cellFile, `${await fs.readFile(cellFile, 'utf8')}  backup: {schedule: {every: hourly}, retention: {last: 2}}\n`);
  await cell.writeService('notes');
  await converge();
  await exec(['sh', '-c', 'echo first > /data/marker']);
}, 180_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (cell) await removeTestCell(cell);
});

describe('the operator and backups', () => {
  test('the operator takes the scheduled backup, verifies it, and pic get shows its age', async () => {
    const op = start('run', '--cell', cell.cellDir, '--resync', '2');
    try {
      const taken = await waitFor('a scheduled snapshot', async () => (await snapshots()).find((s) => s.reason === 'scheduled' && s.verification?.ok), 120_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${op.output()}`);
      });
      const got = await waitFor('the BACKUP column', async () => {
        const table = await pic('get', 'ServiceInstall');
        return /notes\s+True\s+Ready\s+\S+\s+\d+[smh]\s/.test(table.stdout) ? table.stdout : undefined;
      });
      expect(got).toMatch(/\bBACKUP\b/);
      const json = JSON.parse((await pic('get', 'ServiceInstall', 'notes', '-o', 'json')).stdout) as { facts: { backup: { lastVerified: { snapshot: string }; overdue: boolean } } };
      expect(json.facts.backup.lastVerified.snapshot).toBe(taken.id);
      expect(json.facts.backup.overdue).toBe(false);
      const events = await fs.readFile(path.join(cell.stateDir, 'events.jsonl'), 'utf8');
      expect(events).toMatch(/"reason":"BackupProgress"/);
      expect(events).toMatch(/"reason":"BackupVerified"/);
      // Not due again within the hour: the store says when the last one was taken.
      expect((await snapshots()).filter((s) => s.reason === 'scheduled')).toHaveLength(1);
    } finally {
      await stopOperator(op);
    }
    expect(await state()).toMatchObject({ Running: true, Paused: false });
    await backupFolderClean();
  }, 240_000);

  test('kill -9 of the operator during its scheduled backup: the next pic run leaves the service running and nothing behind', async () => {
    // Enough data that the archive takes a while: the kill lands while the service is paused.
    await exec(['sh', '-c', 'dd if=/dev/urandom of=/data/big.bin bs=1M count=200 2>/dev/null && echo second > /data/marker']);
    await deleteSnapshots();
    const op = start('run', '--cell', cell.cellDir, '--resync', '2');
    try {
      await waitFor('the scheduled backup pausing the service', async () => ((await state()).Paused && (await leftovers()).helpers.length > 0 ? true : undefined), 120_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${op.output()}`);
      });
    } finally {
      op.child.kill('SIGKILL');
      await op.exited;
    }
    expect((await state()).Paused).toBe(true);

    await converge();
    expect(await state()).toMatchObject({ Running: true, Paused: false });
    expect(await leftovers()).toEqual({ helpers: [], volumes: [] });
    await backupFolderClean();
    expect(await snapshots()).toEqual([]);
  }, 300_000);

  test('pic backup create beside the operator: the service stays stopped until the backup starts it; killed, the operator puts it right', async () => {
    await fs.writeFile(path.join(cell.cellDir, 'services', 'notes.yaml'), 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: notes}\nspec:\n  version: 1.0.0\n  config: {}\n  backup: {consistency: stop}\n');
    await converge();
    await deleteSnapshots();
    // Hourly schedule, and a scheduled snapshot taken now: the operator takes none of its own meanwhile.
    const op = start('run', '--cell', cell.cellDir, '--resync', '1');
    try {
      await waitFor('the operator taking its own scheduled snapshot first', async () => ((await snapshots()).some((s) => s.reason === 'scheduled' && s.verification !== null) && (await state()).Running ? true : undefined), 180_000);
      const create = start('backup', 'create', 'notes', '--cell', cell.cellDir);
      // While the command's helper reads the live volume, the service must be stopped: the
      // operator, which sees it die and resyncs every second, keeps off it.
      let sawHelper = false;
      while (create.child.exitCode === null) {
        const helpers = (await liveVolumeReaders()).length;
        const s = await state();
        if (helpers > 0) {
          sawHelper = true;
          expect(s.Running).toBe(false);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      await create.exited;
      expect(create.child.exitCode).toBe(0);
      expect(sawHelper).toBe(true);
      expect(await state()).toMatchObject({ Running: true, Paused: false });

      // Killed while it holds the service stopped: the operator notices the run is gone and starts it.
      const killed = start('backup', 'create', 'notes', '--cell', cell.cellDir);
      await waitFor('the command stopping the service', async () => (!(await state()).Running && (await liveVolumeReaders()).length > 0 ? true : undefined), 120_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${killed.output()}`);
      });
      killed.child.kill('SIGKILL');
      await killed.exited;
      await waitFor('the operator starting the service again', async () => ((await state()).Running ? true : undefined), 60_000);
      // The sweep removes the helpers, then the run's partial folder and journal.
      await waitFor('the sweep removing the helpers and the partial snapshot', async () => {
        const left = await leftovers();
        if (left.helpers.length > 0 || left.volumes.length > 0) return undefined;
        return backupFolderClean().then(() => true, () => undefined);
      }, 60_000);
    } finally {
      await stopOperator(op);
    }
  }, 420_000);

  test('kill -9 of pic backup restore while the service is stopped: after pic run the service runs on the old or the restored data, whole', async () => {
    await exec(['sh', '-c', 'echo restored > /data/marker']);
    const created = await pic('backup', 'create', 'notes', '--cell', cell.cellDir, '-o', 'json');
    expect(created.code).toBe(0);
    const id = (JSON.parse(created.stdout) as { id: string }).id;
    const sum = (await exec(['sha256sum', '/data/big.bin'])).split(' ')[0];
    await exec(['sh', '-c', 'echo old > /data/marker && rm /data/big.bin']);

    const restore = start('backup', 'restore', id, '--cell', cell.cellDir);
    await waitFor('the restore stopping the service', async () => (!(await state()).Running ? true : undefined), 180_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${restore.output()}`);
    });
    restore.child.kill('SIGKILL');
    await restore.exited;

    await converge();
    expect(await state()).toMatchObject({ Running: true, Paused: false });
    const marker = (await exec(['cat', '/data/marker'])).trim();
    expect(['old', 'restored']).toContain(marker);
    if (marker === 'restored') expect((await exec(['sha256sum', '/data/big.bin'])).split(' ')[0]).toBe(sum);
    else expect(await exec(['ls', '/data'])).not.toContain('big.bin');
    expect(await leftovers()).toEqual({ helpers: [], volumes: [] });
    await backupFolderClean();
  }, 300_000);
});
