/**
 * GitOps (issue 21), `pic run --git` as its own process against a file:// repository:
 * (a) a push that adds one service → its container running, against writing the same file into a
 *     local cell folder followed by `pic run --cell` (target: at most 1.2 × the local time plus
 *     the poll interval), median of PIC_BENCH_GITOPS_ROUNDS rounds (default 3);
 * (b) no-op polls at a 1 s interval for PIC_BENCH_GITOPS_IDLE_S seconds (default 30): checkouts
 *     and file writes below STATE/git and the Cell status (target 0 and 0), and the CPU time of
 *     the operator and its git children per poll, beside the same window of an idle `pic run
 *     --cell` operator.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { startPic } from '../support/egress-operator-process.js';
import { createTestCell, removeTestCell, waitFor, type TestCell } from '../support/cell.js';
import { containerState, createGitCell, startGitPic, waitCell, facts } from '../support/git-cell.js';
import { writeBenchSection } from './report.js';
import { changedFiles, median, ms, snapshotFiles } from './support/probes.js';

const ROUNDS = Number(process.env.PIC_BENCH_GITOPS_ROUNDS ?? 3);
const IDLE_S = Number(process.env.PIC_BENCH_GITOPS_IDLE_S ?? 30);
const INTERVAL_MS = 1000;

/** CPU seconds of a process and of its children it has waited for (utime + stime + cutime + cstime). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14-17 of proc(5), counted from the state (field 3) at index 0.
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  return ticks / 100;
}

async function running(cell: TestCell, id: string): Promise<void> {
  await waitFor(`${id} running`, async () => ((await containerState(cell.containerName(id))) === 'running' ? true : undefined), 300_000);
}

async function main(): Promise<void> {
  const ids = Array.from({ length: ROUNDS }, (_, i) => `svc${i}`);
  const rows = [];
  const notes: string[] = [];

  // The local folder: the same services, the same operator, the file written into the folder.
  const local = await createTestCell(ids.map((id) => ({ id })), { prefix: 'gto-' });
  const localTimes: number[] = [];
  let idleLocal = 0;
  try {
    const pic = startPic(local, 600);
    try {
      await waitFor('the local operator', async () => (pic.output().includes('pic is converging') ? true : undefined), 120_000);
      for (const id of ids) {
        const t = performance.now();
        await local.writeService(id);
        await running(local, id);
        localTimes.push(performance.now() - t);
      }
      const c0 = cpuSeconds(pic.child.pid!);
      await new Promise((r) => setTimeout(r, IDLE_S * 1000));
      idleLocal = cpuSeconds(pic.child.pid!) - c0;
    } finally {
      await pic.stop();
    }
  } finally {
    await removeTestCell(local);
  }

  const cell = await createGitCell(ids.map((id) => ({ id })));
  const gitTimes: number[] = [];
  try {
    const pic = startGitPic(cell, `file://${cell.bare}`, [], `${INTERVAL_MS}ms`, '600');
    try {
      const head = await cell.commit('start', {});
      await waitCell(cell, 'first revision', (s) => (facts(s).lastAppliedRevision ?? '').includes(head), 120_000);
      for (const id of ids) {
        // From the push (the commit and the push themselves are the admin's, not pic's).
        await cell.commit(`install ${id}`, cell.serviceFile(id));
        const t = performance.now();
        await running(cell, id);
        gitTimes.push(performance.now() - t);
      }
      // Idle: the same commit at every poll.
      await new Promise((r) => setTimeout(r, 3000));
      const roots = [path.join(cell.stateDir, 'git'), path.join(cell.stateDir, 'status', 'Cell')];
      const before = await snapshotFiles(roots);
      const checkoutsBefore = (pic.output().match(/checking out/g) ?? []).length;
      const c0 = cpuSeconds(pic.child.pid!);
      await new Promise((r) => setTimeout(r, IDLE_S * 1000));
      const cpu = cpuSeconds(pic.child.pid!) - c0;
      const changed = changedFiles(before, await snapshotFiles(roots));
      const checkouts = (pic.output().match(/checking out/g) ?? []).length - checkoutsBefore;
      const polls = Math.floor((IDLE_S * 1000) / INTERVAL_MS);
      const gitMedian = median(gitTimes);
      const localMedian = median(localTimes);
      rows.push({
        name: `push → container running for one new service (median of ${ROUNDS}), against the same file written into a local cell folder → running`,
        result: `${ms(gitMedian)} by Git (poll interval ${ms(INTERVAL_MS)}); ${ms(localMedian)} local; ratio ${(gitMedian / localMedian).toFixed(2)}`,
        target: '≤ 1.2 × local + the poll interval',
        met: gitMedian <= 1.2 * localMedian + INTERVAL_MS,
      });
      rows.push({
        name: `no-op polls at a ${ms(INTERVAL_MS)} interval for ${IDLE_S} s: checkouts and files written below STATE/git and the Cell status`,
        result: `${checkouts} checkouts, ${changed.length} files written${changed.length ? ` (${changed.slice(0, 3).join(', ')})` : ''}`,
        target: '0 and 0',
        met: checkouts === 0 && changed.length === 0,
      });
      rows.push({
        name: 'CPU time per no-op poll (the operator and its git ls-remote), beside an idle pic run --cell over the same window',
        result: `${ms(((cpu - idleLocal) / polls) * 1000)} per poll (${cpu.toFixed(2)} s in ${IDLE_S} s for ~${polls} polls; the idle local operator ${idleLocal.toFixed(2)} s)`,
        target: '— (reported)',
        met: true,
      });
      notes.push('Both operators run as processes with --resync 600; CPU is read from /proc (utime, stime and the reaped children\'s) at 100 ticks a second.');
    } finally {
      await pic.stop();
    }
  } finally {
    await removeTestCell(cell);
  }
  await writeBenchSection('GitOps', rows, notes);
}

await main();
