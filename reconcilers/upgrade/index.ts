/**
 * Runs the upgrade steps of plan.ts with what the caller passes in: the package store (progress,
 * admission), the snapshot engine, the containers reconciler and the clock. Every step is recorded
 * before it starts; a failure rolls back to the previous package and restores the snapshot, and
 * the failure is kept with the document's generation, so it is not retried until that changes.
 */
import type { VersionDecision } from '../../state/admission.js';
import type { CatalogService } from '../../state/catalog.js';
import type { PackageStore, UpgradeProgress } from '../../state/packages.js';
import { DEFAULT_MIN_READY_SECONDS, judgeReadiness, type ContainerForReadiness } from '../containers/readiness.js';
import { nextUpgradeAction } from './plan.js';

export { DEFAULT_UPGRADE_DEADLINE_MS, nextUpgradeAction, type UpgradeAction } from './plan.js';

export interface UpgradeDeps {
  packages: PackageStore;
  now: () => Date;
  event: (type: 'Normal' | 'Warning', reason: string, message: string) => void;
  /** The document's status while a step runs. */
  progressing: (reason: string, message: string) => Promise<void>;
  /** Take a snapshot of the running (old) version and verify it by a test restore. */
  snapshot: () => Promise<{ id: string; verified: boolean; problems: string[] }>;
  /** Converge the service to the old or the new package; returns the names of its containers. */
  converge: (to: 'old' | 'new') => Promise<string[]>;
  /** The service's containers as the readiness rule needs them (restarts and uptime from an inspect). */
  observe: () => Promise<ContainerForReadiness[]>;
  /** Restore the service's data from a snapshot (staged; the service is started again after). */
  restore: (snapshot: string) => Promise<void>;
  /**
   * Put right what an operator killed midway left: containers it paused for the snapshot, helper
   * containers, scratch and staged volumes, half-done swaps (the backup engine's sweep).
   */
  recover: () => Promise<void>;
}

export interface UpgradeRequest {
  service: string;
  decision: VersionDecision | undefined;
  /** The document's generation now. */
  generation: string;
  deadlineMs: number;
  /** The stability window of the new version (spec.minReadySeconds). */
  minReadySeconds?: number;
  /** The catalog's package of the new version (kept before anything switches). */
  target?: CatalogService;
}

export type UpgradeResult =
  | { outcome: 'none' }
  /** The new version runs and is not Ready yet: look again after `retryAfterMs` (the queue requeues the key; nothing sleeps). */
  | { outcome: 'waiting'; retryAfterMs: number; reason: string }
  | { outcome: 'upgraded'; from: string; to: string }
  | { outcome: 'abandoned'; reason: string }
  | { outcome: 'failed'; from: string; to: string; reason: string; switched: boolean; restored: boolean };

function message(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n').slice(0, 3).join('; ');
}

export async function runUpgrade(request: UpgradeRequest, deps: UpgradeDeps): Promise<UpgradeResult> {
  const { service } = request;
  let progress = await deps.packages.progress(service);
  let action = nextUpgradeAction(request.decision, progress);
  if (action.type === 'none') return { outcome: 'none' };
  // An upgrade recorded before this call is one an operator did not finish: first what it left.
  if (progress) await deps.recover();
  if (action.type === 'abandon') {
    await deps.packages.clearProgress(service);
    deps.event('Normal', 'UpgradeAbandoned', `upgrade ${progress!.from} → ${progress!.to} abandoned before anything switched: ${action.reason}`);
    return { outcome: 'abandoned', reason: action.reason };
  }
  if (action.type === 'begin') {
    if (!request.target) throw new Error(`the catalog package of version ${action.to} is not at hand`);
    await deps.packages.store(service, request.target, deps.now());
    progress = {
      formatVersion: 1,
      service,
      from: action.from,
      to: action.to,
      generation: request.generation,
      step: 'snapshot',
      startedAt: deps.now().toISOString(),
      deadlineMs: request.deadlineMs,
      ...(request.minReadySeconds !== undefined ? { minReadySeconds: request.minReadySeconds } : {}),
    };
    await deps.packages.writeProgress(progress);
    deps.event('Normal', 'UpgradeStarted', `upgrading ${action.from} → ${action.to}: snapshot first`);
    action = { type: 'snapshot' };
  }
  const p = progress!;

  if (action.type === 'snapshot') {
    await deps.progressing('UpgradeSnapshot', `upgrading ${p.from} → ${p.to}: taking and verifying a snapshot of the data`);
    let taken: { id: string; verified: boolean; problems: string[] };
    try {
      taken = await deps.snapshot();
    } catch (err) {
      return fail(p, `the snapshot before the upgrade failed: ${message(err)}`, false, false, deps);
    }
    if (!taken.verified) return fail(p, `the snapshot ${taken.id} before the upgrade failed verification: ${taken.problems.join('; ')}`, false, false, deps);
    Object.assign(p, { step: 'switch', snapshot: taken.id, switchedAt: deps.now().toISOString() } satisfies Partial<UpgradeProgress>);
    await deps.packages.writeProgress(p);
    deps.event('Normal', 'UpgradeSnapshotVerified', `snapshot ${taken.id} verified by a test restore; switching to ${p.to}`);
    action = { type: 'switch' };
  }

  if (action.type === 'switch') {
    const switchedAt = Date.parse(p.switchedAt ?? p.startedAt);
    const window = p.minReadySeconds ?? DEFAULT_MIN_READY_SECONDS;
    let reason: string | undefined;
    try {
      if (p.started === undefined) {
        await deps.progressing('UpgradeSwitching', `upgrading ${p.from} → ${p.to}: running the new version, waiting until it is Ready (it must stay up ${window}s; deadline ${Math.round(p.deadlineMs / 1000)}s)`);
        p.started = await deps.converge('new');
        await deps.packages.writeProgress(p);
      }
      // The one readiness rule; a container that exits or restarts in the window fails at once.
      const readiness = judgeReadiness(p.started, await deps.observe(), window, switchedAt + p.deadlineMs - deps.now().getTime());
      if (readiness.state === 'waiting') {
        await deps.progressing('UpgradeSwitching', `upgrading ${p.from} → ${p.to}: ${readiness.reason} (deadline ${Math.round(p.deadlineMs / 1000)}s)`);
        return { outcome: 'waiting', retryAfterMs: readiness.retryAfterMs, reason: readiness.reason };
      }
      if (readiness.state === 'failed') reason = readiness.reason;
    } catch (err) {
      reason = `the new version could not be started: ${message(err)}`;
    }
    if (reason === undefined) {
      await deps.packages.setAdmitted(service, p.to, deps.now());
      await deps.packages.clearProgress(service);
      // Rollback no longer needs the previous package: only the running one is kept.
      await deps.packages.prune(service, [p.to]);
      deps.event('Normal', 'Upgraded', `upgraded ${p.from} → ${p.to}; the new version is Ready`);
      return { outcome: 'upgraded', from: p.from, to: p.to };
    }
    Object.assign(p, { step: 'rollback', reason } satisfies Partial<UpgradeProgress>);
    await deps.packages.writeProgress(p);
    action = { type: 'rollback', reason };
  }

  // Rollback: the previous package and image, then the data as it was before the upgrade.
  return rollback(p, action.reason, deps);
}

async function rollback(p: UpgradeProgress, reason: string, deps: UpgradeDeps): Promise<UpgradeResult> {
  deps.event('Warning', 'UpgradeRollingBack', `upgrade ${p.from} → ${p.to} failed (${reason}); rolling back to ${p.from} and restoring snapshot ${p.snapshot ?? '(none)'}`);
  await deps.progressing('UpgradeRollingBack', `upgrade to ${p.to} failed (${reason}); rolling back to ${p.from}`);
  await deps.converge('old');
  let restored = false;
  if (p.snapshot) {
    await deps.restore(p.snapshot);
    restored = true;
  }
  return fail(p, reason, true, restored, deps);
}

async function fail(p: UpgradeProgress, reason: string, switched: boolean, restored: boolean, deps: UpgradeDeps): Promise<UpgradeResult> {
  const now = deps.now();
  await deps.packages.setAdmitted(p.service, p.from, now, { version: p.to, generation: p.generation, reason, at: now.toISOString() });
  await deps.packages.clearProgress(p.service);
  await deps.packages.prune(p.service, [p.from]);
  deps.event('Warning', 'UpgradeFailed', `upgrade ${p.from} → ${p.to} failed: ${reason}; running ${p.from}${restored ? ` with the data of snapshot ${p.snapshot}` : ''}; not retried until the document changes`);
  return { outcome: 'failed', from: p.from, to: p.to, reason, switched, restored };
}
