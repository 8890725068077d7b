/**
 * Where snapshots live: one folder per snapshot under the backup root (default `backups/` in the
 * state directory, or the Cell's spec.backup.path), holding `snapshot.json` and the archives under
 * `service_data/<service>/`. A snapshot is written into `<id>.partial/` and renamed into place
 * when complete, so a listed snapshot is always whole. Journals (`.journal/<pid>.json`) record
 * what a running backup or restore has paused, stopped or is swapping, so a later run can put it
 * back after a crash.
 */
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { SnapshotManifest } from './snapshot-types.js';
import { writeFileAtomic } from './atomic-write.js';
import { isProcessAlive } from './state-dir.js';

export const SNAPSHOT_MANIFEST = 'snapshot.json';
const SNAPSHOT_ID_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{4}$/;

/** `20261201T210800Z-1a2b`: sorts by time; the random part tells two snapshots of one second apart. */
export function snapshotId(now: Date, random: string): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${random}`;
}

export function isSnapshotId(id: string): boolean {
  return SNAPSHOT_ID_PATTERN.test(id);
}

/** A file of the journal folder: its run's pid, and the journal unless the file cannot be read. */
export interface JournalFile {
  file: string;
  pid: number;
  journal?: BackupJournal;
}

export interface BackupJournal {
  pid: number;
  /**
   * When the process started (field 22 of /proc/<pid>/stat), so a pid reused by another process
   * after a crash is not taken for the run that wrote the journal.
   */
  procStart?: string;
  /** When the run began (ISO), for the admin reading the journal. */
  startedAt?: string;
  /** backup | restore */
  operation?: 'backup' | 'restore';
  /**
   * Services this run is holding still (paused, stopped, or swapping their data): the operator
   * leaves their containers alone while the run lives, and puts them right once it is gone.
   */
  holding?: string[];
  /** Containers this run paused or stopped and has not resumed yet. */
  paused: string[];
  stopped: string[];
  /** A restore between stopping the service and starting it: the copies still to finish. */
  swaps: { live: string; subpath: string; staged: string; previous: string }[];
  /**
   * Restores staged inside a plain local volume's own folder (the parent of its `_data`, which the
   * service does not see), swapped in by two renames: `staging` while the staged tree is written
   * (a crash leaves only it to remove), `swapping` from the moment the service is stopped (a crash
   * is finished forward by the sweep). Names are relative to `folder`.
   */
  moves?: {
    live: string;
    folder: string;
    target: string;
    staged: string;
    previous: string;
    phase: 'staging' | 'swapping';
    /** The archived root folder's owner (`uid:gid`) and mode (octal), given to the staged root before it goes in. */
    root?: { owner: string; mode: string };
  }[];
  /** Host folders renamed by a restore: staged → target once target has moved to previous. */
  renames: { target: string; staged: string; previous: string }[];
  partial?: string;
}

/** The start time of a process as the kernel counts it, or undefined when it cannot be read. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the run that wrote a journal is still alive: its pid runs, and is the same process. */
export function journalAlive(journal: Pick<BackupJournal, 'pid' | 'procStart'>, isAlive: (pid: number) => boolean = isProcessAlive): boolean {
  if (!isAlive(journal.pid)) return false;
  if (journal.procStart === undefined) return true;
  const now = processStartTime(journal.pid);
  return now === undefined || now === journal.procStart;
}

/**
 * Where a cell's snapshots live: the Cell's spec.backup.path (relative to the cell folder), else
 * `backups/` in the state directory. The operator and the commands both derive it from here.
 */
export function snapshotRoot(stateRoot: string, cellDir: string, configured: string | undefined): string {
  if (!configured) return path.join(stateRoot, 'backups');
  return path.isAbsolute(configured) ? path.normalize(configured) : path.resolve(cellDir, configured);
}

export class SnapshotStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  dir(id: string): string {
    if (!isSnapshotId(id)) throw new Error(`"${id}" is not a snapshot id (like 20261201T210800Z-1a2b); run pic backup list`);
    return path.join(this.root, id);
  }

  async begin(id: string): Promise<string> {
    await fs.mkdir(this.root, { recursive: true, mode: 0o700 });
    const partial = `${this.dir(id)}.partial`;
    await fs.mkdir(partial, { mode: 0o700 });
    return partial;
  }

  async commit(id: string, manifest: SnapshotManifest): Promise<void> {
    const partial = `${this.dir(id)}.partial`;
    await writeFileAtomic(path.join(partial, SNAPSHOT_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    await fs.rename(partial, this.dir(id));
  }

  async abandon(id: string): Promise<void> {
    await fs.rm(`${this.dir(id)}.partial`, { recursive: true, force: true });
  }

  async write(manifest: SnapshotManifest): Promise<void> {
    await writeFileAtomic(path.join(this.dir(manifest.id), SNAPSHOT_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  }

  async read(id: string): Promise<SnapshotManifest> {
    const file = path.join(this.dir(id), SNAPSHOT_MANIFEST);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`no snapshot ${id} in ${this.root}; run pic backup list`);
      throw err;
    }
    try {
      return JSON.parse(text) as SnapshotManifest;
    } catch (err) {
      throw new Error(`${file}: not valid JSON (${(err as Error).message}); the snapshot cannot be used`);
    }
  }

  /** Every complete snapshot, oldest first; unreadable ones are reported, not hidden. */
  async list(): Promise<{ snapshots: SnapshotManifest[]; problems: string[] }> {
    let names: string[];
    try {
      names = await fs.readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { snapshots: [], problems: [] };
      throw err;
    }
    const snapshots: SnapshotManifest[] = [];
    const problems: string[] = [];
    for (const name of names.filter(isSnapshotId).sort()) {
      try {
        snapshots.push(await this.read(name));
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    return { snapshots, problems };
  }

  async delete(id: string): Promise<void> {
    await this.read(id);
    // Renamed first, so a snapshot half removed is never listed as whole.
    const doomed = `${this.dir(id)}.deleting`;
    await fs.rename(this.dir(id), doomed);
    await fs.rm(doomed, { recursive: true, force: true });
  }

  private journalFile(pid: number): string {
    return path.join(this.root, '.journal', `${pid}.json`);
  }

  async writeJournal(journal: BackupJournal): Promise<void> {
    await fs.mkdir(path.join(this.root, '.journal'), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.journalFile(journal.pid), JSON.stringify(journal));
  }

  async removeJournal(pid: number): Promise<void> {
    await fs.rm(this.journalFile(pid), { force: true });
  }

  /** The folder of the journals of runs under way. */
  get journalDir(): string {
    return path.join(this.root, '.journal');
  }

  /**
   * The journal files, parsed (`journal` undefined for one that cannot be). Synchronous: a few small
   * files, read once per change of the folder where a FileMemo keeps the result (BackupScheduler).
   */
  readJournalFiles(): JournalFile[] {
    let names: string[];
    try {
      names = readdirSync(this.journalDir);
    } catch {
      return [];
    }
    const files: JournalFile[] = [];
    for (const name of names.sort()) {
      const m = /^(\d+)\.json$/.exec(name);
      if (!m) continue;
      const file = path.join(this.journalDir, name);
      try {
        files.push({ file, pid: Number(m[1]), journal: JSON.parse(readFileSync(file, 'utf8')) as BackupJournal });
      } catch {
        files.push({ file, pid: Number(m[1]) });
      }
    }
    return files;
  }

  /**
   * Every journal, read once (or as `files` already read them): of runs that are alive (this
   * process's own included) and of runs that are gone.
   */
  async journals(isAlive: (pid: number) => boolean = isProcessAlive, files: readonly JournalFile[] = this.readJournalFiles()): Promise<{ live: BackupJournal[]; dead: BackupJournal[] }> {
    const live: BackupJournal[] = [];
    const dead: BackupJournal[] = [];
    for (const { file, pid, journal } of files) {
      if (!journal) {
        // Journals are written atomically, so an unreadable one is damage, not a write under way;
        // one of a live run is written again at its next step.
        if (!isAlive(pid)) await fs.rm(file, { force: true });
        continue;
      }
      const own = journal.pid === process.pid && (journal.procStart === undefined || journal.procStart === processStartTime(process.pid));
      if (own || (journal.pid !== process.pid && journalAlive(journal, isAlive))) live.push(journal);
      else dead.push(journal);
    }
    return { live, dead };
  }

  /** Journals of runs that are no longer alive. */
  async deadJournals(isAlive: (pid: number) => boolean = isProcessAlive): Promise<BackupJournal[]> {
    return (await this.journals(isAlive)).dead;
  }

  /** Remove `.partial` and `.deleting` folders nobody is writing any more (the journals name live ones). */
  async removeAbandoned(livePartials: ReadonlySet<string>): Promise<string[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.root);
    } catch {
      return [];
    }
    const removed: string[] = [];
    for (const name of names) {
      if (!name.endsWith('.partial') && !name.endsWith('.deleting')) continue;
      const p = path.join(this.root, name);
      if (livePartials.has(p)) continue;
      await fs.rm(p, { recursive: true, force: true });
      removed.push(p);
    }
    return removed;
  }

  /** The partial folders of live runs (this one included): not abandoned. */
  async livePartials(isAlive: (pid: number) => boolean = isProcessAlive): Promise<Set<string>> {
    const { live } = await this.journals(isAlive);
    return new Set(live.flatMap((j) => (j.partial ? [j.partial] : [])));
  }
}
