import { readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * The file watcher's default quiet period, read from its source so a report names the one
 * measured (it is the only fixed wait between a document write and the operator reading it).
 */
export function watcherQuietMs(): number {
  const file = path.join(process.cwd(), 'controllers', 'sources', 'file-watch.ts');
  const debounce = /debounceMs \?\? (\d+)/.exec(readFileSync(file, 'utf8'))?.[1];
  if (debounce === undefined) throw new Error(`cannot find the default debounceMs in ${file}; update tests/bench/support/watcher.ts`);
  return Number(debounce);
}
