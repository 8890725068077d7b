/** The status facts of the image gate, and the line `pic describe` shows. Pure. */
import type { ImageVerificationMode } from '../../crds/types.js';
import { parseImageReference } from '../../crds/image-reference.js';
import type { Verdict } from './verdict.js';

export interface ImageFact {
  reference: string;
  digest?: string;
  verified: boolean | 'skipped';
  key?: string;
  keyId?: string;
  format?: string;
  transparencyLog?: boolean;
  reason?: string;
}

/** The status facts of the gate: a line people read (`pic describe`) and the detail for -o json. */
export interface VerificationFacts {
  verification: string;
  signatures: ImageFact[];
  /** Per container, for `pic describe`'s Images table. */
  images: { container: string; reference: string; verified: boolean | 'skipped' }[];
}

/** `enforce: <ref> verified with <key file> (key <id>, <format>)`, one clause per image. Pure. */
export function describeVerification(mode: ImageVerificationMode, images: readonly ImageFact[]): string {
  if (mode === 'off') return 'off: signatures not checked';
  if (images.length === 0) return `${mode}: no images`;
  const clause = (i: ImageFact): string => {
    const name = i.digest ? `${i.reference.slice(0, i.reference.indexOf('@'))}@${i.digest.slice(0, 19)}…` : i.reference;
    if (i.verified === true) return `${name} verified with ${i.key} (key ${i.keyId}, ${i.format}${i.transparencyLog ? ', transparency-log entry present, not checked' : ''})`;
    if (i.verified === 'skipped') return `${name} not verified (${i.reason === 'NoKey' ? 'no public key configured' : 'skipped'})`;
    return `${name} NOT verified: ${i.reason}`;
  };
  return `${mode}: ${images.map(clause).join('; ')}`;
}

export function factsOf(mode: ImageVerificationMode, images: ImageFact[], containers: readonly { container: string; image: string }[]): VerificationFacts {
  const byReference = new Map(images.map((i) => [i.reference, i.verified]));
  return {
    verification: describeVerification(mode, images),
    signatures: images,
    images: containers.map((c) => ({ container: c.container, reference: c.image, verified: byReference.get(c.image) ?? 'skipped' })),
  };
}

export function digestOf(reference: string): { digest?: string } {
  const digest = parseImageReference(reference)?.digest;
  return digest ? { digest } : {};
}

export function factOf(verdict: Verdict): ImageFact {
  if (verdict.ok) return { reference: verdict.reference, digest: verdict.digest, verified: true, key: verdict.keyFile, keyId: verdict.keyId.slice(0, 16), format: verdict.format, transparencyLog: verdict.transparencyLog };
  return { reference: verdict.reference, ...(verdict.digest ? { digest: verdict.digest } : {}), verified: false, reason: verdict.reason };
}

