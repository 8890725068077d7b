/**
 * `pic backup` and `pic data` as an admin runs them, on a test cell the operator converged: a
 * service whose manifest declares a backup volume and a config path is backed up (-o json gives
 * the snapshot), listed, verified, its data deleted and restored; then it is uninstalled, its kept
 * volume listed by `pic data list` and deleted after a final snapshot; `prune` applies the Cell's
 * retention.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import { docker } from '../support/docker.js';
import { HELPER_IMAGE } from '../support/backup-fixture.js';
import { createTestCell, removeStaleTestCells, removeTestCell, type TestCell } from '../support/cell.js';

const run = promisify(execFile);
const PIC = path.join(process.cwd(), 'bin', 'pic');
let cell: TestCell;

async function pic(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, PIC_STATE_DIR: cell.stateDir, PIC_BACKUP_HELPER_IMAGE: HELPER_IMAGE, PIC_BACKUP_NAME_PREFIX: cell.name };
  try {
    const { stdout, stderr } = await run(PIC, args, { env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function exec(container: string, cmd: string[]): Promise<string> {
  const r = await execInContainer(docker, container, cmd);
  return r.stdout + r.stderr;
}

beforeAll(async () => {
  await removeStaleTestCells();
  cell = await createTestCell([{ id: 'notes' }]);
  const manifestFile = path.join(cell.storeDir, 'services', 'notes', 'manifest.json');
  const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as Record<string, unknown> & { capabilities: Record<string, boolean> };
  manifest.capabilities.has_storage = true;
  manifest.backup = { volumes: [{ container: cell.containerName('notes'), path: '/data', name: 'notes_data' }], config_paths: ['notes/config'] };
  manifest.storage = { primary_path: 'notes', quota_mb: null };
  await fs.writeFile(manifestFile, JSON.stringify(manifest, null, 2));
  await fs.mkdir(path.join(cell.stateDir, 'data', 'notes', 'config'), { recursive: true });
  await fs.writeFile(path.join(cell.stateDir, 'data', 'notes', 'config', 'notes.conf'), 'theme=dark\n');
  await cell.writeService('notes');
  const converged = await pic('run', '--cell', cell.cellDir, '--once', '--timeout', '90');
  if (converged.code !== 0) throw new Error(`pic run --once failed: ${converged.stdout}${converged.stderr}`);
});

afterAll(async () => {
  if (cell) await removeTestCell(cell);
});

describe('pic backup', () => {
  let id = '';

  test('create -o json prints the snapshot; list, verify and restore use it', async () => {
    const container = cell.containerName('notes');
    await exec(container, ['sh', '-c', 'mkdir -p /data/n && echo "my first note" > /data/n/1.md']);

    const created = await pic('backup', 'create', 'notes', '--cell', cell.cellDir, '-o', 'json');
    expect(created.stderr).toContain('backup notes: notes_data');
    expect(created.code).toBe(0);
    const manifest = JSON.parse(created.stdout) as { id: string; verification: { ok: boolean }; services: { service: string; version: string; archives: { file: string; files: number }[] }[] };
    id = manifest.id;
    expect(manifest.verification.ok).toBe(true);
    expect(manifest.services[0]!.version).toBe('1.0.0');
    expect(manifest.services[0]!.archives.map((a) => a.file)).toEqual(['service_data/notes/notes_data.tar.gz', 'service_data/notes/config_paths/notes_config.tar.gz']);
    await fs.access(path.join(cell.stateDir, 'backups', id, 'service_data', 'notes', 'notes_data.tar.gz'));

    const list = await pic('backup', 'list', '--cell', cell.cellDir);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`${id} .* verified .* notes`));

    const verify = await pic('backup', 'verify', id, '-o', 'json');
    expect(verify.code).toBe(0);
    expect(JSON.parse(verify.stdout).ok).toBe(true);

    await exec(container, ['sh', '-c', 'rm -rf /data/n']);
    await fs.writeFile(path.join(cell.stateDir, 'data', 'notes', 'config', 'notes.conf'), 'theme=light\n');
    const restored = await pic('backup', 'restore', id, '--cell', cell.cellDir);
    expect(restored.stdout).toContain('notes: 2 archive(s)');
    expect(restored.code).toBe(0);
    expect(await exec(container, ['cat', '/data/n/1.md'])).toBe('my first note\n');
    expect(await fs.readFile(path.join(cell.stateDir, 'data', 'notes', 'config', 'notes.conf'), 'utf8')).toBe('theme=dark\n');

    const events = await fs.readFile(path.join(cell.stateDir, 'events.jsonl'), 'utf8');
    expect(events).toMatch(/"reason":"BackupTaken"/);
    expect(events).toMatch(/"reason":"BackupRestored"/);
  });

  test('usage errors and unknown snapshots are reported, not thrown', async () => {
    expect((await pic('backup', 'create', 'nope', '--cell', cell.cellDir)).stderr).toContain('no ServiceInstall nope');
    expect((await pic('backup', 'verify', '../etc')).stderr).toContain('is not a snapshot id');
    expect((await pic('backup', 'restore', id, 'other', '--cell', cell.cellDir)).stderr).toContain(`snapshot ${id} holds no service other`);
  });

  test('data list shows the volume of an uninstalled service; data delete takes a final snapshot first', async () => {
    expect((await pic('data', 'list', '--cell', cell.cellDir)).stdout).toContain('No data kept');
    await cell.removeServiceFile('notes');
    expect((await pic('run', '--cell', cell.cellDir, '--once', '--timeout', '60')).code).toBe(0);
    const list = await pic('data', 'list', '--cell', cell.cellDir, '-o', 'json');
    const kept = JSON.parse(list.stdout) as Record<string, { volume: string }[]>;
    expect(Object.keys(kept)).toEqual(['notes']);
    const volume = kept.notes![0]!.volume;

    expect((await pic('data', 'delete', 'notes', '--cell', cell.cellDir)).code).toBe(2);
    const deleted = await pic('data', 'delete', 'notes', '--cell', cell.cellDir, '--yes');
    expect(deleted.stdout).toMatch(/final snapshot \S+ \(verified\)/);
    expect(deleted.code).toBe(0);
    await expect(docker.getVolume(volume).inspect()).rejects.toMatchObject({ statusCode: 404 });
    const snapshots = JSON.parse((await pic('backup', 'list', '--cell', cell.cellDir, '-o', 'json')).stdout) as { reason: string }[];
    expect(snapshots.map((s) => s.reason)).toEqual(['manual', 'final']);

    await pic('backup', 'delete', id, '--cell', cell.cellDir);
    expect(JSON.parse((await pic('backup', 'list', '--cell', cell.cellDir, '-o', 'json')).stdout)).toHaveLength(1);
  });

  test('prune deletes what the Cell\'s retention does not keep', async () => {
    expect((await pic('backup', 'prune', '--cell', cell.cellDir)).stderr).toContain('no spec.backup.retention');
    const cellFile = path.join(cell.cellDir, 'cell.yaml');
    await fs.writeFile(cellFile, `${await fs.readFile(cellFile, 'utf8')}  backup: {retention: {last: 0, daily: 0}}\n`);
    const [only] = JSON.parse((await pic('backup', 'list', '--cell', cell.cellDir, '-o', 'json')).stdout) as { id: string }[];
    const dry = await pic('backup', 'prune', '--cell', cell.cellDir, '--dry-run');
    expect(dry.stdout).toContain(`would delete ${only!.id}`);
    expect(JSON.parse((await pic('backup', 'list', '--cell', cell.cellDir, '-o', 'json')).stdout)).toHaveLength(1);
    expect((await pic('backup', 'prune', '--cell', cell.cellDir)).stdout).toContain(`deleted ${only!.id}`);
    expect((await pic('backup', 'list', '--cell', cell.cellDir)).stdout).toContain('No snapshots');
  });
});
