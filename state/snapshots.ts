/**
 * Where snapshots live: one folder per snapshot under the backup root (default `backups/` in the
 * state directory, or the Cell's spec.backup.path), holding `snapshot.json` and the archives under
 * `service_data/<service>/`. A snapshot is written into `<id>.partial/` and renamed into place
 * when complete, so a listed snapshot is always whole. Journals (`.journal/<pid>.json`) record
 * what a running backup or restore has paused, stopped or is swapping, so a later run can put it
 * back after a crash.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { SnapshotManifest } from '../reconcilers/backup/types.js';
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

export interface BackupJournal {
  pid: number;
  /** Containers this run paused or stopped and has not resumed yet. */
  paused: string[];
  stopped: string[];
  /** A restore between stopping the service and starting it: the copies still to finish. */
  swaps: { live: string; subpath: string; staged: string; previous: string }[];
  /** Host folders renamed by a restore: staged → target once target has moved to previous. */
  renames: { target: string; staged: string; previous: string }[];
  partial?: string;
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

  /** Journals of runs that are no longer alive. */
  async deadJournals(isAlive: (pid: number) => boolean = isProcessAlive): Promise<BackupJournal[]> {
    let names: string[];
    try {
      names = await fs.readdir(path.join(this.root, '.journal'));
    } catch {
      return [];
    }
    const out: BackupJournal[] = [];
    for (const name of names) {
      const m = /^(\d+)\.json$/.exec(name);
      if (!m || Number(m[1]) === process.pid || isAlive(Number(m[1]))) continue;
      try {
        out.push(JSON.parse(await fs.readFile(path.join(this.root, '.journal', name), 'utf8')) as BackupJournal);
      } catch {
        await fs.rm(path.join(this.root, '.journal', name), { force: true });
      }
    }
    return out;
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

  /** Journals of live runs other than this one: their partial folders are not abandoned. */
  async livePartials(isAlive: (pid: number) => boolean = isProcessAlive): Promise<Set<string>> {
    const live = new Set<string>();
    let names: string[];
    try {
      names = await fs.readdir(path.join(this.root, '.journal'));
    } catch {
      return live;
    }
    for (const name of names) {
      const m = /^(\d+)\.json$/.exec(name);
      if (!m || !(Number(m[1]) === process.pid || isAlive(Number(m[1])))) continue;
      try {
        const j = JSON.parse(await fs.readFile(path.join(this.root, '.journal', name), 'utf8')) as BackupJournal;
        if (j.partial) live.add(j.partial);
      } catch {
        // being written: its partial folder is skipped by the next sweep's view
      }
    }
    return live;
  }
}
