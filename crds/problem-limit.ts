/**
 * Bounds on what one file can make a validator say and how much of the file a message may quote:
 * a hostile file of 200,000 bad entries yields a few hundred problems and one count, and a value
 * quoted back is cut short, so no consumer (a terminal, a status file, an event) is flooded.
 */
import type { Problem } from './types.js';

/** Problems kept per file; the rest are counted in one last problem. */
export const MAX_PROBLEMS_PER_FILE = 300;
/** Characters of a value quoted in a message; longer values are cut with an ellipsis. */
export const MAX_QUOTED_LENGTH = 80;
/** Characters of a whole message; a message built from many values is cut here. */
export const MAX_MESSAGE_LENGTH = 600;
/** Nesting of lists and mappings no document or manifest needs; deeper input is refused before it is walked. */
export const MAX_NESTING_DEPTH = 64;

/** A value cut to `max` characters, with "…" marking the cut. */
export function cut(text: string, max = MAX_QUOTED_LENGTH): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** A value for a message: JSON-quoted and cut, so neither its length nor its quotes can run on. */
export function quoted(value: unknown, max = MAX_QUOTED_LENGTH): string {
  if (typeof value === 'string') return JSON.stringify(cut(value, max));
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return cut(text, max);
}

/**
 * The first `max` problems of a file, each message cut to a sane length, then one problem counting
 * the rest. Problems of other files in the list keep their place; the count names `file`.
 */
export function boundProblems(problems: Problem[], file: string, max = MAX_PROBLEMS_PER_FILE): Problem[] {
  const long = problems.some((p) => p.message.length > MAX_MESSAGE_LENGTH || p.pointer.length > MAX_MESSAGE_LENGTH);
  if (problems.length <= max && !long) return problems;
  // A list bounded before (a schema's problems inside a document's) keeps one count, summed.
  let more = 0;
  const real: Problem[] = [];
  for (const p of problems) {
    const earlier = p.file === file && p.pointer === '' ? MORE_RE.exec(p.message) : null;
    if (earlier) more += Number(earlier[1]);
    else real.push(p);
  }
  const kept = real.slice(0, max).map((p) =>
    p.message.length > MAX_MESSAGE_LENGTH || p.pointer.length > MAX_MESSAGE_LENGTH ? { ...p, pointer: cut(p.pointer, MAX_MESSAGE_LENGTH), message: cut(p.message, MAX_MESSAGE_LENGTH) } : p,
  );
  more += real.length - kept.length;
  if (more > 0) kept.push(moreProblems(file, more));
  return kept;
}

/** The one problem that stands for `count` problems of a file left out of a report. */
export function moreProblems(file: string, count: number): Problem {
  return { file, pointer: '', message: `${count} more problem${count === 1 ? '' : 's'} not shown; fix the ones above and validate again` };
}

const MORE_RE = /^(\d+) more problems? not shown; /;

/**
 * How deeply a parsed value nests, counted without recursion and stopping once past `limit`; a
 * value seen again (a YAML alias) is walked again only when reached deeper.
 */
export function nestingDepthExceeds(value: unknown, limit = MAX_NESTING_DEPTH): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  const seenAt = new Map<unknown, number>();
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop()!;
    if (typeof v !== 'object' || v === null || (seenAt.get(v) ?? -1) >= depth) continue;
    if (depth >= limit) return true;
    seenAt.set(v, depth);
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: depth + 1 });
    }
  }
  return false;
}
