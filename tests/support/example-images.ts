/**
 * The example catalog's images, built only when missing. `make images` builds and loads them and
 * checks each against the digest its package pins; a test file that needs them asks here, and the
 * build script (seconds to a minute of CPU, even when nothing changed) runs only when one of the
 * pinned images is not loaded, e.g. when a single test file runs before `make images`.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { docker } from './docker.js';

const STORE = path.join(process.cwd(), 'examples', 'store', 'services');
const PIN = /git\.pic\.ngo\/roof\/pic-[a-z0-9-]+@(sha256:[0-9a-f]{64})/g;

/** The image IDs the packages pin (their manifest and template). */
async function pinnedIds(packages: readonly string[]): Promise<string[]> {
  const ids = new Set<string>();
  for (const id of packages) {
    for (const file of ['manifest.json', 'compose-template.yml']) {
      const text = await fs.readFile(path.join(STORE, id, file), 'utf8');
      for (const m of text.matchAll(PIN)) ids.add(m[1]!);
    }
  }
  return [...ids];
}

/** Runs examples/images/<script> (with `args`) unless every image the packages pin is loaded. */
export async function ensureExampleImages(script: 'build.sh' | 'build-apps.sh', packages: readonly string[], args: readonly string[] = []): Promise<void> {
  const ids = await pinnedIds(packages);
  const loaded = await Promise.all(ids.map((id) => docker.getImage(id).inspect().then(() => true, () => false)));
  if (ids.length > 0 && loaded.every(Boolean)) return;
  await promisify(execFile)('bash', [path.join(process.cwd(), 'examples', 'images', script), ...args], { maxBuffer: 16 * 1024 * 1024 });
}
