/**
 * Canonical JSON: equal values always give equal text, whatever their key order. The one
 * definition; the spec hash (reconcilers/containers/spec-hash.ts) and the document generation
 * (state/generation.ts) both use it. Pure.
 */
import { configure } from 'safe-stable-stringify';

const stableStringify = configure({ deterministic: true, circularValue: TypeError, bigint: false });

/**
 * JSON with object keys sorted at every level (by UTF-16 code unit), `undefined` members left out
 * and `undefined` array items written as null: the text JSON.stringify gives for sorted keys.
 */
export function canonicalJson(value: unknown): string {
  return stableStringify(value) ?? 'null';
}
