/**
 * Pull a verified image by its digest (from the mirror when the Cell names one), with progress,
 * and check that what Docker now holds is what was verified: the local image's RepoDigests must
 * contain the pulled name at that digest. An adapter over the Docker API.
 */
import type Dockerode from 'dockerode';
import { parseImageReference } from '../../crds/image-reference.js';
import { dockerMessage, dockerStatusCode } from '../containers/types.js';
import { pullImageStream, type DockerStreamEvent } from '../shared/docker-stream.js';
import type { CredentialLookup } from './credentials.js';

export interface PullReport {
  layers: number;
  bytes: number;
}

export interface PullCallbacks {
  /** One line per change of a layer's state ("Downloading", "Pull complete"...), with byte counts. */
  progress: (line: string) => void;
  /** After each such change: layers done (complete or already present), layers seen, bytes to fetch. */
  summary?: (report: { done: number; layers: number; bytes: number }) => void;
}

const DONE = new Set(['Pull complete', 'Already exists']);

/** The local image's Id when Docker holds `name@digest` by that very digest; undefined otherwise. */
export async function localImageByDigest(docker: Dockerode, pullRef: string): Promise<string | undefined> {
  try {
    const info = await docker.getImage(pullRef).inspect();
    return (info.RepoDigests ?? []).includes(pullRef) ? info.Id : undefined;
  } catch (err) {
    const code = dockerStatusCode(err);
    if (code === 404 || code === 400) return undefined;
    throw new Error(`cannot inspect image ${pullRef}: ${dockerMessage(err)}`, { cause: err });
  }
}

export async function pullByDigest(docker: Dockerode, pullRef: string, callbacks: PullCallbacks, credentials?: CredentialLookup): Promise<PullReport> {
  const host = parseImageReference(pullRef)?.registry ?? '';
  const credential = credentials ? await credentials(host) : undefined;
  const auth = credential?.username !== undefined ? { authconfig: { username: credential.username, password: credential.password ?? '', serveraddress: host } } : {};
  const layers = new Map<string, { status: string; total: number }>();
  await pullImageStream(
    docker,
    pullRef,
    (event: DockerStreamEvent) => {
      // Layer events carry a short layer id; the lines about the pull itself carry the reference.
      if (!event.id || !event.status || !/^[0-9a-f]{12,64}$/.test(event.id)) return;
      const detail = event.progressDetail as { total?: number } | undefined;
      const layer = layers.get(event.id) ?? { status: '', total: 0 };
      if (typeof detail?.total === 'number' && detail.total > layer.total && event.status === 'Downloading') layer.total = detail.total;
      if (layer.status !== event.status) {
        layer.status = event.status;
        callbacks.progress(`${pullRef}: layer ${event.id}: ${event.status}${layer.total ? ` (${layer.total} bytes)` : ''}`);
        layers.set(event.id, layer);
        const all = [...layers.values()];
        callbacks.summary?.({ done: all.filter((l) => DONE.has(l.status)).length, layers: all.length, bytes: all.reduce((sum, l) => sum + l.total, 0) });
      }
      layers.set(event.id, layer);
    },
    auth,
  );
  const pulled = [...layers.values()].filter((l) => l.status !== 'Already exists');
  return { layers: layers.size, bytes: pulled.reduce((sum, l) => sum + l.total, 0) };
}
