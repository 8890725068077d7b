import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';

/** Hash of a document's spec: the generation a status (or a failed upgrade) speaks of. */
export function generationOf(spec: unknown): string {
  // A loaded document is never changed afterwards, and every pass asks again: remember it.
  const known = spec !== null && typeof spec === 'object' ? generations.get(spec) : undefined;
  if (known) return known;
  const generation = createHash('sha256').update(canonicalJson(spec ?? null)).digest('hex').slice(0, 12);
  if (spec !== null && typeof spec === 'object') generations.set(spec, generation);
  return generation;
}

const generations = new WeakMap<object, string>();
