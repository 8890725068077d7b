/**
 * ajv, configured once for all of pic's schemas, and the translation of its errors into Problems
 * that read like advice to an author rather than a dump of the validator's state.
 */
import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import * as checkValidators from './generated/check-validators.js';
import * as defaultValidators from './generated/default-validators.js';
import { pointerOf } from './json-pointer.js';
import { PATTERN_HINTS, type JsonSchema } from './schemas.js';
import { boundProblems, cut, MAX_PROBLEMS_PER_FILE, moreProblems, quoted } from './problem-limit.js';
import type { Problem } from './types.js';
import { AJV_OPTIONS, CHECKED_SCHEMAS, DEFAULTED_SCHEMAS, schemaFingerprint } from './validator-schemas.js';

type GeneratedModule = { readonly SCHEMA_FINGERPRINT: string } & Readonly<Record<string, unknown>>;

/**
 * The precompiled validators of a generated module, by schema object; none when the module was
 * generated from other schemas than today's (schemas.ts edited, `make crds` not yet run), so
 * pic then compiles at run time: slower, never stale.
 */
export function precompiledValidators(generated: GeneratedModule, schemas: Readonly<Record<string, JsonSchema>>, useDefaults: boolean): Map<JsonSchema, ValidateFunction> {
  const out = new Map<JsonSchema, ValidateFunction>();
  if (generated.SCHEMA_FINGERPRINT !== schemaFingerprint(schemas, useDefaults)) return out;
  for (const [name, schema] of Object.entries(schemas)) {
    const fn = generated[name];
    if (typeof fn === 'function') out.set(schema, fn as ValidateFunction);
  }
  return out;
}

function newAjv(useDefaults: boolean): Ajv {
  // ajv's compiler is loaded only for a schema without a current precompiled validator.
  const { Ajv: AjvClass } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  return new AjvClass({ ...AJV_OPTIONS, useDefaults });
}

let checking: Ajv | undefined;
let defaulting: Ajv | undefined;
let compiled: Map<JsonSchema, ValidateFunction> | undefined;
let compiledWithDefaults: Map<JsonSchema, ValidateFunction> | undefined;

/** The validator of a schema: precompiled (crds/generated/) when current, else compiled on first use and kept. */
export function compiledSchema(schema: JsonSchema): ValidateFunction {
  compiled ??= precompiledValidators(checkValidators, CHECKED_SCHEMAS, false);
  let fn = compiled.get(schema);
  if (!fn) {
    checking ??= newAjv(false);
    fn = checking.compile(schema);
    compiled.set(schema, fn);
  }
  return fn;
}

/** Like compiledSchema, but the validator writes each `default` into the data it checks. */
export function compiledSchemaWithDefaults(schema: JsonSchema): ValidateFunction {
  compiledWithDefaults ??= precompiledValidators(defaultValidators, DEFAULTED_SCHEMAS, true);
  let fn = compiledWithDefaults.get(schema);
  if (!fn) {
    defaulting ??= newAjv(true);
    fn = defaulting.compile(schema);
    compiledWithDefaults.set(schema, fn);
  }
  return fn;
}

function quote(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function typeWords(type: unknown): string {
  const names = (Array.isArray(type) ? type : [type]).map((t) => (t === 'null' ? 'null' : article(t === 'object' ? 'mapping (object)' : t === 'array' ? 'list (array)' : String(t))));
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}` : (names[0] ?? 'a value');
}

/** Edit distance counting a swap of two neighbouring letters as one edit (the commonest typo). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest known name to a misspelt one, when it is close enough to be a likely typo. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  if (name.length > 64) return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

function patternWords(pattern: string): string {
  const hint = PATTERN_HINTS[pattern];
  return hint ? `must be ${hint}` : `must match the pattern ${pattern}`;
}

export interface ErrorContext {
  /** A better message for a missing field, if the caller knows why it is required. */
  describeRequired?: (error: ErrorObject, missing: string) => string | undefined;
}

/** One ajv error as a pointer (relative to the validated value) and a message; undefined to drop it. */
function translate(error: ErrorObject, context: ErrorContext): { pointer: string; message: string } | undefined {
  const at = error.instancePath;
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required': {
      const missing = String(params.missingProperty);
      const message = context.describeRequired?.(error, missing) ?? 'is required';
      return { pointer: at + pointerOf(missing), message };
    }
    case 'additionalProperties': {
      const extra = String(params.additionalProperty);
      const parent = error.parentSchema;
      const known = Object.keys((parent?.properties as Record<string, unknown> | undefined) ?? {});
      const guess = closestName(extra, known);
      const message = `is not a known field${guess ? ` (did you mean ${quoted(guess)}?)` : ''}; allowed here: ${known.join(', ')}`;
      return { pointer: at + pointerOf(cut(extra)), message };
    }
    case 'propertyNames': {
      const name = String(params.propertyName);
      const names = error.parentSchema?.propertyNames as JsonSchema | undefined;
      const pattern = typeof names?.pattern === 'string' ? names.pattern : '';
      return { pointer: at + pointerOf(cut(name)), message: `the key ${quoted(name)} is not valid: it ${patternWords(pattern)}` };
    }
    case 'type':
      return { pointer: at, message: `must be ${typeWords(params.type)}` };
    case 'const':
      return { pointer: at, message: `must be ${quote(params.allowedValue)}` };
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(quote);
      return { pointer: at, message: allowed.length === 1 ? `must be ${allowed[0]}` : `must be one of ${allowed.join(', ')}` };
    }
    case 'pattern':
      return { pointer: at, message: patternWords(String(params.pattern)) };
    case 'minLength':
      return { pointer: at, message: params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters long` };
    case 'maxLength':
      return { pointer: at, message: `must be at most ${String(params.limit)} characters long` };
    case 'minimum':
      return { pointer: at, message: `must be at least ${String(params.limit)}` };
    case 'maximum':
      return { pointer: at, message: `must be at most ${String(params.limit)}` };
    case 'minItems':
      return { pointer: at, message: params.limit === 1 ? 'must list at least one entry' : `must list at least ${String(params.limit)} entries` };
    case 'maxItems':
      return { pointer: at, message: `must list at most ${String(params.limit)} entries` };
    case 'uniqueItems': {
      const [first, second] = [Number(params.i), Number(params.j)].sort((a, b) => a - b);
      return { pointer: `${at}/${String(second)}`, message: `repeats entry ${String(first)}; each entry may appear once` };
    }
    case 'if':
      return undefined;
    default:
      return { pointer: at, message: error.message ?? `fails the ${error.keyword} rule` };
  }
}

/**
 * Problems from the errors of one validation. An error inside `propertyNames` is reported once,
 * through its propertyNames error; where a value has the wrong type, nothing else is said of it.
 */
export function schemaProblems(errors: readonly ErrorObject[] | null | undefined, file: string, pointerPrefix: string, context: ErrorContext = {}): Problem[] {
  if (!errors) return [];
  const relevant = errors.filter((e) => !(e as ErrorObject & { propertyName?: string }).propertyName);
  const wrongType = new Set(relevant.filter((e) => e.keyword === 'type').map((e) => e.instancePath));
  const seen = new Set<string>();
  const problems: Problem[] = [];
  // Past the bound, errors are only counted (by what would make their message), not translated:
  // a file of 200,000 unknown fields must not cost 200,000 spelling suggestions.
  const counted = new Set<string>();
  for (const error of relevant) {
    if (error.keyword !== 'type' && wrongType.has(error.instancePath)) continue;
    if (problems.length >= MAX_PROBLEMS_PER_FILE) {
      if (error.keyword !== 'if') counted.add(`${error.instancePath}\u0000${error.keyword}\u0000${JSON.stringify(error.params)}`);
      continue;
    }
    const t = translate(error, context);
    if (!t) continue;
    const key = `${t.pointer}\u0000${t.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push({ file, pointer: pointerPrefix + t.pointer, message: t.message });
  }
  if (counted.size > 0) problems.push(moreProblems(file, counted.size));
  return boundProblems(problems, file);
}
