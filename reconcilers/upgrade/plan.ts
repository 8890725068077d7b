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

