/**
 * Image references, `[host[:port]/]path[:tag][@digest]`, after the grammar of the distribution
 * project: the one parser behind every use of an image reference (the manifest's `image`, each
 * rendered service's `image`, digest pinning, the allowed prefix, the registry and repository a
 * signature is looked up in, the helper image's tag). Pure.
 *
 * The allowed prefix is a folder: `git.pic.ngo/roof` and `git.pic.ngo/roof/` both mean "a
 * repository below git.pic.ngo/roof/", so neither `git.pic.ngo/roof:1.0` nor
 * `git.pic.ngo/roofx/a` is under it.
 */
import { quoted } from './problem-limit.js';

/**
 * A reference split by that grammar, with the Docker Hub defaults a registry client needs:
 * `busybox` is `docker.io/library/busybox`, `alice/tool` is `docker.io/alice/tool`.
 */
export interface ImageReference {
  /** The reference as written. */
  original: string;
  /** Registry host (if written) and repository path, without tag or digest. */
  name: string;
  /** `host[:port]` as written, or `docker.io` when the reference names no registry. */
  registry: string;
  /** The repository path inside the registry, e.g. `roof/pic-notes` (`library/x` on Docker Hub). */
  repository: string;
  tag?: string;
  /** `sha256:<64 hex>` or `sha512:<128 hex>` when pinned. */
  digest?: string;
}

/** Docker's default registry, as a reference without a registry host names it. */
export const DOCKER_HUB = 'docker.io';

// Docker's distribution reference grammar (github.com/distribution/reference, regexp.go):
//   reference := name [ ":" tag ] [ "@" digest ]
//   name      := [domain "/"] path-component ["/" path-component]*
//   domain    := (domain-name | "[" ipv6 "]") [":" port]
// The first component is a domain only when another follows and it has a ".", a ":", is
// "localhost" or has an uppercase letter (normalize.go, splitDockerDomain). A digest is sha256 or
// sha512 in lowercase hex of its exact length.
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST_LABEL = '(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])';
const REGISTRY_HOST_RE = new RegExp(`^(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*|\\[[A-Fa-f0-9:]+\\])(?::\\d{1,5})?$`);
const DIGEST_RE = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
export const SHA256_DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME_LENGTH = 255;
const MAX_REFERENCE_LENGTH = 1024;

export interface ReadReference {
  /** `[domain/]path`, when every part of it is sound. */
  name?: string;
  /** The registry host as written, when the name has one. */
  domain?: string;
  tag?: string;
  digest?: string;
  errors: string[];
}

/** Split and check a reference, keeping every part that is sound so callers can say more. */
export function readImageReference(ref: string): ReadReference {
  const out: ReadReference = { errors: [] };
  if (ref.length === 0) {
    out.errors.push('is empty');
    return out;
  }
  if (ref.length > MAX_REFERENCE_LENGTH) {
    out.errors.push(`is longer than ${MAX_REFERENCE_LENGTH} characters`);
    return out;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f]/.test(ref)) out.errors.push('must not contain whitespace or control characters');
  let rest = ref;
  const at = ref.indexOf('@');
  if (at >= 0) {
    const digest = ref.slice(at + 1);
    rest = ref.slice(0, at);
    if (DIGEST_RE.test(digest)) out.digest = digest;
    else out.errors.push(`has a malformed digest ${quoted(digest)}: a digest is sha256: followed by exactly 64 lowercase hex characters`);
  }
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    const tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (TAG_RE.test(tag)) out.tag = tag;
    else out.errors.push(`has an invalid tag ${quoted(tag)}: up to 128 letters, digits, "_", "." or "-", not starting with "." or "-"`);
  }
  const components = rest.split('/');
  const first = components[0] ?? '';
  const hasHost = components.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase());
  const nameErrors: string[] = [];
  if (hasHost && !REGISTRY_HOST_RE.test(first)) nameErrors.push(`has an invalid registry host ${quoted(first)}`);
  for (const component of hasHost ? components.slice(1) : components) {
    if (!PATH_COMPONENT_RE.test(component)) {
      nameErrors.push(
        component === ''
          ? 'has an empty path component (a doubled, leading or trailing "/")'
          : `has an invalid path component ${quoted(component)}: lowercase letters and digits, joined by ".", "_", "__" or "-"`,
      );
      break;
    }
  }
  if (rest.length > MAX_NAME_LENGTH) nameErrors.push(`has a name longer than ${MAX_NAME_LENGTH} characters`);
  if (nameErrors.length === 0) {
    out.name = rest;
    if (hasHost) out.domain = first;
  }
  out.errors.push(...nameErrors);
  return out;
}

/** Parse `[host[:port]/]path[:tag][@digest]`; undefined unless every part is well formed. */
export function parseImageReference(ref: string): ImageReference | undefined {
  if (typeof ref !== 'string') return undefined;
  const read = readImageReference(ref);
  if (read.errors.length > 0 || read.name === undefined) return undefined;
  const registry = read.domain ?? DOCKER_HUB;
  const path = read.domain === undefined ? read.name : read.name.slice(read.domain.length + 1);
  const repository = registry === DOCKER_HUB && !path.includes('/') ? `library/${path}` : path;
  return {
    original: ref,
    name: read.name,
    registry,
    repository,
    ...(read.tag !== undefined ? { tag: read.tag } : {}),
    ...(read.digest !== undefined ? { digest: read.digest } : {}),
  };
}

/** The prefix as a whole-segment path prefix: `git.pic.ngo/roof` and `git.pic.ngo/roof/` both mean the folder. */
export function allowedPrefixFolder(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

/** Whether an image name lies under the allowed prefix, with a repository name after it. */
export function isUnderImagePrefix(name: string, allowedPrefix: string): boolean {
  if (allowedPrefix === '') return false;
  const prefix = allowedPrefixFolder(allowedPrefix);
  return name.startsWith(prefix) && name.length > prefix.length;
}

/** Whether a whole reference (tag and digest allowed) parses and names a repository under the prefix. */
export function imageReferenceUnderPrefix(ref: string, allowedPrefix: string): boolean {
  const parsed = parseImageReference(ref);
  return parsed !== undefined && isUnderImagePrefix(parsed.name, allowedPrefix);
}

/** A reference pinned by a sha256 digest, split into the rest (a tag is kept) and the digest. */
export interface PinnedReference {
  /** The reference without its digest (a tag, if any, is kept). */
  name: string;
  /** `sha256:<64 hex>` */
  digest: string;
}

export function parsePinnedReference(ref: string): PinnedReference | undefined {
  const parsed = parseImageReference(ref);
  if (parsed?.digest === undefined || !SHA256_DIGEST_RE.test(parsed.digest)) return undefined;
  return { name: parsed.tag === undefined ? parsed.name : `${parsed.name}:${parsed.tag}`, digest: parsed.digest };
}
