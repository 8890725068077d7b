/**
 * What a snapshot of one service reads: each backup.volumes entry resolved to the volume or bind
 * mount that holds its path in the live container, and each config path under the cell's data
 * directory. Pure: it takes what was observed and returns sources or problems naming the field.
 */
import path from 'node:path';
import type { Manifest } from '../../crds/types.js';
import { serviceConfigPath } from '../../crds/service-folder.js';
import type { ArchiveRecord, ArchiveSource } from './types.js';

/** A service container as the backup sees it (from a container inspect). */
export interface BackupContainer {
  id: string;
  /** Without the leading slash. */
  name: string;
  /** The Compose service key it was rendered from. */
  serviceKey?: string;
  running: boolean;
  paused: boolean;
  /** Its own StopTimeout (seconds), when it has one: a stop waits that long, bounded by shared/stop.ts. */
  stopTimeout?: number;
  image: string;
  mounts: { type: string; name?: string; source: string; destination: string }[];
}

/** An archive before it is written: the record without what only writing it tells. */
export type PlannedArchive = Pick<ArchiveRecord, 'kind' | 'name' | 'file' | 'container' | 'path' | 'source'>;

export interface BackupProblem {
  service: string;
  pointer: string;
  message: string;
}

/** The archive files of a service sit under service_data/<service>/ (the source system's layout). */
export function serviceFolder(service: string): string {
  return `service_data/${service}`;
}

function isWithinPath(child: string, parent: string): boolean {
  return parent === '/' || child === parent || child.startsWith(`${parent}/`);
}

/** The mount that holds `target` in a container: the one with the longest destination above it. */
export function mountHolding(container: BackupContainer, target: string): BackupContainer['mounts'][number] | undefined {
  const p = path.posix.normalize(target).replace(/\/$/, '') || '/';
  return container.mounts
    .filter((m) => isWithinPath(p, path.posix.normalize(m.destination).replace(/\/$/, '') || '/'))
    .sort((a, b) => b.destination.length - a.destination.length)[0];
}

/** Where a config path lives on the host; undefined when it would leave the data directory. */
export function configPathOnHost(dataDir: string, serviceId: string, configPath: string): { hostPath: string } | { refused: string } {
  const checked = serviceConfigPath(serviceId, configPath);
  return 'refused' in checked ? checked : { hostPath: path.posix.join(dataDir, checked.path) };
}

/** Config paths name a file name stem of their own: `config/notes` → `config_paths/config_notes.tar.gz`. */
export function configArchiveName(configPath: string): string {
  return path.posix.normalize(configPath).replace(/\/+$/, '').replace(/[^A-Za-z0-9_.-]/g, '_');
}

export function planServiceArchives(
  service: string,
  manifest: Pick<Manifest, 'backup'>,
  containers: readonly BackupContainer[],
  dataDir: string,
): { archives: PlannedArchive[]; problems: BackupProblem[] } {
  const archives: PlannedArchive[] = [];
  const problems: BackupProblem[] = [];
  const backup = manifest.backup;
  if (!backup) return { archives, problems };
  const folder = serviceFolder(service);
  backup.volumes.forEach((v, i) => {
    const pointer = `/backup/volumes/${i}`;
    const container = containers.find((c) => c.name === v.container) ?? containers.find((c) => c.serviceKey === v.container);
    if (!container) {
      problems.push({ service, pointer: `${pointer}/container`, message: `no container "${v.container}" of ServiceInstall/${service} exists; run pic run so the service is created, then back it up` });
      return;
    }
    const mount = mountHolding(container, v.path);
    if (!mount || (mount.type !== 'volume' && mount.type !== 'bind')) {
      problems.push({
        service,
        pointer: `${pointer}/path`,
        message: `"${v.path}" in container ${container.name} is on no volume or bind mount, so its data would not survive a recreate either; mount a volume there in the compose template`,
      });
      return;
    }
    const subpath = path.posix.relative(path.posix.normalize(mount.destination), path.posix.normalize(v.path)) || '.';
    const source: ArchiveSource = mount.type === 'volume' ? { type: 'volume', volume: mount.name ?? mount.source, subpath } : { type: 'bind', hostPath: mount.source, subpath };
    archives.push({ kind: 'volume', name: v.name, file: `${folder}/${v.name}.tar.gz`, container: v.container, path: v.path, source });
  });
  backup.config_paths.forEach((p, i) => {
    const onHost = configPathOnHost(dataDir, service, p);
    if ('refused' in onHost) {
      problems.push({ service, pointer: `/backup/config_paths/${i}`, message: onHost.refused });
      return;
    }
    const hostPath = onHost.hostPath;
    const name = configArchiveName(p);
    archives.push({ kind: 'config', name: p, file: `${folder}/config_paths/${name}.tar.gz`, source: { type: 'bind', hostPath, subpath: '.' } });
  });
  const seen = new Set<string>();
  for (const a of archives) {
    if (seen.has(a.file)) problems.push({ service, pointer: '/backup', message: `two backup entries give the archive ${a.file}; give each volume entry its own name` });
    seen.add(a.file);
  }
  return { archives, problems };
}

/** Whole kept volumes of a service without its containers (the final snapshot of `pic data delete`). */
export function planKeptVolumeArchives(service: string, volumes: readonly string[]): PlannedArchive[] {
  const folder = serviceFolder(service);
  return [...volumes].sort().map((volume) => ({ kind: 'kept', name: volume, file: `${folder}/${volume}.tar.gz`, source: { type: 'volume', volume, subpath: '.' } }));
}

/**
 * Where a snapshot's subpath lands under a volume's `_data`, or undefined when it is not a plain
 * relative path (a snapshot folder is input: it may have been edited).
 */
export function movedTarget(subpath: string): string | undefined {
  const normal = path.posix.normalize(subpath).replace(/\/+$/, '');
  if (normal === '.' || normal === '') return '_data';
  if (path.posix.isAbsolute(normal) || normal === '..' || normal.startsWith('../')) return undefined;
  return `_data/${normal}`;
}
