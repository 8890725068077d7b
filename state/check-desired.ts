import { mergeServiceConfig, type ConfigValue } from '../crds/config.js';
import { manifestSubdomains } from '../crds/validate-manifest.js';
import { boundProblems, cut } from '../crds/problem-limit.js';
import { DEFAULT_CORE_CONTAINERS, DEFAULT_WIREGUARD_CONTAINER } from '../crds/schemas.js';
import type { CellDocument, ConnectionDocument, Manifest, Problem, Sourced } from '../crds/types.js';
import { decideVersion, type AdmittedView, type VersionDecision } from './admission.js';
import type { DesiredDocuments } from './desired.js';
import { documentKey, nameInKey, serviceKey } from './document-keys.js';
import { generationOf } from './generation.js';

/** What the cross-document checks need to know of the catalog: pure data, no I/O. */
export interface CatalogView {
  /** Where the catalog is, for messages. */
  location: string;
  manifests: ReadonlyMap<string, Manifest>;
  /** Catalog services whose package is broken, with their problems. */
  invalid: ReadonlyMap<string, Problem[]>;
  /** Where each catalog manifest is, for messages about its fields. */
  manifestFiles?: ReadonlyMap<string, string>;
  /**
   * The versions admitted before (state/packages.ts), when known. Without them (pic validate of a
   * folder no operator converges) a document is checked as a first install.
   */
  admitted?: ReadonlyMap<string, AdmittedView>;
  /** Services whose kept package cannot be trusted, with why. */
  admittedProblems?: ReadonlyMap<string, string>;
  /** pic's own version, for min_pic_version; not enforced when not given. */
  picVersion?: string;
}

export interface CheckedDesired {
  /** Problems per document ("Kind/name"), including those of its own schema. */
  byDocument: Map<string, Problem[]>;
  /** Problems that belong to no single document (missing cell.yaml, unreadable files, a second Cell...). */
  general: Problem[];
  /** Facts worth telling that are not errors, per document. */
  notices: Map<string, string[]>;
  /** Facts worth telling that belong to no document: a file holding none, checks that could not run. */
  generalNotices: Problem[];
  /** Each valid ServiceInstall's merged config (manifest defaults filled in). */
  configs: Map<string, Record<string, ConfigValue>>;
  /** Which version each ServiceInstall runs or goes to (state/admission.ts), refused ones included. */
  versions: Map<string, VersionDecision>;
}

function add<T>(map: Map<string, T[]>, key: string, ...items: T[]): void {
  if (items.length === 0) return;
  const list = map.get(key);
  if (list) list.push(...items);
  else map.set(key, [...items]);
}

/** Keep the first document of each name; every later one gets a problem naming the first. */
function firstOfEachName<T extends { kind: string; metadata: { name: string } }>(docs: Sourced<T>[], byDocument: Map<string, Problem[]>, general: Problem[]): Sourced<T>[] {
  const seen = new Map<string, Sourced<T>>();
  for (const d of docs) {
    const key = documentKey(d.doc);
    const first = seen.get(key);
    if (first) {
      const problem = { file: d.file, pointer: '/metadata/name', message: `${key} is defined twice: also in ${first.file}; names must be unique per kind` };
      add(byDocument, key, problem);
      general.push(problem);
    } else {
      seen.set(key, d);
    }
  }
  return [...seen.values()];
}

/**
 * The catalog service that implements a Connection: the one its spec.service names, or the one
 * whose manifest provides its type (connectivity.provides). Pure.
 */
export function exitServiceOf(manifests: ReadonlyMap<string, Manifest>, doc: ConnectionDocument): { id: string; manifest: Manifest } | { problem: string } {
  const type = doc.spec.type;
  if (doc.spec.service !== undefined) {
    const manifest = manifests.get(doc.spec.service);
    if (!manifest) return { problem: `the catalog has no service "${doc.spec.service}"` };
    if (manifest.connectivity?.provides !== type) {
      return { problem: `catalog service "${doc.spec.service}" ${manifest.connectivity ? `provides ${manifest.connectivity.provides}, not ${type}` : 'is not a connectivity service (its manifest has no connectivity section)'}` };
    }
    return { id: doc.spec.service, manifest };
  }
  const providers = [...manifests.entries()].filter(([, m]) => m.connectivity?.provides === type).sort((a, b) => a[0].localeCompare(b[0]));
  if (providers.length === 0) return { problem: `no catalog service provides ${type} (a manifest with connectivity.provides: ${type}); add one to the store or name one in spec.service` };
  if (providers.length > 1) return { problem: `several catalog services provide ${type} (${providers.map(([id]) => id).join(', ')}); name one in spec.service` };
  const [id, manifest] = providers[0]!;
  return { id, manifest };
}

/**
 * The checks that need more than one document: exactly one Cell, unique names, ServiceInstalls
 * that name a catalog service and satisfy its config_schema, no subdomain claimed twice, egress
 * connections that exist and are allowed, PeerAccounts that list installed services with accounts.
 * Without a catalog (loose documents, not a cell folder) only the checks that need none run.
 */
export function checkDesiredState(docs: DesiredDocuments, catalog?: CatalogView): CheckedDesired {
  const byDocument = new Map<string, Problem[]>();
  const general: Problem[] = [...docs.problems];
  const notices = new Map<string, string[]>();
  const generalNotices: Problem[] = [...docs.notices];
  const configs = new Map<string, Record<string, ConfigValue>>();
  const versions = new Map<string, VersionDecision>();

  for (const r of docs.rejected) {
    if (r.key) add(byDocument, r.key, ...r.problems);
    else general.push(...r.problems);
  }

  const cellFileMissing = docs.problems.some((p) => p.file.endsWith('/cell.yaml') && p.message.startsWith('missing'));
  if (docs.cells.length === 0 && !cellFileMissing && !docs.rejected.some((r) => r.key?.startsWith('Cell/'))) {
    if (docs.dir) general.push({ file: `${docs.dir}/cell.yaml`, pointer: '', message: 'no Cell document: a cell folder needs exactly one, in cell.yaml' });
  }
  docs.cells.slice(1).forEach((extra) => {
    const problem = { file: extra.file, pointer: '/kind', message: `a second Cell document (the first is in ${docs.cells[0]!.file}); a cell folder has exactly one` };
    add(byDocument, documentKey(extra.doc), problem);
    general.push(problem);
  });

  const services = firstOfEachName(docs.services, byDocument, general);
  const peers = firstOfEachName(docs.peers, byDocument, general);
  const connections = firstOfEachName(docs.connections, byDocument, general);
  const connectionByName = new Map(connections.map((c) => [c.doc.metadata.name, c.doc]));
  const declaredServices = new Set([
    ...services.map((s) => s.doc.metadata.name),
    ...docs.rejected.flatMap((r) => nameInKey(r.key, 'ServiceInstall') ?? []),
  ]);

  // Without exactly one valid Cell no catalog was read: saying of every ServiceInstall that the
  // catalog lacks it would be false, so say once why services were not checked.
  const catalogKnown = catalog !== undefined && (docs.dir === '' || docs.cells.length === 1);
  if (catalog && !catalogKnown && services.length > 0) {
    generalNotices.push({
      file: docs.dir ? `${docs.dir}/cell.yaml` : services[0]!.file,
      pointer: '',
      message: `the ${services.length} ServiceInstall document${services.length === 1 ? ' was' : 's were'} not checked against the catalog: the Cell is missing or invalid, so no catalog was read`,
    });
  }

  const subdomainOwner = new Map<string, string>();
  const containerOwner = coreContainerNames(docs.cells.length === 1 ? docs.cells[0]!.doc : undefined);
  const portOwner = new Map<string, string>();
  const sortedServices = [...services].sort((a, b) => a.doc.metadata.name.localeCompare(b.doc.metadata.name));
  for (const { doc, file } of catalogKnown ? sortedServices : []) {
    const name = doc.metadata.name;
    const key = documentKey(doc);
    const problems: Problem[] = [];
    const offered = catalog!.manifests.get(name);
    const keptProblem = catalog!.admittedProblems?.get(name);
    if (keptProblem) {
      add(byDocument, key, { file, pointer: '/metadata/name', message: keptProblem });
      continue;
    }
    const admitted = catalog!.admitted?.get(name);
    const broken = catalog!.invalid.get(name);
    const brokenText = broken ? `the catalog package of "${name}" is invalid (${broken.length} problem${broken.length === 1 ? '' : 's'}${broken[0] ? `; first: ${broken[0].file}: ${broken[0].pointer || '/'}: ${cut(broken[0].message, 200)}` : ''})` : undefined;
    if (brokenText && admitted) add(notices, key, `${brokenText}; the admitted version ${admitted.manifest.version} keeps running from the package pic kept`);
    if (!offered && !admitted) {
      if (brokenText) {
        problems.push({ file, pointer: '/metadata/name', message: brokenText });
      } else {
        const known = [...catalog!.manifests.entries()].filter(([, m]) => !m.connectivity).map(([id]) => id).sort();
        problems.push({ file, pointer: '/metadata/name', message: `no service "${name}" in the catalog at ${cut(catalog!.location, 200)}${known.length ? `; it offers: ${known.join(', ')}` : ''}` });
      }
      add(byDocument, key, ...problems);
      continue;
    }

    if (offered?.connectivity) {
      add(byDocument, key, { file, pointer: '/metadata/name', message: `"${name}" is a connectivity service: it runs as the exit of a Connection, not as a ServiceInstall; write connections/<name>.yaml with type: ${offered.connectivity.provides}` });
      continue;
    }

    // The admitted version runs whatever the catalog holds now; the catalog's newer version is an
    // upgrade only when the document asks for it (state/admission.ts).
    const decision = decideVersion({
      ...(doc.spec.version !== undefined ? { wanted: doc.spec.version } : {}),
      ...(offered ? { offered } : {}),
      ...(catalog!.manifestFiles?.get(name) ? { offeredFile: catalog!.manifestFiles.get(name)! } : {}),
      ...(admitted ? { admitted } : {}),
      admittedKnown: catalog!.admitted !== undefined,
      generation: generationOf(doc.spec),
      picVersion: catalog!.picVersion ?? 'unknown',
    });
    versions.set(name, decision);
    if (decision.kind === 'refused') {
      add(byDocument, key, { file, pointer: decision.pointer, message: decision.message });
      continue;
    }
    if (decision.kind === 'unchecked') add(notices, key, `version ${decision.version} is older than the catalog's ${decision.offered}: right only if ${decision.version} is the version admitted before, which the operator's state tells (pic plan --cell DIR checks it)`);
    if (decision.kind === 'admitted' && decision.update) add(notices, key, `version ${decision.update} is in the catalog (admitted: ${decision.version}); set spec.version to ${decision.update} to upgrade`);
    // The checks below hold for what is to run: the admitted manifest, or the one being admitted.
    const manifest = decision.kind === 'install' || decision.kind === 'upgrade' || decision.kind === 'unchecked' ? offered! : admitted!.manifest;

    // Every name the package may give a container (policy.ts holds its template to them) is the
    // service's alone: no core container's, no other service's.
    for (const claimed of new Set([manifest.container_name, ...(manifest.containers ?? [])])) {
      const claimant = containerOwner.get(claimed);
      if (claimant) problems.push({ file, pointer: '/metadata/name', message: `container name "${claimed}" (in the manifest's container_name or containers) is already taken by ${claimant}; two containers cannot share a name, so this service cannot be installed beside it` });
      else containerOwner.set(claimed, serviceKey(name));
    }

    (doc.spec.publish ?? []).forEach((port, i) => {
      const holder = portOwner.get(port);
      if (holder) problems.push({ file, pointer: `/spec/publish/${i}`, message: `host port ${port} is already published by ServiceInstall/${holder}; one host port serves one service` });
      else portOwner.set(port, name);
    });

    const merged = mergeServiceConfig(manifest.capabilities.has_admin_config ? manifest.config_schema : {}, doc.spec.config, file);
    problems.push(...merged.problems);

    for (const sub of manifest.capabilities.has_subdomain ? manifestSubdomains(manifest) : []) {
      const owner = subdomainOwner.get(sub);
      if (owner) problems.push({ file, pointer: '/metadata/name', message: `subdomain "${sub}" is already claimed by ServiceInstall/${owner}; two services cannot share a subdomain` });
      else subdomainOwner.set(sub, name);
    }

    const connection = doc.spec.egress?.connection;
    if (connection !== undefined && connection !== 'default') {
      const target = connectionByName.get(connection);
      if (!manifest.capabilities.has_egress) {
        problems.push({ file, pointer: '/spec/egress/connection', message: `service "${name}" does not support choosing its egress (has_egress is false); remove spec.egress or use "default"` });
      } else if (!target) {
        const known = [...connectionByName.keys()].sort();
        problems.push({ file, pointer: '/spec/egress/connection', message: `no Connection named "${connection}"${known.length ? `; defined: ${known.join(', ')}` : '; add connections/' + connection + '.yaml'}` });
      } else if (!manifest.egress?.allowed.includes(target.spec.type)) {
        problems.push({
          file,
          pointer: '/spec/egress/connection',
          message: `Connection "${connection}" is of type ${target.spec.type}, which "${name}" does not allow (allowed: ${(manifest.egress?.allowed ?? []).join(', ')})`,
        });
      }
    }

    add(byDocument, key, ...problems);
    if (problems.length === 0) configs.set(name, merged.config);
  }

  for (const { doc, file } of catalog ? peers : []) {
    const problems: Problem[] = [];
    doc.spec.services.forEach((service, i) => {
      const pointer = `/spec/services/${i}`;
      if (!declaredServices.has(service)) {
        problems.push({ file, pointer, message: `"${service}" is not installed: there is no ServiceInstall named "${service}"` });
        return;
      }
      const manifest = catalog!.manifests.get(service);
      if (manifest && !manifest.capabilities.has_accounts) {
        problems.push({ file, pointer, message: `service "${service}" has no per-peer accounts (has_accounts is false)` });
      }
    });
    add(byDocument, documentKey(doc), ...problems);
  }

  // A Connection runs an exit: the catalog must hold the one service that implements it, and its
  // config must satisfy that service's config_schema.
  for (const { doc, file } of catalogKnown ? connections : []) {
    const resolved = exitServiceOf(catalog!.manifests, doc);
    if ('problem' in resolved) {
      add(byDocument, documentKey(doc), { file, pointer: doc.spec.service !== undefined ? '/spec/service' : '/spec/type', message: resolved.problem });
      continue;
    }
    const m = resolved.manifest;
    const merged = mergeServiceConfig(m.capabilities.has_admin_config ? m.config_schema : {}, doc.spec.config, file);
    add(byDocument, documentKey(doc), ...merged.problems);
  }

  // Each document's list bounded like a validator's: its problems gather from several checks.
  for (const [key, list] of byDocument) if (list.length > 0) byDocument.set(key, boundProblems(list, list[0]!.file));
  return { byDocument, general, notices, generalNotices, configs, versions };
}

/** The containers the Cell itself runs or names, by name, with who claims them (for messages). */
function coreContainerNames(cell: CellDocument | undefined): Map<string, string> {
  const owners = new Map<string, string>();
  // The core's usual names are never a service's, whoever runs the core and whatever it is called.
  owners.set(DEFAULT_CORE_CONTAINERS.caddy, 'the cell\'s core Caddy (cell-caddy is reserved for it)');
  owners.set(DEFAULT_CORE_CONTAINERS.dns, 'the cell\'s core DNS server (cell-dns is reserved for it)');
  owners.set(DEFAULT_CORE_CONTAINERS.wireguard, 'the cell\'s core WireGuard (cell-wireguard is reserved for it)');
  if (!cell) return owners;
  owners.set(cell.spec.wireguard?.run?.container ?? cell.spec.wireguard?.container ?? DEFAULT_WIREGUARD_CONTAINER, 'the Cell\'s WireGuard container (spec.wireguard)');
  if (cell.spec.caddy?.run?.container) owners.set(cell.spec.caddy.run.container, 'the Cell\'s Caddy container (spec.caddy.run.container)');
  if (cell.spec.dns?.run?.container) owners.set(cell.spec.dns.run.container, 'the Cell\'s DNS container (spec.dns.run.container)');
  for (const site of cell.spec.caddy?.sites ?? []) {
    const host = site.backend.slice(0, site.backend.lastIndexOf(':'));
    if (host && !owners.has(host)) owners.set(host, `the Cell's core site "${site.subdomain}" (spec.caddy.sites)`);
  }
  return owners;
}

/** Every problem of a check, documents first in key order, then the general ones. */
export function allProblems(checked: CheckedDesired): Problem[] {
  const keys = [...checked.byDocument.keys()].sort();
  const seen = new Set<Problem>();
  const out: Problem[] = [];
  for (const p of [...keys.flatMap((k) => checked.byDocument.get(k)!), ...checked.general]) {
    if (!seen.has(p)) {
      seen.add(p);
      out.push(p);
    }
  }
  return out;
}
