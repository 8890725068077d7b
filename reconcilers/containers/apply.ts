/**
 * Carry out the actions `planContainers` chose, one Docker API call sequence each, in order.
 *
 * The caller's `labels` (at least `ngo.pic.cell`) go on everything created here: containers,
 * volumes and the network. Volumes are never removed, not even with their container (`v: false`).
 */
import type Dockerode from 'dockerode';
import { TerminalError } from '../errors.js';
import { parsePinnedReference } from '../../crds/image-reference.js';
import { imageForCreate, resolveImage } from './image.js';
import { ensureNetwork } from './network.js';
import { LABEL } from './labels.js';
import { nameConflictMessage } from './plan.js';
import { describeHolder } from '../shared/owned-container.js';
import { stopContainerBounded, stopTimeoutOf } from '../shared/stop.js';
import {
  dockerMessage,
  dockerStatusCode,
  type ContainerChange,
  type DesiredContainer,
  type DesiredVolume,
} from './types.js';

export interface ApplyEvent {
  reason: string;
  message: string;
  type?: 'Normal' | 'Warning';
}

export interface ApplyContext {
  network: { name: string; subnet: string; ipRange?: string };
  /** Added to every container, volume and network created; must hold the cell label. */
  labels: Record<string, string>;
  log: (event: ApplyEvent) => void;
  /** Called before each container start (after its create): work that can overlap the start. */
  beforeStart?: () => void | Promise<void>;
}

/**
 * Runs the actions in the given order and stops at the first failure (the next pass plans again
 * from what Docker then shows). Conflicts are not actions Docker can carry out: the rest is
 * applied, then one TerminalError names every conflicting container.
 */
export async function applyContainerActions(
  docker: Dockerode,
  actions: readonly ContainerChange[],
  ctx: ApplyContext,
): Promise<void> {
  const conflicts: string[] = [];
  for (const action of actions) {
    switch (action.type) {
      case 'conflict':
        conflicts.push(action.message);
        break;
      case 'ensure-network': {
        // The network is the cell's, shared by every service: it carries no owner.
        const { [LABEL.owner]: _owner, ...networkLabels } = ctx.labels;
        const { created } = await ensureNetwork(docker, { ...ctx.network, labels: networkLabels });
        if (created) ctx.log({ reason: 'NetworkCreated', message: `created network ${ctx.network.name} (${ctx.network.subnet})` });
        break;
      }
      case 'create-volume':
        await ensureVolume(docker, action.volume, ctx);
        break;
      case 'create': {
        const id = await createAndStart(docker, action.container, ctx);
        ctx.log({ reason: 'Created', message: `created and started container ${action.container.name} (${shortId(id)})` });
        break;
      }
      case 'recreate': {
        await stopAndRemove(docker, action.id, action.container.name);
        const id = await createAndStart(docker, action.container, ctx);
        ctx.log({
          reason: 'Recreated',
          message: `recreated container ${action.container.name} (${shortId(action.id)} → ${shortId(id)}): ${action.reason}`,
        });
        break;
      }
      case 'start':
        await ctx.beforeStart?.();
        await startContainer(docker, action.id, action.container.name);
        ctx.log({ reason: 'Started', message: `started container ${action.container.name} (${shortId(action.id)})` });
        break;
      case 'remove':
        await stopAndRemove(docker, action.id, action.name);
        ctx.log({ reason: 'Removed', message: `removed container ${action.name} (${shortId(action.id)}): ${action.reason}; volumes kept` });
        break;
    }
  }
  if (conflicts.length > 0) throw new TerminalError(conflicts.join('\n'), 'ContainerNameConflict');
}

/**
 * Creates the volume unless it exists. An existing volume is used only when pic made it for this
 * owner in this cell (its own, kept across an uninstall); any other, labelled or not, is refused:
 * pic never mounts data it did not create for this service.
 */
async function ensureVolume(docker: Dockerode, volume: DesiredVolume, ctx: ApplyContext): Promise<void> {
  const labels = { ...volume.labels, ...ctx.labels };
  const existing = await inspectVolume(docker, volume.name);
  if (existing) {
    const refusal = volumeRefusal(volume.name, existing.Labels ?? {}, labels);
    if (refusal !== undefined) throw new TerminalError(refusal, 'VolumeConflict');
    return;
  }
  try {
    await docker.createVolume({ Name: volume.name, Labels: labels });
  } catch (err) {
    throw new Error(`cannot create volume ${volume.name}: ${dockerMessage(err)}`, { cause: err });
  }
  ctx.log({ reason: 'VolumeCreated', message: `created volume ${volume.name}` });
}

/** Why an existing volume is not the one pic would create with `wanted` labels, or undefined when it is. Pure. */
export function volumeRefusal(name: string, have: Readonly<Record<string, string>>, wanted: Readonly<Record<string, string>>): string | undefined {
  const owner = wanted[LABEL.owner];
  const cell = wanted[LABEL.cell];
  if (owner !== undefined && cell !== undefined && have[LABEL.owner] === owner && have[LABEL.cell] === cell) return undefined;
  return (
    `volume "${name}" already exists, held by ${describeHolder(have, cell ?? '', 'volume')}, and pic did not create it for ${owner ?? 'this service'}: ` +
    `pic never mounts data it did not create. Look at what it holds (docker volume inspect ${name}); once it is moved away, pic creates ` +
    `the volume afresh (docker volume rm ${name})`
  );
}

async function inspectVolume(docker: Dockerode, name: string): Promise<Dockerode.VolumeInspectInfo | undefined> {
  try {
    return await docker.getVolume(name).inspect();
  } catch (err) {
    if (dockerStatusCode(err) === 404) return undefined;
    throw new Error(`cannot inspect volume ${name}: ${dockerMessage(err)}`, { cause: err });
  }
}

/** Returns the new container's id. */
async function createAndStart(docker: Dockerode, container: DesiredContainer, ctx: ApplyContext): Promise<string> {
  const labels = { ...(container.create.Labels ?? {}), ...ctx.labels };
  const options: Dockerode.ContainerCreateOptions = {
    ...container.create,
    name: container.name,
    Labels: labels,
    Image: await imageToCreate(docker, container.create.Image),
  };
  let created: Dockerode.Container;
  try {
    created = await docker.createContainer(options);
  } catch (err) {
    if (dockerStatusCode(err) !== 409) throw containerError('create', container.name, err);
    // The name is taken: a leftover of ours (a crashed run, a race with another pass) is removed
    // and the create tried once more; anything else is not ours to touch.
    await removeLeftoverOrFail(docker, container.name, labels, ctx);
    try {
      created = await docker.createContainer(options);
    } catch (retryErr) {
      throw containerError('create', container.name, retryErr);
    }
  }
  await ctx.beforeStart?.();
  await startContainer(docker, created.id, container.name);
  return created.id;
}

async function removeLeftoverOrFail(
  docker: Dockerode,
  name: string,
  labels: Record<string, string>,
  ctx: ApplyContext,
): Promise<void> {
  let info: Dockerode.ContainerInspectInfo;
  try {
    info = await docker.getContainer(name).inspect();
  } catch (err) {
    if (dockerStatusCode(err) === 404) return; // gone in the meantime: the retry will tell
    throw containerError('inspect', name, err);
  }
  const have = info.Config?.Labels ?? {};
  const ours =
    have[LABEL.owner] !== undefined && have[LABEL.owner] === labels[LABEL.owner] && have[LABEL.cell] === labels[LABEL.cell];
  if (!ours) throw new TerminalError(nameConflictMessage(name, { id: info.Id, labels: have }, labels[LABEL.owner], labels[LABEL.cell]), 'ContainerNameConflict');
  ctx.log({ type: 'Warning', reason: 'LeftoverRemoved', message: `removing leftover container ${name} (${shortId(info.Id)}) that holds the name` });
  await stopAndRemove(docker, info.Id, name, { stopTimeout: stopTimeoutOf(info) });
}

/** A pinned reference whose digest is a local image's Id is created from that Id. */
async function imageToCreate(docker: Dockerode, image: string | undefined): Promise<string | undefined> {
  if (image === undefined || !parsePinnedReference(image)) return image;
  return imageForCreate(image, await resolveImage(docker, image));
}

async function startContainer(docker: Dockerode, id: string, name: string): Promise<void> {
  const container = docker.getContainer(id);
  try {
    await container.start();
  } catch (err) {
    if (dockerStatusCode(err) === 304) return; // already running
    if (/paused/i.test(dockerMessage(err))) {
      try {
        await container.unpause();
        return;
      } catch (unpauseErr) {
        throw containerError('unpause', name, unpauseErr);
      }
    }
    throw containerError('start', name, err);
  }
}

/**
 * Stops with the container's own stop timeout, bounded (shared/stop.ts), then removes it, keeping
 * its volumes. `known` is its StopTimeout when already inspected.
 */
async function stopAndRemove(docker: Dockerode, id: string, name: string, known?: { stopTimeout: number | undefined }): Promise<void> {
  const container = docker.getContainer(id);
  try {
    await stopContainerBounded(docker, id, known);
  } catch (err) {
    const code = dockerStatusCode(err);
    if (code === 404) return;
    if (code !== 304) throw containerError('stop', name, err);
  }
  try {
    await container.remove({ v: false, force: true });
  } catch (err) {
    if (dockerStatusCode(err) === 404) return;
    throw containerError('remove', name, err);
  }
}

function containerError(verb: string, name: string, err: unknown): Error {
  const wrapped = new Error(`cannot ${verb} container ${name}: ${dockerMessage(err)}`, { cause: err });
  const code = dockerStatusCode(err);
  if (code !== undefined) (wrapped as Error & { statusCode?: number }).statusCode = code;
  return wrapped;
}

function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
