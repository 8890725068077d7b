/**
 * Image references as a registry sees them, and where a cell fetches each one from. Pure.
 *
 * `git.pic.ngo/roof/pic-notes@sha256:<hex>` names the registry `git.pic.ngo`, the repository
 * `roof/pic-notes` and the manifest digest. A Cell may map a registry to a mirror (an air-gapped
 * cell, the demo): pulls and signature look-ups then go to the mirror, under the same
 * repository path, while the signature must still name the original repository.
 */
import { parsePinnedReference } from '../../crds/image-reference.js';

export interface ImageReference {
  /** What the catalog wrote. */
  original: string;
  /** `host[:port]`, Docker's default registry spelled `docker.io`. */
  registry: string;
  /** The repository path inside the registry, e.g. `roof/pic-notes`. */
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>` when pinned. */
  digest?: string;
}

export const DOCKER_HUB = 'docker.io';

/** Split a reference into registry, repository, tag and digest; undefined when it is not one. */
export function parseImageReference(ref: string): ImageReference | undefined {
  const pinned = parsePinnedReference(ref);
  let rest = pinned ? pinned.name : ref;
  if (!pinned && ref.includes('@')) return undefined;
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!/^[\w][\w.-]{0,127}$/.test(tag)) return undefined;
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  const hasRegistry = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  const registry = hasRegistry ? first : DOCKER_HUB;
  let repository = hasRegistry ? rest.slice(slash + 1) : rest;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repository)) return undefined;
  if (!/^[a-zA-Z0-9.-]+(?::\d{1,5})?$/.test(registry)) return undefined;
  return { original: ref, registry, repository, ...(tag !== undefined ? { tag } : {}), ...(pinned ? { digest: pinned.digest } : {}) };
}

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

/** A loopback host, where plain HTTP cannot be overheard (dockerd makes the same exception). */
export function isLoopbackHost(host: string): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return name === 'localhost' || name === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

/** Where the manifests and signatures of `ref` are fetched from. */
export function endpointFor(ref: Pick<ImageReference, 'registry'>, settings: RegistrySettings): RegistryEndpoint {
  const mirror = settings.mirrors[ref.registry];
  const host = mirror ?? (ref.registry === DOCKER_HUB ? 'registry-1.docker.io' : ref.registry);
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
