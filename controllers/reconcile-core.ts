/**
 * One core component (`Core/caddy`, `Core/dns`, `Core/wireguard`): its image through the same
 * gate as a service's (reconcilers/images: the Cell's mode, keys, cache and mirrors), then its
 * containers converged through the containers pipeline, its status written with the container
 * and verification facts. A component the Cell no longer asks pic to run is converged to absent
 * (container removed, volumes kept).
 */
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { CellDocument } from '../crds/types.js';
import { caddyAdminDir, coreComponents, isCoreKey, reconcileCoreComponent, removeCoreComponent, type CorePaths } from '../reconcilers/core/index.js';
import type { ContainerAction, ObservedContainer } from '../reconcilers/containers/types.js';
import { zoneFilePath } from '../reconcilers/dns/observe.js';
import { TerminalError } from '../reconcilers/errors.js';
import { verifyImages } from '../reconcilers/images/index.js';
import type { LoadedCell } from '../state/cell.js';
import { failureConditions, type OperatorContext } from './context.js';
import { generationOf } from './reconcile-service.js';

export interface CoreOutcome {
  changed: boolean;
  ready: boolean;
}

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
  const cellFile = path.join(dirs.cellDir, 'cell.yaml');
  if (!component) {
    const actions = await removeCoreComponent(
      ctx.docker,
      { owner: key, cellName: cellDoc.metadata.name, ...(cached ? { observed: cached } : {}) },
      { network: ctx.network, event: (e) => ctx.event(key, e.type ?? 'Normal', e.reason, e.message) },
    );
    const hadStatus = await ctx.status.remove(key);
    if (actions.length > 0 || hadStatus) ctx.event(key, 'Normal', 'Removed', `the Cell no longer runs ${key}: ${actions.length} container(s) removed, volumes kept`);
    return { changed: actions.length > 0, ready: true };
  }
  const generation = generationOf(cellDoc.spec[component.name]);
  // ADR 001 holds for the core stack too: its image is checked before anything of it exists. A
  // refusal writes the status (Stalled, or Reconciling for an unreachable registry) and throws;
  // whatever ran before keeps running.
  const verifiedImages = await verifyImages(ctx, {
    key,
    file: cellFile,
    generation,
    cell: cellDoc,
    cellDir: dirs.cellDir,
    containers: [{ container: component.container, image: component.run.image }],
    subject: key,
  });
  const facts = (observed: ObservedContainer[]) => {
    const o = observed.find((c) => c.name === component.container);
    return { container: component.container, address: component.run.address, image: component.run.image, state: o?.state ?? 'absent', ...(o?.id ? { id: o.id.slice(0, 12) } : {}), ...verifiedImages.facts };
  };
  let reported = false;
  try {
    const result = await reconcileCoreComponent(
      ctx.docker,
      { component, cell: cellDoc, paths: corePaths(cellDoc, dirs), cellFile, ...(cached ? { observed: cached } : {}) },
      {
        network: ctx.network,
        event: (e) => ctx.event(key, e.type ?? 'Normal', e.reason, e.message),
        log: (line) => ctx.logger.info(line, { key }),
        progressing: (summary, _plan, observed) => ctx.writeStatus(key, { file: cellFile, generation, ready: false, reconciling: { reason: 'Progressing', message: summary }, facts: facts(observed) }),
        prepareImages: (plan, images) => verifiedImages.ensurePresent(plan, images),
      },
    );
    if (result.outcome === 'refused') {
      await ctx.writeStatus(key, { file: cellFile, generation, ready: false, stalled: { reason: result.reason, message: result.message } });
      reported = true;
      throw new TerminalError(result.message, result.reason);
    }
    const f = facts(result.observed);
    if (f.state !== 'running') {
      const message = `${component.container} is ${f.state}`;
      await ctx.writeStatus(key, { file: cellFile, generation, ready: false, reconciling: { reason: 'ContainersNotRunning', message }, facts: f });
      reported = true;
      throw new Error(message);
    }
    const message = `${component.container} running at ${component.run.address}`;
    await ctx.writeStatus(key, { file: cellFile, generation, ready: true, readyReason: result.changed ? 'Converged' : 'InSync', message, facts: f });
    if (result.changed) ctx.event(key, 'Normal', 'Ready', message);
    return { changed: result.changed, ready: true };
  } catch (err) {
    if (!reported) {
      // A pulled image that is not what was verified is as final as a refused signature.
      await ctx.writeStatus(key, { file: cellFile, generation, ...failureConditions(err) });
    }
    throw err;
  }
}

/**
 * What converging the core containers would do (`pic plan`): the same pipeline with a dry-run
 * apply, plus the removal of core containers the Cell no longer asks for.
 */
export async function planCore(
  docker: Dockerode,
  cellDoc: CellDocument,
  dirs: { stateRoot: string; cellDir: string },
  byOwner: ReadonlyMap<string, ObservedContainer[]>,
  describe: (a: ContainerAction) => string,
): Promise<{ key: string; lines: string[] }[]> {
  const out: { key: string; lines: string[] }[] = [];
  const wanted = coreComponents(cellDoc);
  const cellFile = path.join(dirs.cellDir, 'cell.yaml');
  for (const component of wanted) {
    const preview = await reconcileCoreComponent(docker, { component, cell: cellDoc, paths: corePaths(cellDoc, dirs), cellFile, observed: byOwner.get(component.key) ?? [] }, 'dry-run');
    const lines = preview.outcome === 'refused' ? [`! ${preview.message}`] : preview.actions.filter((a) => a.type !== 'ensure-network').map(describe);
    if (lines.length > 0) out.push({ key: component.key, lines });
  }
  for (const [owner, observed] of [...byOwner.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    if (!isCoreKey(owner) || wanted.some((c) => c.key === owner)) continue;
    const actions = await removeCoreComponent(docker, { owner, cellName: cellDoc.metadata.name, observed }, 'dry-run');
    if (actions.length > 0) out.push({ key: owner, lines: [...actions.map(describe), '  (volumes are kept)'] });
  }
  return out;
}

/** The files of the state directory the core containers mount. */
function corePaths(cellDoc: CellDocument, dirs: { stateRoot: string; cellDir: string }): CorePaths {
  return { zoneFile: zoneFilePath(cellDoc, dirs), caddyAdminDir: caddyAdminDir(dirs.stateRoot) };
}
