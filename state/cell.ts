import path from 'node:path';
import { DEFAULT_MANIFEST_POLICY, type ManifestPolicy } from '../crds/validate-manifest.js';
import type { CellDocument, ImageVerificationMode, Problem } from '../crds/types.js';
import { loadCatalog, type Catalog } from './catalog.js';
import { checkDesiredState, type CheckedDesired } from './check-desired.js';
import { loadCellFolder, type DesiredDocuments } from './desired.js';

export interface LoadedCell {
  dir: string;
  docs: DesiredDocuments;
  /** The one valid Cell document, when there is exactly one. */
  cell?: CellDocument;
  cellFile?: string;
  catalog?: Catalog;
  policy: ManifestPolicy;
  checked: CheckedDesired;
}

/** The manifest policy a cell applies: its allowed prefix and verification mode, unless overridden. */
export function cellPolicy(cell: CellDocument | undefined, override?: ImageVerificationMode): ManifestPolicy {
  return {
    ...DEFAULT_MANIFEST_POLICY,
    ...(cell ? { allowedImagePrefix: cell.spec.allowedImagePrefix ?? DEFAULT_MANIFEST_POLICY.allowedImagePrefix, imageVerification: cell.spec.imageVerification?.mode ?? 'enforce' } : {}),
    ...(override ? { imageVerification: override } : {}),
  };
}

/** Resolve a path written in a cell document relative to the cell folder. */
export function resolveCellPath(dir: string, p: string): string {
  return path.resolve(dir, p);
}

/**
 * Read a cell folder whole: its documents, the catalog its Cell names, and every check across
 * them. Never throws for bad input; every problem is in `checked`.
 */
export async function loadCell(dir: string, options: { imageVerification?: ImageVerificationMode } = {}): Promise<LoadedCell> {
  const docs = await loadCellFolder(dir);
  const cellSource = docs.cells.length === 1 ? docs.cells[0] : undefined;
  const cell = cellSource?.doc;
  const policy = cellPolicy(cell, options.imageVerification);
  let catalog: Catalog | undefined;
  const extra: Problem[] = [];
  if (cell) {
    catalog = await loadCatalog(resolveCellPath(dir, cell.spec.store.path), policy);
    extra.push(...catalog.problems);
  }
  const checked = checkDesiredState(docs, {
    location: catalog?.dir ?? '(no catalog: the Cell document is missing or invalid)',
    manifests: new Map([...(catalog?.services ?? new Map()).entries()].map(([id, s]) => [id, s.manifest])),
    invalid: catalog?.invalid ?? new Map(),
  });
  checked.general.push(...extra.filter((p) => !checked.general.includes(p)));
  return { dir, docs, ...(cell ? { cell, cellFile: cellSource!.file } : {}), ...(catalog ? { catalog } : {}), policy, checked };
}
