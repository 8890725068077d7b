/**
 * A backup (or restore) run in a process of its own, for the tests that kill it with SIGKILL halfway. Reads
 * its settings as JSON from PICTEST_BACKUP.
 */
import path from 'node:path';
import { createSnapshot, restoreSnapshot, type BackupEnv } from '../../reconcilers/backup/index.js';
import { SnapshotStore } from '../../state/snapshots.js';
import type { FakeCell } from './backup-fixture.js';
import { docker } from './docker.js';

const settings = JSON.parse(process.env.PICTEST_BACKUP ?? '{}') as { cell: FakeCell; root: string; service: string; container: string; path: string; restore?: string };
const env: BackupEnv = { docker, store: new SnapshotStore(path.resolve(settings.root)), helper: settings.cell.helper, cellName: settings.cell.name, now: () => new Date() };
if (settings.restore) await restoreSnapshot(env, settings.restore);
else {
  await createSnapshot(env, [
    { id: settings.service, version: '1.0.0', consistency: 'pause', dataDir: settings.cell.dataDir, manifest: { backup: { volumes: [{ container: settings.container, path: settings.path, name: 'data' }], config_paths: [] } } },
  ]);
}
