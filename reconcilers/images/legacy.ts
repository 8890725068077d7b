/**
 * cosign's first signature format: the tag `sha256-<hex>.sig` in the image's repository holds a
 * manifest whose layers are simple-signing payloads
 * (`application/vnd.dev.cosign.simplesigning.v1+json`), each with its base64 signature in the
 * `dev.cosignproject.cosign/signature` annotation. The signature is over the payload's bytes
 * (ECDSA P-256 with SHA-256 for cosign's own keys). Pure: the caller fetched the blobs.
 */
import { verify as verifySignature } from 'node:crypto';
import type { ImageReference } from '../../crds/image-reference.js';
import { namesSameRepository, type RegistrySettings } from './reference.js';
import type { TrustedKey } from './keys.js';
import type { Descriptor, Manifest } from './registry.js';
import type { SignatureCheck } from './verdict.js';

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
/** A Rekor entry cosign attaches to a legacy signature when it uploaded one. */
export const REKOR_BUNDLE_ANNOTATION = 'dev.sigstore.cosign/bundle';
export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';

/** The tag cosign keeps the legacy signatures of `digest` under. */
export function legacySignatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/** The payload layers of a `.sig` manifest (other layers are not signatures and are ignored). */
export function signatureLayers(manifest: Manifest): Descriptor[] {
  return (Array.isArray(manifest.layers) ? manifest.layers : []).filter((l) => l && l.mediaType === SIMPLE_SIGNING && typeof l.digest === 'string');
}

/** Check one payload layer against the keys and the pinned image. */
export function checkLegacySignature(layer: Descriptor, payload: Buffer, keys: readonly TrustedKey[], image: ImageReference & { digest: string }, settings: RegistrySettings): SignatureCheck {
  const encoded = layer.annotations?.[SIGNATURE_ANNOTATION];
  if (typeof encoded !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded.trim())) {
    return { ok: false, reason: 'Malformed', message: `signature layer ${layer.digest} has no base64 ${SIGNATURE_ANNOTATION} annotation` };
  }
  const signature = Buffer.from(encoded.trim(), 'base64');
  const key = keys.find((k) => verifiesWith(k, payload, signature));
  if (!key) return { ok: false, reason: 'UnknownKey', message: `the signature in layer ${layer.digest} verifies with none of the trusted keys (signed by another key, or the payload was changed after signing)` };
  let claims: unknown;
  try {
    claims = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, reason: 'Malformed', message: `the signed payload ${layer.digest} is not JSON` };
  }
  const critical = (claims as { critical?: { type?: unknown; image?: { 'docker-manifest-digest'?: unknown }; identity?: { 'docker-reference'?: unknown } } })?.critical;
  if (!critical || typeof critical !== 'object') return { ok: false, reason: 'Malformed', message: `the signed payload ${layer.digest} has no "critical" section` };
  if (critical.type !== COSIGN_SIGNATURE_TYPE) return { ok: false, reason: 'Malformed', message: `the signed payload's critical.type is ${JSON.stringify(critical.type)}, not "${COSIGN_SIGNATURE_TYPE}"` };
  const signedDigest = critical.image?.['docker-manifest-digest'];
  if (signedDigest !== image.digest) {
    return { ok: false, reason: 'DigestMismatch', message: `a valid signature by ${key.file}, but over ${typeof signedDigest === 'string' ? signedDigest : 'no digest'}, not ${image.digest} (a signature copied from another image)` };
  }
  const reference = critical.identity?.['docker-reference'];
  if (typeof reference !== 'string' || !namesSameRepository(reference, image, settings)) {
    return { ok: false, reason: 'DigestMismatch', message: `a valid signature by ${key.file} over ${image.digest}, but for the repository ${JSON.stringify(reference)}, not ${image.registry}/${image.repository}` };
  }
  return { ok: true, keyId: key.id, keyFile: key.file, transparencyLog: typeof layer.annotations?.[REKOR_BUNDLE_ANNOTATION] === 'string' };
}

function verifiesWith(key: TrustedKey, payload: Buffer, signature: Buffer): boolean {
  const type = key.key.asymmetricKeyType;
  try {
    return verifySignature(type === 'ed25519' || type === 'ed448' ? null : 'sha256', payload, key.key, signature);
  } catch {
    return false; // a signature that is not even DER for this key type verifies nothing
  }
}
