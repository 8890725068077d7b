/**
 * Take a snapshot: plan each service's archives from its live containers, pause (or stop) it for
 * the moment of its own archives and always resume it, write the archives into a partial folder
 * renamed into place when whole, then verify it by a test restore.
 */
import { serviceKey } from '../../state/document-keys.js';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { snapshotId } from '../../state/snapshots.js';
import { BackupError, Journal, progressReporter, type BackupEnv, type ServiceTarget } from './context.js';
import { ensureHelperImage } from './helper.js';
import { observeServiceContainers } from './observe.js';
import { planKeptVolumeArchives, planServiceArchives, type BackupContainer, type PlannedArchive } from './plan.js';
import { exists, leavesFolder, quiesce, takeArchive, waitUntilUnheld } from './steps.js';
import { sweep } from './sweep.js';
import type { ArchiveRecord, ServiceSnapshot, SnapshotManifest } from './types.js';
import { verifySnapshot } from './verify.js';

export interface CreateOptions {
  reason?: SnapshotManifest['reason'];
  verify?: boolean;
}

export interface CreateResult {
  manifest: SnapshotManifest;
  warnings: string[];
}

export async function createSnapshot(env: BackupEnv, targets: readonly ServiceTarget[], options: CreateOptions = {}): Promise<CreateResult> {
  await sweep(env);
  const planned: { target: ServiceTarget; containers: BackupContainer[]; archives: PlannedArchive[] }[] = [];
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const target of targets) {
    const containers = await observeServiceContainers(env.docker, target.id, env.cellName);
    const plan = planServiceArchives(target.id, target.manifest, containers, target.dataDir);
    problems.push(...plan.problems.map((p) => `ServiceInstall/${p.service}: manifest ${p.pointer}: ${p.message}`));
    const archives: PlannedArchive[] = [];
    for (const a of plan.archives) {
      if (a.kind === 'config' && a.source.type === 'bind') {
        if (!(await exists(a.source.hostPath))) {
          warnings.push(`ServiceInstall/${target.id}: config path ${a.name} does not exist (${a.source.hostPath}); nothing to archive for it`);
          continue;
        }
        const outside = await leavesFolder(a.source.hostPath, target.dataDir);
        if (outside) {
          problems.push(`ServiceInstall/${target.id}: manifest /backup/config_paths: ${a.name}: ${outside}`);
          continue;
        }
        if (!(await fs.stat(a.source.hostPath)).isDirectory()) {
          problems.push(`ServiceInstall/${target.id}: manifest /backup/config_paths: ${a.name} (${a.source.hostPath}) is not a folder; pic archives config folders, so name the folder that holds the file`);
          continue;
        }
      }
      archives.push(a);
    }
    if (archives.length === 0 && plan.problems.length === 0) warnings.push(`ServiceInstall/${target.id}: its manifest declares nothing to back up (backup.volumes, backup.config_paths)`);
    planned.push({ target, containers, archives });
  }
  if (problems.length > 0) throw new BackupError(`nothing was backed up:\n  ${problems.join('\n  ')}`);
  return takeSnapshot(env, planned, options, warnings);
}

/** A final snapshot of a service without containers: each kept volume whole. */
export async function createKeptDataSnapshot(env: BackupEnv, service: string, volumes: readonly string[]): Promise<CreateResult> {
  await sweep(env);
  const target: ServiceTarget = { id: service, version: '', manifest: {}, consistency: 'pause', dataDir: '/' };
  return takeSnapshot(env, [{ target, containers: [], archives: planKeptVolumeArchives(service, volumes) }], { reason: 'final', verify: true }, []);
}

async function takeSnapshot(
  env: BackupEnv,
  planned: readonly { target: ServiceTarget; containers: BackupContainer[]; archives: PlannedArchive[] }[],
  options: CreateOptions,
  warnings: string[],
): Promise<CreateResult> {
  const image = await ensureHelperImage(env.docker, env.helper);
  const createdAt = env.now();
  const id = snapshotId(createdAt, randomBytes(2).toString('hex'));
  const journal = new Journal(env.store, 'backup', createdAt);
  const dir = await env.store.begin(id);
  journal.state.partial = dir;
  await journal.save();
  const services: ServiceSnapshot[] = [];
  try {
    for (const { target, containers, archives } of planned) {
      const images: Record<string, string> = {};
      for (const c of containers) images[c.name] = c.image;
      const progress = progressReporter(env, 'backup', target.id);
      const records: ArchiveRecord[] = [];
      const started = Date.now();
      // Held (in the journal) before the first pause and until the last container runs again:
      // the operator leaves the service's containers alone meanwhile.
      if (archives.length > 0) {
        await waitUntilUnheld(env, target.id);
        await journal.hold(target.id);
      }
      let downtimeMs = 0;
      try {
        const resume = archives.length > 0 ? await quiesce(env, journal, containers, target.consistency) : async () => undefined;
        try {
          for (const a of archives) records.push(await takeArchive(env, image, dir, a, progress));
        } finally {
          try {
            await resume();
          } finally {
            downtimeMs = Date.now() - started;
          }
        }
      } finally {
        if (archives.length > 0) await journal.release(target.id);
      }
      const affected = containers.some((c) => c.running);
      services.push({ service: target.id, version: target.version, images, consistency: affected && archives.length > 0 ? target.consistency : 'none', downtimeMs: affected ? downtimeMs : 0, archives: records });
      env.notify?.({
        key: serviceKey(target.id),
        type: 'Normal',
        reason: 'BackupTaken',
        message: `snapshot ${id}: ${records.length} archive(s), ${progress.total()} bytes read${affected ? `, ${target.consistency === 'stop' ? 'stopped' : 'paused'} for ${downtimeMs} ms` : ''}`,
      });
    }
    const manifest: SnapshotManifest = { formatVersion: 1, id, cell: env.cellName, createdAt: createdAt.toISOString(), reason: options.reason ?? 'manual', services };
    await env.store.commit(id, manifest);
    delete journal.state.partial;
    await journal.save();
    if (options.verify !== false) manifest.verification = await verifySnapshot(env, id);
    return { manifest, warnings };
  } catch (err) {
    await env.store.abandon(id).catch(() => undefined);
    for (const { target } of planned) env.notify?.({ key: serviceKey(target.id), type: 'Warning', reason: 'BackupFailed', message: `snapshot ${id} was not taken: ${(err as Error).message}` });
    throw err;
  } finally {
    await journal.close();
  }
}
