import { statSync } from 'node:fs';

/**
 * What was computed from a set of files (parsed, checked), kept while none of them changes, so
 * that reading a cell folder again after one edit parses and checks that one file, not all of
 * them (a cell with 2,000 PeerAccounts otherwise pays the whole folder for every edit).
 *
 * A file is known by its path, inode, size, mtime and ctime. Like Git's index, a result is only
 * kept when every file was last changed more than two seconds before it was read: timestamps are
 * as coarse as the kernel's tick, so an edit within the same tick as the reading could keep the
 * size and the times and go unseen. A file that changed lately is read again each time, until it
 * settles. Values are shared between callers and deep-frozen: nothing may change them.
 */
export class FileMemo<T> {
  private readonly entries = new Map<string, { signature: string; value: T }>();

  constructor(private readonly maxEntries = 50_000) {}

  /**
   * The value computed from `files` (with `variant`: anything else the computation depends on),
   * from memory when none of them changed, else from `compute`, which reads them itself.
   */
  get(files: readonly string[], variant: string, compute: () => T, nowMs = Date.now()): T {
    // Spelt as given: values may quote the path (problems name their file).
    const key = JSON.stringify([files, variant]);
    const before = signatureOf(files, nowMs);
    const known = this.entries.get(key);
    if (before.stable && known && known.signature === before.signature) return known.value;
    const value = deepFreeze(compute());
    // Kept only when the files were settled, and still the same after the reading.
    const after = before.stable ? signatureOf(files, nowMs) : undefined;
    if (after?.stable && after.signature === before.signature) {
      this.entries.delete(key);
      this.entries.set(key, { signature: before.signature, value });
      // The oldest entries go first (a Map keeps insertion order; a hit is not re-inserted, so a
      // file read every pass may be dropped and read once more: no harm, just work).
      while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    } else {
      this.entries.delete(key);
    }
    return value;
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Edits this close to a reading may share its timestamps (see FileMemo; also state/cell.ts). */
export const RACY_WINDOW_NS = 2_000_000_000n;

function signatureOf(files: readonly string[], nowMs: number): { signature: string; stable: boolean } {
  const now = BigInt(Math.round(nowMs)) * 1_000_000n;
  let stable = true;
  const parts = files.map((file) => {
    try {
      // A missing file is common (a folder not made yet) and is no error: no exception to build.
      const st = statSync(file, { bigint: true, throwIfNoEntry: false });
      if (!st) return 'missing:ENOENT';
      if (now - st.mtimeNs < RACY_WINDOW_NS || now - st.ctimeNs < RACY_WINDOW_NS) stable = false;
      return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch (err) {
      return `missing:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
    }
  });
  return { signature: parts.join('|'), stable };
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const child of Object.values(value)) deepFreeze(child);
  return value;
}
