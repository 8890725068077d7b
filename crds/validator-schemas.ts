/**
 * The schemas pic validates against, by name, and the one ajv configuration for them. The
 * generator (crds/render-validators.ts) compiles these ahead of time into crds/generated/, so a
 * run of pic loads plain functions instead of starting ajv's compiler; crds/schema-problems.ts
 * uses them only while their fingerprint still matches these schemas.
 */
import { createHash } from 'node:crypto';
import { DOCUMENT_ENVELOPE_SCHEMA, DOCUMENT_SCHEMAS, MANIFEST_SCHEMA, type JsonSchema } from './schemas.js';

/** ajv options of every validator: all errors at once, with the schema beside each (`verbose`). */
export const AJV_OPTIONS = { allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true, verbose: true } as const;

/** Schemas that check a value; the names are the exports of crds/generated/check-validators.ts. */
export const CHECKED_SCHEMAS: Readonly<Record<string, JsonSchema>> = {
  manifest: MANIFEST_SCHEMA,
  envelope: DOCUMENT_ENVELOPE_SCHEMA,
  ...DOCUMENT_SCHEMAS,
};

/** Schemas whose validator also fills in defaults (ajv useDefaults): crds/generated/default-validators.ts. */
export const DEFAULTED_SCHEMAS: Readonly<Record<string, JsonSchema>> = { ...DOCUMENT_SCHEMAS };

/**
 * What a set of precompiled validators was compiled from: the schemas and the options. A
 * generated module whose fingerprint differs is stale and is not used.
 */
export function schemaFingerprint(schemas: Readonly<Record<string, JsonSchema>>, useDefaults: boolean): string {
  return createHash('sha256')
    .update(JSON.stringify({ options: { ...AJV_OPTIONS, useDefaults }, schemas }))
    .digest('hex');
}
