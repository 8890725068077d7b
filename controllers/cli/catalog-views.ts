/**
 * What `pic catalog list` and `pic catalog show` print. Pure: the catalog, the cell's installs,
 * the admitted versions and the trial render come in as values. Every string a package wrote is
 * third-party text: it leaves here only through safeLine (tables and text) or the safe JSON/YAML
 * writers of output.ts.
 */
import path from 'node:path';
import semver from 'semver';
import { formatProblem, type Manifest, type Problem } from '../../crds/types.js';
import { serviceClaims } from '../../reconcilers/caddy/routes.js';
import { LABEL } from '../../reconcilers/containers/labels.js';
import { hostPortVerdict, type CorePort, type HostPortVerdict } from '../../reconcilers/containers/policy.js';
import type { ServicePlan } from '../../reconcilers/containers/types.js';
import type { Catalog } from '../../state/catalog.js';
import type { RefreshReport } from '../../state/store/refresh.js';
import { safeLine } from '../safe-text.js';
import { listObject, toJsonText, toYamlText } from './output.js';
import { formatColumns, oneLine } from './status-views.js';

/** Shown where a fact is not known (no cell given, no state directory known). */
const UNKNOWN = '-';

export interface CatalogRow {
  id: string;
  name: string | null;
  catalogVersion: string | null;
  /** Whether the cell has a ServiceInstall for it; null without a cell. */
  installed: boolean | null;
  /** The version the operator admitted; null when none is (or no state directory is known). */
  admitted: string | null;
  /** The catalog's version is newer than the admitted one; null when nothing is admitted. */
  update: boolean | null;
  /** A broken package's first problem (file relative to the catalog). */
  problem?: string;
}

export interface ListFacts {
  /** Services the cell has a ServiceInstall for; absent without a cell. */
  installed?: ReadonlySet<string>;
  /** Admitted version by service; absent when no state directory is known. */
  admitted?: ReadonlyMap<string, string>;
}

function relativeProblem(p: Problem, catalogDir: string): string {
  const relative = path.relative(catalogDir, p.file);
  return formatProblem({ ...p, file: relative === '' || relative.startsWith('..') ? p.file : relative });
}

/** One row per package of the catalog, valid or not, sorted by id. */
export function catalogRows(catalog: Pick<Catalog, 'dir' | 'services' | 'invalid'>, facts: ListFacts): CatalogRow[] {
  const ids = [...new Set([...catalog.services.keys(), ...catalog.invalid.keys()])].sort();
  return ids.map((id) => {
    const manifest = catalog.services.get(id)?.manifest;
    const admitted = facts.admitted?.get(id) ?? null;
    const version = manifest?.version ?? null;
    const update = admitted !== null && version !== null && semver.valid(admitted) && semver.valid(version) ? semver.gt(version, admitted) : null;
    const first = manifest ? undefined : catalog.invalid.get(id)?.[0];
    return {
      id,
      name: manifest?.name ?? null,
      catalogVersion: version,
      installed: facts.installed ? facts.installed.has(id) : null,
      admitted,
      update,
      ...(manifest ? {} : { problem: first ? relativeProblem(first, catalog.dir) : 'the package is invalid' }),
    };
  });
}

const yesNo = (v: boolean | null): string => (v === null ? UNKNOWN : v ? 'yes' : 'no');

export function renderCatalogTable(rows: readonly CatalogRow[]): string {
  const header = ['ID', 'NAME', 'CATALOG VERSION', 'INSTALLED', 'ADMITTED', 'UPDATE', 'PROBLEM'];
  const cells = rows.map((r) => [r.id, r.name ?? UNKNOWN, r.catalogVersion ?? UNKNOWN, yesNo(r.installed), r.admitted ?? UNKNOWN, yesNo(r.update), r.problem ?? ''].map(oneLine));
  return formatColumns([header, ...cells], { gap: 3 }).join('\n');
}

export function renderCatalogList(rows: readonly CatalogRow[], format: 'table' | 'json' | 'yaml'): string {
  if (format === 'json') return toJsonText(listObject(rows));
  if (format === 'yaml') return toYamlText(listObject(rows));
  return renderCatalogTable(rows);
}

/** A host port the template publishes, and what the policy says of it for this install. */
export interface HostPortExposure {
  /** As spec.publish spells it: "25/tcp". */
  port: string;
  hostIp: string;
  container: string;
  containerPort: string;
  verdict: HostPortVerdict['kind'];
  /** What the admin reads: consented, what to add to spec.publish, or why it is refused. */
  note: string;
}

export interface Subdomain {
  subdomain: string;
  /** primary, extra (an alias of the primary), extra backend (its own backend), web route. */
  role: 'primary' | 'extra' | 'extra backend' | 'web route';
  backend: string;
  /** The full name under the cell's domain; absent without a cell. */
  host?: string;
}

/** A catalog service's facts and what installing it would open on the cell. */
export interface ServiceExposure {
  id: string;
  name: string;
  version: string;
  author: string;
  description: string;
  minPicVersion: string | null;
  /** Whether the cell has a ServiceInstall for it; null without a cell. */
  installed: boolean | null;
  subdomains: Subdomain[];
  /** Host ports its template publishes; null when the template did not render. */
  hostPorts: HostPortExposure[] | null;
  /** Ports of the service address that peers may reach (the manifest's iptables_rules). */
  peerPorts: string[];
  /** Egress types it may leave the cell by; null when it declares none. */
  egress: { default: string; allowed: string[] } | null;
  accounts: { manager: string; credentials: string[]; peerConfig: string[] } | null;
  /** Linux capabilities its containers add (connectivity.cap_add). */
  capabilities: string[];
  volumes: {
    /** The template's top-level volumes, with their Docker names when rendered for a cell. */
    template: { key: string; dockerName: string }[];
    manifest: { name: string; mount: string }[];
    backup: { container: string; path: string; name: string }[];
  };
  /** Host folders its containers bind-mount (below the cell's data directory). */
  hostFolders: string[];
  containers: string[];
  images: string[];
  installScript: boolean;
  /** Problems of the render as this cell would make it; empty when it renders cleanly. */
  problems: string[];
}

export interface ExposureInputs {
  manifest: Manifest;
  installScript: boolean;
  /** The trial render with every published port left undecided; absent when it did not render. */
  plan?: ServicePlan;
  /** Problems of the render under the cell's rules (the install's consent, the core ports). */
  problems: readonly Problem[];
  catalogDir: string;
  /** The cell's domain and core ports; absent for a catalog read without a cell. */
  cell?: { domain: string };
  corePorts: readonly CorePort[];
  /** The cell's ServiceInstall for it: its consent to host ports. Absent: not installed (or no cell). */
  install?: { publish: readonly string[] };
}

function roleOf(m: Manifest, subdomain: string): Subdomain['role'] {
  if (subdomain === m.subdomain) return 'primary';
  if ((m.extra_subdomains ?? []).includes(subdomain)) return 'extra';
  if (Object.prototype.hasOwnProperty.call(m.extra_backends ?? {}, subdomain)) return 'extra backend';
  return 'web route';
}

function hostPortsOf(plan: ServicePlan, inputs: ExposureInputs): HostPortExposure[] {
  const out: HostPortExposure[] = [];
  for (const c of plan.containers) {
    const bindings = (c.create.HostConfig?.PortBindings ?? {}) as Record<string, { HostIp?: string; HostPort?: string }[] | undefined>;
    for (const key of Object.keys(bindings).sort()) {
      const [containerPort = key, protocol = 'tcp'] = key.split('/');
      for (const b of bindings[key] ?? []) {
        const verdict = hostPortVerdict(b.HostPort ?? '', protocol, { publish: inputs.install?.publish ?? [], corePorts: inputs.corePorts });
        const note =
          verdict.kind === 'consented'
            ? 'consented'
            : verdict.kind === 'core'
              ? `refused: a core port (${verdict.core.what})`
              : `needs spec.publish: ["${verdict.spelled}"] in ServiceInstall/${inputs.manifest.id}`;
        out.push({ port: verdict.spelled, hostIp: b.HostIp ?? '', container: c.name, containerPort, verdict: verdict.kind, note });
      }
    }
  }
  return out;
}

/** What installing a catalog service opens, from its manifest and the trial render of its template. */
export function serviceExposure(inputs: ExposureInputs): ServiceExposure {
  const m = inputs.manifest;
  const plan = inputs.plan;
  const subdomains = serviceClaims(m).map(([subdomain, backend]) => ({
    subdomain,
    role: roleOf(m, subdomain),
    backend,
    ...(inputs.cell ? { host: `${subdomain}.${inputs.cell.domain}` } : {}),
  }));
  const fromPlan = plan?.containers ?? [];
  const templateVolumes = (plan?.volumes ?? []).map((v) => ({ key: v.labels[LABEL.volume] ?? v.name, dockerName: v.name }));
  return {
    id: m.id,
    name: m.name,
    version: m.version,
    author: m.author,
    description: m.description,
    minPicVersion: m.min_pic_version ?? null,
    installed: inputs.cell ? inputs.install !== undefined : null,
    subdomains,
    hostPorts: plan ? hostPortsOf(plan, inputs) : null,
    peerPorts: [...new Set((m.iptables_rules ?? []).map((r) => `${r.dest_port}/${r.proto ?? 'tcp'}`))],
    egress: m.capabilities.has_egress && m.egress ? { default: m.egress.default, allowed: [...m.egress.allowed] } : null,
    accounts: m.capabilities.has_accounts && m.accounts ? { manager: m.accounts.manager, credentials: [...m.accounts.credentials], peerConfig: Object.keys(m.peer_config_template ?? {}) } : null,
    capabilities: [...(m.connectivity?.cap_add ?? [])],
    volumes: { template: templateVolumes, manifest: [...(m.volumes ?? [])], backup: [...(m.backup?.volumes ?? [])] },
    hostFolders: [...(plan?.bindSources ?? [])],
    containers: [...new Set([m.container_name, ...(m.containers ?? []), ...fromPlan.map((c) => c.name)])].sort(),
    images: [...new Set([m.image, ...fromPlan.flatMap((c) => (typeof c.create.Image === 'string' ? [c.create.Image] : []))])].sort(),
    installScript: inputs.installScript,
    problems: inputs.problems.map((p) => relativeProblem(p, inputs.catalogDir)),
  };
}

const NONE = 'none';

function list(items: readonly string[]): string {
  return items.length === 0 ? NONE : items.join(', ');
}

/** `pic catalog show` as text: every line through safeLine. */
export function renderExposureText(e: ServiceExposure): string {
  const lines: string[] = [];
  const field = (label: string, value: string): void => {
    lines.push(`${`${label}:`.padEnd(20)}${value}`);
  };
  const block = (label: string, items: readonly string[]): void => {
    if (items.length === 0) field(label, NONE);
    else {
      lines.push(`${label}:`);
      for (const item of items) lines.push(`  ${item}`);
    }
  };
  field('ID', e.id);
  field('Name', e.name);
  field('Version', e.version);
  field('Author', e.author);
  field('Description', e.description);
  if (e.minPicVersion !== null) field('Needs pic', `>= ${e.minPicVersion}`);
  field('Installed', e.installed === null ? `${UNKNOWN} (no cell given)` : e.installed ? 'yes' : 'no');
  lines.push('', 'Installing it opens:');
  block(
    'Subdomains',
    e.subdomains.map((s) => `${s.host ?? s.subdomain}  (${s.role}, to ${s.backend})`),
  );
  if (e.hostPorts === null) field('Host ports', 'unknown: the template does not render (see Problems)');
  else block('Host ports', e.hostPorts.map((p) => `${p.port}${p.hostIp ? ` on ${p.hostIp}` : ''} -> ${p.container}:${p.containerPort}  ${p.note}`));
  field('Peer ports', e.peerPorts.length === 0 ? NONE : `${e.peerPorts.join(', ')} (on the service address, from the peers' VPN)`);
  field('Egress', e.egress ? `${e.egress.allowed.join(', ')} (default ${e.egress.default})` : 'default only (declares no egress choice)');
  field('Accounts', e.accounts ? `${e.accounts.manager} manager; hands out ${list(e.accounts.credentials)}${e.accounts.peerConfig.length > 0 ? `; peers get ${e.accounts.peerConfig.join(', ')}` : ''}` : NONE);
  field('Capabilities', list(e.capabilities));
  block('Volumes', [
    ...e.volumes.template.map((v) => `${v.key} (template; Docker volume ${v.dockerName})`),
    ...e.volumes.manifest.map((v) => `${v.name} at ${v.mount} (manifest)`),
    ...e.volumes.backup.map((v) => `${v.name}: ${v.container}:${v.path} (backed up)`),
  ]);
  if (e.hostFolders.length > 0) block('Host folders', e.hostFolders);
  field('Containers', list(e.containers));
  field('Images', list(e.images));
  field('install.sh', e.installScript ? 'yes (run once per admitted version in a sandboxed helper: no network, no capabilities, time limit)' : 'no');
  block('Problems', e.problems);
  return lines.map(safeLine).join('\n');
}

export function renderExposure(e: ServiceExposure, format: 'table' | 'json' | 'yaml'): string {
  if (format === 'json') return toJsonText(e);
  if (format === 'yaml') return toYamlText(e);
  return renderExposureText(e);
}

/** What `pic catalog refresh` did: one line, or the report as JSON/YAML. Every URL and message passes safeLine. */
export function renderRefreshReport(report: RefreshReport, format: 'table' | 'json' | 'yaml'): string {
  if (format === 'json') return toJsonText(report);
  if (format === 'yaml') return toYamlText(report);
  const cost = `${report.requests} request${report.requests === 1 ? '' : 's'}, ${report.bytes} bytes, ${report.writes} write${report.writes === 1 ? '' : 's'}`;
  const cached = report.fetchedAt ? `the catalog in use was fetched ${report.fetchedAt}` : 'no catalog is cached';
  switch (report.outcome) {
    case 'updated':
      return `${safeLine(report.url)}: updated (${cost}); ${cached}`;
    case 'unchanged':
      return `${safeLine(report.url)}: unchanged, the store answered 304 (${cost}); ${cached}`;
    case 'failed':
      return `${safeLine(report.url)}: refresh failed: ${safeLine(report.failure?.url ?? report.url)}: ${safeLine(report.failure?.message ?? 'unknown')} (${cost}); ${report.fetchedAt ? `${cached}, and it stays in use` : 'no catalog is cached yet'}`;
  }
}
