/**
 * Carry out an egress plan inside the wireguard container: the chains through
 * `iptables-restore --noflush`, then each `ip` command as an argument vector, in plan order.
 * The first failing command stops the run (the loop retries; the next plan starts from what is
 * then live).
 */
import type Dockerode from 'dockerode';
import { restoreChains } from '../firewall/apply.js';
import { execInContainer } from '../shared/exec.js';
import type { OwnedContainer } from '../shared/owned-container.js';
import type { EgressPlan } from './plan.js';

export async function applyEgress(docker: Dockerode, container: OwnedContainer, plan: EgressPlan): Promise<number> {
  let writes = 0;
  if (plan.restore !== undefined) {
    await restoreChains(docker, container, plan.restore);
    writes++;
  }
  for (const args of plan.commands) {
    const result = await execInContainer(docker, container, ['ip', ...args]);
    if (result.exitCode !== 0) {
      const detail = (result.stderr || result.stdout).trim() || `exit code ${result.exitCode}`;
      throw new Error(`ip ${args.join(' ')} in container ${container.name} failed: ${detail}`);
    }
    writes++;
  }
  return writes;
}
