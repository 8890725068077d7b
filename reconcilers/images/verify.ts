/**
 * The signature check of one image: find every signature cosign may have left for its digest
 * (the legacy `.sig` tag; bundles through the referrers API or, where a registry has none, the
 * referrers tag schema's `sha256-<hex>` index) and accept the image when one verifies with a
 * trusted key over exactly this digest and repository. The registry is the only I/O, through
 * the client passed in.
 */
import { parseImageReference, SHA256_DIGEST_RE, type ImageReference } from '../../crds/image-reference.js';
import { BUNDLE_V03_MEDIA_TYPE, checkBundle, isBundleMediaType } from './bundle.js';
import type { TrustedKey } from './keys.js';
import { checkLegacySignature, legacySignatureTag, signatureLayers } from './legacy.js';
import { endpointFor, type RegistryEndpoint, type RegistrySettings } from './reference.js';
import { descriptorsOf, RegistryProtocolError, RegistryUnreachableError, type Descriptor, type RegistryClient } from './registry.js';
import { mostTelling, type Refused, type SignatureCheck, type SignatureFormat, type Verdict } from './verdict.js';

export interface VerifyImageOptions {
  keys: readonly TrustedKey[];
  settings: RegistrySettings;
  /** The client for an endpoint (one per registry host, so tokens are reused). */
  clientFor: (endpoint: RegistryEndpoint) => RegistryClient;
}

/** The tag the referrers tag schema keeps the referrers of `digest` under. */
export function referrersTag(digest: string): string {
  return digest.replace(':', '-');
}

export async function verifyImage(reference: string, options: VerifyImageOptions): Promise<Verdict> {
  const image = parseImageReference(reference);
  if (!image) return { ok: false, reference, reason: 'Malformed', message: `"${reference}" is not an image reference` };
  if (!image.digest || !SHA256_DIGEST_RE.test(image.digest)) return { ok: false, reference, reason: 'NotPinned', message: `${reference} is not pinned by digest (name@sha256:<64 hex>); a tag can be moved after review, so only a digest can be verified` };
  const pinned = image as ImageReference & { digest: string };
  if (options.keys.length === 0) return { ok: false, reference, digest: pinned.digest, reason: 'UnknownKey', message: 'the Cell trusts no public key (spec.imageVerification.publicKey or publicKeys)' };
  const client = options.clientFor(endpointFor(pinned, options.settings));
  const refuse = (r: Omit<Refused, 'ok' | 'reference' | 'digest'>): Refused => ({ ok: false, reference, digest: pinned.digest, ...r });
  try {
    let worst: Refused | undefined;
    const consider = (check: SignatureCheck, format: SignatureFormat): Verdict | undefined => {
      if (check.ok) return { ok: true, reference, digest: pinned.digest, keyId: check.keyId, keyFile: check.keyFile, format, transparencyLog: check.transparencyLog };
      worst = mostTelling(worst, refuse({ reason: check.reason, message: `${reference}: ${check.message}` }));
      return undefined;
    };

    const legacy = await client.manifest(pinned.repository, legacySignatureTag(pinned.digest));
    for (const layer of legacy ? signatureLayers(legacy.manifest) : []) {
      const payload = await client.blob(pinned.repository, layer.digest);
      const verdict = payload
        ? consider(checkLegacySignature(layer, payload, options.keys, pinned, options.settings), 'cosign-legacy')
        : consider({ ok: false, reason: 'Malformed', message: `the signature payload ${layer.digest} is missing from the registry` }, 'cosign-legacy');
      if (verdict) return verdict;
    }
    if (legacy && signatureLayers(legacy.manifest).length === 0) {
      worst = mostTelling(worst, refuse({ reason: 'Malformed', message: `${reference}: the tag ${legacySignatureTag(pinned.digest)} holds no simple-signing layer` }));
    }

    let format: SignatureFormat = 'sigstore-bundle-referrers';
    let referrers = await client.referrers(pinned.repository, pinned.digest, BUNDLE_V03_MEDIA_TYPE);
    if (referrers === undefined) {
      format = 'sigstore-bundle-tag-index';
      const index = await client.manifest(pinned.repository, referrersTag(pinned.digest));
      referrers = index ? descriptorsOf(index.manifest) : [];
    }
    for (const descriptor of referrers) {
      const verdict = await checkReferrer(client, pinned, descriptor, options.keys, (check) => consider(check, format));
      if (verdict) return verdict;
    }
    return worst ?? refuse({ reason: 'Unsigned', message: `${reference}: no cosign signature found in ${client.endpoint.host} (neither the ${legacySignatureTag(pinned.digest)} tag nor a sigstore bundle referring to the digest)` });
  } catch (err) {
    if (err instanceof RegistryUnreachableError) return refuse({ reason: 'RegistryUnreachable', message: `${reference}: ${err.message}` });
    if (err instanceof RegistryProtocolError) return refuse({ reason: 'Malformed', message: `${reference}: ${err.message}` });
    throw err;
  }
}

/**
 * One entry of a referrers list. An entry without `artifactType` (written by clients before
 * OCI 1.1 was final) is read to learn what it is; one that says it is something else is skipped.
 */
async function checkReferrer(client: RegistryClient, image: ImageReference & { digest: string }, descriptor: Descriptor, keys: readonly TrustedKey[], consider: (check: SignatureCheck) => Verdict | undefined): Promise<Verdict | undefined> {
  if (descriptor.artifactType !== undefined && !isBundleMediaType(descriptor.artifactType)) return undefined;
  const artifact = await client.manifest(image.repository, descriptor.digest);
  if (!artifact) return consider({ ok: false, reason: 'Malformed', message: `the referrer ${descriptor.digest} is listed but missing from the registry` });
  const type = artifact.manifest.artifactType ?? artifact.manifest.config?.mediaType;
  if (!isBundleMediaType(type)) return undefined;
  if (artifact.manifest.subject?.digest !== image.digest) {
    return consider({ ok: false, reason: 'DigestMismatch', message: `the bundle artifact ${descriptor.digest} is listed for ${image.digest} but refers to ${artifact.manifest.subject?.digest ?? 'nothing'}` });
  }
  const layers = (artifact.manifest.layers ?? []).filter((l) => isBundleMediaType(l?.mediaType));
  if (layers.length === 0) return consider({ ok: false, reason: 'Malformed', message: `the bundle artifact ${descriptor.digest} has no bundle layer` });
  for (const layer of layers) {
    const bytes = await client.blob(image.repository, layer.digest);
    const verdict = consider(bytes ? checkBundle(bytes, keys, image.digest) : { ok: false, reason: 'Malformed', message: `the bundle ${layer.digest} is missing from the registry` });
    if (verdict) return verdict;
  }
  return undefined;
}
