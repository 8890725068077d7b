/**
 * The containers resource of one ServiceInstall: render → check (desired.ts, pure) → observe
 * (observe.ts, one listing) → plan (plan.ts, pure) → apply (apply.ts), with the steps between
 * that need Docker or the file system: image lookup and pull, image verification, bind sources.
 *
 * One pipeline serves the operator and `pic plan` (`reconcileServiceContainers` with a dry-run
 * apply: nothing is pulled, created, made or written). The caller owns the state stores (address,
 * secrets) and the status: it passes the inputs in and writes the status from the result.
 */
import type Dockerode from 'dockerode';
import type { Problem } from '../../crds/types.js';
import type { SnapshotMemo } from '../../state/snapshot-memo.js';
import { applyContainerActions, type ApplyEvent } from './apply.js';
import { checkBindSources, type BindSourceRefusal } from './bind-sources.js';
import { desiredServicePlan, type ServiceInputs } from './desired.js';
import { imageForCreate, pullImage, resolveImage, resolveImages, type ResolvedImage } from './image.js';
import { LABEL } from './labels.js';
import { listOwnedContainers } from './observe.js';
import { imagesForCreation, planContainers } from './plan.js';
import { isContainerChange, type ContainerAction, type ObservedContainer, type ServicePlan } from './types.js';

export interface ServiceContainersInput {
  /** `ServiceInstall/<name>`: the owner label of everything created. */
  owner: string;
  cellName: string;
  /** Render inputs; the address and secrets are the caller's (allocated, or previewed by `pic plan`). */
  inputs: ServiceInputs;
  /** The owner's containers when the caller already listed them this pass; else listed here. */
  observed?: ObservedContainer[];
  /** The snapshot's memo (LoadedCell.memo): a plan rendered from the same inputs before is not rendered again. */
  memo?: SnapshotMemo;
}

/**
 * The image gate (reconcilers/images/gate.ts): called on the pass's own copy of the plan, once the
 * images to create from are resolved and before anything is pulled or created. It makes every
 * image present as it was verified (pulled by digest, through a mirror where the Cell has one) and
 * points each container at the verified local image; `images` is completed so nothing is pulled
 * again. It throws to refuse (a TerminalError for a bad artifact): nothing is created then.
 */
export type ImageGate = (plan: ServicePlan, images: Map<string, ResolvedImage>) => Promise<void>;

export interface ApplyHooks {
  network: { name: string; subnet: string; ipRange?: string };
  event: (event: ApplyEvent) => void;
  /** A line of pull progress, for the log. */
  log: (line: string) => void;
  /**
   * Docker is about to work on the service (something is to be created, started or removed): the
   * caller writes its Progressing status. Awaited before the pass ends, also when it fails.
   */
  progressing?: (summary: string, plan: ServicePlan, observed: ObservedContainer[]) => Promise<void>;
  /** Containers were created and are about to start (called at most once a pass). */
  starting?: () => void;
  /** Awaited before the first start of a pass: what must hold before the service runs (its egress fence). */
  fence?: () => Promise<void>;
  prepareImages?: ImageGate;
}

/** Why the service cannot converge as rendered: the caller's status says Stalled with this reason. */
export interface ContainersRefusal {
  outcome: 'refused';
  reason: 'RenderFailed' | 'NameConflict' | 'BindSourceRefused' | (string & {});
  message: string;
  problems: Problem[];
}

export interface ContainersConverged {
  outcome: 'converged';
  plan: ServicePlan;
  /** The owner's containers after the pass (as observed, for a dry run). */
  observed: ObservedContainer[];
  /** What was applied, or for a dry run what would be (pulls and conflicts included); nothing when in sync. */
  actions: ContainerAction[];
  changed: boolean;
}

/** How the pipeline ends: through Docker, or a dry run that stops where applying would begin. */
export type ApplyMode = ApplyHooks | 'dry-run';

/**
 * Converge the service's containers, or with `'dry-run'` say what converging would do: the same
 * steps up to the point where applying begins (images looked up to show the pulls, bind sources
 * looked at), then nothing is pulled, created, made or written.
 */
export async function reconcileServiceContainers(docker: Dockerode, input: ServiceContainersInput, mode: ApplyMode): Promise<ContainersRefusal | ContainersConverged> {
  const desired = servicePlanOf(input.inputs, input.memo);
  if (!desired.plan) return refusal('RenderFailed', desired.problems);
  return reconcilePlannedContainers(
    docker,
    { owner: input.owner, cellName: input.cellName, plan: desired.plan, dataDir: input.inputs.cell.dataDir, file: input.inputs.templateFile, ...(input.observed ? { observed: input.observed } : {}) },
    mode,
  );
}

/** A plan built without a compose template (the cell's core containers), and where its bind sources may lie. */
export interface PlannedContainersInput {
  owner: string;
  cellName: string;
  /** Not changed: what a pass changes is a copy. */
  plan: ServicePlan;
  /** The directory every bind source in `plan.bindSources` must stay under. */
  dataDir: string;
  /** Named in refusals. */
  file: string;
  observed?: ObservedContainer[];
}

/**
 * The part of the pipeline after rendering: observe → plan → (images, verification, bind
 * sources) → apply. Service containers reach it through `reconcileServiceContainers`; the core
 * containers, whose plan pic builds itself, call it directly.
 */
export async function reconcilePlannedContainers(docker: Dockerode, input: PlannedContainersInput, mode: ApplyMode): Promise<ContainersRefusal | ContainersConverged> {
  // The plan may be shared with the next pass (memoised): what this pass changes is a copy.
  let plan = input.plan;
  let observed = input.observed ?? (await observeOwner(docker, input));
  let actions = planContainers(plan, observed, { imagePresent: () => true });
  if (actions.length === 0) return { outcome: 'converged', plan, observed, actions, changed: false };
  // A dry run shows a conflict among the actions; a reconcile stops at it.
  const conflict = mode === 'dry-run' ? undefined : conflictOf(actions);
  if (conflict) return conflict;
  const bindSources = plan.bindSources ?? [];
  // Before Docker or mkdir sees a bind source: a symlink a container planted must not widen a mount.
  const planted = await checkBindSources(input.dataDir, bindSources, 'check');
  if (planted.length > 0) return bindRefusal(planted, input.file);

  const hooks = mode === 'dry-run' ? undefined : mode;
  const progressing = hooks?.progressing?.(describeActions(actions), plan, observed) ?? Promise.resolve();
  progressing.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  let applied = false;
  try {
    const images = await resolveImages(docker, imagesForCreation(actions));
    actions = planContainers(plan, observed, { imagePresent: (ref) => images.get(ref)?.present });
    if (!hooks) {
      applied = true;
      return { outcome: 'converged', plan, observed, actions, changed: false };
    }
    plan = structuredClone(plan);
    if (hooks.prepareImages) {
      await hooks.prepareImages(plan, images);
      actions = planContainers(plan, observed, { imagePresent: (ref) => images.get(ref)?.present });
    }
    for (const action of actions) {
      if (action.type !== 'pull-image') continue;
      hooks.event({ reason: 'Pulling', message: `pulling ${action.image}` });
      try {
        await pullImage(docker, action.image, (line) => hooks.log(line));
      } catch (err) {
        hooks.event({ type: 'Warning', reason: 'PullFailed', message: `${action.image}: ${(err as Error).message}` });
        throw err;
      }
      images.set(action.image, await resolveImage(docker, action.image));
    }

    for (const c of plan.containers) {
      const ref = String(c.create.Image);
      const resolved = images.get(ref);
      if (resolved) c.create.Image = imageForCreate(ref, resolved);
    }
    // Docker does not create a missing bind source; made here one real directory at a time.
    const raced = await checkBindSources(input.dataDir, bindSources, 'prepare');
    if (raced.length > 0) {
      applied = true;
      return bindRefusal(raced, input.file);
    }
    let announced = false;
    await applyContainerActions(
      docker,
      actions.filter(isContainerChange),
      {
        network: hooks.network,
        labels: { [LABEL.owner]: input.owner, [LABEL.cell]: input.cellName },
        log: hooks.event,
        beforeStart: async () => {
          if (announced) return;
          announced = true;
          hooks.starting?.();
          await hooks.fence?.();
        },
      },
    );
    observed = await observeOwner(docker, input);
    applied = true;
    return { outcome: 'converged', plan, observed, actions, changed: true };
  } finally {
    // A failed status write is the pass's error, unless a Docker failure is already on its way.
    await progressing.catch((err: unknown) => {
      if (applied) throw err;
    });
  }
}

/** Converge a service whose document is gone: its containers removed, volumes and data kept. */
export async function removeServiceContainers(
  docker: Dockerode,
  target: { owner: string; cellName: string; observed?: ObservedContainer[] },
  mode: Pick<ApplyHooks, 'network' | 'event'> | 'dry-run',
): Promise<ContainerAction[]> {
  const observed = target.observed ?? (await listOwnedContainers(docker, { cell: target.cellName, owner: target.owner }));
  const actions = planContainers(null, observed, { imagePresent: () => true, owner: target.owner });
  if (mode !== 'dry-run' && actions.length > 0) {
    await applyContainerActions(docker, actions.filter(isContainerChange), {
      network: mode.network,
      labels: { [LABEL.owner]: target.owner, [LABEL.cell]: target.cellName },
      log: mode.event,
    });
  }
  return actions;
}

/** e.g. "create ×2, start ×1": what Docker is about to do, for a Progressing status. */
export function describeActions(actions: ContainerAction[]): string {
  const counts = new Map<string, number>();
  for (const a of actions) counts.set(a.type, (counts.get(a.type) ?? 0) + 1);
  return [...counts.entries()].map(([t, n]) => `${t} ×${n}`).join(', ');
}

function observeOwner(docker: Dockerode, input: { owner: string; cellName: string }): Promise<ObservedContainer[]> {
  return listOwnedContainers(docker, { cell: input.cellName, owner: input.owner });
}

function conflictOf(actions: ContainerAction[]): ContainersRefusal | undefined {
  const conflicts = actions.filter((a): a is Extract<ContainerAction, { type: 'conflict' }> => a.type === 'conflict');
  if (conflicts.length === 0) return undefined;
  return { outcome: 'refused', reason: 'NameConflict', message: conflicts.map((c) => c.message).join('; '), problems: [] };
}

function refusal(reason: ContainersRefusal['reason'], problems: Problem[]): ContainersRefusal {
  return { outcome: 'refused', reason, message: summariseProblems(problems), problems };
}

function bindRefusal(refusals: BindSourceRefusal[], file: string): ContainersRefusal {
  return refusal('BindSourceRefused', refusals.map((r) => ({ file, pointer: '/services', message: r.message })));
}

/** The first problem, and how many more: one line for a status message. */
export function summariseProblems(problems: Problem[]): string {
  const first = problems[0];
  if (!first) return 'no details recorded';
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''}; run pic validate)` : '';
  return `${first.file}: ${first.pointer || '/'}: ${first.message}${more}`;
}

/**
 * The rendered plan of a service: rendering parses the template and hashes every container spec,
 * which a resync would otherwise redo for every service although nothing changed. With the
 * snapshot's memo it is remembered per manifest object, the other inputs compared by value. The
 * plan returned must not be changed.
 */
function servicePlanOf(inputs: ServiceInputs, memo: SnapshotMemo | undefined): ReturnType<typeof desiredServicePlan> {
  if (!memo) return desiredServicePlan(inputs);
  const { manifest, ...rest } = inputs;
  return memo.remember('service-plan', manifest, JSON.stringify(rest), () => desiredServicePlan(inputs));
}
