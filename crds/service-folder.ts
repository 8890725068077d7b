/**
 * A service's own folder in the cell data directory, `<data directory>/<service id>`: the one place
 * its bind mounts and its backup config paths may reach, so that no package reads, backs up or
 * restores over another service's files. Pure.
 */
import path from 'node:path';

/** A config path relative to the data directory, normalised, or why it is refused. */
export function serviceConfigPath(serviceId: string, configPath: string): { path: string } | { refused: string } {
  if (configPath.startsWith('/')) return { refused: `must be relative to the cell data directory, not the absolute path "${configPath}"` };
  const n = path.posix.normalize(configPath).replace(/\/+$/, '');
  if (n === '..' || n.startsWith('../')) return { refused: `must stay inside the cell data directory; "${configPath}" climbs out of it (it normalises to ${n})` };
  if (n === '.' || n === '') return { refused: 'must name something inside the service\'s own folder, not the data directory itself' };
  if (n !== serviceId && !n.startsWith(`${serviceId}/`)) {
    return { refused: `"${configPath}" is not in the service's own folder "${serviceId}/": a service backs up and restores only its own files (write "${serviceId}/${n}")` };
  }
  return { path: n };
}
