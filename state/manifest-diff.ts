/**
 * What changes between two packages of a service (the admitted one and the catalog's newer one),
 * field by field, for `pic describe`: the manifest's fields (image, env, volumes, routes, backup...)
 * and the compose template's services (ports, healthcheck, command, environment...). Pure.
 */
import { cut } from '../crds/problem-limit.js';
import { isRecord } from '../crds/values.js';
import { canonicalJson } from './canonical-json.js';
import { parseYamlDocuments } from './yaml-documents.js';

export interface FieldChange {
  /** `+` added, `-` removed, `~` changed. */
  op: '+' | '-' | '~';
  /** Where: `image`, `env[LOG_LEVEL]`, `template services.web.healthcheck`... */
  field: string;
  before?: unknown;
  after?: unknown;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Arrays of objects that name themselves (env by key, volumes by name) are compared by that name. */
function keyOf(items: unknown[]): string | undefined {
  for (const k of ['key', 'name', 'container']) if (items.length > 0 && items.every((i) => isRecord(i) && typeof i[k] === 'string')) return k;
  return undefined;
}

function walk(before: unknown, after: unknown, field: string, out: FieldChange[]): void {
  if (canonicalJson(before) === canonicalJson(after)) return;
  if (before === undefined) return void out.push({ op: '+', field, after });
  if (after === undefined) return void out.push({ op: '-', field, before });
  if (isRecord(before) && isRecord(after)) {
    for (const k of [...new Set([...Object.keys(before), ...Object.keys(after)])].sort()) walk(before[k], after[k], field ? `${field}.${k}` : k, out);
    return;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const was: unknown[] = before;
    const now: unknown[] = after;
    const key = keyOf([...was, ...now]);
    if (key) {
      const byKey = (items: unknown[]) => new Map(items.map((i) => [String((i as Record<string, string>)[key]), i]));
      const b = byKey(was);
      const a = byKey(now);
      for (const k of [...new Set([...b.keys(), ...a.keys()])].sort()) walk(b.get(k), a.get(k), `${field}[${k}]`, out);
      return;
    }
  }
  out.push({ op: '~', field, before, after });
}

/** Field changes between two JSON values (manifests), in field order. */
export function diffFields(before: unknown, after: unknown, prefix = ''): FieldChange[] {
  const out: FieldChange[] = [];
  walk(before, after, prefix, out);
  return out;
}

/** The template as data for the diff; a template that does not read as YAML is compared as text. */
function templateValue(template: string): Json {
  const parsed = parseYamlDocuments(template, 'compose-template.yml');
  const first = parsed.documents[0]?.value;
  return parsed.problems.length === 0 && first !== undefined ? (first as Json) : { text: template };
}

/** Changes between two packages: the manifest's fields, then the template's (`template …`). */
export function diffPackages(
  before: { manifest: unknown; template: string },
  after: { manifest: unknown; template: string },
): FieldChange[] {
  const manifest = diffFields(before.manifest, after.manifest);
  const template = diffFields(templateValue(before.template), templateValue(after.template), 'template');
  return [...manifest, ...template];
}

function shown(v: unknown): string {
  return cut(typeof v === 'string' ? JSON.stringify(v) : canonicalJson(v), 160);
}

/** One readable line per change: `~ image: "a:1" → "a:2"`. */
export function changeLine(c: FieldChange): string {
  if (c.op === '+') return `+ ${c.field}: ${shown(c.after)}`;
  if (c.op === '-') return `- ${c.field}: ${shown(c.before)}`;
  return `~ ${c.field}: ${shown(c.before)} → ${shown(c.after)}`;
}
