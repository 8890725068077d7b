/**
 * Write own chains into the wireguard container: `iptables-restore --noflush` with the rendered
 * input on stdin. `--noflush` keeps every chain the input does not name; the input flushes and
 * refills only ours, so each table section is replaced in one transaction.
 */
import type Dockerode from 'dockerode';
import { execInContainer } from '../shared/exec.js';
import type { OwnedContainer } from '../shared/owned-container.js';

export async function restoreChains(docker: Dockerode, container: OwnedContainer, restore: string): Promise<void> {
  const result = await execInContainer(docker, container, ['iptables-restore', '--noflush'], { stdin: restore });
  if (result.exitCode !== 0) {
    const detail = (result.stderr || result.stdout).trim() || `exit code ${result.exitCode}`;
    throw new Error(`iptables-restore in container ${container.name} failed: ${detail}`);
  }
}
