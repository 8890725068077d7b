/**
 * Restore a snapshot, staged: every archive of every chosen service extracted out of the services'
 * sight (beside the live tree of a plain local volume, in a staged volume otherwise, in a folder
 * beside a host target) while its file is checked (sha256, entries safe to restore), and the
 * extracted tree compared with its record; only when all pass is each service stopped, the
 * restored tree swapped in (two renames for a plain local volume, a copy otherwise), the service
 * started again, and the previous data removed once it is Ready. A failed swap is undone before
 * the service starts; a killed one is finished by the next sweep.
 */
import { serviceKey } from '../../state/document-keys.js';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BackupJournal } from '../../state/snapshots.js';
import { BACKUP_LABEL } from './labels.js';
import { BackupError, Journal, progressReporter, type BackupEnv } from './context.js';
import { createVolume, ensureHelperImage, previousLabels, removeVolume, volumeName } from './helper.js';
import { observeServiceContainers, volumeFolder, volumeLabels } from './observe.js';
import { observeForReadiness } from '../containers/observe.js';
import { DEFAULT_MIN_READY_SECONDS, judgeReadiness } from '../containers/readiness.js';
import { movedTarget } from './plan.js';
import { archivedRoot, exists, leavesFolder, moveSwap, moveUnswap, removeFromFolder, restoreInto, stageInFolder, startRemovalFromFolder, swapFolder, waitUntilUnheld, swapVolume, unswapVolume, type ArchiveToRestore } from './steps.js';
import type { ArchiveRecord } from './types.js';
import { stopContainerBounded } from '../shared/stop.js';
import { sweep } from './sweep.js';

export interface RestoreReport {
  snapshot: string;
  services: { service: string; archives: number; downtimeMs: number; ready: boolean; previousKept: string[] }[];
}

/** What staging and comparing one archive needs to know of it. */
type StagedCheck = ArchiveToRestore & { source: ArchiveRecord['source'] };

interface Staged {
  check: StagedCheck;
  service: string;
  /** Swapped in (a staged tree renamed into place is no longer there to remove). */
  swapped?: boolean;
  /** Staged inside the live volume's own folder (swapped by renames), in a staged volume, or in a staged host folder. */
  move?: NonNullable<BackupJournal['moves']>[number];
  volume?: string;
  folder?: string;
  target?: string;
}

/**
 * Whether the service is up again after its data was swapped, by the one readiness rule
 * (containers/readiness.ts): every container that ran before running for the stability window,
 * healthy where it has a check, with no restart since it was started again. Waits at most
 * `readyTimeoutMs`; false keeps the previous data.
 */
async function waitReady(env: BackupEnv, service: string, expected: readonly string[]): Promise<boolean> {
  // Real waits on real containers: Docker's start times are the host's clock, not an injected one.
  const deadline = Date.now() + (env.readyTimeoutMs ?? 120_000);
  const window = env.minReadySeconds ?? DEFAULT_MIN_READY_SECONDS;
  // Restarts count from now: a container's count holds every crash of its life.
  const baseline = new Map((await observeForReadiness(env.docker, { cell: env.cellName, owner: serviceKey(service) }, new Date())).map((c) => [c.name, c.restarts ?? 0]));
  for (;;) {
    const observed = (await observeForReadiness(env.docker, { cell: env.cellName, owner: serviceKey(service) }, new Date())).map((c) => ({ ...c, restarts: (c.restarts ?? 0) - (baseline.get(c.name) ?? 0) }));
    const verdict = judgeReadiness(expected, observed, window, deadline - Date.now());
    if (verdict.state === 'ready') return true;
    if (verdict.state === 'failed') return false;
    await new Promise((r) => setTimeout(r, Math.min(verdict.retryAfterMs, 1000)));
  }
}

export async function restoreSnapshot(env: BackupEnv, id: string, only: readonly string[] = []): Promise<RestoreReport> {
  await sweep(env);
  const manifest = await env.store.read(id);
  if (manifest.cell !== env.cellName) throw new BackupError(`snapshot ${id} is of the cell "${manifest.cell}", not of "${env.cellName}": its volumes are named for that cell; nothing was changed`);
  const unknown = only.filter((s) => !manifest.services.some((x) => x.service === s));
  if (unknown.length > 0) throw new BackupError(`snapshot ${id} holds no service ${unknown.join(', ')}; it holds ${manifest.services.map((s) => s.service).join(', ') || 'none'}`);
  const chosen = manifest.services.filter((s) => only.length === 0 || only.includes(s.service));

  const image = await ensureHelperImage(env.docker, env.helper);
  const journal = new Journal(env.store, 'restore', env.now());
  const report: RestoreReport = { snapshot: id, services: [] };
  const staged: Staged[] = [];
  /** Live volumes this run created (they had been deleted): removed again if nothing is restored. */
  const createdLive: string[] = [];
  let swapping = false;
  try {
    // 1. Every archive of every chosen service staged out of the services' sight and checked: its
    // sha256 and entries (read while it is extracted) and the extracted tree against its record.
    // Only when all of them pass is any service touched.
    const refused: string[] = [];
    for (const s of chosen) {
      const progress = progressReporter(env, 'restore', s.service);
      for (const record of s.archives) {
        const p = progress.start(record.name);
        const problems = await stage(env, image, id, s.service, record, journal, staged, createdLive, p.onBytes).catch((err: Error) => [`${s.service}/${record.file}: cannot be staged: ${err.message}`]);
        p.finish();
        refused.push(...problems);
        if (problems.length === 0) env.notify?.({ key: serviceKey(s.service), type: 'Normal', reason: 'RestoreProgress', message: `${record.file}: staged and checked (service so far: ${progress.total()} bytes)` });
      }
    }
    if (refused.length > 0) throw new BackupError(`snapshot ${id} is not restored; nothing was changed:\n  ${refused.join('\n  ')}`);

    // 2. Per service: stop, swap, start; the previous data goes once it is Ready.
    swapping = true;
    for (const s of chosen) {
      const mine = staged.filter((st) => st.service === s.service);
      await waitUntilUnheld(env, s.service);
      await journal.hold(s.service);
      const containers = await observeServiceContainers(env.docker, s.service, env.cellName);
      const started = Date.now();
      for (const c of containers.filter((x) => x.running || x.paused)) {
        journal.state.stopped.push(c.id);
        await journal.save();
        if (c.paused) await env.docker.getContainer(c.id).unpause();
        await stopContainerBounded(env.docker, c.id, { stopTimeout: c.stopTimeout });
      }
      const previousKept: { label: string; remove: () => Promise<void> }[] = [];
      for (const st of mine) {
        const src = st.check.source;
        if (st.move) {
          st.move.phase = 'swapping';
          await journal.save();
          await moveSwap(env, image, st.move);
          st.swapped = true;
          const { folder, previous } = st.move;
          previousKept.push({ label: `${folder}/${previous}`, remove: () => startRemovalFromFolder(env, image, folder, previous) });
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
          st.swapped = true;
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
      journal.state.moves = (journal.state.moves ?? []).filter((m) => !mine.some((st) => st.move === m));
      journal.state.renames = [];
      await journal.release(s.service);
      const downtimeMs = Date.now() - started;
      const ready = wasRunning.length === 0 ? false : await waitReady(env, s.service, wasRunning.map((c) => c.name));
      if (ready) for (const p of previousKept) await p.remove();
      const kept = ready ? [] : previousKept.map((p) => p.label);
      report.services.push({ service: s.service, archives: mine.length, downtimeMs, ready, previousKept: kept });
      env.notify?.({
        key: serviceKey(s.service),
        type: ready ? 'Normal' : 'Warning',
        reason: ready ? 'BackupRestored' : 'BackupRestoredNotReady',
        message: ready
          ? `snapshot ${id} restored (${mine.length} archive(s), stopped for ${downtimeMs} ms)`
          : `snapshot ${id} restored, but the service is not Ready; the previous data is kept in ${kept.join(', ')}`,
      });
    }
  } catch (err) {
    // A swap that failed halfway is undone from the previous copy, then the service this run
    // stopped is started again, on the data it had.
    const undone: string[] = [];
    for (const swap of journal.state.swaps) {
      if (await unswapVolume(env, image, swap).then(() => true, () => false)) undone.push(swap.live);
    }
    for (const move of journal.state.moves ?? []) {
      if (move.phase === 'swapping' && (await moveUnswap(env, image, move).then(() => true, () => false))) undone.push(move.live);
    }
    for (const r of journal.state.renames) {
      if (await exists(r.previous)) {
        await fs.rm(r.target, { recursive: true, force: true }).catch(() => undefined);
        await fs.rename(r.previous, r.target).catch(() => undefined);
        undone.push(r.target);
      }
    }
    for (const cid of journal.state.stopped) await env.docker.getContainer(cid).start().catch(() => undefined);
    if (!swapping) for (const v of createdLive) await removeVolume(env.docker, v).catch(() => undefined);
    if (undone.length > 0) (err as Error).message += ` (the previous data was put back into ${undone.join(', ')})`;
    throw err;
  } finally {
    // What was staged and not swapped in (or was set aside by an undo) goes.
    for (const st of staged) {
      if (st.move && (!st.swapped || (journal.state.moves ?? []).includes(st.move))) await removeFromFolder(env, image, st.move.folder, st.move.staged).catch(() => undefined);
      if (st.volume) await removeVolume(env.docker, st.volume).catch(() => undefined);
      if (st.folder && !st.swapped) await fs.rm(st.folder, { recursive: true, force: true }).catch(() => undefined);
    }
    await journal.close();
  }
  return report;
}

/**
 * Extract one archive where its swap will take it from: beside the live tree of a plain local
 * volume, into a staged volume otherwise, or into a folder beside a host target; then compare the
 * extracted tree with the archive's record. Returns the differences.
 */
async function stage(
  env: BackupEnv,
  image: string,
  id: string,
  service: string,
  record: ArchiveRecord,
  journal: Journal,
  staged: Staged[],
  createdLive: string[],
  onBytes: (n: number) => void,
): Promise<string[]> {
  const file = path.join(env.store.dir(id), record.file);
  const check: StagedCheck = { record, service, file, source: record.source };
  const src = record.source;
  if (src.type === 'volume') {
    const target = movedTarget(src.subpath);
    if (target === undefined) return [`${service}/${record.file}: its subpath "${src.subpath}" leaves the volume`];
    // A deleted volume is made again as it was (no container can be using it).
    if ((await volumeLabels(env.docker, src.volume)) === undefined) {
      await env.docker.createVolume({ Name: src.volume, Labels: src.labels ?? {} });
      createdLive.push(src.volume);
    }
    const folder = await volumeFolder(env.docker, src.volume);
    if (folder !== undefined) {
      const unique = randomBytes(4).toString('hex');
      const root = await archivedRoot(file, record);
      const move = { live: src.volume, folder, target, staged: `pic-staged-${id}-${unique}`, previous: `pic-previous-${id}-${unique}`, phase: 'staging' as const, ...(root ? { root } : {}) };
      // Journalled before it is written, so a crash leaves nothing the sweep does not know.
      (journal.state.moves ??= []).push(move);
      await journal.save();
      staged.push({ check, service, move });
      return stageInFolder(env, image, move, check, onBytes);
    }
    const volume = await createVolume(env.docker, env.helper, 'staged', service, { [BACKUP_LABEL.snapshot]: id });
    staged.push({ check, service, volume });
    return restoreInto(env, image, { type: 'volume', source: volume, target: '/d', readOnly: false }, check, onBytes);
  }
  const target = path.join(src.hostPath, src.subpath);
  if (env.dataDir === undefined) return [`${service}/${record.file} restores into the host folder ${target}, and the cell's data directory is not known to check it against`];
  const outside = await leavesFolder(target, env.dataDir);
  if (outside) return [`${service}/${record.file}: ${outside}`];
  const folder = `${target}.pic-staged-${id}`;
  await fs.rm(folder, { recursive: true, force: true });
  await fs.mkdir(folder, { recursive: true, mode: 0o700 });
  staged.push({ check, service, folder, target });
  return restoreInto(env, image, { type: 'bind', source: folder, target: '/d', readOnly: false }, check, onBytes);
}
