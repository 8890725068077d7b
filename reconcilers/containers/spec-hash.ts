/**
 * Canonical JSON and the spec hash: equal values always give equal text, whatever their key
 * order, so a container is recreated only when what pic would create differs. Pure.
 */
import { createHash } from 'node:crypto';
import type Dockerode from 'dockerode';
import { configure } from 'safe-stable-stringify';
import { LABEL } from './labels.js';

const stableStringify = configure({ deterministic: true, circularValue: TypeError, bigint: false });

const SPEC_HASH_LENGTH = 16;

/**
 * JSON with object keys sorted at every level (by UTF-16 code unit), `undefined` members left out
 * and `undefined` array items written as null: the text JSON.stringify gives for sorted keys.
 */
export function canonicalJson(value: unknown): string {
  return stableStringify(value) ?? 'null';
}

/** The spec hash of create options: everything pic would create, minus the hash label itself. */
export function specHashOf(create: Dockerode.ContainerCreateOptions): string {
  const labels = { ...(create.Labels ?? {}) };
  delete labels[LABEL.specHash];
  const hashed = { ...create, Labels: labels };
  return createHash('sha256').update(canonicalJson(hashed)).digest('hex').slice(0, SPEC_HASH_LENGTH);
}
