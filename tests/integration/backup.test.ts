/**
 * The backup engine against the real dockerd: a service with two volumes and a config path is
 * backed up (paused), verified by a test restore, its data deleted and restored staged, and
 * compared byte for byte by busybox's own listing; a stopped service; a service whose image has no
 * tar; a flipped byte; hostile archives; a run killed with SIGKILL while the service is paused.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import tar from 'tar-stream';
import { BackupError, createSnapshot, restoreSnapshot, sweep, verifySnapshot, type BackupEnv, type Progress, type ServiceTarget } from '../../reconcilers/backup/index.js';
import { readArchiveFile } from '../../reconcilers/backup/archive.js';
import { entryListDigest } from '../../reconcilers/backup/entries.js';
import { BACKUP_LABEL } from '../../reconcilers/backup/labels.js';
import type { SnapshotManifest } from '../../reconcilers/backup/types.js';
import { SnapshotStore } from '../../state/snapshots.js';
import { docker } from '../support/docker.js';
import {
  buildNoTarImage,
  cleanupsDone,
  createFakeCell,
  createServiceContainer,
  createServiceVolume,
  FILL_SCRIPT,
  fingerprint,
  inVolume,
  NO_TAR_IMAGE,
  removeFakeCell,
  type FakeCell,
} from '../support/backup-fixture.js';

let cell: FakeCell;
let env: BackupEnv;
const progress: Progress[] = [];
const notices: string[] = [];

function target(id: string, consistency: 'pause' | 'stop' = 'pause', volumes: { container: string; path: string; name: string }[] = [], configPaths: string[] = []): ServiceTarget {
  return { id, version: '1.0.0', consistency, dataDir: cell.dataDir, manifest: { backup: { volumes, config_paths: configPaths } } };
}

async function ourLeftovers(): Promise<{ containers: string[]; volumes: string[] }> {
  const filters = { label: [`ngo.pic.test-run=${cell.name}`, BACKUP_LABEL.role] };
  const containers = (await docker.listContainers({ all: true, filters })).map((c) => c.Names[0] ?? c.Id);
  const volumes = ((await docker.listVolumes({ filters })).Volumes ?? []).map((v) => `${v.Name} (${v.Labels?.[BACKUP_LABEL.role]})`);
  return { containers, volumes };
}

beforeAll(async () => {
  cell = await createFakeCell();
  env = {
    docker,
    store: new SnapshotStore(path.join(cell.root, 'backups')),
    helper: cell.helper,
    cellName: cell.name,
    now: () => new Date(),
    onProgress: (p) => progress.push(p),
    notify: (n) => notices.push(`${n.key} ${n.reason}: ${n.message}`),
    readyTimeoutMs: 30_000,
    dataDir: cell.dataDir,
  };
});

afterAll(async () => {
  if (cell) await removeFakeCell(cell);
});

describe('a service with two volumes and a config path', () => {
  let notesVolume = '';
  let filesVolume = '';
  let before: { notes: string; files: string };
  let manifest: SnapshotManifest;
  const configDir = () => path.join(cell.dataDir, 'notes', 'config');

  beforeAll(async () => {
    notesVolume = await createServiceVolume(cell, 'notes', 'data');
    filesVolume = await createServiceVolume(cell, 'notes', 'files');
    await inVolume(cell, notesVolume, FILL_SCRIPT, ['notes']);
    await inVolume(cell, filesVolume, FILL_SCRIPT, ['files']);
    await fs.mkdir(configDir(), { recursive: true });
    await fs.writeFile(path.join(configDir(), 'app.conf'), 'listen 8080\n');
    await createServiceContainer(cell, { service: 'notes', key: 'app', mounts: [{ volume: notesVolume, target: '/data/notes' }, { volume: filesVolume, target: '/srv/files' }] });
    before = { notes: await fingerprint(cell, notesVolume), files: await fingerprint(cell, filesVolume) };
  });

  it('takes one archive per declared volume plus the config path, pausing the service and starting it again', async () => {
    const result = await createSnapshot(env, [
      target('notes', 'pause', [
        { container: `cell-${cell.tag}-notes-app`, path: '/data/notes', name: 'notes_data' },
        { container: 'app', path: '/srv/files', name: 'files' },
      ], ['notes/config']),
    ]);
    manifest = result.manifest;
    const s = manifest.services[0]!;
    expect(s.service).toBe('notes');
    expect(s.archives.map((a) => a.file)).toEqual(['service_data/notes/notes_data.tar.gz', 'service_data/notes/files.tar.gz', 'service_data/notes/config_paths/notes_config.tar.gz']);
    expect(s.archives[0]!.files).toBe(5);
    expect(s.archives[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(s.consistency).toBe('pause');
    expect(s.downtimeMs).toBeGreaterThanOrEqual(0);
    expect(Object.values(s.images)[0]).toMatch(/^sha256:/);
    expect(manifest.verification?.ok).toBe(true);
    const state = (await docker.getContainer(`cell-${cell.tag}-notes-app`).inspect()).State;
    expect(state.Running && !state.Paused).toBe(true);
    expect(progress.some((p) => p.phase === 'backup' && p.service === 'notes' && p.done && p.bytes > 2_000_000)).toBe(true);
    expect(notices.some((n) => n.startsWith('ServiceInstall/notes BackupTaken'))).toBe(true);
    expect(await ourLeftovers()).toEqual({ containers: [], volumes: [] });
    const stored = await env.store.read(manifest.id);
    expect(stored.verification?.ok).toBe(true);
  });

  it('restores deleted data staged, byte for byte, and removes the previous data once the service runs', async () => {
    await inVolume(cell, notesVolume, 'rm -rf /d/* && echo intruder > /d/new-file');
    await inVolume(cell, filesVolume, 'rm -rf /d/big.bin');
    await fs.writeFile(path.join(configDir(), 'app.conf'), 'changed\n');
    expect(await fingerprint(cell, notesVolume)).not.toBe(before.notes);

    const report = await restoreSnapshot(env, manifest.id);
    expect(report.services).toEqual([{ service: 'notes', archives: 3, downtimeMs: expect.any(Number), ready: true, previousKept: [] }]);
    expect(await fingerprint(cell, notesVolume)).toBe(before.notes);
    expect(await fingerprint(cell, filesVolume)).toBe(before.files);
    expect(await fs.readFile(path.join(configDir(), 'app.conf'), 'utf8')).toBe('listen 8080\n');
    const state = (await docker.getContainer(`cell-${cell.tag}-notes-app`).inspect()).State;
    expect(state.Running).toBe(true);
    // The previous trees are removed in the background once the service is Ready.
    await cleanupsDone(cell);
    expect(await ourLeftovers()).toEqual({ containers: [], volumes: [] });
    expect((await fs.readdir(path.dirname(configDir()))).sort()).toEqual(['config']);
  });

  it('a flipped byte fails verification naming the archive, and restore refuses before touching live data', async () => {
    const file = path.join(env.store.dir(manifest.id), 'service_data/notes/files.tar.gz');
    const bytes = await fs.readFile(file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0xff;
    await fs.writeFile(file, bytes);

    const verification = await verifySnapshot(env, manifest.id);
    expect(verification.ok).toBe(false);
    expect(verification.problems!.join('\n')).toContain('notes/files.tar.gz');
    expect(verification.problems!.join('\n')).not.toContain('notes_data.tar.gz');
    expect((await env.store.read(manifest.id)).verification?.ok).toBe(false);

    await inVolume(cell, notesVolume, 'echo after-the-snapshot > /d/marker');
    const live = await fingerprint(cell, notesVolume);
    await expect(restoreSnapshot(env, manifest.id)).rejects.toThrow(/files\.tar\.gz/);
    await expect(restoreSnapshot(env, manifest.id)).rejects.toBeInstanceOf(BackupError);
    expect(await fingerprint(cell, notesVolume)).toBe(live);
    const state = (await docker.getContainer(`cell-${cell.tag}-notes-app`).inspect()).State;
    expect(state.Running).toBe(true);
    expect(await ourLeftovers()).toEqual({ containers: [], volumes: [] });
  });
});

describe('a stopped service, and one stopped for its snapshot', () => {
  it('backs up and restores a service that is not running, leaving it stopped', async () => {
    const volume = await createServiceVolume(cell, 'calendar', 'data');
    await inVolume(cell, volume, FILL_SCRIPT, ['calendar']);
    const c = await createServiceContainer(cell, { service: 'calendar', key: 'app', mounts: [{ volume, target: '/data' }] });
    await c.stop({ t: 0 });
    const fp = await fingerprint(cell, volume);
    const { manifest } = await createSnapshot(env, [target('calendar', 'pause', [{ container: 'app', path: '/data', name: 'calendar' }])]);
    expect(manifest.services[0]!.consistency).toBe('none');
    expect(manifest.verification?.ok).toBe(true);
    await inVolume(cell, volume, 'rm -rf /d/notes');
    const report = await restoreSnapshot(env, manifest.id);
    expect(await fingerprint(cell, volume)).toBe(fp);
    expect((await c.inspect()).State.Running).toBe(false);
    // Not Ready (it does not run): the previous contents stay for the admin.
    expect(report.services[0]!.ready).toBe(false);
    expect(report.services[0]!.previousKept).toHaveLength(1);
    // A plain local volume keeps it beside its _data on the Docker host (removed with the volume).
    const previous = report.services[0]!.previousKept[0]!;
    expect(previous).toMatch(new RegExp(`/${volume}/pic-previous-${manifest.id}-[0-9a-f]+$`));
    expect(await inVolume(cell, previous, 'ls /d/notes 2>&1 || echo gone')).toContain('gone');
  });

  it('stops a service whose ServiceInstall asks for it, and starts it again', async () => {
    const volume = await createServiceVolume(cell, 'db', 'data');
    await inVolume(cell, volume, FILL_SCRIPT, ['db']);
    const c = await createServiceContainer(cell, { service: 'db', key: 'db', mounts: [{ volume, target: '/var/lib/db' }] });
    const startedAt = (await c.inspect()).State.StartedAt;
    const { manifest } = await createSnapshot(env, [target('db', 'stop', [{ container: 'db', path: '/var/lib/db', name: 'db' }])]);
    expect(manifest.services[0]!.consistency).toBe('stop');
    const state = (await c.inspect()).State;
    expect(state.Running).toBe(true);
    expect(state.StartedAt).not.toBe(startedAt);
  });

  it('reads the volume of a service whose image has no tar (nor any shell)', async () => {
    await buildNoTarImage();
    const volume = await createServiceVolume(cell, 'static', 'data');
    await inVolume(cell, volume, FILL_SCRIPT, ['static']);
    await createServiceContainer(cell, { service: 'static', key: 'web', image: NO_TAR_IMAGE, cmd: [], mounts: [{ volume, target: '/data' }] });
    const fp = await fingerprint(cell, volume);
    const { manifest } = await createSnapshot(env, [target('static', 'pause', [{ container: 'web', path: '/data', name: 'site' }])]);
    expect(manifest.verification?.ok).toBe(true);
    await inVolume(cell, volume, 'rm -rf /d/*');
    const report = await restoreSnapshot(env, manifest.id, ['static']);
    expect(report.services[0]!.ready).toBe(true);
    expect(await fingerprint(cell, volume)).toBe(fp);
  });

  it('names the field when a declared container or path is not there, and backs up nothing', async () => {
    await expect(createSnapshot(env, [target('static', 'pause', [{ container: 'nope', path: '/data', name: 'x' }])])).rejects.toThrow(/manifest \/backup\/volumes\/0\/container: no container "nope"/);
    await expect(createSnapshot(env, [target('static', 'pause', [{ container: 'web', path: '/usr/lib', name: 'x' }])])).rejects.toThrow(/\/backup\/volumes\/0\/path: "\/usr\/lib"/);
    const state = (await docker.getContainer(`cell-${cell.tag}-static-web`).inspect()).State;
    expect(state.Running && !state.Paused).toBe(true);
  });

  it('refuses a config path that is a symlink or lies under one, since a service could have planted it', async () => {
    await fs.mkdir(path.join(cell.dataDir, 'static'), { recursive: true });
    await fs.symlink('/etc', path.join(cell.dataDir, 'static', 'planted'));
    await expect(createSnapshot(env, [target('static', 'pause', [], ['static/planted'])])).rejects.toThrow(/static\/planted: .* is a symlink/);
    await expect(createSnapshot(env, [target('static', 'pause', [], ['static/planted/ssl'])])).rejects.toThrow(/resolves to \/etc\/ssl, outside the data directory/);
  });
});

describe('hostile archives', () => {
  let volume = '';
  let base: SnapshotManifest;

  beforeAll(async () => {
    volume = await createServiceVolume(cell, 'files', 'data');
    await inVolume(cell, volume, FILL_SCRIPT, ['files']);
    await createServiceContainer(cell, { service: 'files', key: 'app', mounts: [{ volume, target: '/data' }] });
    base = (await createSnapshot(env, [target('files', 'pause', [{ container: 'app', path: '/data', name: 'files' }])], { verify: false })).manifest;
  });

  const cases: [string, { name: string; type?: string; linkname?: string; body?: string }][] = [
    ['an absolute name', { name: '/etc/pictest-evil', body: 'x' }],
    ['a name climbing out with ..', { name: './../../pictest-evil', body: 'x' }],
    ['a symlink pointing out', { name: './escape', type: 'symlink', linkname: '../../../../etc' }],
    ['an absolute symlink', { name: './escape', type: 'symlink', linkname: '/etc/passwd' }],
    ['a device node', { name: './null', type: 'character-device' }],
  ];

  it.each(cases)('refuses %s, naming the archive, before touching live data', async (_what, evil) => {
    const id = `${base.id.slice(0, 16)}-${createHash('sha256').update(evil.name + (evil.linkname ?? '') + (evil.type ?? '')).digest('hex').slice(0, 4)}`;
    const dir = path.join(env.store.root, id);
    await fs.mkdir(path.join(dir, 'service_data/files'), { recursive: true });
    const file = path.join(dir, 'service_data/files/files.tar.gz');
    const pack = tar.pack();
    pack.entry({ name: './', type: 'directory', mode: 0o755 });
    pack.entry({ name: './ok.txt', mode: 0o644 }, 'fine\n');
    if (evil.type === 'symlink') pack.entry({ name: evil.name, type: 'symlink', linkname: evil.linkname, mode: 0o777 });
    else if (evil.type) pack.entry({ name: evil.name, type: evil.type, mode: 0o644 });
    else pack.entry({ name: evil.name, mode: 0o644 }, evil.body ?? '');
    pack.finalize();
    await pipeline(pack, createGzip(), createWriteStream(file));
    const read = await readArchiveFile(file);
    const record = { ...base.services[0]!.archives[0]!, sha256: read.sha256, size: read.size, entriesSha256: entryListDigest(read.entries) };
    const manifest: SnapshotManifest = { ...base, id, services: [{ ...base.services[0]!, archives: [record] }] };
    await fs.writeFile(path.join(dir, 'snapshot.json'), JSON.stringify(manifest));
    const live = await fingerprint(cell, volume);

    await expect(restoreSnapshot(env, id)).rejects.toThrow(/files\/files\.tar\.gz: refused/);
    expect((await verifySnapshot(env, id)).problems?.join('\n')).toMatch(/refused/);
    expect(await fingerprint(cell, volume)).toBe(live);
    expect(await ourLeftovers()).toEqual({ containers: [], volumes: [] });
  });
});

describe('a run killed while the service is paused', () => {
  it('leaves no paused container, helper or scratch volume after the next run sweeps', async () => {
    const volume = await createServiceVolume(cell, 'mail', 'data');
    // Enough random data that the archive takes a while: the kill lands while the service is paused.
    await inVolume(cell, volume, 'dd if=/dev/urandom of=/d/a.bin bs=1M count=300 2>/dev/null');
    const c = await createServiceContainer(cell, { service: 'mail', key: 'app', mounts: [{ volume, target: '/data' }] });
    const child = spawn(process.execPath, [path.join(process.cwd(), 'dist/tests/support/backup-child.js')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PICTEST_BACKUP: JSON.stringify({ cell, root: env.store.root, service: 'mail', container: 'app', path: '/data' }) },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const deadline = Date.now() + 60_000;
    while (!(await c.inspect()).State.Paused || (await ourLeftovers()).containers.length === 0) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the backup never paused the service: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await exited;
    expect((await c.inspect()).State.Paused).toBe(true);
    expect((await ourLeftovers()).containers.length).toBeGreaterThan(0);

    const report = await sweep(env);
    expect(report.resumed).toEqual([(await c.inspect()).Id]);
    expect((await c.inspect()).State.Paused).toBe(false);
    expect(await ourLeftovers()).toEqual({ containers: [], volumes: [] });
    expect((await fs.readdir(env.store.root)).filter((n) => n.endsWith('.partial'))).toEqual([]);
  });

  it('a restore killed halfway leaves the service running, on its old data or the restored one, and no staged volume', async () => {
    const c = docker.getContainer(`cell-${cell.tag}-mail-app`);
    const volume = `${cell.tag}-mail-data`;
    await inVolume(cell, volume, 'echo snapshot > /d/marker');
    const { manifest } = await createSnapshot(env, [target('mail', 'pause', [{ container: 'app', path: '/data', name: 'data' }])], { verify: false });
    const restored = await fingerprint(cell, volume);
    await inVolume(cell, volume, 'echo later > /d/marker');
    const old = await fingerprint(cell, volume);

    const child = spawn(process.execPath, [path.join(process.cwd(), 'dist/tests/support/backup-child.js')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PICTEST_BACKUP: JSON.stringify({ cell, root: env.store.root, service: 'mail', container: 'app', path: '/data', restore: manifest.id }) },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const deadline = Date.now() + 120_000;
    while ((await c.inspect()).State.Running) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the restore never stopped the service: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGKILL');
    await exited;

    await sweep(env);
    expect((await c.inspect()).State.Running).toBe(true);
    expect([old, restored]).toContain(await fingerprint(cell, volume));
    const left = await ourLeftovers();
    expect(left.containers).toEqual([]);
    expect(left.volumes.filter((v) => !v.endsWith('(previous)'))).toEqual([]);
  });
});
