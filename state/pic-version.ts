import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let known: string | undefined;

/** pic's version, from the package.json of the checkout or package it runs from ('unknown' if none). */
export function picVersion(): string {
  if (known !== undefined) return known;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pic' && typeof pkg.version === 'string') return (known = pkg.version);
    } catch {
      // not here; look further up
    }
    const parent = path.dirname(dir);
    if (parent === dir) return (known = 'unknown');
    dir = parent;
  }
}
