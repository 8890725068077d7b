/**
 * The upgrade of a service to the catalog's newer version, as a sequence of recorded steps:
 * snapshot (taken and verified) → switch (the new package and image, waited on until Ready or
 * the deadline) → done, or → rollback (the previous package and image, the snapshot restored) →
 * failed. Each step is recorded before it runs (state/packages.ts UpgradeProgress), so an
 * operator killed at any moment finishes or rolls back on restart. Pure.
 */
import type { VersionDecision } from '../../state/admission.js';
import type { UpgradeProgress } from '../../state/packages.js';

/** Default time the new version has to become Ready. */
export const DEFAULT_UPGRADE_DEADLINE_MS = 300_000;

export type UpgradeAction =
  /** No upgrade asked for and none in progress. */
  | { type: 'none' }
  /** Begin: keep the new package, record the snapshot step. */
  | { type: 'begin'; from: string; to: string }
  /** Take and verify the snapshot. */
  | { type: 'snapshot' }
  /** Run the new version and wait until Ready or the deadline (counted from `switchedAt`). */
  | { type: 'switch' }
  /** Nothing was switched yet and the document no longer asks for this upgrade: forget it. */
  | { type: 'abandon'; reason: string }
  /** Go back to the previous package and restore the snapshot. */
  | { type: 'rollback'; reason: string };

function asksFor(decision: VersionDecision | undefined, progress: UpgradeProgress): boolean {
  return decision?.kind === 'upgrade' && decision.from === progress.from && decision.to === progress.to;
}

/** What to do next for a service, from its version decision and the upgrade recorded (if any). */
export function nextUpgradeAction(decision: VersionDecision | undefined, progress: UpgradeProgress | undefined): UpgradeAction {
  if (!progress) return decision?.kind === 'upgrade' ? { type: 'begin', from: decision.from, to: decision.to } : { type: 'none' };
  switch (progress.step) {
    case 'snapshot':
      return asksFor(decision, progress) ? { type: 'snapshot' } : { type: 'abandon', reason: `the document no longer asks for version ${progress.to}` };
    case 'switch':
      return asksFor(decision, progress) ? { type: 'switch' } : { type: 'rollback', reason: `the document no longer asks for version ${progress.to}` };
    case 'rollback':
      return { type: 'rollback', reason: progress.reason ?? 'the upgrade did not finish' };
  }
}

/** A container of the new version as observed while waiting. */
export interface WaitedContainer {
  name: string;
  state: string;
  health?: string;
}

export type Readiness = { state: 'ready' } | { state: 'waiting'; reason: string } | { state: 'failed'; reason: string };

/**
 * Whether the new version is Ready: every container of its plan running, and healthy where it has
 * a health check. A container that exited, died or is unhealthy fails at once; one starting or
 * restarting is waited on until `remainingMs` runs out.
 */
export function judgeReadiness(expected: readonly string[], observed: readonly WaitedContainer[], remainingMs: number): Readiness {
  const waiting: string[] = [];
  for (const name of expected) {
    const c = observed.find((o) => o.name === name);
    if (!c) {
      waiting.push(`${name} (absent)`);
      continue;
    }
    if (c.health === 'unhealthy') return { state: 'failed', reason: `${name} is unhealthy (its health check fails)` };
    if (c.state === 'exited' || c.state === 'dead') return { state: 'failed', reason: `${name} ${c.state} instead of running` };
    if (c.state !== 'running') waiting.push(`${name} (${c.state})`);
    else if (c.health === 'starting') waiting.push(`${name} (health: starting)`);
  }
  if (waiting.length === 0) return { state: 'ready' };
  const reason = `not Ready: ${waiting.join(', ')}`;
  return remainingMs <= 0 ? { state: 'failed', reason: `${reason} when the deadline passed` } : { state: 'waiting', reason };
}
