import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * pic's version, from the package.json of the checkout or package it runs from ('unknown' if none).
 * Read at each call (a reading of the cell folder asks once): a few small files, nothing to keep.
 */
export function picVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pic' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here; look further up
    }
    const parent = path.dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}
