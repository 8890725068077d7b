/**
 * The swap of a restore into a plain local volume, against the real dockerd: the restored tree is
 * staged beside the live `_data` (out of the service's sight) and swapped in by two renames, its
 * root keeping the archived owner and mode; and the crash windows of that swap, each left by a
 * journal of a run that is gone exactly as a kill -9 at that point leaves it: killed while
 * staging (the live tree untouched, the staged one removed), and killed between the two renames
 * (the live `_data` missing: finished forward to the restored tree).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createSnapshot, restoreSnapshot, sweep, type BackupEnv, type ServiceTarget } from '../../reconcilers/backup/index.js';
import { volumeFolder } from '../../reconcilers/backup/observe.js';
import { SnapshotStore, type BackupJournal } from '../../state/snapshots.js';
import { docker } from '../support/docker.js';
import { cleanupsDone, createFakeCell, createServiceContainer, createServiceVolume, fingerprint, inVolume, removeFakeCell, type FakeCell } from '../support/backup-fixture.js';

let cell: FakeCell;
let env: BackupEnv;

function target(id: string): ServiceTarget {
  return { id, version: '1.0.0', consistency: 'pause', dataDir: cell.dataDir, manifest: { backup: { volumes: [{ container: 'app', path: '/data', name: 'data' }], config_paths: [] } } };
}

/** A pid no process has: one that has just exited. */
function deadPid(): number {
  return spawnSync('true').pid;
}

beforeAll(async () => {
  cell = await createFakeCell();
  env = { docker, store: new SnapshotStore(path.join(cell.root, 'backups')), helper: cell.helper, cellName: cell.name, now: () => new Date(), readyTimeoutMs: 30_000, dataDir: cell.dataDir };
});

afterAll(async () => {
  if (cell) await removeFakeCell(cell);
});

describe('a restore into a plain local volume', () => {
  it('swaps the staged tree in by renames, the root keeping its archived owner and mode', async () => {
    const volume = await createServiceVolume(cell, 'notes', 'data');
    await inVolume(cell, volume, 'mkdir -p /d/a && echo one > /d/a/1 && chown 1000:1000 /d && chmod 750 /d');
    await createServiceContainer(cell, { service: 'notes', key: 'app', mounts: [{ volume, target: '/data' }] });
    const fp = await fingerprint(cell, volume);
    const { manifest } = await createSnapshot(env, [target('notes')]);
    await inVolume(cell, volume, 'rm -rf /d/a && echo later > /d/b && chown 0:0 /d && chmod 700 /d');

    const report = await restoreSnapshot(env, manifest.id);
    expect(report.services[0]).toMatchObject({ ready: true, previousKept: [] });
    expect(await fingerprint(cell, volume)).toBe(fp);
    expect((await inVolume(cell, volume, 'stat -c "%a %u:%g" /d')).trim()).toBe('750 1000:1000');
    // Nothing staged or previous is left beside the live tree (the previous one goes in the background).
    await cleanupsDone(cell);
    const folder = (await volumeFolder(docker, volume)) as string;
    expect((await inVolume(cell, folder, 'ls -A /d')).trim()).toBe('_data');
  });
});

describe('a restore killed during its swap', () => {
  let volume = '';
  let folder = '';

  beforeAll(async () => {
    volume = await createServiceVolume(cell, 'mail', 'data');
    await inVolume(cell, volume, 'echo old > /d/marker');
    await createServiceContainer(cell, { service: 'mail', key: 'app', mounts: [{ volume, target: '/data' }] });
    folder = (await volumeFolder(docker, volume)) as string;
    expect(folder).toMatch(new RegExp(`/${volume}$`));
  });

  async function journal(move: NonNullable<BackupJournal['moves']>[number]): Promise<void> {
    await env.store.writeJournal({ pid: deadPid(), operation: 'restore', holding: ['mail'], paused: [], stopped: [], swaps: [], moves: [move], renames: [] });
  }

  it('while staging: the live tree is untouched and the staged one removed', async () => {
    const before = await fingerprint(cell, volume);
    await inVolume(cell, folder, 'mkdir /d/pic-staged-x1 && echo half > /d/pic-staged-x1/marker');
    await journal({ live: volume, folder, target: '_data', staged: 'pic-staged-x1', previous: 'pic-previous-x1', phase: 'staging' });
    const report = await sweep(env);
    expect(report.removedFolders).toContain(`${folder}/pic-staged-x1`);
    expect(await fingerprint(cell, volume)).toBe(before);
    expect((await inVolume(cell, folder, 'ls -A /d')).trim()).toBe('_data');
    expect(await env.store.deadJournals()).toEqual([]);
  });

  it('between the two renames (no live _data): finished forward to the restored tree', async () => {
    await inVolume(cell, folder, 'mkdir /d/pic-staged-x2 && echo restored > /d/pic-staged-x2/marker && mv /d/_data /d/pic-previous-x2');
    await journal({ live: volume, folder, target: '_data', staged: 'pic-staged-x2', previous: 'pic-previous-x2', phase: 'swapping' });
    const report = await sweep(env);
    expect(report.finishedSwaps).toEqual([volume]);
    expect(report.keptPrevious).toEqual([`${folder}/pic-previous-x2`]);
    expect((await inVolume(cell, volume, 'cat /d/marker')).trim()).toBe('restored');
    expect((await inVolume(cell, folder, 'ls -A /d | sort')).trim().split('\n')).toEqual(['_data', 'pic-previous-x2']);
    expect((await inVolume(cell, `${folder}/pic-previous-x2`, 'cat /d/marker')).trim()).toBe('old');
  });

  it('before the first rename: swapped whole; run again, the sweep changes nothing more', async () => {
    await inVolume(cell, folder, 'mkdir /d/pic-staged-x3 && echo third > /d/pic-staged-x3/marker');
    const move = { live: volume, folder, target: '_data', staged: 'pic-staged-x3', previous: 'pic-previous-x3', phase: 'swapping' as const };
    await journal(move);
    await sweep(env);
    expect((await inVolume(cell, volume, 'cat /d/marker')).trim()).toBe('third');
    await journal(move);
    await sweep(env);
    expect((await inVolume(cell, volume, 'cat /d/marker')).trim()).toBe('third');
    expect((await inVolume(cell, `${folder}/pic-previous-x3`, 'cat /d/marker')).trim()).toBe('restored');
  });
});
