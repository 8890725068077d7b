/**
 * Unified diffs for `plan` output: what a reconcile would change in a file, in the form an admin
 * already reads from `git diff`.
 */
import { structuredPatch } from 'diff';

/**
 * The lines of a unified diff from `before` to `after` (both whole file contents), labelled with
 * `file`. Empty when the two are equal byte for byte. A missing file is passed as ''.
 */
export function unifiedDiffLines(file: string, before: string, after: string, context = 3): string[] {
  if (before === after) return [];
  const patch = structuredPatch(file, file, before, after, undefined, undefined, { context });
  const lines = [`--- ${file}`, `+++ ${file}`];
  for (const hunk of patch.hunks) {
    lines.push(`@@ -${range(hunk.oldStart, hunk.oldLines)} +${range(hunk.newStart, hunk.newLines)} @@`);
    lines.push(...hunk.lines);
  }
  return lines;
}

/**
 * A hunk range as diff(1) writes it: "start,count", just "start" for a single line, and for an
 * empty range the line before it ("0,0" at the top of a file).
 */
function range(start: number, count: number): string {
  if (count === 0) return `${Math.max(0, start - 1)},0`;
  return count === 1 ? `${start}` : `${start},${count}`;
}
