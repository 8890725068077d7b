/** What a signature check of one image concludes. */

export const REFUSAL_REASONS = ['Unsigned', 'UnknownKey', 'DigestMismatch', 'Malformed', 'RegistryUnreachable', 'NotPinned'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

export type SignatureFormat = 'cosign-legacy' | 'sigstore-bundle-referrers' | 'sigstore-bundle-tag-index';

export interface Verified {
  ok: true;
  reference: string;
  digest: string;
  /** The id (sha256 of the public key's DER) of the key that verified it. */
  keyId: string;
  /** The key's file, for people. */
  keyFile: string;
  format: SignatureFormat;
  /** Whether the signature carried a transparency-log entry (recorded, not required for keyed signatures). */
  transparencyLog: boolean;
}

export interface Refused {
  ok: false;
  reference: string;
  digest?: string;
  reason: RefusalReason;
  message: string;
}

export type Verdict = Verified | Refused;

/**
 * When several signatures are found and none verifies, the most telling failure is reported:
 * one that verified but names another image says more than one nobody trusted.
 */
const SPECIFICITY: Record<RefusalReason, number> = { DigestMismatch: 5, Malformed: 4, UnknownKey: 3, Unsigned: 2, RegistryUnreachable: 1, NotPinned: 0 };

export function mostTelling(a: Refused | undefined, b: Refused): Refused {
  return !a || SPECIFICITY[b.reason] > SPECIFICITY[a.reason] ? b : a;
}

/** One signature's outcome, before it is tied to an image reference. */
export type SignatureCheck = { ok: true; keyId: string; keyFile: string; transparencyLog: boolean } | { ok: false; reason: Exclude<RefusalReason, 'NotPinned' | 'RegistryUnreachable' | 'Unsigned'>; message: string };
