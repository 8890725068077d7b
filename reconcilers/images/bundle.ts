/**
 * The sigstore bundle (v0.3, cosign v3's default): an OCI artifact whose one layer is a bundle
 * JSON holding a DSSE envelope over an in-toto statement, whose subject names the image digest.
 * Checked offline against the cell's keys with @sigstore/verify. Pure.
 *
 * The bundle's key hint is only a hint: every trusted key is tried, whatever it says. A keyed
 * signature needs no transparency-log entry; one that is present is recorded but not checked
 * (that needs Rekor's key, which an offline cell does not have), so it is set aside before the
 * signature check instead of failing it.
 */
import { bundleFromJSON, isBundleWithDsseEnvelope, type Bundle } from '@sigstore/bundle';
import { verify } from 'node:crypto';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import type { TrustedKey } from './keys.js';
import type { SignatureCheck } from './verdict.js';

export const BUNDLE_V03_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const IN_TOTO_STATEMENT_TYPES = ['https://in-toto.io/Statement/v1', 'https://in-toto.io/Statement/v0.1'];
/** The predicate cosign v3 writes for a plain image signature. */
export const COSIGN_SIGN_PREDICATE = 'https://sigstore.dev/cosign/sign/v1';

/** Is this a bundle media type (also the `version=` spellings of older clients)? */
export function isBundleMediaType(mediaType: string | undefined): boolean {
  return typeof mediaType === 'string' && /^application\/vnd\.dev\.sigstore\.bundle(\.v0\.3)?\+json(;\s*version=0\.3)?$/.test(mediaType);
}

const OFFLINE_ROOT = {
  mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
  tlogs: [],
  certificateAuthorities: [],
  ctlogs: [],
  timestampAuthorities: [],
};

/** A verifier that answers every key hint with `key`: trust comes from the cell's list, not the hint. */
function verifierFor(key: TrustedKey): Verifier {
  const trust = toTrustMaterial(OFFLINE_ROOT, () => ({ publicKey: key.key, validFor: () => true }));
  return new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
}

export function checkBundle(bytes: Buffer, keys: readonly TrustedKey[], digest: string): SignatureCheck {
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(JSON.parse(bytes.toString('utf8')));
  } catch (err) {
    return { ok: false, reason: 'Malformed', message: `not a sigstore bundle: ${(err as Error).message}` };
  }
  if (!isBundleWithDsseEnvelope(bundle)) return { ok: false, reason: 'Malformed', message: 'the bundle holds no DSSE envelope (cosign signs images with one)' };
  if (bundle.verificationMaterial.content.$case !== 'publicKey') {
    return { ok: false, reason: 'UnknownKey', message: `the bundle is signed with a ${bundle.verificationMaterial.content.$case}, not a key; this cell trusts public keys only` };
  }
  const transparencyLog = bundle.verificationMaterial.tlogEntries.length > 0;
  const offline: Bundle = { ...bundle, verificationMaterial: { ...bundle.verificationMaterial, tlogEntries: [], timestampVerificationData: undefined } };
  let entity;
  try {
    entity = toSignedEntity(offline);
  } catch (err) {
    return { ok: false, reason: 'Malformed', message: `the bundle cannot be read: ${(err as Error).message}` };
  }
  const key = keys.find((k) => {
    try {
      verifierFor(k).verify(entity);
      return true;
    } catch {
      return false;
    }
  });
  if (!key) return { ok: false, reason: 'UnknownKey', message: 'the bundle\'s signature verifies with none of the trusted keys (signed by another key, or the statement was changed after signing)' };
  const envelope = bundle.content.dsseEnvelope;
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) return { ok: false, reason: 'Malformed', message: `the envelope's payload type is ${JSON.stringify(envelope.payloadType)}, not ${IN_TOTO_PAYLOAD_TYPE}` };
  let statement: { _type?: unknown; subject?: unknown };
  try {
    statement = JSON.parse(envelope.payload.toString('utf8')) as typeof statement;
  } catch {
    return { ok: false, reason: 'Malformed', message: 'the signed statement is not JSON' };
  }
  if (!IN_TOTO_STATEMENT_TYPES.includes(String(statement?._type))) return { ok: false, reason: 'Malformed', message: `the signed statement's _type is ${JSON.stringify(statement?._type)}, not an in-toto statement` };
  const subjects = Array.isArray(statement.subject) ? (statement.subject as { digest?: { sha256?: unknown } }[]) : [];
  const hex = digest.slice('sha256:'.length);
  if (!subjects.some((s) => s?.digest?.sha256 === hex)) {
    const named = subjects.map((s) => s?.digest?.sha256).filter((d): d is string => typeof d === 'string').map((d) => `sha256:${d}`);
    return { ok: false, reason: 'DigestMismatch', message: `a valid signature by ${key.file}, but over ${named.join(', ') || 'no digest'}, not ${digest} (a signature copied from another image)` };
  }
  return { ok: true, keyId: key.id, keyFile: key.file, transparencyLog };
}

/** A file signed with a cell key (a store's index): by which key, or why not. */
export type BlobCheck = { ok: true; keyId: string; keyFile: string } | { ok: false; message: string };

/**
 * `cosign sign-blob --key` output (base64 of an ASN.1 DER ECDSA signature over the file's
 * SHA-256), checked against every trusted key. Pure.
 */
export function checkBlobSignature(signatureText: Buffer, artifact: Buffer, keys: readonly TrustedKey[]): BlobCheck {
  const text = signatureText.toString('utf8').trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return { ok: false, message: 'is not a base64 signature (cosign sign-blob --key writes one)' };
  const signature = Buffer.from(text, 'base64');
  const key = keys.find((k) => {
    try {
      return verify('sha256', artifact, k.key, signature);
    } catch {
      return false;
    }
  });
  return key ? { ok: true, keyId: key.id, keyFile: key.file } : { ok: false, message: 'verifies with none of the trusted keys (signed by another key, or the index was changed after signing)' };
}

/** `cosign sign-blob --bundle` (a sigstore bundle with a message signature), checked offline against every trusted key. Pure. */
export function checkBlobBundle(bytes: Buffer, artifact: Buffer, keys: readonly TrustedKey[]): BlobCheck {
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(JSON.parse(bytes.toString('utf8')));
  } catch (err) {
    return { ok: false, message: `is not a sigstore bundle: ${(err as Error).message}` };
  }
  if (bundle.content.$case !== 'messageSignature') return { ok: false, message: 'holds no message signature (cosign sign-blob --bundle writes one)' };
  if (bundle.verificationMaterial.content.$case !== 'publicKey') return { ok: false, message: `is signed with a ${bundle.verificationMaterial.content.$case}, not a key; this cell trusts public keys only` };
  const offline: Bundle = { ...bundle, verificationMaterial: { ...bundle.verificationMaterial, tlogEntries: [], timestampVerificationData: undefined } };
  let entity;
  try {
    entity = toSignedEntity(offline, artifact);
  } catch (err) {
    return { ok: false, message: `cannot be read: ${(err as Error).message}` };
  }
  const key = keys.find((k) => {
    try {
      verifierFor(k).verify(entity);
      return true;
    } catch {
      return false;
    }
  });
  return key ? { ok: true, keyId: key.id, keyFile: key.file } : { ok: false, message: 'verifies with none of the trusted keys (signed by another key, or the index was changed after signing)' };
}
