import type Dockerode from 'dockerode';
import type { Problem } from '../crds/types.js';
import { cellContextOf } from '../reconcilers/containers/desired.js';
import { reconcileServiceContainers, removeServiceContainers } from '../reconcilers/containers/index.js';
import { planCore } from './reconcile-core.js';
import { listOwnedContainers, type ObservedContainer } from '../reconcilers/containers/observe.js';
import type { ContainerAction } from '../reconcilers/containers/plan.js';
import { publishedPortsOf } from '../reconcilers/containers/translate.js';
import type { DesiredContainer } from '../reconcilers/containers/types.js';
import { templateSecretNames } from '../reconcilers/containers/render.js';
import type { LoadedCell } from '../state/cell.js';
import { AppliedStore } from '../state/applied-store.js';
import { documentKey } from '../state/desired.js';
import { holdBrokenDocuments } from '../state/hold.js';
import { IpAllocationStore, allocateServiceIp, parsePool } from '../state/ip-allocation.js';
import { SecretsStore } from '../state/secrets.js';
import type { StateDir } from '../state/state-dir.js';
import { DEFAULT_UPGRADE_DEADLINE_MS } from '../reconcilers/upgrade/index.js';
import { SERVICE_KIND, serviceKey } from './reconcile-service.js';
import { OperatorContext } from './context.js';
import { createLogger } from './logging.js';
import { SharedResources } from './shared-resources.js';
import { CELL_RESOURCES } from './resources.js';
import { StatusStore } from '../state/status-store.js';
import { EventLog } from '../state/events.js';


export interface PlannedChange {
  key: string;
  lines: string[];
}

export interface CellPlan {
  changes: PlannedChange[];
  /** Facts worth telling that change nothing: a newer catalog version, an upgrade that failed. */
  notices: string[];
  /** Documents that cannot converge as written, and problems of the folder. */
  problems: Problem[];
}

/** One line per action, in the order they would run. */
/** What a container opens on the host, for the admin who consented to it: ", publishing host port 25/tcp on 0.0.0.0 → cell-mail:25". */
function publishing(container: DesiredContainer): string {
  const ports = publishedPortsOf({ containers: [container], volumes: [] });
  return ports.length === 0 ? '' : `, publishing host port${ports.length === 1 ? '' : 's'} ${ports.join(', ')} (consented in spec.publish)`;
}

export function describeAction(a: ContainerAction): string {
  switch (a.type) {
    case 'conflict':
      return `! conflict ${a.name}: ${a.message}`;
    case 'remove':
      return `- remove container ${a.name} (${a.reason})`;
    case 'ensure-network':
      return '+ ensure network';
    case 'create-volume':
      return `+ volume ${a.volume.name} (kept if it exists)`;
    case 'pull-image':
      return `+ pull image ${a.image}`;
    case 'create':
      return `+ create container ${a.container.name} from ${String(a.container.create.Image)}${publishing(a.container)}`;
    case 'recreate':
      return `~ recreate container ${a.container.name} (${a.reason})${publishing(a.container)}`;
    case 'start':
      return `> start container ${a.container.name}`;
  }
}

/**
 * What a reconcile would change, without changing anything: no container, no state file, not
 * even an IP allocation or a secret is written. Addresses and secrets not yet allocated are shown
 * as they would be.
 */
export async function planCell(loaded: LoadedCell, docker: Dockerode, stateDir: StateDir): Promise<CellPlan> {
  // What the operator would hold (a broken file is not a removal) is held here too.
  const { cell } = holdBrokenDocuments(loaded, await new AppliedStore(stateDir.paths.applied).load());
  const problems: Problem[] = [...cell.checked.general];
  for (const entry of cell.held.values()) for (const p of entry.problems) if (!problems.includes(p)) problems.push(p);
  const changes: PlannedChange[] = [];
  const notices: string[] = [];
  const cellDoc = cell.cell;
  if (!cellDoc || cell.frozen) return { changes, problems, notices };
  const ips = new IpAllocationStore(stateDir.paths.ipAllocations);
  await ips.load();
  const assignments = ips.assignments();
  const secretsStore = new SecretsStore(stateDir.paths.secrets);
  const observed = await listOwnedContainers(docker, { cell: cellDoc.metadata.name });
  const byOwner = new Map<string, ObservedContainer[]>();
  for (const c of observed) {
    if (!byOwner.has(c.owner)) byOwner.set(c.owner, []);
    byOwner.get(c.owner)!.push(c);
  }
  const pool = parsePool(cellDoc.spec.network.servicePool, cellDoc.spec.network.subnet);
  const desiredKeys = new Set<string>([...cell.held.keys()]);

  for (const { doc } of [...cell.docs.services].sort((a, b) => a.doc.metadata.name.localeCompare(b.doc.metadata.name))) {
    const key = documentKey(doc);
    desiredKeys.add(key);
    if (cell.held.has(key)) continue; // held at what it was: nothing changes, its problems are listed
    const docProblems = cell.checked.byDocument.get(key) ?? [];
    if (docProblems.length > 0) {
      problems.push(...docProblems);
      continue;
    }
    const name = doc.metadata.name;
    const service = cell.catalog!.services.get(name)!;
    const lines: string[] = [];
    const decision = cell.checked.versions.get(name);
    if (decision?.kind === 'install') lines.push(`+ admit version ${decision.version} (its package is kept in the state directory and renders the service from now on)`);
    if (decision?.kind === 'upgrade') {
      const deadline = doc.spec.upgrade?.deadlineSeconds ?? DEFAULT_UPGRADE_DEADLINE_MS / 1000;
      lines.push(`~ upgrade ${decision.from} → ${decision.to}: snapshot and verify the data, switch to the new package and image, wait up to ${deadline}s for Ready; on failure roll back to ${decision.from} and restore the snapshot`);
    }
    if (decision?.kind === 'admitted' && decision.update) notices.push(`${key}: version ${decision.update} is in the catalog (admitted: ${decision.version}); set spec.version to ${decision.update} to upgrade`);
    if (decision?.kind === 'upgrade-failed') notices.push(`${key}: the upgrade to ${decision.target} failed (${decision.failed.reason}); running ${decision.running}, not retried until the document changes`);
    const ip = allocateServiceIp(pool, assignments, key);
    if (assignments[key] !== ip) lines.push(`+ allocate IP ${ip}`);
    assignments[key] = ip;
    const existing = await secretsStore.get(name);
    const secrets: Record<string, string> = {};
    for (const secretName of templateSecretNames(service.template)) {
      if (existing[secretName] !== undefined) secrets[secretName] = existing[secretName]!;
      else {
        secrets[secretName] = '(to be generated)';
        lines.push(`+ generate secret PIC_SECRET_${secretName}`);
      }
    }
    const preview = await reconcileServiceContainers(docker, {
      owner: key,
      cellName: cellDoc.metadata.name,
      inputs: {
        manifest: service.manifest,
        template: service.template,
        templateFile: service.templateFile,
        manifestFile: service.manifestFile,
        config: cell.checked.configs.get(name)!,
        secrets,
        serviceIp: ip,
        publish: doc.spec.publish ?? [],
        cell: cellContextOf(cellDoc, stateDir.paths.data, stateDir.root),
      },
      observed: byOwner.get(key) ?? [],
    }, 'dry-run');
    if (preview.outcome === 'refused') {
      problems.push(...(preview.problems.length > 0 ? preview.problems : [{ file: service.templateFile, pointer: '', message: preview.message }]));
      continue;
    }
    const actions = preview.actions;
    lines.push(...actions.filter((a) => a.type !== 'ensure-network').map(describeAction));
    if (lines.length > 0) changes.push({ key, lines });
  }
  for (const r of cell.docs.rejected) if (r.key?.startsWith(`${SERVICE_KIND}/`)) desiredKeys.add(r.key);

  for (const [owner, own] of [...byOwner.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    if (!owner.startsWith(`${SERVICE_KIND}/`) || desiredKeys.has(owner)) continue;
    const actions = await removeServiceContainers(docker, { owner, cellName: cellDoc.metadata.name, observed: own }, 'dry-run');
    const lines = actions.map(describeAction);
    if (assignments[owner] !== undefined) lines.push(`- release IP ${assignments[owner]}`);
    if (lines.length > 0) changes.push({ key: owner, lines: [...lines, '  (volumes and data are kept)'] });
  }
  for (const owner of Object.keys(assignments).sort()) {
    if (owner.startsWith(`${SERVICE_KIND}/`) && !desiredKeys.has(owner) && !byOwner.has(owner)) {
      changes.push({ key: owner, lines: [`- release IP ${assignments[owner]}`] });
    }
  }
  changes.push(...(await planCore(docker, cellDoc, { stateRoot: stateDir.root, cellDir: cell.dir }, byOwner, describeAction)));
  // Routes, zone, rules and accounts as they would be once the services above have converged.
  for (const owner of Object.keys(assignments)) if (!desiredKeys.has(owner)) delete assignments[owner];
  const silent = createLogger({ json: true, level: 'error' });
  const ctx = new OperatorContext(docker, ips, secretsStore, new StatusStore(stateDir.paths.status), new EventLog(stateDir.paths.events), silent, stateDir.paths.data);
  const shared = new SharedResources(ctx, CELL_RESOURCES, stateDir.root, cell.dir);
  changes.push(...(await shared.planResources(cell, assignments)));
  return { changes, problems, notices };
}

export { serviceKey };
