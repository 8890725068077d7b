import { statSync } from 'node:fs';
import path from 'node:path';
import { watch } from 'chokidar';

/** The default quiet period (`debounceMs`). */
export const DEFAULT_QUIET_MS = 25;

export interface WatchCellFolderOptions {
  /**
   * Quiet time after the last change before `onChange` is called (default 25 ms); a changed file
   * must also have been left alone for this long (its ctime), so a write still going on is waited for.
   */
  debounceMs?: number;
  /** A watcher error, or an exception thrown by `onChange`. Without it, such errors are dropped. */
  onError?: (err: Error) => void;
}

/** The folders of a cell whose documents are desired state (DESIGN §3). */
const DOCUMENT_FOLDERS: ReadonlySet<string> = new Set(['services', 'peers', 'connections']);
const CELL_DOCUMENTS: ReadonlySet<string> = new Set(['cell.yaml', 'cell.yml']);

/** A file written by an editor or a downloader while saving, never a document. */
export function isScratchName(name: string): boolean {
  return (
    name.startsWith('.') ||
    name.startsWith('#') ||
    name.endsWith('~') ||
    name === '4913' || // vim probes whether it may write in the folder with this name
    /\.(swp|swx|tmp|part)$/i.test(name)
  );
}

function isYamlName(name: string): boolean {
  return /\.ya?ml$/i.test(name) && !isScratchName(name);
}

/** Where a path sits relative to the cell folder, split into its segments. */
function segmentsOf(dir: string, p: string): string[] | undefined {
  const relative = path.relative(dir, p);
  if (relative === '') return [];
  if (relative.startsWith('..') || path.isAbsolute(relative)) return undefined;
  return relative.split(path.sep);
}

/** A document: cell.yaml at the top, or a YAML file directly inside one of the three folders. */
export function isDocumentPath(dir: string, p: string): boolean {
  const segments = segmentsOf(dir, p);
  if (segments === undefined) return false;
  const [first, second] = segments;
  if (segments.length === 1) return first !== undefined && CELL_DOCUMENTS.has(first);
  return segments.length === 2 && DOCUMENT_FOLDERS.has(first ?? '') && isYamlName(second ?? '');
}

function isDocumentFolder(dir: string, p: string): boolean {
  const segments = segmentsOf(dir, p);
  return segments?.length === 1 && DOCUMENT_FOLDERS.has(segments[0] ?? '');
}

/**
 * Watches a cell folder and calls `onChange` with the sorted, unique paths of the documents that
 * were added, changed or removed (and of the three document folders when they come or go).
 * Editors save in several steps (a swap file, a backup, a rename) and some writers write in
 * pieces, so a change is reported once the folder has been quiet for the debounce time and no
 * changed file was written within it (every write sets its ctime, also one whose event is still
 * on its way); scratch files are ignored, and a burst becomes one call. A folder that never stops
 * changing is still reported at least every forty debounce periods.
 * Resolves once the initial scan is done; files present then are not reported.
 */
export async function watchCellFolder(
  dir: string,
  onChange: (paths: string[]) => void,
  opts: WatchCellFolderOptions = {},
): Promise<{ close(): Promise<void> }> {
  // Editors and `git checkout` touch several files within a few milliseconds of each other; 25 ms
  // of quiet gathers such a burst into one reload, and an inotify event arrives within a few
  // milliseconds of the write, so an admin hardly waits for it.
  const debounceMs = opts.debounceMs ?? DEFAULT_QUIET_MS;
  const maxWaitMs = debounceMs * 40;
  const root = path.resolve(dir);

  // No awaitWriteFinish: its size polling holds every event back by its whole threshold, where
  // the quiet period and the ctime check below wait only while writes go on.
  const watcher = watch(root, {
    ignoreInitial: true,
    // Prune early (stats may be missing, so decide by name); events are filtered again below.
    ignored: (p: string) => {
      const segments = segmentsOf(root, p);
      if (segments === undefined) return true;
      const [first, second] = segments;
      if (segments.length === 0) return false;
      if (segments.length === 1) return !(DOCUMENT_FOLDERS.has(first ?? '') || CELL_DOCUMENTS.has(first ?? ''));
      return segments.length > 2 || !DOCUMENT_FOLDERS.has(first ?? '') || !isYamlName(second ?? '');
    },
  });

  const reportError = (err: unknown): void => {
    opts.onError?.(err instanceof Error ? err : new Error(String(err)));
  };

  let changed = new Set<string>();
  let quietTimer: NodeJS.Timeout | undefined;
  let firstChangeAt: number | undefined;
  let closed = false;

  /** How long ago the most recently written of `paths` was written (Infinity when none exists). */
  const sinceLastWrite = (paths: Iterable<string>): number => {
    let newest = -Infinity;
    for (const p of paths) {
      try {
        newest = Math.max(newest, statSync(p).ctimeMs);
      } catch {
        // removed: nothing more will be written to it
      }
    }
    return Date.now() - newest;
  };

  const flush = (): void => {
    quietTimer = undefined;
    if (closed || changed.size === 0) return;
    // A file written a moment ago may still be being written (its event not here yet).
    const since = sinceLastWrite(changed);
    const waited = Date.now() - (firstChangeAt ?? Date.now());
    if (since < debounceMs && waited < maxWaitMs) {
      quietTimer = setTimeout(flush, Math.max(1, Math.ceil(debounceMs - since)));
      quietTimer.unref();
      return;
    }
    firstChangeAt = undefined;
    const paths = [...changed].sort();
    changed = new Set();
    try {
      onChange(paths);
    } catch (err) {
      reportError(err);
    }
  };

  const record = (p: string): void => {
    if (closed) return;
    changed.add(path.resolve(p));
    const now = Date.now();
    firstChangeAt ??= now;
    if (quietTimer !== undefined) clearTimeout(quietTimer);
    const wait = Math.max(0, Math.min(debounceMs, firstChangeAt + maxWaitMs - now));
    quietTimer = setTimeout(flush, wait);
    quietTimer.unref();
  };

  watcher.on('all', (event, p) => {
    if (event === 'addDir' || event === 'unlinkDir') {
      if (isDocumentFolder(root, p)) record(p);
    } else if (isDocumentPath(root, p)) {
      record(p);
    }
  });
  watcher.on('error', reportError);

  await new Promise<void>((resolve) => watcher.once('ready', resolve));

  return {
    async close(): Promise<void> {
      closed = true;
      if (quietTimer !== undefined) clearTimeout(quietTimer);
      quietTimer = undefined;
      await watcher.close();
    },
  };
}
