/**
 * What a snapshot is made of: the manifest written beside its archives, and the file records the
 * verification compares. One definition of each shape, here in state/ because the snapshot store
 * (state/snapshots.ts) reads and writes them; the backup engine (reconcilers/backup, through its
 * types.ts) and the commands use the same.
 */

/** A tar entry as pic records it: enough to tell a restored tree from the archived one. */
export interface FileEntry {
  /** Relative to the archive's root, without a leading `./`; `.` is the root itself. */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'link' | 'fifo';
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** A symlink's or hard link's target. */
  target?: string;
  /** sha256 of a regular file's content. */
  sha256?: string;
}

/** Where an archive's bytes were read from and are restored to. */
export type ArchiveSource =
  /** `labels`: the volume's labels when archived, so a volume deleted since is made again as it was. */
  | { type: 'volume'; volume: string; subpath: string; labels?: Record<string, string> }
  | { type: 'bind'; hostPath: string; subpath: string };

export interface ArchiveRecord {
  /** `volume` for a backup.volumes entry, `config` for a config_paths entry, `kept` for a whole kept volume. */
  kind: 'volume' | 'config' | 'kept';
  /** The archive's stem: backup.volumes[].name, the config path, or the kept volume's name. */
  name: string;
  /** Relative to the snapshot folder, e.g. service_data/notes/notes_data.tar.gz. */
  file: string;
  /** The backup.volumes entry it came from. */
  container?: string;
  path?: string;
  source: ArchiveSource;
  /** sha256 and size of the .tar.gz file. */
  sha256: string;
  size: number;
  /** Regular files in it, and the sum of their sizes. */
  files: number;
  bytes: number;
  /** sha256 of the canonical entry list (see entries.ts entryListDigest). */
  entriesSha256: string;
  /** Relative to the snapshot folder: the entry list, one JSON FileEntry a line. */
  entriesFile: string;
}

export interface ServiceSnapshot {
  service: string;
  /** The ServiceInstall's spec.version when the snapshot was taken. */
  version: string;
  /** Container name → image digest (the image ID it ran). */
  images: Record<string, string>;
  consistency: 'pause' | 'stop' | 'none';
  /** How long the service was paused or stopped for its snapshot, in milliseconds. */
  downtimeMs: number;
  archives: ArchiveRecord[];
}

export interface Verification {
  ok: boolean;
  at: string;
  /** When not ok: which archive failed and why. */
  problems?: string[];
}

export interface SnapshotManifest {
  formatVersion: 1;
  id: string;
  cell: string;
  createdAt: string;
  /** Why it was taken: the command line, a schedule, a `pic data delete`. */
  reason: 'manual' | 'scheduled' | 'final' | 'upgrade';
  services: ServiceSnapshot[];
  verification?: Verification;
}
