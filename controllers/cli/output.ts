/**
 * Machine-readable output the way kubectl writes it: `-o json` and `-o yaml` (a list is
 * `{apiVersion: v1, kind: List, items: [...]}`), `-o name` (`Kind/name`, one a line) and
 * `-o jsonpath=TEMPLATE` (kubectl's template syntax: `{.items[*].name}`, `{range .items[*]}…{end}`,
 * `{"\n"}`), evaluated by jsonpath-plus. Pure; every result is safe for a terminal (safe-text).
 */
import { JSONPath } from 'jsonpath-plus';
import { Document, visit } from 'yaml';
import { hasUnsafe, safeLine, toSafeJson, unicodeEscaped } from '../safe-text.js';
import { UsageError } from './usage.js';

export type Output =
  | { format: 'table' | 'wide' }
  | { format: 'json' | 'yaml' | 'name' }
  | { format: 'jsonpath'; template: string };

/** `-o VALUE` as typed; `allowed` limits it to the formats a command offers. */
export function parseOutput(value: string | undefined, allowed: readonly string[], command: string): Output {
  const v = value ?? 'table';
  if (v.startsWith('jsonpath=') && allowed.includes('jsonpath')) {
    const template = v.slice('jsonpath='.length);
    if (template === '') throw new UsageError(`${command}: -o jsonpath= needs a template, e.g. -o jsonpath='{.items[*].name}'`);
    compileTemplate(template); // a template that cannot parse is a usage error before anything is read
    return { format: 'jsonpath', template };
  }
  if (allowed.includes(v) && v !== 'jsonpath') return { format: v as 'table' | 'wide' | 'json' | 'yaml' | 'name' };
  const shown = allowed.map((a) => (a === 'jsonpath' ? 'jsonpath=TEMPLATE' : a)).join(', ');
  throw new UsageError(`${command}: -o must be one of ${shown}, not "${safeLine(v)}"`);
}

/** A list as kubectl prints one. */
export function listObject(items: readonly unknown[]): { apiVersion: 'v1'; kind: 'List'; items: unknown[] } {
  return { apiVersion: 'v1', kind: 'List', items: [...items] };
}

export function toJsonText(value: unknown): string {
  return toSafeJson(value, 2);
}

/** An ISO-8601 date or date-time: a YAML 1.1 reader would take it for a timestamp unless quoted. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}([Tt ].*)?$/;

/**
 * YAML with every timestamp-like string and every string holding an unsafe character in double
 * quotes, and those characters written as `\uXXXX` escapes (which mean the same inside double
 * quotes), so the text parses back to the same value and never carries a raw control character.
 */
export function toYamlText(value: unknown): string {
  const doc = new Document(value);
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && (TIMESTAMP.test(node.value) || hasUnsafe(node.value))) node.type = 'QUOTE_DOUBLE';
    },
  });
  const text = doc.toString({ lineWidth: 0 }).trimEnd();
  // Only double-quoted scalars can still hold such characters; replace any the library kept raw.
  return unicodeEscaped(text);
}

type Token = { text: string } | { expr: string } | { range: string; body: Token[] };

/** kubectl's template: literal text with `{expression}` parts, `{range EXPR}` … `{end}` loops. */
function compileTemplate(template: string): Token[] {
  const root: Token[] = [];
  const stack: Token[][] = [root];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{', i);
    if (open < 0) {
      stack[stack.length - 1]!.push({ text: template.slice(i) });
      break;
    }
    if (open > i) stack[stack.length - 1]!.push({ text: template.slice(i, open) });
    const close = closingBrace(template, open);
    if (close < 0) throw new UsageError(`-o jsonpath: unclosed "{" at character ${open + 1} of ${JSON.stringify(safeLine(template))}`);
    const inner = template.slice(open + 1, close).trim();
    if (inner.startsWith('range ')) {
      const body: Token[] = [];
      stack[stack.length - 1]!.push({ range: inner.slice('range '.length).trim(), body });
      stack.push(body);
    } else if (inner === 'end') {
      if (stack.length === 1) throw new UsageError('-o jsonpath: {end} without {range …}');
      stack.pop();
    } else if (/^".*"$/s.test(inner) || /^'.*'$/s.test(inner)) {
      stack[stack.length - 1]!.push({ text: unquote(inner.slice(1, -1)) });
    } else {
      if (inner === '') throw new UsageError('-o jsonpath: empty {} in the template');
      stack[stack.length - 1]!.push({ expr: inner });
    }
    i = close + 1;
  }
  if (stack.length > 1) throw new UsageError('-o jsonpath: {range …} without {end}');
  return root;
}

function closingBrace(text: string, open: number): number {
  let quote: string | undefined;
  for (let i = open + 1; i < text.length; i++) {
    const ch = text[i];
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = undefined;
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '}') return i;
  }
  return -1;
}

function unquote(text: string): string {
  return text.replace(/\\(.)/g, (_m, c: string) => ({ n: '\n', t: '\t', r: '\r' })[c] ?? c);
}

/** `.items[*].name` → `$.items[*].name`; `@` and `$` paths as they are. */
function jsonPathOf(expr: string): string {
  if (expr.startsWith('$') || expr.startsWith('@')) return expr.replace(/^@/, '$');
  if (expr.startsWith('.') || expr.startsWith('[')) return `$${expr}`;
  return `$.${expr}`;
}

function evaluate(expr: string, json: unknown): unknown[] {
  try {
    // 'safe': filters such as ?(@.phase=="Ready") run in jsonpath-plus's own evaluator, never as JavaScript.
    return JSONPath<unknown[]>({ path: jsonPathOf(expr), json: json as object, wrap: true, eval: 'safe' });
  } catch (err) {
    throw new UsageError(`-o jsonpath: cannot evaluate {${safeLine(expr)}}: ${safeLine((err as Error).message)}`);
  }
}

function scalarText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined) return '';
  return JSON.stringify(value) ?? '';
}

/** The template applied to `value`. Newlines and tabs the template itself writes are kept; values are made safe. */
export function renderJsonPath(template: string, value: unknown): string {
  // Values are escaped one by one, so a template's own "\n" stays a newline.
  const render = (ts: Token[], json: unknown): string => {
    let out = '';
    for (const t of ts) {
      if ('text' in t) out += t.text;
      else if ('expr' in t) out += evaluate(t.expr, json).map((v) => safeLine(scalarText(v))).join(' ');
      else for (const item of evaluate(t.range, json)) out += render(t.body, item);
    }
    return out;
  };
  return render(compileTemplate(template), value);
}

/** `-o name`: `Kind/name`, one a line. */
export function renderNames(items: readonly { kind: string; name: string }[]): string {
  return items.map((i) => safeLine(`${i.kind}/${i.name}`)).join('\n');
}
