/**
 * Images: is a reference present locally, pulling it with a readable progress, and which string
 * to hand to "create" for it.
 *
 * A reference pinned by digest (`name@sha256:<hex>`) is satisfied by an image whose RepoDigests
 * hold `name@sha256:<hex>` (pulled from a registry) or whose Id is `sha256:<hex>` (built or
 * loaded locally: such an image has no registry digest, its content address is its Id).
 */
import type Dockerode from 'dockerode';
import { parsePinnedReference } from '../../crds/image-reference.js';
import { pullImageStream, type DockerStreamEvent } from '../shared/docker-stream.js';
import { dockerMessage, dockerStatusCode } from './types.js';

export interface ResolvedImage {
  present: boolean;
  /** The local image Id (`sha256:...`) when present. */
  id?: string;
}

export async function resolveImage(docker: Dockerode, ref: string): Promise<ResolvedImage> {
  const pinned = parsePinnedReference(ref);
  const byReference = await inspectImage(docker, ref);
  if (byReference) return { present: true, id: byReference.Id };
  if (pinned) {
    const byId = await inspectImage(docker, pinned.digest);
    if (byId && byId.Id === pinned.digest) return { present: true, id: byId.Id };
  }
  return { present: false };
}

/** Each of `refs` looked up locally, one inspect (or two, for a pinned Id) per reference. */
export async function resolveImages(docker: Dockerode, refs: readonly string[]): Promise<Map<string, ResolvedImage>> {
  const out = new Map<string, ResolvedImage>();
  for (const ref of refs) out.set(ref, await resolveImage(docker, ref));
  return out;
}

/**
 * What to put in `Image` when creating a container from `ref`: the image Id when the reference
 * is pinned to a digest that is the Id of the local image (Docker cannot resolve
 * `name@<image id>`), the reference itself otherwise.
 */
export function imageForCreate(ref: string, resolved: ResolvedImage): string {
  const pinned = parsePinnedReference(ref);
  if (pinned && resolved.present && resolved.id === pinned.digest) return resolved.id;
  return ref;
}

/** One line of pull progress, emitted only when a layer (or the pull itself) changes state. */
export interface PullProgress {
  /** The layer id, or the tag for messages about the whole pull; absent for the final lines. */
  layer?: string;
  status: string;
  message: string;
}

/**
 * Docker reports a layer's download a hundred times ("Downloading" with a byte count); a log
 * wants to know when it starts, completes and is extracted.
 */
export class PullProgressSummary {
  private readonly lastStatus = new Map<string, string>();

  /** The line to log for this event, or undefined when it only repeats the layer's state. */
  feed(event: DockerStreamEvent): PullProgress | undefined {
    if (event.error !== undefined || event.errorDetail !== undefined || !event.status) return undefined;
    const key = event.id ?? '';
    if (this.lastStatus.get(key) === event.status) return undefined;
    this.lastStatus.set(key, event.status);
    const progress: PullProgress = { status: event.status, message: event.id ? `${event.id}: ${event.status}` : event.status };
    if (event.id !== undefined) progress.layer = event.id;
    return progress;
  }
}

/**
 * Pulls `ref`, calling `onProgress` with a ready-to-log line ("<ref>: <layer>: <status>") at most
 * once per state change of each layer; a failure inside the stream rejects (shared/docker-stream.ts).
 */
export async function pullImage(
  docker: Dockerode,
  ref: string,
  onProgress: (line: string, progress: PullProgress) => void = () => {},
): Promise<void> {
  const summary = new PullProgressSummary();
  await pullImageStream(docker, ref, (event) => {
    const line = summary.feed(event);
    if (line) onProgress(`${ref}: ${line.message}`, line);
  });
}

async function inspectImage(docker: Dockerode, ref: string): Promise<Dockerode.ImageInspectInfo | undefined> {
  try {
    return await docker.getImage(ref).inspect();
  } catch (err) {
    if (dockerStatusCode(err) === 404) return undefined;
    // A reference Docker cannot parse is not present under that name either.
    if (dockerStatusCode(err) === 400) return undefined;
    throw new Error(`cannot inspect image ${ref}: ${dockerMessage(err)}`, { cause: err });
  }
}
