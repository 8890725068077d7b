/**
 * Writes the generated files into the repository: the schema files and CRDs (see crds/crd.ts)
 * and the precompiled validators (see crds/render-validators.ts):
 *   node dist/crds/generate.js
 * The tests tests/unit/crds-generated.test.ts and tests/unit/precompiled-validators.test.ts fail
 * whenever the committed files differ.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderGeneratedFiles } from './crd.js';
import { renderValidatorModules } from './render-validators.js';

/** dist/crds/generate.js → the repository root, two folders up. */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

for (const file of [...renderGeneratedFiles(), ...renderValidatorModules()]) {
  const target = path.join(repoRoot, file.path);
  await mkdir(path.dirname(target), { recursive: true });
  await writeFile(target, file.content);
  console.log(`wrote ${file.path}`);
}
