/**
 * One `wg syncconf`, config on stdin: WireGuard changes only what differs, so the tunnels of
 * peers that stay are not interrupted (their sessions and endpoints are kept).
 */
import type Dockerode from 'dockerode';
import { execInContainer } from '../shared/exec.js';
import type { OwnedContainer } from '../shared/owned-container.js';

export async function syncPeerSet(docker: Dockerode, container: OwnedContainer, iface: string, config: string): Promise<void> {
  const result = await execInContainer(docker, container, ['wg', 'syncconf', iface, '/dev/stdin'], { stdin: config });
  // stderr of wg names the line it could not read, not the key on it.
  if (result.exitCode !== 0) throw new Error(`wg syncconf ${iface} in ${container.name} exited ${result.exitCode}: ${result.stderr.trim()}`);
}
