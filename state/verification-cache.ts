/**
 * Image signatures already verified, per (repository, digest, key set), in the state directory:
 * a digest names immutable content, so once a signature over it verified with a set of keys,
 * asking the registry again can only cost time. A change of the key set changes the key, so a
 * key removed from the Cell re-verifies every image at its next reconcile. Only successes are
 * kept: a refused image is checked afresh each time, so signing it later is enough.
 */
import { readJsonFile, serialiseOnFile, writeFileAtomic } from './atomic-write.js';

export interface CachedVerification {
  repository: string;
  digest: string;
  keySet: string;
  keyId: string;
  keyFile: string;
  format: string;
  transparencyLog: boolean;
  verifiedAt: string;
}

interface CacheFile {
  version: 1;
  entries: Record<string, CachedVerification>;
}

const EMPTY: CacheFile = { version: 1, entries: {} };
/** Enough for every image of a large cell and its recent versions; the oldest go first. */
const MAX_ENTRIES = 2000;

export function verificationCacheKey(repository: string, digest: string, keySet: string): string {
  return `${repository}@${digest}#${keySet}`;
}

export class VerificationCache {
  private loaded?: Promise<CacheFile>;

  constructor(readonly file: string) {}

  private load(): Promise<CacheFile> {
    this.loaded ??= readJsonFile<CacheFile>(this.file, structuredClone(EMPTY)).then(
      (c) => (c && c.version === 1 && c.entries && typeof c.entries === 'object' ? c : structuredClone(EMPTY)),
      // A damaged cache only costs a re-verification; it never blocks one.
      () => structuredClone(EMPTY),
    );
    return this.loaded;
  }

  async get(repository: string, digest: string, keySet: string): Promise<CachedVerification | undefined> {
    return (await this.load()).entries[verificationCacheKey(repository, digest, keySet)];
  }

  async put(entry: CachedVerification): Promise<void> {
    await serialiseOnFile(this.file, async () => {
      const cache = await this.load();
      cache.entries[verificationCacheKey(entry.repository, entry.digest, entry.keySet)] = entry;
      const keys = Object.keys(cache.entries);
      if (keys.length > MAX_ENTRIES) {
        keys.sort((a, b) => cache.entries[a]!.verifiedAt.localeCompare(cache.entries[b]!.verifiedAt));
        for (const k of keys.slice(0, keys.length - MAX_ENTRIES)) delete cache.entries[k];
      }
      await writeFileAtomic(this.file, `${JSON.stringify(cache, null, 2)}\n`);
    });
  }
}
