/**
 * Carry out an egress plan on the cell host: the chains through one `iptables-restore --noflush`,
 * then each `ip` command as an argument vector, in plan order. The first failing command stops the
 * run (the loop retries; the next plan starts from what is then live).
 */
import { execFile } from 'node:child_process';
import type { EgressPlan } from './plan.js';

const WRITE_TIMEOUT_MS = 15_000;

/** Runs a host command with its argument vector (never a shell), `stdin` written to it. */
export function runHostCommand(file: string, args: readonly string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, [...args], { timeout: WRITE_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} on the host failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    // A command that does not read its input (an `ip` call) closes the pipe: not an error of ours.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(stdin);
  });
}

export async function applyEgress(plan: EgressPlan): Promise<number> {
  let writes = 0;
  if (plan.restore !== undefined) {
    await runHostCommand('iptables-restore', ['--noflush'], plan.restore);
    writes++;
  }
  for (const args of plan.commands) {
    await runHostCommand('ip', args);
    writes++;
  }
  return writes;
}
