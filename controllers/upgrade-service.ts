/**
 * The operator's side of an upgrade (reconcilers/upgrade): what each step is given — the backup
 * engine for the snapshot and the restore, the containers reconciler for the switch and the
 * rollback, the status and the events — and the status the outcome leaves.
 */
import { createSnapshot, restoreSnapshot, sweep, type BackupEnv } from '../reconcilers/backup/index.js';
import { observeForReadiness } from '../reconcilers/containers/observe.js';
import { DEFAULT_MIN_READY_SECONDS } from '../reconcilers/containers/readiness.js';
import { DEFAULT_UPGRADE_DEADLINE_MS, runUpgrade } from '../reconcilers/upgrade/index.js';
import type { ConfigValue } from '../crds/config.js';
import type { VersionDecision } from '../state/admission.js';
import type { LoadedCell } from '../state/cell.js';
import type { CatalogService } from '../state/catalog.js';
import type { PackageStore } from '../state/packages.js';
import { cellBackupEnv } from './backup-schedule.js';
import type { OperatorContext } from './context.js';
import { progressing, refused } from './outcome.js';
import type { ConvergedPackage, PackageHalt, ReconcileOutcome } from './reconcile-service.js';

export interface UpgradeWhere {
  key: string;
  file: string;
  generation: string;
  decision: VersionDecision | undefined;
  packages: PackageStore;
}

/** The backup engine's environment inside the operator (events into the event log, no terminal). */
export function operatorBackupEnv(ctx: OperatorContext, cell: LoadedCell, readyTimeoutMs: number, minReadySeconds?: number): BackupEnv {
  return {
    ...cellBackupEnv(ctx.docker, ctx.stateRoot, cell.dir, cell.cell!),
    now: ctx.clock,
    notify: (n) => ctx.event(n.key, n.type, n.reason, n.message),
    readyTimeoutMs,
    ...(minReadySeconds !== undefined ? { minReadySeconds } : {}),
  };
}

/**
 * Run the upgrade a document asks for, or finish one a killed operator left (state/packages.ts
 * records each step). Undefined when there is none: the caller converges the admitted package.
 */
export async function upgradeService(
  ctx: OperatorContext,
  cell: LoadedCell,
  name: string,
  where: UpgradeWhere,
  converge: (pkg: CatalogService, config: Record<string, ConfigValue>) => Promise<ConvergedPackage | PackageHalt>,
  configFor: (pkg: CatalogService, given: Record<string, unknown> | undefined, file: string) => Record<string, ConfigValue>,
): Promise<ReconcileOutcome | undefined> {
  const { key, file, generation, decision, packages } = where;
  const doc = { file, generation };
  const halfway = await packages.progress(name);
  if (decision?.kind !== 'upgrade' && !halfway) return undefined;
  const source = cell.docs.services.find((s) => s.doc.metadata.name === name);
  const spec = source?.doc.spec;
  const deadlineMs = (spec?.upgrade?.deadlineSeconds ?? DEFAULT_UPGRADE_DEADLINE_MS / 1000) * 1000;
  if (ctx.dryRun) {
    // An upgrade is a sequence of steps that each wait on the one before: a dry run says which.
    if (halfway) ctx.dryRun.note(key, `~ finish the upgrade ${halfway.from} → ${halfway.to} left halfway at its ${halfway.step} step: complete it, or roll back to ${halfway.from} and restore the snapshot`);
    else if (decision?.kind === 'upgrade') ctx.dryRun.note(key, `~ upgrade ${decision.from} → ${decision.to}: snapshot and verify the data, switch to the new package and image, wait up to ${deadlineMs / 1000}s for Ready; on failure roll back to ${decision.from} and restore the snapshot`);
    return { changed: false };
  }
  const env = operatorBackupEnv(ctx, cell, deadlineMs, spec?.minReadySeconds);
  let last: ConvergedPackage | undefined;
  const packageOf = async (which: 'old' | 'new') => {
    const p = await packages.progress(name);
    if (!p) throw new Error('no upgrade is recorded');
    return (await packages.read(name, which === 'old' ? p.from : p.to)).service;
  };
  const result = await runUpgrade(
    {
      service: name,
      decision,
      generation,
      deadlineMs,
      minReadySeconds: spec?.minReadySeconds ?? DEFAULT_MIN_READY_SECONDS,
      ...(decision?.kind === 'upgrade' && cell.catalog?.offered.get(name) ? { target: cell.catalog.offered.get(name)! } : {}),
    },
    {
      packages,
      now: ctx.clock,
      event: (type, reason, message) => ctx.event(key, type, reason, message),
      progressing: async (reason, message) => {
        await ctx.statuses.services.write(key, doc, progressing(reason, message), last?.facts);
      },
      snapshot: async () => {
        const old = await packageOf('old');
        const { manifest } = await createSnapshot(
          env,
          [{ id: name, version: old.manifest.version, manifest: old.manifest, consistency: spec?.backup?.consistency ?? 'pause', dataDir: env.dataDir! }],
          { verify: true, reason: 'upgrade' },
        );
        return { id: manifest.id, verified: manifest.verification?.ok === true, problems: manifest.verification?.problems ?? [] };
      },
      converge: async (which) => {
        const pkg = await packageOf(which);
        const converged = await converge(pkg, configFor(pkg, spec?.config, file));
        // A package that cannot converge (a refused image, a name conflict) fails the step.
        if ('halt' in converged) throw converged.error;
        last = converged;
        return last.facts.containers.map((c) => c.name);
      },
      observe: () => observeForReadiness(ctx.docker, { cell: cell.cell!.metadata.name, owner: key }, new Date()),
      restore: async (snapshot) => {
        await restoreSnapshot(env, snapshot, [name]);
      },
      recover: async () => {
        const report = await sweep(env);
        const put = report.resumed.length + report.removedContainers + report.removedVolumes.length + report.finishedSwaps.length;
        if (put > 0) ctx.event(key, 'Warning', 'UpgradeRecovered', `an upgrade interrupted by an operator restart left ${report.resumed.length} paused or stopped container(s), ${report.removedContainers} helper container(s), ${report.removedVolumes.length} scratch volume(s) and ${report.finishedSwaps.length} unfinished swap(s); put right`);
      },
    },
  );
  switch (result.outcome) {
    case 'none':
    case 'abandoned':
      return undefined;
    case 'waiting':
      // Looked at again by the queue: no worker sleeps through an upgrade.
      return { changed: false, ready: false, requeueAfterMs: result.retryAfterMs };
    case 'upgraded': {
      const message = `upgraded ${result.from} → ${result.to}; converging the new version`;
      return { changed: true, admissionChanged: true, status: { doc, outcome: progressing('Upgraded', message), ...(last ? { facts: { ...last.facts, version: result.to } } : {}) } };
    }
    case 'failed': {
      const what = result.switched ? `rolled back, running version ${result.from}${result.restored ? ' with its data restored from the snapshot taken before the upgrade' : ''}` : `nothing was changed, running version ${result.from}`;
      const message = `upgrade to ${result.to} failed: ${result.reason}; ${what}; edit the document to try again`;
      const facts = last ? { ...last.facts, version: result.from, upgradeFailed: { version: result.to, reason: result.reason, at: ctx.clock().toISOString() } } : undefined;
      return { changed: true, ready: false, admissionChanged: true, status: { doc, outcome: refused('UpgradeFailed', message), ...(facts ? { facts } : {}) } };
    }
  }
}
