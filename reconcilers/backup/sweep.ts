/** What a backup or restore killed halfway left behind, put right by the next run. */
import { isProcessAlive } from '../../state/state-dir.js';
import type { BackupEnv } from './context.js';
import { ensureHelperImage, ensureVolume, listLeftovers, previousLabels, removeContainer, removeVolume } from './helper.js';
import { moveSwap, removeFromFolder, swapFolder, swapVolume } from './steps.js';

export interface SweepReport {
  resumed: string[];
  finishedSwaps: string[];
  removedContainers: number;
  removedVolumes: string[];
  removedFolders: string[];
  /** Old trees a finished swap left beside a volume's live one: the restore that would have removed them once Ready is gone. */
  keptPrevious: string[];
}

export async function sweep(env: BackupEnv, isAlive: (pid: number) => boolean = isProcessAlive): Promise<SweepReport> {
  const report: SweepReport = { resumed: [], finishedSwaps: [], removedContainers: 0, removedVolumes: [], removedFolders: [], keptPrevious: [] };
  const journals = await env.store.deadJournals(isAlive);
  {
    const leftovers = await listLeftovers(env.docker, env.helper.labels, isAlive);
    for (const id of leftovers.containers) {
      await removeContainer(env.docker, id);
      report.removedContainers++;
    }
    for (const j of journals) {
      if (j.swaps.length > 0) {
        const image = await ensureHelperImage(env.docker, env.helper);
        for (const swap of j.swaps) {
          await ensureVolume(env.docker, env.helper, 'previous', swap.previous, previousLabels(swap.live));
          await swapVolume(env, image, swap);
          report.finishedSwaps.push(swap.live);
        }
      }
      const moves = j.moves ?? [];
      if (moves.length > 0) {
        const image = await ensureHelperImage(env.docker, env.helper);
        for (const move of moves) {
          // Staging: the live tree was not touched, only the staged one goes. Swapping: finished
          // forward (the restored tree was checked before the service was stopped).
          if (move.phase === 'swapping') {
            await moveSwap(env, image, move);
            report.finishedSwaps.push(move.live);
            report.keptPrevious.push(`${move.folder}/${move.previous}`);
          } else {
            await removeFromFolder(env, image, move.folder, move.staged);
            report.removedFolders.push(`${move.folder}/${move.staged}`);
          }
        }
      }
      for (const r of j.renames) {
        await swapFolder(r);
        report.finishedSwaps.push(r.target);
      }
      for (const cid of j.paused) {
        try {
          const state = (await env.docker.getContainer(cid).inspect()).State;
          if (state.Paused) {
            await env.docker.getContainer(cid).unpause().catch((err: Error & { statusCode?: number }) => {
              // Another sweep (the operator's, a command's) got there first.
              if (err.statusCode !== 409 && !/not paused/i.test(err.message)) throw err;
            });
            report.resumed.push(cid);
          }
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        }
      }
      for (const cid of j.stopped) {
        try {
          const state = (await env.docker.getContainer(cid).inspect()).State;
          if (state.Paused) await env.docker.getContainer(cid).unpause();
          else if (!state.Running) await env.docker.getContainer(cid).start();
          report.resumed.push(cid);
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode !== 404) throw err;
        }
      }
      await env.store.removeJournal(j.pid);
      env.notify?.({ key: 'backup', type: 'Warning', reason: 'BackupRecovered', message: `a backup or restore (pid ${j.pid}) ended without finishing; resumed ${report.resumed.length} container(s), finished ${report.finishedSwaps.length} swap(s)` });
    }
    for (const v of leftovers.volumes) {
      await removeVolume(env.docker, v.name);
      report.removedVolumes.push(v.name);
    }
  }
  report.removedFolders.push(...(await env.store.removeAbandoned(await env.store.livePartials(isAlive))));
  if (report.keptPrevious.length > 0) env.notify?.({ key: 'backup', type: 'Warning', reason: 'PreviousDataKept', message: `a restore ended between its swap and the service's Ready check; the data it replaced is kept in ${report.keptPrevious.join(', ')} (on the Docker host); remove it once the service is fine` });
  return report;
}
