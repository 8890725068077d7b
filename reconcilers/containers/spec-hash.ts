/**
 * Canonical JSON and the spec hash: equal values always give equal text, whatever their key
 * order, so a container is recreated only when what pic would create differs. Pure.
 */
import { createHash } from 'node:crypto';
import type Dockerode from 'dockerode';
import { canonicalJson } from '../../state/canonical-json.js';
import { LABEL } from './labels.js';

export { canonicalJson };

const SPEC_HASH_LENGTH = 16;

/** The spec hash of create options: everything pic would create, minus the hash label itself. */
export function specHashOf(create: Dockerode.ContainerCreateOptions): string {
  const labels = { ...(create.Labels ?? {}) };
  delete labels[LABEL.specHash];
  const hashed = { ...create, Labels: labels };
  return createHash('sha256').update(canonicalJson(hashed)).digest('hex').slice(0, SPEC_HASH_LENGTH);
}
