import type { ConfigValue } from '../crds/config.js';
import type { CellObject, ConnectionDocument, Manifest, PeerAccountDocument, Problem, ServiceInstallDocument, Sourced } from '../crds/types.js';
import { catalogService, type CatalogService } from './catalog.js';
import { catalogView, effectiveServices, type LoadedCell } from './cell.js';
import { checkDesiredState } from './check-desired.js';
import { documentKey, nameInKey } from './document-keys.js';

/**
 * The last version of a document the operator accepted: what it converges a document to while the
 * document's file cannot be read, parsed or validated. Services keep the package (manifest and
 * template) and the merged config they were accepted with, so a broken catalog cannot change them.
 */
export interface AppliedRecord {
  key: string;
  file: string;
  doc: ServiceInstallDocument | PeerAccountDocument | ConnectionDocument;
  package?: { manifest: Manifest; template: string; manifestFile: string; templateFile: string; dir: string };
  config?: Record<string, ConfigValue>;
}

/** Why a document is held. */
export type HoldReason = 'ParseError' | 'InvalidSpec' | 'CellInvalid';

/** A document the operator does not change or prune: its file is broken, or the cell is. */
export interface HeldDocument {
  key: string;
  reason: HoldReason;
  /** The file the problems are in (the document's own, or cell.yaml). */
  file?: string;
  problems: Problem[];
  /** What it is held at, when it was accepted before. */
  applied?: AppliedRecord;
}

/** A snapshot with its broken documents held at their last accepted versions. */
export interface HeldCell extends LoadedCell {
  /** Every document that is held, by key. Empty when everything is readable and valid. */
  held: ReadonlyMap<string, HeldDocument>;
  /** No valid Cell: the whole cell holds, nothing is created, changed or removed. */
  frozen: boolean;
}

const HELD_KINDS = ['ServiceInstall', 'PeerAccount', 'Connection'] as const;

function isHeldKind(key: string): boolean {
  return HELD_KINDS.some((kind) => nameInKey(key, kind) !== undefined);
}

function underPath(file: string, unreadable: string): boolean {
  return file === unreadable || file.startsWith(`${unreadable}/`);
}

/**
 * Hold what cannot be read. A document whose file is unreadable, not YAML or empty, or that its
 * schema or the cross-document checks refuse, is taken at the version last accepted (`applied`):
 * the shared resources (routes, records, rules, accounts, peers) keep converging to that version,
 * and nothing it owns is pruned. Only a document that is gone while its file is readable (the file
 * deleted, or the document taken out of a readable file) is treated as removed. Without a valid
 * Cell the whole cell is frozen. Pure: the caller reads the files and the records.
 *
 * Returns the held snapshot and the records to keep: every valid document now, held ones as they
 * were, removed ones dropped.
 */
export function holdBrokenDocuments(loaded: LoadedCell, applied: ReadonlyMap<string, AppliedRecord>): { cell: HeldCell; records: Map<string, AppliedRecord> } {
  const held = new Map<string, HeldDocument>();
  if (!loaded.cell) {
    const cellProblems = loaded.checked.general.length > 0 ? loaded.checked.general : [{ file: `${loaded.dir}/cell.yaml`, pointer: '', message: 'no valid Cell document' }];
    const file = cellProblems[0]?.file;
    const keys = new Set([...applied.keys(), ...loaded.docs.services.map((s) => documentKey(s.doc)), ...loaded.docs.peers.map((p) => documentKey(p.doc)), ...loaded.docs.connections.map((c) => documentKey(c.doc))]);
    for (const r of loaded.docs.rejected) if (r.key && isHeldKind(r.key)) keys.add(r.key);
    for (const key of keys) {
      const record = applied.get(key);
      held.set(key, { key, reason: 'CellInvalid', ...(file ? { file } : {}), problems: cellProblems, ...(record ? { applied: record } : {}) });
    }
    return { cell: { ...loaded, held, frozen: true }, records: new Map(applied) };
  }

  // Which documents are held: those the checks refuse, and those accepted before whose file cannot
  // be read now. A document that refers to a held one is checked against what that one is held at
  // (a peer listing a service whose file has a typo is fine), so the checks run again on the held
  // snapshot; whatever they refuse then is held as well, until nothing changes (a few rounds at most;
  // each round only adds).
  const declared = new Set<string>();
  for (const sourced of [...loaded.docs.services, ...loaded.docs.peers, ...loaded.docs.connections]) declared.add(documentKey(sourced.doc));
  for (const r of loaded.docs.rejected) {
    if (!r.key || !isHeldKind(r.key) || held.has(r.key)) continue;
    declared.add(r.key);
    held.set(r.key, { key: r.key, reason: 'InvalidSpec', file: r.file, problems: loaded.checked.byDocument.get(r.key) ?? r.problems });
  }
  for (const [key, record] of applied) {
    if (declared.has(key)) continue;
    const broken = loaded.docs.unreadable.find((u) => underPath(record.file, u.file));
    if (broken) held.set(key, { key, reason: 'ParseError', file: broken.file, problems: broken.problems });
  }
  for (const entry of held.values()) {
    const record = applied.get(entry.key);
    if (record) entry.applied = record;
  }

  // Nothing held and nothing refused (the common pass): the checks loadCell ran already stand.
  const refusedNow = [...loaded.checked.byDocument].some(([key, problems]) => problems.length > 0 && isHeldKind(key));
  let snapshot = held.size === 0 && !refusedNow ? loaded : heldSnapshot(loaded, held);
  for (let round = 0; round < 5; round++) {
    const refused = [...snapshot.checked.byDocument.entries()].filter(([key, problems]) => problems.length > 0 && !held.has(key) && isHeldKind(key));
    if (refused.length === 0) break;
    for (const [key, problems] of refused) {
      const record = applied.get(key);
      const file = [...loaded.docs.services, ...loaded.docs.peers, ...loaded.docs.connections].find((s) => documentKey(s.doc) === key)?.file;
      held.set(key, { key, reason: 'InvalidSpec', ...(file ? { file } : {}), problems, ...(record ? { applied: record } : {}) });
    }
    snapshot = heldSnapshot(loaded, held);
  }
  if (held.size > 0) for (const key of held.keys()) snapshot.checked.byDocument.delete(key);

  const records = new Map<string, AppliedRecord>();
  for (const sourced of [...snapshot.docs.services, ...snapshot.docs.peers, ...snapshot.docs.connections]) {
    const key = documentKey(sourced.doc);
    if (records.has(key)) continue;
    const entry = held.get(key);
    records.set(key, entry?.applied ?? recordOf(sourced, loaded));
  }
  const cell: HeldCell = { ...snapshot, held, frozen: false };
  return { cell, records };
}

/**
 * The snapshot with every held document replaced by the version it is held at (or left out when
 * it has none), checked again as a whole. Held services keep the package and config they were
 * accepted with, so a broken catalog cannot change them.
 */
function heldSnapshot(loaded: LoadedCell, held: ReadonlyMap<string, HeldDocument>): LoadedCell {
  const keep = <T extends ServiceInstallDocument | PeerAccountDocument | ConnectionDocument>(docs: Sourced<T>[]) => docs.filter((s) => !held.has(documentKey(s.doc)));
  const services = keep(loaded.docs.services);
  const peers = keep(loaded.docs.peers);
  const connections = keep(loaded.docs.connections);
  // Held services are checked against the package they were accepted with, as if the catalog held it.
  const offered = new Map<string, CatalogService>(loaded.catalog?.offered ?? []);
  const heldPackages = new Map<string, CatalogService>();
  const invalid = new Map(loaded.catalog?.invalid ?? []);
  for (const { applied: record } of held.values()) {
    if (!record) continue;
    const sourced = { file: record.file, index: 0, doc: record.doc };
    if (record.doc.kind === 'ServiceInstall') {
      if (!record.package) continue;
      const name = record.doc.metadata.name;
      services.push(sourced as Sourced<ServiceInstallDocument>);
      const kept = catalogService({ id: name, ...record.package });
      heldPackages.set(name, kept);
      offered.set(name, kept);
      invalid.delete(name);
    } else if (record.doc.kind === 'PeerAccount') {
      peers.push(sourced as Sourced<PeerAccountDocument>);
    } else {
      connections.push(sourced as Sourced<ConnectionDocument>);
    }
  }
  const byName = (a: Sourced<CellObject>, b: Sourced<CellObject>) => a.doc.metadata.name.localeCompare(b.doc.metadata.name);
  const docs = { ...loaded.docs, services: services.sort(byName), peers: peers.sort(byName), connections: connections.sort(byName) };
  const base = loaded.catalog ? { ...loaded.catalog, offered, invalid } : undefined;
  const checked = checkDesiredState(docs, catalogView(base, loaded.admission, loaded.catalog?.dir ?? '(no catalog)'));
  const catalogServices = effectiveServices(offered, loaded.admission, checked.versions);
  for (const [name, pkg] of heldPackages) catalogServices.set(name, pkg);
  const catalog = base ? { ...base, offered: loaded.catalog!.offered, services: catalogServices } : undefined;
  // Problems of the folder as a whole (unreadable files, the catalog's own) stay as first found.
  checked.general = loaded.checked.general;
  for (const { applied: record } of held.values()) {
    if (record?.doc.kind === 'ServiceInstall' && record.config) checked.configs.set(record.doc.metadata.name, record.config);
  }
  return { ...loaded, docs, ...(catalog ? { catalog } : {}), checked };
}

function recordOf(sourced: Sourced<ServiceInstallDocument | PeerAccountDocument | ConnectionDocument>, loaded: LoadedCell): AppliedRecord {
  const key = documentKey(sourced.doc);
  const record: AppliedRecord = { key, file: sourced.file.replace(/ \(document \d+\)$/, ''), doc: sourced.doc };
  if (sourced.doc.kind !== 'ServiceInstall') return record;
  const name = sourced.doc.metadata.name;
  const pkg = loaded.catalog?.services.get(name);
  const config = loaded.checked.configs.get(name);
  if (pkg) record.package = { manifest: pkg.manifest, template: pkg.template, manifestFile: pkg.manifestFile, templateFile: pkg.templateFile, dir: pkg.dir };
  if (config) record.config = config;
  return record;
}

/** One line for a held document's status: what is wrong, and what is kept meanwhile. */
export function heldMessage(entry: HeldDocument): string {
  const first = entry.problems[0];
  const what = first ? `${first.file}: ${first.pointer || '/'}: ${first.message}` : 'the document cannot be read';
  const more = entry.problems.length > 1 ? ` (and ${entry.problems.length - 1} more; run pic validate)` : '';
  const kept = entry.reason === 'CellInvalid'
    ? 'the whole cell is held: nothing is created, changed or removed until the Cell is valid'
    : entry.applied
    ? 'holding the last accepted version; nothing it owns is removed until the file is valid again or deleted'
    : 'never accepted, so nothing was created for it';
  return `${what}${more}; ${kept}`;
}

/** Whether a snapshot holds `key` (a plain LoadedCell holds nothing). */
export function isHeld(cell: LoadedCell, key: string): boolean {
  return (cell as Partial<HeldCell>).held?.has(key) ?? false;
}
