/**
 * Where a cell fetches an image from, and which repository a signature must name. Pure. The
 * references themselves are parsed by crds/image-reference.ts:
 * `git.pic.ngo/roof/pic-notes@sha256:<hex>` names the registry `git.pic.ngo`, the repository
 * `roof/pic-notes` and the manifest digest. A Cell may map a registry to a mirror (an air-gapped
 * cell, the demo): pulls and signature look-ups then go to the mirror, under the same
 * repository path, while the signature must still name the original repository.
 */
import { DOCKER_HUB, parseImageReference, type ImageReference } from '../../crds/image-reference.js';
import { isLoopbackHost } from '../../crds/ipv4.js';

/** `registry/repository`, the name a signature's docker-reference is compared with. */
export function repositoryName(ref: Pick<ImageReference, 'registry' | 'repository'>): string {
  return `${ref.registry}/${ref.repository}`;
}

export interface RegistrySettings {
  /** Registry host → mirror host, e.g. `git.pic.ngo` → `127.0.0.1:5000`. */
  mirrors: Record<string, string>;
  /** Registries reached over plain HTTP besides loopback ones. */
  insecure: string[];
}

export const NO_REGISTRY_SETTINGS: RegistrySettings = { mirrors: {}, insecure: [] };

export interface RegistryEndpoint {
  /** The host the requests go to (the mirror when one is set). */
  host: string;
  /** `https://host` or, for loopback and listed insecure registries, `http://host`. */
  baseUrl: string;
  /** Whether `host` is a mirror of the reference's registry. */
  mirrored: boolean;
}

/** Where the manifests and signatures of `ref` are fetched from. */
export function endpointFor(ref: Pick<ImageReference, 'registry'>, settings: RegistrySettings): RegistryEndpoint {
  const mirror = settings.mirrors[ref.registry];
  const host = mirror ?? (ref.registry === DOCKER_HUB ? 'registry-1.docker.io' : ref.registry);
  // A loopback host cannot be overheard over plain HTTP (dockerd makes the same exception).
  const plain = isLoopbackHost(host) || settings.insecure.includes(host) || settings.insecure.includes(ref.registry);
  return { host, baseUrl: `${plain ? 'http' : 'https'}://${host}`, mirrored: mirror !== undefined };
}

/** The reference Docker pulls: the mirror's name for the image, pinned to the same digest. */
export function pullReference(ref: ImageReference, settings: RegistrySettings): string {
  const mirror = settings.mirrors[ref.registry];
  const registry = mirror ?? ref.registry;
  const at = ref.digest ? `@${ref.digest}` : ref.tag ? `:${ref.tag}` : '';
  return `${registry}/${ref.repository}${at}`;
}

/**
 * Whether a signature's `docker-reference` names the repository of `ref`: the same registry (or
 * a mirror the Cell maps it to) and the same path. cosign writes Docker Hub names as
 * `index.docker.io/...`; a tag or digest on it is ignored.
 */
export function namesSameRepository(dockerReference: string, ref: ImageReference, settings: RegistrySettings): boolean {
  const named = parseImageReference(dockerReference);
  if (!named) return false;
  const registryOf = (r: string) => (r === 'index.docker.io' || r === 'registry-1.docker.io' ? DOCKER_HUB : r);
  if (named.repository !== ref.repository) return false;
  const registry = registryOf(named.registry);
  return registry === registryOf(ref.registry) || settings.mirrors[ref.registry] === registry;
}
