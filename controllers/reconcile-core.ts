/**
 * One core component (`Core/caddy`, `Core/dns`, `Core/wireguard`): its image through the same
 * gate as a service's (reconcilers/images: the Cell's mode, keys, cache and mirrors), then its
 * containers converged through the containers pipeline, its status written with the container
 * and verification facts. A component the Cell no longer asks pic to run is converged to absent
 * (container removed, volumes kept).
 */
import path from 'node:path';
import type { CellDocument } from '../crds/types.js';
import { caddyAdminDir, coreComponents, reconcileCoreComponent, removeCoreComponent, type CoreComponent, type CorePaths } from '../reconcilers/core/index.js';
import type { ObservedContainer } from '../reconcilers/containers/types.js';
import { zoneFilePath } from '../reconcilers/dns/observe.js';
import { TerminalError } from '../reconcilers/errors.js';
import { ServiceImages, verifyImages } from '../reconcilers/images/index.js';
import type { LoadedCell } from '../state/cell.js';
import type { OperatorContext } from './context.js';
import { failed, progressing, ready, refused } from './outcome.js';
import { gateHalt, generationOf } from './reconcile-service.js';
import type { DocumentRef, StatusReport } from './status-writers.js';

export interface CoreOutcome {
  changed: boolean;
  ready: boolean;
}

/**
 * Reconcile one core component and write the status it returns through the cell's writer (a
 * reconcile that threw midway is reported by the one rule); the error it returns or throws then
 * goes to the queue.
 */
export async function reconcileCoreReporting(
  ctx: OperatorContext,
  cell: LoadedCell,
  key: string,
  dirs: { stateRoot: string; cellDir: string },
  cached?: ObservedContainer[],
): Promise<CoreOutcome> {
  const cellDoc = cell.cell;
  if (!cellDoc) return { changed: false, ready: false };
  const component = coreComponents(cellDoc).find((c) => c.key === key);
  if (!component) {
    const actions = await removeCoreComponent(
      ctx.docker,
      { owner: key, cellName: cellDoc.metadata.name, ...(cached ? { observed: cached } : {}) },
      ctx.dryRun ? 'dry-run' : { network: ctx.network, event: (e) => ctx.event(key, e.type ?? 'Normal', e.reason, e.message) },
    );
    ctx.dryRun?.noteActions(key, actions, '  (volumes are kept)');
    const hadStatus = await ctx.statuses.cell.remove(key);
    if (actions.length > 0 || hadStatus) ctx.event(key, 'Normal', 'Removed', `the Cell no longer runs ${key}: ${actions.length} container(s) removed, volumes kept`);
    return { changed: actions.length > 0, ready: true };
  }
  const doc: DocumentRef = { file: path.join(dirs.cellDir, 'cell.yaml'), generation: generationOf(cellDoc.spec[component.name]) };
  let result: CoreResult;
  try {
    result = await reconcileCore(ctx, cellDoc, component, doc, dirs, cached);
  } catch (err) {
    // A pulled image that is not what was verified is as final as a refused signature.
    await ctx.statuses.cell.write(key, doc, failed(err));
    throw err;
  }
  const outcome = result.status?.outcome;
  if (result.status) await ctx.statuses.cell.report(key, result.status);
  if (result.changed && outcome?.state === 'ready') ctx.event(key, 'Normal', 'Ready', outcome.message);
  if (result.error) throw result.error;
  return { changed: result.changed, ready: outcome?.state === 'ready' };
}

interface CoreResult {
  changed: boolean;
  /** None for a dry run, which says nothing of a status. */
  status?: StatusReport;
  /** For the queue, once the status is written. */
  error?: Error;
}

/**
 * One core component: its image through the gate, then its containers; returns its status.
 * ADR 001 holds for the core stack too: its image is checked before anything of it exists, and a
 * refusal (Stalled, or Reconciling for an unreachable registry) leaves whatever ran before running.
 */
async function reconcileCore(
  ctx: OperatorContext,
  cellDoc: CellDocument,
  component: CoreComponent,
  doc: DocumentRef,
  dirs: { stateRoot: string; cellDir: string },
  cached: ObservedContainer[] | undefined,
): Promise<CoreResult> {
  const key = component.key;
  const statuses = ctx.statuses.cell;
  const verifiedImages = await verifyImages(ctx, {
    key,
    cell: cellDoc,
    cellDir: dirs.cellDir,
    containers: [{ container: component.container, image: component.run.image }],
    subject: key,
    progressing: async (reason, message) => {
      await statuses.write(key, doc, progressing(reason, message), undefined, 'merge');
    },
  });
  if (!(verifiedImages instanceof ServiceImages)) {
    const { halt, error } = gateHalt(doc, verifiedImages);
    return { changed: false, status: halt, error };
  }
  const facts = (observed: ObservedContainer[]) => {
    const o = observed.find((c) => c.name === component.container);
    return { container: component.container, address: component.run.address, image: component.run.image, state: o?.state ?? 'absent', ...(o?.id ? { id: o.id.slice(0, 12) } : {}), ...verifiedImages.facts };
  };
  const result = await reconcileCoreComponent(
    ctx.docker,
    { component, cell: cellDoc, paths: corePaths(cellDoc, dirs), cellFile: doc.file!, ...(cached ? { observed: cached } : {}) },
    ctx.dryRun ? 'dry-run' : {
      network: ctx.network,
      event: (e) => ctx.event(key, e.type ?? 'Normal', e.reason, e.message),
      log: (line) => ctx.logger.info(line, { key }),
      progressing: async (summary, _plan, observed) => {
        await statuses.write(key, doc, progressing('Progressing', summary), facts(observed));
      },
      prepareImages: (plan, images) => verifiedImages.ensurePresent(plan, images),
    },
  );
  if (result.outcome === 'refused') return { changed: false, status: { doc, outcome: refused(result.reason, result.message) }, error: new TerminalError(result.message, result.reason, result.problems) };
  const f = facts(result.observed);
  if (ctx.dryRun) {
    // Whether it then runs is Docker's to tell, after the change.
    ctx.dryRun.noteActions(key, result.actions);
    return { changed: false };
  }
  if (f.state !== 'running') {
    const message = `${component.container} is ${f.state}`;
    return { changed: result.changed, status: { doc, outcome: progressing('ContainersNotRunning', message), facts: f }, error: new Error(message) };
  }
  const message = `${component.container} running at ${component.run.address}`;
  return { changed: result.changed, status: { doc, outcome: ready(result.changed ? 'Converged' : 'InSync', message), facts: f } };
}

/** The files of the state directory the core containers mount. */
function corePaths(cellDoc: CellDocument, dirs: { stateRoot: string; cellDir: string }): CorePaths {
  return { zoneFile: zoneFilePath(cellDoc, dirs), caddyAdminDir: caddyAdminDir(dirs.stateRoot) };
}
