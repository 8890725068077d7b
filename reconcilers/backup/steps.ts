/**
 * The steps the backup engine's operations are made of: hold a service still and resume it, take
 * one archive through a helper container, check an archive file, restore it into a volume or
 * folder and compare, swap a restored tree in (and back out). Each is a few adapter calls.
 */
import { serviceKey } from '../../state/document-keys.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { BackupJournal } from '../../state/snapshots.js';
import { archiveContainerPath, listContainerPath, putArchiveFileRead, putDirectory, type ReadArchive } from './archive.js';
import type { BackupEnv, Journal, progressReporter } from './context.js';
import { compareEntries, countFiles, entryListDigest, sortEntries } from './entries.js';
import { createHelper, MOVE_SWAP_SCRIPT, MOVE_UNSWAP_SCRIPT, removeContainer, runHelper, SWAP_SCRIPT, UNSWAP_SCRIPT, type HelperMount } from './helper.js';
import { volumeLabels } from './observe.js';
import type { BackupContainer, PlannedArchive } from './plan.js';
import type { ArchiveRecord, FileEntry } from './types.js';
import { stopContainerBounded } from '../shared/stop.js';

/**
 * Wait while another live run (the operator's scheduled backup, another command) holds the
 * service still: two runs pausing and resuming one service would resume it under each other.
 */
export async function waitUntilUnheld(env: BackupEnv, service: string, timeoutMs = 30 * 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { live } = await env.store.journals();
    const other = live.find((j) => j.pid !== process.pid && (j.holding ?? []).includes(service));
    if (!other) return;
    if (Date.now() > deadline) throw new Error(`ServiceInstall/${service} is held by another ${other.operation ?? 'backup'} (pid ${other.pid}) for more than ${Math.round(timeoutMs / 60_000)} minutes`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export async function quiesce(env: BackupEnv, journal: Journal, containers: readonly BackupContainer[], mode: 'pause' | 'stop'): Promise<() => Promise<void>> {
  const touched: { id: string; how: 'paused' | 'stopped' }[] = [];
  const resume = async () => {
    const failures: string[] = [];
    for (const t of [...touched].reverse()) {
      try {
        if (t.how === 'paused') await env.docker.getContainer(t.id).unpause();
        else await env.docker.getContainer(t.id).start();
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code !== 304 && code !== 404 && !/is not paused|already started/i.test((err as Error).message)) failures.push(`${t.id.slice(0, 12)}: ${(err as Error).message}`);
      }
      journal.state.paused = journal.state.paused.filter((id) => id !== t.id);
      journal.state.stopped = journal.state.stopped.filter((id) => id !== t.id);
    }
    touched.length = 0;
    await journal.save();
    if (failures.length > 0) throw new Error(`could not resume every container: ${failures.join('; ')}`);
  };
  try {
    for (const c of containers) {
      if (!c.running) continue;
      // Journal first: a crash between the two leaves a note about a container that still runs.
      if (mode === 'pause') journal.state.paused.push(c.id);
      else journal.state.stopped.push(c.id);
      await journal.save();
      if (mode === 'pause') await env.docker.getContainer(c.id).pause();
      else await stopContainerBounded(env.docker, c.id, { stopTimeout: c.stopTimeout });
      touched.push({ id: c.id, how: mode === 'pause' ? 'paused' : 'stopped' });
    }
  } catch (err) {
    await resume().catch(() => undefined);
    throw err;
  }
  return resume;
}

export function sourceMount(source: ArchiveRecord['source'], target: string, readOnly: boolean): HelperMount {
  return source.type === 'volume' ? { type: 'volume', source: source.volume, target, readOnly } : { type: 'bind', source: source.hostPath, target, readOnly };
}

export async function writeEntries(file: string, entries: readonly FileEntry[]): Promise<void> {
  await fs.writeFile(file, sortEntries(entries).map((e) => JSON.stringify(e)).join('\n') + '\n', { mode: 0o600 });
}

export async function readEntries(file: string): Promise<FileEntry[]> {
  const text = await fs.readFile(file, 'utf8');
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as FileEntry);
}

export async function takeArchive(env: BackupEnv, image: string, dir: string, planned: PlannedArchive, progress: ReturnType<typeof progressReporter>): Promise<ArchiveRecord> {
  const helper = await createHelper(env.docker, image, env.helper, [sourceMount(planned.source, '/d', true)]);
  const file = path.join(dir, planned.file);
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const p = progress.start(planned.name);
  try {
    const subpath = planned.source.subpath === '.' ? '' : `/${planned.source.subpath}`;
    const written = await archiveContainerPath(env.docker, helper.id, `/d${subpath}`, file, p.onBytes);
    p.finish();
    env.notify?.({ key: serviceKey(progress.service), type: 'Normal', reason: 'BackupProgress', message: `${planned.file}: ${written.tarBytes} bytes read, ${written.size} bytes archived (service so far: ${progress.total()} bytes)` });
    const entriesFile = `${planned.file.replace(/\.tar\.gz$/, '')}.files.jsonl`;
    await writeEntries(path.join(dir, entriesFile), written.entries);
    const source = planned.source.type === 'volume' ? { ...planned.source, labels: (await volumeLabels(env.docker, planned.source.volume)) ?? {} } : planned.source;
    return {
      kind: planned.kind,
      name: planned.name,
      file: planned.file,
      ...(planned.container !== undefined ? { container: planned.container } : {}),
      ...(planned.path !== undefined ? { path: planned.path } : {}),
      source,
      sha256: written.sha256,
      size: written.size,
      ...countFiles(written.entries),
      entriesSha256: entryListDigest(written.entries),
      entriesFile,
    };
  } finally {
    await removeContainer(env.docker, helper.id);
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a host path is not safely inside `folder`, or undefined: every existing part of it must
 * resolve inside the folder and the path itself must not be a symlink. A service can write under
 * the data directory through its bind mounts, so a symlink there could point anywhere.
 */
export async function leavesFolder(p: string, folder: string): Promise<string | undefined> {
  let root: string;
  try {
    root = await fs.realpath(folder);
  } catch {
    return `the data directory ${folder} cannot be resolved`;
  }
  let existing = p;
  for (;;) {
    try {
      const stat = await fs.lstat(existing);
      if (existing === p && stat.isSymbolicLink()) return `${p} is a symlink; pic reads and writes only real folders under ${folder}`;
      break;
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return `${p} has no existing folder above it`;
      existing = parent;
    }
  }
  const real = await fs.realpath(existing);
  if (real !== root && !real.startsWith(`${root}/`)) return `${p} resolves to ${real}, outside the data directory ${folder}`;
  return undefined;
}

/** An archive of a snapshot to extract: its record, the service it belongs to, its file. */
export interface ArchiveToRestore {
  record: ArchiveRecord;
  service: string;
  file: string;
}

function archiveLabel(service: string, record: ArchiveRecord): string {
  return `${service}/${record.file.split('/').pop()}`;
}

/** What is wrong with an archive file as read (its hash, size, entries) against its record. */
export function judgeArchive(label: string, record: ArchiveRecord, read: ReadArchive | Error): string[] {
  if (read instanceof Error) return [`${label}: cannot be read (${read.message}): it is corrupted or truncated`];
  const problems: string[] = [];
  if (read.sha256 !== record.sha256 || read.size !== record.size) problems.push(`${label}: the file's sha256 (${read.sha256.slice(0, 12)}…, ${read.size} bytes) is not the one recorded (${record.sha256.slice(0, 12)}…, ${record.size} bytes): it was changed or corrupted`);
  for (const r of read.refused) problems.push(`${label}: refused: ${r}`);
  if (entryListDigest(read.entries) !== record.entriesSha256) problems.push(`${label}: holds other files than were archived`);
  return problems;
}

/**
 * Extract an archive into a mount of a helper (into `subdir` of it, made first, when given),
 * reading the file on the way, then compare the extracted tree with the record. Returns what is
 * wrong: the file's own problems first (a corrupted or refused archive is named as such), then
 * Docker's refusal, then the differences of the extracted tree.
 */
export async function restoreInto(env: BackupEnv, image: string, mount: HelperMount, check: ArchiveToRestore, onBytes: (n: number) => void, subdir?: string): Promise<string[]> {
  const helper = await createHelper(env.docker, image, env.helper, [mount]);
  const label = archiveLabel(check.service, check.record);
  try {
    const dir = subdir === undefined ? mount.target : `${mount.target}/${subdir}`;
    if (subdir !== undefined) await putDirectory(env.docker, helper.id, mount.target, subdir);
    const { read, put } = await putArchiveFileRead(env.docker, helper.id, dir, check.file, onBytes);
    const problems = judgeArchive(label, check.record, read);
    if (problems.length > 0) return problems;
    if (put) return [`${label}: Docker could not extract it: ${put.message}`];
    const restored = await listContainerPath(env.docker, helper.id, dir);
    if (entryListDigest(restored.entries) === check.record.entriesSha256) return [];
    const archived = await readEntries(path.join(path.dirname(check.file), path.basename(check.record.entriesFile)));
    return compareEntries(archived, restored.entries).map((d) => `${label}: restored tree differs: ${d}`);
  } finally {
    await removeContainer(env.docker, helper.id);
  }
}

type Move = NonNullable<BackupJournal['moves']>[number];

function folderMount(move: Pick<Move, 'folder'>): HelperMount {
  return { type: 'bind', source: move.folder, target: '/vol', readOnly: false };
}

/** The owner and mode of an archive's root folder, from its entry list (when it holds one). */
export async function archivedRoot(file: string, record: ArchiveRecord): Promise<{ owner: string; mode: string } | undefined> {
  let entries: FileEntry[];
  try {
    entries = await readEntries(path.join(path.dirname(file), path.basename(record.entriesFile)));
  } catch {
    return undefined; // no list to read it from (the extraction's check names what is wrong)
  }
  const root = entries.find((e) => e.path === '.' && e.type === 'directory');
  if (!root || !Number.isInteger(root.uid) || !Number.isInteger(root.gid) || !Number.isInteger(root.mode)) return undefined;
  return { owner: `${root.uid}:${root.gid}`, mode: (root.mode & 0o7777).toString(8) };
}

/** Stage an archive inside a volume's own folder, beside its live tree, and compare it. */
export async function stageInFolder(env: BackupEnv, image: string, move: Move, check: ArchiveToRestore, onBytes: (n: number) => void): Promise<string[]> {
  return restoreInto(env, image, folderMount(move), check, onBytes, move.staged);
}

async function runMove(env: BackupEnv, image: string, move: Move, script: string, what: string): Promise<void> {
  const result = await runHelper(env.docker, image, env.helper, [folderMount(move)], ['sh', '-c', script, what, move.target, move.staged, move.previous, move.root?.owner ?? '', move.root?.mode ?? '']);
  if (result.exitCode !== 0) throw new Error(`${what} of the restored data in volume ${move.live} failed (exit ${result.exitCode}): ${result.output}`);
}

/** Swap a staged tree in by two renames; run again after a crash, it finishes what is left. */
export async function moveSwap(env: BackupEnv, image: string, move: Move): Promise<void> {
  await runMove(env, image, move, MOVE_SWAP_SCRIPT, 'swap');
}

export async function moveUnswap(env: BackupEnv, image: string, move: Move): Promise<void> {
  await runMove(env, image, move, MOVE_UNSWAP_SCRIPT, 'undo');
}

/**
 * Start removing a previous tree from a volume's folder and return: a helper that removes itself
 * when done (freeing the space of a large volume takes a while, and the restore is over).
 */
export async function startRemovalFromFolder(env: BackupEnv, image: string, folder: string, name: string): Promise<void> {
  if (!/^pic-previous-[A-Za-z0-9-]+$/.test(name)) throw new Error(`refusing to remove "${name}" from ${folder}: not a name the restore gave`);
  const helper = await createHelper(env.docker, image, env.helper, [folderMount({ folder })], ['busybox', 'rm', '-rf', `/vol/${name}`], 'cleanup');
  await helper.start();
}

/** Remove a staged or previous tree from a volume's folder. */
export async function removeFromFolder(env: BackupEnv, image: string, folder: string, name: string): Promise<void> {
  if (!/^pic-(staged|previous)-[A-Za-z0-9-]+$/.test(name)) throw new Error(`refusing to remove "${name}" from ${folder}: not a name the restore gave`);
  const result = await runHelper(env.docker, image, env.helper, [folderMount({ folder })], ['busybox', 'rm', '-rf', `/vol/${name}`]);
  if (result.exitCode !== 0) throw new Error(`removing ${folder}/${name} failed (exit ${result.exitCode}): ${result.output}`);
}


export async function swapVolume(env: BackupEnv, image: string, swap: BackupJournal['swaps'][number]): Promise<void> {
  const result = await runHelper(
    env.docker,
    image,
    env.helper,
    [
      { type: 'volume', source: swap.live, target: '/live', readOnly: false },
      { type: 'volume', source: swap.staged, target: '/staged', readOnly: true },
      { type: 'volume', source: swap.previous, target: '/previous', readOnly: false },
    ],
    ['sh', '-c', SWAP_SCRIPT, 'swap', swap.subpath],
  );
  if (result.exitCode !== 0) throw new Error(`swapping the restored data into volume ${swap.live} failed (exit ${result.exitCode}): ${result.output}`);
}

export async function unswapVolume(env: BackupEnv, image: string, swap: BackupJournal['swaps'][number]): Promise<void> {
  const result = await runHelper(
    env.docker,
    image,
    env.helper,
    [
      { type: 'volume', source: swap.live, target: '/live', readOnly: false },
      { type: 'volume', source: swap.previous, target: '/previous', readOnly: true },
    ],
    ['sh', '-c', UNSWAP_SCRIPT, 'unswap', swap.subpath],
  );
  if (result.exitCode !== 0) throw new Error(`putting the previous data back into volume ${swap.live} failed (exit ${result.exitCode}): ${result.output}`);
}

export async function swapFolder(r: BackupJournal['renames'][number]): Promise<void> {
  if ((await exists(r.target)) && !(await exists(r.previous))) await fs.rename(r.target, r.previous);
  if (await exists(r.staged)) {
    await fs.rm(r.target, { recursive: true, force: true });
    await fs.rename(r.staged, r.target);
  }
}
