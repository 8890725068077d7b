/**
 * What it takes to turn the containers Docker has into the containers a service renders.
 *
 * Pure: the listing of containers and the answer to "is this image here?" come in as arguments.
 * The output is deterministic: conflicts, then removals (sorted by name), then — only when a
 * container is created or recreated — the network, the images to pull (sorted) and every desired
 * volume (sorted), then creations, recreations and starts in dependency order.
 *
 * Volumes are planned without looking at which exist: applying `create-volume` is idempotent
 * (one inspect per volume), and they are only planned when a container is about to be created,
 * so a pass with nothing to do costs nothing.
 */
import { compareText } from '../../crds/values.js';
import { CORE_KIND } from '../core/spec.js';
import type { NameHolder } from '../shared/owned-container.js';
import { describeHolder, LABEL } from './labels.js';
import type { ContainerAction, DesiredContainer, ObservedContainer, ServicePlan } from './types.js';

export type { ContainerAction } from './types.js';

export interface PlanOptions {
  /** true: present; false: must be pulled; undefined: unknown, no pull is planned. */
  imagePresent: (ref: string) => boolean | undefined;
  /**
   * The owner this plan is for (`ServiceInstall/<id>`). Defaults to the owner label of the
   * desired containers. When `desired` is null and no owner is given, every observed container
   * carrying an owner label is taken as the service's: pass a listing scoped to the owner then.
   */
  owner?: string;
  /**
   * The labels the caller adds to everything it creates (the same `labels` apply gets); its
   * `ngo.pic.cell` is part of ownership: a container of another cell is never ours.
   */
  labels?: Record<string, string>;
}

/** States in which a container counts as running: Docker itself is bringing it back. */
const RUNNING_STATES = new Set(['running', 'restarting']);
/** States from which `docker start` cannot bring a container back. */
const UNSTARTABLE_STATES = new Set(['dead', 'removing']);

export function planContainers(
  desired: ServicePlan | null,
  observed: ObservedContainer[],
  opts: PlanOptions,
): ContainerAction[] {
  const wanted = desired ? dependencyOrder(desired.containers) : [];
  const owner = opts.owner ?? wanted.map((c) => labelsOf(c)[LABEL.owner]).find((o) => o !== undefined);
  const cell = opts.labels?.[LABEL.cell] ?? wanted.map((c) => labelsOf(c)[LABEL.cell]).find((o) => o !== undefined);
  const isOurs = (o: ObservedContainer) =>
    o.owner !== '' && (owner === undefined || o.owner === owner) && (cell === undefined || o.cell === cell);

  const byName = new Map(wanted.map((c) => [c.name, c]));
  const byService = new Map<string, DesiredContainer>();
  for (const c of wanted) {
    const service = labelsOf(c)[LABEL.service];
    if (service !== undefined && !byService.has(service)) byService.set(service, c);
  }

  const conflicts = new Map<string, ContainerAction>();
  const removals: Extract<ContainerAction, { type: 'remove' }>[] = [];
  const claims = new Map<string, ObservedContainer[]>();

  for (const o of [...observed].sort(byNameThenId)) {
    if (!isOurs(o)) {
      if (byName.has(o.name) && !conflicts.has(o.name)) {
        conflicts.set(o.name, { type: 'conflict', name: o.name, message: conflictMessage(o, owner, cell) });
      }
      continue;
    }
    const target = byName.get(o.name) ?? (o.service !== '' ? byService.get(o.service) : undefined);
    if (!target) {
      removals.push({
        type: 'remove',
        id: o.id,
        name: o.name,
        reason: desired ? 'no longer rendered by the service' : 'the service is removed',
      });
      continue;
    }
    const list = claims.get(target.name) ?? [];
    list.push(o);
    claims.set(target.name, list);
  }

  const containerActions: ContainerAction[] = [];
  for (const want of wanted) {
    if (conflicts.has(want.name)) continue;
    const candidates = claims.get(want.name) ?? [];
    const keeper = candidates
      .filter((o) => o.name === want.name)
      .sort((a, b) => keeperRank(a, want) - keeperRank(b, want) || byNameThenId(a, b))[0];
    for (const o of candidates) {
      if (o === keeper) continue;
      removals.push({
        type: 'remove',
        id: o.id,
        name: o.name,
        reason: o.name === want.name ? `duplicate of ${want.name}` : `superseded by ${want.name} (same service)`,
      });
    }
    if (!keeper) {
      containerActions.push({ type: 'create', container: want });
    } else if (keeper.specHash !== want.specHash) {
      containerActions.push({
        type: 'recreate',
        container: want,
        id: keeper.id,
        reason: `spec changed (hash ${keeper.specHash || 'none'} → ${want.specHash})`,
      });
    } else if (UNSTARTABLE_STATES.has(keeper.state)) {
      containerActions.push({ type: 'recreate', container: want, id: keeper.id, reason: `container is ${keeper.state}` });
    } else if (!RUNNING_STATES.has(keeper.state)) {
      containerActions.push({ type: 'start', container: want, id: keeper.id });
    }
  }

  const actions: ContainerAction[] = [...[...conflicts.values()].sort(byConflictName), ...removals.sort(byNameThenId)];
  const creating = containerActions.filter((a) => a.type === 'create' || a.type === 'recreate');
  if (creating.length > 0) {
    actions.push({ type: 'ensure-network' });
    for (const image of imagesForCreation(creating)) {
      if (opts.imagePresent(image) === false) actions.push({ type: 'pull-image', image });
    }
    for (const volume of [...(desired?.volumes ?? [])].sort(byNameThenId)) {
      actions.push({ type: 'create-volume', volume });
    }
  }
  actions.push(...containerActions);
  return actions;
}

/**
 * The images of the containers an action list creates or recreates, sorted and without
 * duplicates: the only ones a caller needs to look up before planning with `imagePresent`.
 */
export function imagesForCreation(actions: ContainerAction[]): string[] {
  const images = new Set<string>();
  for (const a of actions) {
    if ((a.type === 'create' || a.type === 'recreate') && a.container.create.Image) images.add(a.container.create.Image);
  }
  return [...images].sort();
}

/**
 * The desired containers ordered so that each comes after the containers it depends on; ties
 * keep the input order. A dependency on a name the service does not render is ignored, and a
 * cycle (rejected earlier, when the compose file is checked) falls back to the input order.
 */
export function dependencyOrder(containers: DesiredContainer[]): DesiredContainer[] {
  const names = new Set(containers.map((c) => c.name));
  const done = new Set<string>();
  const ordered: DesiredContainer[] = [];
  let progressed = true;
  while (ordered.length < containers.length && progressed) {
    progressed = false;
    for (const c of containers) {
      if (done.has(c.name)) continue;
      if (c.dependsOn.every((d) => !names.has(d) || done.has(d) || d === c.name)) {
        ordered.push(c);
        done.add(c.name);
        progressed = true;
        break;
      }
    }
  }
  for (const c of containers) if (!done.has(c.name)) ordered.push(c);
  return ordered;
}

function labelsOf(c: DesiredContainer): Record<string, string> {
  return c.create.Labels ?? {};
}

/** Lower is better: the right hash first, then one that runs. */
function keeperRank(o: ObservedContainer, want: DesiredContainer): number {
  return (o.specHash === want.specHash ? 0 : 2) + (RUNNING_STATES.has(o.state) ? 0 : 1);
}

function conflictMessage(o: ObservedContainer, owner: string | undefined, cell: string | undefined): string {
  const labels: Record<string, string> = {};
  if (o.owner !== '') labels[LABEL.owner] = o.owner;
  if (o.cell !== '') labels[LABEL.cell] = o.cell;
  return nameConflictMessage(o.name, { id: o.id, labels }, owner, cell);
}

/**
 * Why `owner` cannot create a container called `name`: who holds the name (its owner label, or
 * no pic labels), the holder's id, and what to do. Pure; the plan's conflicts and the create that
 * meets a name taken meanwhile both say it this way.
 */
export function nameConflictMessage(name: string, holder: NameHolder, owner: string | undefined, cell: string | undefined): string {
  const rename = owner?.startsWith(`${CORE_KIND}/`)
    ? `or give pic's container another name in the Cell (spec.${owner.slice(CORE_KIND.length + 1)}.run.container)`
    : "or change container_name in the service's template";
  return (
    `container name "${name}" is held by ${describeHolder(holder.labels, cell ?? '')} (id ${holder.id.slice(0, 12)}), so ${owner ?? 'this service'} cannot create it; ` +
    `remove or rename that container (docker rm -f ${name}), ${rename}`
  );
}

function byNameThenId(a: { name: string; id?: string }, b: { name: string; id?: string }): number {
  return compareText(a.name, b.name) || compareText(a.id ?? '', b.id ?? '');
}

function byConflictName(a: ContainerAction, b: ContainerAction): number {
  return compareText(a.type === 'conflict' ? a.name : '', b.type === 'conflict' ? b.name : '');
}
