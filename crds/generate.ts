/**
 * Writes the generated schema files (see crds/crd.ts) into the repository:
 *   node dist/crds/generate.js
 * The test tests/unit/crds-generated.test.ts fails whenever the committed files differ.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderGeneratedFiles } from './crd.js';

/** dist/crds/generate.js → the repository root, two folders up. */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

for (const file of renderGeneratedFiles()) {
  const target = path.join(repoRoot, file.path);
  await mkdir(path.dirname(target), { recursive: true });
  await writeFile(target, file.content);
  console.log(`wrote ${file.path}`);
}
