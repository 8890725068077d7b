/**
 * Restore a snapshot, staged: every archive checked first; each restored into a new volume (or a
 * folder beside its host target) and compared; only then the service stopped, the old contents
 * kept in a previous volume, the restored tree swapped in, the service started again, and the
 * previous data removed once it is Ready. A failed swap is undone before the service starts.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BackupJournal } from '../../state/snapshots.js';
import { BACKUP_LABEL } from './labels.js';
import { BackupError, Journal, ownerKey, progressReporter, type BackupEnv } from './context.js';
import { createVolume, ensureHelperImage, previousLabels, removeVolume, volumeName } from './helper.js';
import { observeServiceContainers, volumeFolder, volumeLabels } from './observe.js';
import { movedTarget } from './plan.js';
import { archivedRoot, checkArchiveFile, exists, leavesFolder, moveSwap, moveUnswap, removeFromFolder, restoreInto, stageInFolder, swapFolder, swapVolume, unswapVolume, type ArchiveCheck } from './steps.js';
import { sweep } from './sweep.js';

export interface RestoreReport {
  snapshot: string;
  services: { service: string; archives: number; downtimeMs: number; ready: boolean; previousKept: string[] }[];
}

interface Staged {
  check: ArchiveCheck;
  /** Staged inside the live volume's own folder (swapped by renames), in a staged volume, or in a staged host folder. */
  move?: NonNullable<BackupJournal['moves']>[number];
  volume?: string;
  folder?: string;
  target?: string;
}

async function waitReady(env: BackupEnv, service: string): Promise<boolean> {
  const deadline = Date.now() + (env.readyTimeoutMs ?? 120_000);
  for (;;) {
    const containers = await observeServiceContainers(env.docker, service, env.cellName);
    let ready = containers.length > 0;
    for (const c of containers) {
      const inspect = await env.docker.getContainer(c.id).inspect();
      const health = inspect.State.Health?.Status;
      if (!inspect.State.Running || inspect.State.Paused || (health !== undefined && health !== 'healthy')) ready = false;
    }
    if (ready) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 500));
  }
}

export async function restoreSnapshot(env: BackupEnv, id: string, only: readonly string[] = []): Promise<RestoreReport> {
  await sweep(env);
  const manifest = await env.store.read(id);
  if (manifest.cell !== env.cellName) throw new BackupError(`snapshot ${id} is of the cell "${manifest.cell}", not of "${env.cellName}": its volumes are named for that cell; nothing was changed`);
  const unknown = only.filter((s) => !manifest.services.some((x) => x.service === s));
  if (unknown.length > 0) throw new BackupError(`snapshot ${id} holds no service ${unknown.join(', ')}; it holds ${manifest.services.map((s) => s.service).join(', ') || 'none'}`);
  const chosen = manifest.services.filter((s) => only.length === 0 || only.includes(s.service));

  // 1. Every archive read and checked before anything is written anywhere.
  const checks: ArchiveCheck[] = [];
  for (const s of chosen) {
    const progress = progressReporter(env, 'verify', s.service);
    for (const record of s.archives) checks.push(await checkArchiveFile(env, id, s.service, record, progress));
  }
  const refused = checks.flatMap((c) => c.problems);
  if (refused.length > 0) throw new BackupError(`snapshot ${id} is not restored; nothing was changed:\n  ${refused.join('\n  ')}`);

  const image = await ensureHelperImage(env.docker, env.helper);
  const journal = new Journal(env.store, 'restore', env.now());
  const report: RestoreReport = { snapshot: id, services: [] };
  try {
    for (const s of chosen) {
      const mine = checks.filter((c) => c.service === s.service);
      const progress = progressReporter(env, 'restore', s.service);
      // 2. Staged: into new volumes (or folders beside the bind targets), then checked.
      const staged: Staged[] = [];
      try {
        for (const check of mine) {
          const p = progress.start(check.record.name);
          const src = check.record.source;
          let problems: string[];
          if (src.type === 'volume') {
            // A deleted volume is made again as it was (no container can be using it).
            if ((await volumeLabels(env.docker, src.volume)) === undefined) await env.docker.createVolume({ Name: src.volume, Labels: src.labels ?? {} });
            const folder = await volumeFolder(env.docker, src.volume);
            const target = movedTarget(src.subpath);
            if (target === undefined) throw new BackupError(`snapshot ${id} is not restored; nothing was changed: ${s.service}/${check.record.file}: its subpath "${src.subpath}" leaves the volume`);
            if (folder !== undefined) {
              const unique = randomBytes(4).toString('hex');
              const root = await archivedRoot(check);
              const move = { live: src.volume, folder, target, staged: `pic-staged-${id}-${unique}`, previous: `pic-previous-${id}-${unique}`, phase: 'staging' as const, ...(root ? { root } : {}) };
              // Journalled before it is written, so a crash leaves nothing the sweep does not know.
              (journal.state.moves ??= []).push(move);
              await journal.save();
              staged.push({ check, move });
              problems = await stageInFolder(env, image, move, check, p.onBytes);
            } else {
              const volume = await createVolume(env.docker, env.helper, 'staged', s.service, { [BACKUP_LABEL.snapshot]: id });
              staged.push({ check, volume });
              problems = await restoreInto(env, image, { type: 'volume', source: volume, target: '/d', readOnly: false }, check, p.onBytes);
            }
          } else {
            const target = path.join(src.hostPath, src.subpath);
            if (env.dataDir === undefined) throw new BackupError(`${s.service}/${check.record.file} restores into the host folder ${target}, and the cell's data directory is not known to check it against`);
            const outside = await leavesFolder(target, env.dataDir);
            if (outside) throw new BackupError(`snapshot ${id} is not restored; nothing was changed: ${s.service}/${check.record.file}: ${outside}`);
            const folder = `${target}.pic-staged-${id}`;
            await fs.rm(folder, { recursive: true, force: true });
            await fs.mkdir(folder, { recursive: true, mode: 0o700 });
            staged.push({ check, folder, target });
            problems = await restoreInto(env, image, { type: 'bind', source: folder, target: '/d', readOnly: false }, check, p.onBytes);
          }
          p.finish();
          env.notify?.({ key: ownerKey(s.service), type: 'Normal', reason: 'RestoreProgress', message: `${check.record.file}: staged and checked (service so far: ${progress.total()} bytes)` });
          if (problems.length > 0) throw new BackupError(`snapshot ${id} is not restored; the service was not touched:\n  ${problems.join('\n  ')}`);
        }

        // 3. Stop, swap, start.
        await journal.hold(s.service);
        const containers = await observeServiceContainers(env.docker, s.service, env.cellName);
        const started = Date.now();
        for (const c of containers.filter((x) => x.running || x.paused)) {
          journal.state.stopped.push(c.id);
          await journal.save();
          if (c.paused) await env.docker.getContainer(c.id).unpause();
          await env.docker.getContainer(c.id).stop();
        }
        const previousKept: { label: string; remove: () => Promise<void> }[] = [];
        for (const st of staged) {
          const src = st.check.record.source;
          if (st.move) {
            st.move.phase = 'swapping';
            await journal.save();
            await moveSwap(env, image, st.move);
            const { folder, previous } = st.move;
            previousKept.push({ label: `${folder}/${previous}`, remove: () => removeFromFolder(env, image, folder, previous) });
          } else if (st.volume && src.type === 'volume') {
            // Journalled before it exists, so a crash right after creating it leaves no volume unknown to the sweep.
            const previous = volumeName(env.helper, 'previous', s.service);
            const swap = { live: src.volume, subpath: src.subpath, staged: st.volume, previous };
            journal.state.swaps.push(swap);
            await journal.save();
            await createVolume(env.docker, env.helper, 'previous', s.service, previousLabels(src.volume, id), previous);
            previousKept.push({ label: `volume ${previous}`, remove: () => removeVolume(env.docker, previous) });
            await swapVolume(env, image, swap);
          } else if (st.folder && st.target) {
            const previous = `${st.target}.pic-previous-${id}`;
            const rename = { target: st.target, staged: st.folder, previous };
            journal.state.renames.push(rename);
            await journal.save();
            await swapFolder(rename);
            previousKept.push({ label: previous, remove: () => fs.rm(previous, { recursive: true, force: true }) });
          }
        }
        // Started again: what ran before the restore (a stopped service stays stopped).
        const wasRunning = containers.filter((x) => x.running || x.paused);
        for (const c of wasRunning) await env.docker.getContainer(c.id).start().catch((err: Error & { statusCode?: number }) => {
          if (err.statusCode !== 304) throw err;
        });
        journal.state.stopped = [];
        journal.state.swaps = [];
        journal.state.moves = [];
        journal.state.renames = [];
        await journal.release(s.service);
        const downtimeMs = Date.now() - started;
        // 4. The previous contents go once the service is Ready again; else they stay for the admin.
        const ready = wasRunning.length === 0 ? false : await waitReady(env, s.service);
        if (ready) for (const p of previousKept) await p.remove();
        const kept = ready ? [] : previousKept.map((p) => p.label);
        report.services.push({ service: s.service, archives: mine.length, downtimeMs, ready, previousKept: kept });
        env.notify?.({
          key: ownerKey(s.service),
          type: ready ? 'Normal' : 'Warning',
          reason: ready ? 'BackupRestored' : 'BackupRestoredNotReady',
          message: ready
            ? `snapshot ${id} restored (${mine.length} archive(s), stopped for ${downtimeMs} ms)`
            : `snapshot ${id} restored, but the service is not Ready; the previous data is kept in ${kept.join(', ')}`,
        });
      } finally {
        for (const st of staged) {
          // A tree staged beside the live one and not swapped in yet; one being swapped is the undo's.
          if (st.move?.phase === 'staging') await removeFromFolder(env, image, st.move.folder, st.move.staged).catch(() => undefined);
          if (st.volume) await removeVolume(env.docker, st.volume).catch(() => undefined);
          if (st.folder) await fs.rm(st.folder, { recursive: true, force: true }).catch(() => undefined);
        }
      }
    }
  } catch (err) {
    // A swap that failed halfway is undone from the previous copy, then the service this run
    // stopped is started again, on the data it had.
    const undone: string[] = [];
    for (const swap of journal.state.swaps) {
      const image = await ensureHelperImage(env.docker, env.helper).catch(() => undefined);
      if (image && (await unswapVolume(env, image, swap).then(() => true, () => false))) undone.push(swap.live);
    }
    for (const move of journal.state.moves ?? []) {
      if (move.phase !== 'swapping') continue;
      const image = await ensureHelperImage(env.docker, env.helper).catch(() => undefined);
      if (image && (await moveUnswap(env, image, move).then(() => true, () => false))) {
        undone.push(move.live);
        await removeFromFolder(env, image, move.folder, move.staged).catch(() => undefined);
      }
    }
    for (const r of journal.state.renames) {
      if (await exists(r.previous)) {
        await fs.rm(r.target, { recursive: true, force: true }).catch(() => undefined);
        await fs.rename(r.previous, r.target).catch(() => undefined);
        undone.push(r.target);
      }
    }
    for (const cid of journal.state.stopped) await env.docker.getContainer(cid).start().catch(() => undefined);
    if (undone.length > 0) (err as Error).message += ` (the previous data was put back into ${undone.join(', ')})`;
    throw err;
  } finally {
    await journal.close();
  }
  return report;
}
