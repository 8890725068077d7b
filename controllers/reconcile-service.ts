import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type Dockerode from 'dockerode';
import type { Problem } from '../crds/types.js';
import { applyContainerActions } from '../reconcilers/containers/apply.js';
import { canonicalJson, type ServicePlan } from '../reconcilers/containers/compose.js';
import { desiredServicePlan, OWNER_LABEL, type ServiceInputs } from '../reconcilers/containers/desired.js';
import { imageForCreate, pullImage, resolveImage } from '../reconcilers/containers/image.js';
import { listOwnedContainers, type ObservedContainer } from '../reconcilers/containers/observe.js';
import { planContainers, type ContainerAction } from '../reconcilers/containers/plan.js';
import { templateSecretNames } from '../reconcilers/containers/render.js';
import { TerminalError } from '../reconcilers/errors.js';
import { verifyServiceImages } from '../reconcilers/images/index.js';
import type { LoadedCell } from '../state/cell.js';
import type { ContainerFact, DocumentStatus } from '../state/status-types.js';
import type { OperatorContext } from './context.js';

export const SERVICE_KIND = 'ServiceInstall';

export function serviceKey(name: string): string {
  return `${SERVICE_KIND}/${name}`;
}

/** Hash of a document's spec: the generation a status speaks of. */
export function generationOf(spec: unknown): string {
  // A loaded document is never changed afterwards, and every pass asks again: remember it.
  const known = spec !== null && typeof spec === 'object' ? generations.get(spec) : undefined;
  if (known) return known;
  const generation = createHash('sha256').update(canonicalJson(spec ?? null)).digest('hex').slice(0, 12);
  if (spec !== null && typeof spec === 'object') generations.set(spec, generation);
  return generation;
}

const generations = new WeakMap<object, string>();

export interface ReconcileOutcome {
  /** Ask the queue to look again after this long (a container still starting, say). */
  requeueAfterMs?: number;
  /** Whether anything was changed in Docker. */
  changed: boolean;
  /** Whether the service ended Ready. */
  ready?: boolean;
}

function summarise(problems: Problem[]): string {
  const first = problems[0];
  if (!first) return 'no details recorded';
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''}; run pic validate)` : '';
  return `${first.file}: ${first.pointer || '/'}: ${first.message}${more}`;
}

/** What the containers of a service look like, for its status. */
function containerFacts(plan: ServicePlan, observed: ObservedContainer[]): ContainerFact[] {
  return plan.containers.map((c) => {
    const o = observed.find((x) => x.name === c.name && x.specHash === c.specHash) ?? observed.find((x) => x.name === c.name);
    return {
      name: c.name,
      state: o?.state ?? 'absent',
      ...(o?.id ? { id: o.id.slice(0, 12) } : {}),
      ...(o?.health ? { health: o.health } : {}),
      ...(c.create.Image ? { image: String(c.create.Image) } : {}),
    };
  });
}

/**
 * Reconcile a service and make sure its status tells the outcome even when the reconcile failed
 * midway (Docker refused something, a conflict): Stalled for a terminal error, Reconciling with
 * the error for one that will be retried.
 */
export async function reconcileServiceReporting(ctx: OperatorContext, cell: LoadedCell, name: string, cached?: ObservedContainer[], hooks: ReconcileHooks = {}): Promise<ReconcileOutcome> {
  try {
    return await reconcileService(ctx, cell, name, cached, hooks);
  } catch (err) {
    const key = serviceKey(name);
    const previous = await ctx.status.lastKnown(key);
    const source = cell.docs.services.find((s) => s.doc.metadata.name === name);
    if (source && previous?.phase !== 'Stalled') {
      const message = (err as Error).message;
      const update = { file: source.file, generation: generationOf(source.doc.spec), ready: false as const, ...(previous?.facts ? { facts: previous.facts } : {}) };
      if (err instanceof TerminalError) await ctx.writeStatus(key, { ...update, stalled: { reason: err.reason, message } });
      else if (previous?.conditions.find((c) => c.type === 'Reconciling')?.message !== message) {
        await ctx.writeStatus(key, { ...update, reconciling: { reason: 'RetryingAfterError', message } });
      }
    }
    throw err;
  }
}

/**
 * Converge one ServiceInstall: its IP, secrets, rendered containers and volumes. Level-based: it
 * reads the desired snapshot and observes Docker afresh every time, never trusting what woke it.
 */
export interface ReconcileHooks {
  /**
   * Containers were created and are about to start (called once a pass, with the service's
   * address): routes and rules that only need the address can converge while they start, which
   * takes Docker far longer than any of that work, without slowing the creates before it.
   */
  starting?: (ip: string) => void;
}

export async function reconcileService(ctx: OperatorContext, cell: LoadedCell, name: string, cached?: ObservedContainer[], hooks: ReconcileHooks = {}): Promise<ReconcileOutcome> {
  const key = serviceKey(name);
  const source = cell.docs.services.find((s) => s.doc.metadata.name === name);
  const cellDoc = cell.cell;
  if (!cellDoc) {
    const problems = cell.checked.general.length ? cell.checked.general : [{ file: `${cell.dir}/cell.yaml`, pointer: '', message: 'no valid Cell document' }];
    if (!source) return removeService(ctx, name, cached);
    await ctx.writeStatus(key, { file: source.file, generation: generationOf(source.doc.spec), ready: false, stalled: { reason: 'CellInvalid', message: summarise(problems) } });
    throw new TerminalError(`the cell itself is invalid: ${summarise(problems)}`, 'CellInvalid');
  }
  if (!source) {
    const rejected = cell.checked.byDocument.get(key);
    if (!rejected) return removeService(ctx, name, cached);
  }
  const generation = generationOf(source?.doc.spec);
  const file = source?.file ?? cell.docs.rejected.find((r) => r.key === key)?.file;
  const problems = cell.checked.byDocument.get(key) ?? [];
  if (problems.length > 0 || !source) {
    await ctx.writeStatus(key, { file, generation, ready: false, stalled: { reason: 'InvalidSpec', message: summarise(problems) } });
    throw new TerminalError(summarise(problems), 'InvalidSpec');
  }

  const service = cell.catalog!.services.get(name)!;
  const verifiedImages = await verifyServiceImages(ctx, { key, file, generation, cell: cellDoc, cellDir: cell.dir, template: service.template });
  const config = cell.checked.configs.get(name)!;
  const network = cellDoc.spec.network;
  const owner = key;
  const allocation = await ctx.ips.allocate(owner, network.servicePool, network.subnet);
  const secrets = await ctx.secrets.ensure(name, templateSecretNames(service.template));
  const desired = memoisedServicePlan({
    manifest: service.manifest,
    template: service.template,
    templateFile: service.templateFile,
    manifestFile: service.manifestFile,
    config,
    secrets,
    serviceIp: allocation.ip,
    cell: ctx.cellContext(cellDoc),
  });
  if (!desired.plan) {
    await ctx.writeStatus(key, { file, generation, ready: false, stalled: { reason: 'RenderFailed', message: summarise(desired.problems) } });
    throw new TerminalError(summarise(desired.problems), 'RenderFailed');
  }
  // The plan may be shared with the next pass (memoised): what this pass changes is a copy.
  let plan = desired.plan;
  const notices = cell.checked.notices.get(key) ?? [];

  let observed = cached ?? (await listOwnedContainers(ctx.docker, { cell: cellDoc.metadata.name, owner }));
  let actions = planContainers(plan, observed, { imagePresent: () => true });
  let changed = false;
  if (actions.length > 0) {
    const conflicts = actions.filter((a): a is Extract<ContainerAction, { type: 'conflict' }> => a.type === 'conflict');
    if (conflicts.length > 0) {
      const message = conflicts.map((c) => c.message).join('; ');
      await ctx.writeStatus(key, { file, generation, ready: false, stalled: { reason: 'NameConflict', message }, facts: { serviceIp: allocation.ip, notices } });
      throw new TerminalError(message, 'NameConflict');
    }
    // Written while Docker works (statuses of one key are stored in order, so a later verdict
    // cannot be overtaken); waited for before the pass ends, also when it fails.
    const progressing = ctx.writeStatus(key, { file, generation, ready: false, reconciling: { reason: 'Progressing', message: describeActions(actions) }, facts: { serviceIp: allocation.ip, containers: containerFacts(plan, observed), notices } });
    progressing.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    let applied = false;
    try {
      plan = structuredClone(plan);
      const images = await resolveImages(ctx.docker, actions);
      await verifiedImages.ensurePresent(plan, images);
      actions = planContainers(plan, observed, { imagePresent: (ref) => images.get(ref)?.present });
      for (const action of actions) {
        if (action.type === 'pull-image') {
          ctx.event(key, 'Normal', 'Pulling', `pulling ${action.image}`);
          try {
            await pullImage(ctx.docker, action.image, (line) => ctx.logger.info(line, { key }));
          } catch (err) {
            ctx.event(key, 'Warning', 'PullFailed', `${action.image}: ${(err as Error).message}`);
            throw err;
          }
          images.set(action.image, await resolveImage(ctx.docker, action.image));
        }
      }
      for (const c of plan.containers) {
        const ref = String(c.create.Image);
        const resolved = images.get(ref);
        if (resolved) c.create.Image = imageForCreate(ref, resolved);
      }
      // Docker does not create a missing bind-mount source; the checks kept these inside the data dir.
      for (const dir of plan.bindSources) await fs.mkdir(dir, { recursive: true, mode: 0o750 });
      let announced = false;
      await applyContainerActions(
        ctx.docker,
        actions.filter((a) => a.type !== 'pull-image'),
        {
          network: ctx.network,
          labels: { [OWNER_LABEL]: owner, 'ngo.pic.cell': cellDoc.metadata.name },
          log: (e) => ctx.event(key, e.type ?? 'Normal', e.reason, e.message),
          beforeStart: () => {
            if (announced) return;
            announced = true;
            hooks.starting?.(allocation.ip);
          },
        },
      );
      changed = true;
      observed = await listOwnedContainers(ctx.docker, { cell: cellDoc.metadata.name, owner });
      applied = true;
    } finally {
      // A failed status write is the pass's error, unless a Docker failure is already on its way.
      await progressing.catch((err: unknown) => {
        if (applied) throw err;
      });
    }
  }

  const facts = { serviceIp: allocation.ip, containers: containerFacts(plan, observed), notices, version: service.manifest.version, ...verifiedImages.facts };
  const notRunning = facts.containers.filter((c) => c.state !== 'running');
  const starting = facts.containers.filter((c) => c.state === 'running' && c.health === 'starting');
  const unhealthy = facts.containers.filter((c) => c.health === 'unhealthy');
  if (notRunning.length > 0) {
    const message = `not running: ${notRunning.map((c) => `${c.name} (${c.state})`).join(', ')}`;
    await ctx.writeStatus(key, { file, generation, ready: false, reconciling: { reason: 'ContainersNotRunning', message }, facts });
    throw new Error(message);
  }
  if (unhealthy.length > 0) {
    const message = `unhealthy: ${unhealthy.map((c) => c.name).join(', ')}`;
    await ctx.writeStatus(key, { file, generation, ready: false, reconciling: { reason: 'ContainersUnhealthy', message }, facts });
    throw new Error(message);
  }
  if (starting.length > 0) {
    const message = `waiting for health checks: ${starting.map((c) => c.name).join(', ')}`;
    await ctx.writeStatus(key, { file, generation, ready: false, reconciling: { reason: 'HealthCheckPending', message }, facts });
    return { requeueAfterMs: 1000, changed };
  }
  const running = `${facts.containers.length} container${facts.containers.length === 1 ? '' : 's'} running at ${allocation.ip}`;
  await ctx.writeStatus(key, { file, generation, ready: true, readyReason: changed ? 'Converged' : 'InSync', message: running, facts });
  if (changed) ctx.event(key, 'Normal', 'Ready', running);
  return { changed, ready: true };
}

/**
 * `desiredServicePlan` remembered per manifest object, for the same inputs: rendering parses the
 * template and hashes every container spec, which a resync would otherwise redo for every service
 * although nothing changed. A catalog read again gives new manifest objects, so the memo follows
 * it; the key holds every other input by value. The plan returned must not be changed.
 */
const planMemo = new WeakMap<object, { key: string; result: ReturnType<typeof desiredServicePlan> }>();

function memoisedServicePlan(inputs: ServiceInputs): ReturnType<typeof desiredServicePlan> {
  const { manifest, ...rest } = inputs;
  const key = JSON.stringify(rest);
  const known = planMemo.get(manifest);
  if (known && known.key === key) return known.result;
  const result = desiredServicePlan(inputs);
  planMemo.set(manifest, { key, result });
  return result;
}

async function resolveImages(docker: Dockerode, actions: ContainerAction[]) {
  const needed = new Set<string>();
  for (const a of actions) if (a.type === 'create' || a.type === 'recreate') needed.add(String(a.container.create.Image));
  const out = new Map<string, { present: boolean; id?: string }>();
  for (const ref of needed) out.set(ref, await resolveImage(docker, ref));
  return out;
}

function describeActions(actions: ContainerAction[]): string {
  const counts = new Map<string, number>();
  for (const a of actions) counts.set(a.type, (counts.get(a.type) ?? 0) + 1);
  return [...counts.entries()].map(([t, n]) => `${t} ×${n}`).join(', ');
}

/** Converge a ServiceInstall whose document is gone: containers removed, IP released, volumes kept. */
export async function removeService(ctx: OperatorContext, name: string, cached?: ObservedContainer[]): Promise<ReconcileOutcome> {
  const key = serviceKey(name);
  const observed = cached ?? (await listOwnedContainers(ctx.docker, { cell: ctx.cellName, owner: key }));
  const actions = planContainers(null, observed, { imagePresent: () => true });
  if (actions.length > 0) {
    await applyContainerActions(ctx.docker, actions, {
      network: ctx.network,
      labels: { [OWNER_LABEL]: key, 'ngo.pic.cell': ctx.cellName },
      log: (e) => ctx.event(key, e.type ?? 'Normal', e.reason, e.message),
    });
  }
  const released = await ctx.ips.release(key);
  const hadStatus = await ctx.status.remove(key);
  if (actions.length > 0 || released || hadStatus) ctx.event(key, 'Normal', 'Removed', `uninstalled: ${actions.length} container(s) removed, volumes and data kept`);
  return { changed: actions.length > 0 };
}

export type { DocumentStatus };
