/**
 * Render a store service's `compose-template.yml` into a Compose document.
 *
 * The template is parsed as YAML first and the variables are substituted inside each string
 * scalar afterwards (values and mapping keys alike). Substituting into the raw text instead would
 * let a config value holding a newline or `: ` rewrite the structure of the file.
 *
 * Pure: no I/O, no clock, no randomness. Every problem is collected, none stops the walk.
 */
import { pointerOf } from '../../crds/json-pointer.js';
import type { Problem } from '../../crds/types.js';
import { compareText, isRecord } from '../../crds/values.js';
import { readComposeTemplate, type ComposeTemplate } from '../../state/compose-template.js';
import type { ComposeFile } from './compose.js';

export interface RenderContext {
  domain: string;
  cellName: string;
  dataDir: string;
  serviceId: string;
  /** Merged config (defaults filled); keys as written in the manifest's config_schema. */
  config: Record<string, string | number | boolean>;
  /** Secret NAME (as written after `PIC_SECRET_`) → value. */
  secrets: Record<string, string>;
  serviceIp: string;
  /** Only instanceable connectivity services have one. */
  instanceId?: string;
}

export interface RenderResult {
  compose?: ComposeFile;
  problems: Problem[];
}

export { MAX_ALIAS_COUNT, MAX_TEMPLATE_BYTES } from '../../state/compose-template.js';

const FIXED_VARIABLES = ['PIC_DOMAIN', 'PIC_CELL_NAME', 'PIC_DATA_DIR', 'PIC_SERVICE_ID', 'SERVICE_IP', 'INSTANCE_ID'] as const;
const CFG_PREFIX = 'PIC_CFG_';
const SECRET_PREFIX = 'PIC_SECRET_';
const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A piece of a scalar after scanning it for `$` references. */
type Segment =
  | { kind: 'text'; text: string }
  | { kind: 'variable'; name: string; raw: string }
  | { kind: 'invalid'; raw: string; message: string };

/**
 * Split a string into literal text and variable references, with Compose's rules: `${NAME}` and
 * `$NAME` are references, `$$` is a literal `$` (so `$${X}` is the literal text `${X}`), and a `$`
 * followed by anything else is kept as it is.
 */
function scanScalar(text: string): Segment[] {
  const segments: Segment[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c !== '$') {
      literal += c;
      i += 1;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      literal += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const close = text.indexOf('}', i + 2);
      if (close < 0) {
        if (literal) segments.push({ kind: 'text', text: literal });
        literal = '';
        const raw = text.slice(i);
        segments.push({ kind: 'invalid', raw, message: `"${truncate(raw)}" opens a variable with "\${" but never closes it with "}" (write "$\${" for a literal "\${")` });
        break;
      }
      const inner = text.slice(i + 2, close);
      const raw = text.slice(i, close + 1);
      if (literal) segments.push({ kind: 'text', text: literal });
      literal = '';
      if (VARIABLE_NAME.test(inner)) {
        segments.push({ kind: 'variable', name: inner, raw });
      } else if (/^[A-Za-z_][A-Za-z0-9_]*[:?+-]/.test(inner)) {
        segments.push({ kind: 'invalid', raw, message: `"${truncate(raw)}": default and required-value modifiers (":-", "-", ":?", "?", ":+") are not supported by pic; every pic variable always has a value` });
      } else {
        segments.push({ kind: 'invalid', raw, message: `"${truncate(raw)}" is not a valid variable reference (write "$\${" for a literal "\${")` });
      }
      i = close + 1;
      continue;
    }
    if (next !== undefined && NAME_START.test(next)) {
      let end = i + 2;
      while (end < text.length && NAME_CHAR.test(text[end] as string)) end += 1;
      if (literal) segments.push({ kind: 'text', text: literal });
      literal = '';
      segments.push({ kind: 'variable', name: text.slice(i + 1, end), raw: text.slice(i, end) });
      i = end;
      continue;
    }
    literal += '$';
    i += 1;
  }
  if (literal) segments.push({ kind: 'text', text: literal });
  return segments;
}

function truncate(text: string, max = 60): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Resolve one variable name, or say why it cannot be resolved. */
function resolveVariable(name: string, ctx: RenderContext): { value: string } | { error: string } {
  switch (name) {
    case 'PIC_DOMAIN':
      return { value: ctx.domain };
    case 'PIC_CELL_NAME':
      return { value: ctx.cellName };
    case 'PIC_DATA_DIR':
      return { value: ctx.dataDir };
    case 'PIC_SERVICE_ID':
      return { value: ctx.serviceId };
    case 'SERVICE_IP':
      if (!ctx.serviceIp) return { error: '${SERVICE_IP} is used but no service IP has been allocated for this service' };
      return { value: ctx.serviceIp };
    case 'INSTANCE_ID':
      if (ctx.instanceId === undefined || ctx.instanceId === '') {
        return { error: '${INSTANCE_ID} is only set for instanceable connectivity services, and this install has no instance id' };
      }
      return { value: ctx.instanceId };
  }
  if (name.startsWith(CFG_PREFIX)) {
    const key = name.slice(CFG_PREFIX.length);
    const known = Object.keys(ctx.config).sort(compareText);
    const match = known.find((k) => k.toUpperCase() === key.toUpperCase());
    if (key === '' || match === undefined) {
      const hint = known.length ? `; config keys: ${known.map((k) => `${CFG_PREFIX}${k.toUpperCase()}`).join(', ')}` : '; the manifest declares no config_schema';
      return { error: `\${${name}} refers to config key "${key.toLowerCase()}", which is not in the service's config_schema${hint}` };
    }
    return { value: String(ctx.config[match]) };
  }
  if (name.startsWith(SECRET_PREFIX)) {
    const secret = name.slice(SECRET_PREFIX.length);
    if (secret === '') return { error: `\${${name}} names no secret: write \${PIC_SECRET_<NAME>}` };
    if (!Object.prototype.hasOwnProperty.call(ctx.secrets, secret)) {
      return { error: `\${${name}}: secret "${secret}" has not been generated: ensure the names templateSecretNames() returns in the secrets store before rendering` };
    }
    return { value: ctx.secrets[secret] as string };
  }
  if (name.startsWith('PIC_')) {
    return {
      error: `\${${name}} is not a pic variable; known: ${FIXED_VARIABLES.map((v) => `\${${v}}`).join(' ')} \${PIC_CFG_<KEY>} \${PIC_SECRET_<NAME>}`,
    };
  }
  return {
    error: `\${${name}} is not a pic variable: Compose would read it from the host environment, and a service template must not depend on the host; use a pic variable, or write "$\${${name}}" for a literal "\${${name}}"`,
  };
}

function substitute(text: string, ctx: RenderContext, file: string, pointer: string, problems: Problem[]): string {
  if (!text.includes('$')) return text;
  let out = '';
  for (const segment of scanScalar(text)) {
    if (segment.kind === 'text') {
      out += segment.text;
    } else if (segment.kind === 'invalid') {
      problems.push({ file, pointer, message: segment.message });
      out += segment.raw;
    } else {
      const resolved = resolveVariable(segment.name, ctx);
      if ('error' in resolved) {
        problems.push({ file, pointer, message: resolved.error });
        out += segment.raw;
      } else {
        out += resolved.value;
      }
    }
  }
  return out;
}

/** Set an own property, even one named `__proto__`, without touching the prototype. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

function renderValue(value: unknown, ctx: RenderContext, file: string, pointer: string, problems: Problem[]): unknown {
  if (typeof value === 'string') return substitute(value, ctx, file, pointer, problems);
  if (Array.isArray(value)) return value.map((item, index) => renderValue(item, ctx, file, `${pointer}/${index}`, problems));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      const entryPointer = `${pointer}${pointerOf(key)}`;
      const renderedKey = substitute(key, ctx, file, entryPointer, problems);
      if (Object.prototype.hasOwnProperty.call(out, renderedKey)) {
        problems.push({ file, pointer: entryPointer, message: `key renders to "${renderedKey}", which another key of the same mapping already renders to` });
        continue;
      }
      setOwn(out, renderedKey, renderValue(item, ctx, file, entryPointer, problems));
    }
    return out;
  }
  return value;
}

/**
 * Names of the secrets the template uses (`${PIC_SECRET_<NAME>}`), sorted and unique, so the caller
 * can have them generated before rendering. Escaped references (`$${PIC_SECRET_X}`) and comments do
 * not count; a template that could not be read yields none (rendering reports why). A walk of the
 * template as the package's reader read it (CatalogService.composeTemplate): nothing is parsed here.
 */
export function templateSecretNames(template: ComposeTemplate): string[] {
  if (template.problems.length) return [];
  const names = new Set<string>();
  const visit = (node: unknown): void => {
    if (typeof node === 'string') {
      collectSecretNames(node, names);
    } else if (Array.isArray(node)) {
      node.forEach(visit);
    } else if (isRecord(node)) {
      for (const [key, item] of Object.entries(node)) {
        collectSecretNames(key, names);
        visit(item);
      }
    }
  };
  visit(template.value);
  return [...names].sort(compareText);
}

function collectSecretNames(text: string, names: Set<string>): void {
  if (!text.includes('$')) return;
  for (const segment of scanScalar(text)) {
    if (segment.kind === 'variable' && segment.name.startsWith(SECRET_PREFIX) && segment.name.length > SECRET_PREFIX.length) {
      names.add(segment.name.slice(SECRET_PREFIX.length));
    }
  }
}

/**
 * Render `template` (a compose-template.yml as readComposeTemplate read it) with `ctx`. Returns the
 * rendered document when there is no problem at all; otherwise every problem found, each naming
 * `file` and the JSON pointer of the scalar it concerns.
 */
export function renderComposeTemplate(template: ComposeTemplate, ctx: RenderContext, file: string): RenderResult {
  if (template.problems.length) return { problems: template.problems };
  if (!isRecord(template.value)) {
    return { problems: [{ file, pointer: '', message: 'the compose template must be a mapping with a "services" key' }] };
  }
  const problems: Problem[] = [];
  const rendered = renderValue(template.value, ctx, file, '', problems) as ComposeFile;
  if (problems.length) return { problems };
  return { compose: rendered, problems };
}

/** Read and render the text of a template in one step (a template no package holds: tests, previews). */
export function renderComposeText(template: string, ctx: RenderContext, file: string): RenderResult {
  return renderComposeTemplate(readComposeTemplate(template, file), ctx, file);
}
