/**
 * `pic plan`: the operator's own reconcile pipeline, run as a dry run. The same keys (pass-keys.ts)
 * with the same share of one container listing, the same reconciles of services, Connections'
 * exits and core components — image gate, address allocation, secrets, containers — and the same
 * shared resources, with a context whose every effect is noted instead of made (plan-journal.ts):
 * no Docker write, no status, no event, no state file. The image gate asks the registry as the
 * operator would and reads the verification cache without adding to it; addresses are allocated
 * by the operator's own function, computed and not saved.
 */
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { Problem } from '../crds/types.js';
import { listOwnedContainers } from '../reconcilers/containers/observe.js';
import { isCoreKey } from '../reconcilers/core/spec.js';
import { isTerminal } from '../reconcilers/errors.js';
import { AppliedStore } from '../state/applied-store.js';
import type { LoadedCell } from '../state/cell.js';
import { CONNECTION_KIND, documentKey, nameInKey, serviceKey } from '../state/document-keys.js';
import { EventLog } from '../state/events.js';
import { holdBrokenDocuments } from '../state/hold.js';
import { IpAllocationStore } from '../state/ip-allocation.js';
import { SecretsStore } from '../state/secrets.js';
import type { StateDir } from '../state/state-dir.js';
import { StatusStore } from '../state/status-store.js';
import { OperatorContext } from './context.js';
import { createLogger } from './logging.js';
import { ownersOfPass } from './pass-keys.js';
import { PlanJournal, type PlannedChange } from './plan-journal.js';
import { reconcileCoreReporting } from './reconcile-core.js';
import { reconcileConnection } from './reconcile-connection.js';
import { reconcileServiceReporting } from './reconcile-service.js';
import { CELL_RESOURCES } from './resources.js';
import { SharedResources } from './shared-resources.js';

export { describeAction, type PlannedChange } from './plan-journal.js';

export interface CellPlan {
  changes: PlannedChange[];
  /** Facts worth telling that change nothing: a newer catalog version, an upgrade that failed. */
  notices: string[];
  /** Documents that cannot converge as written (what the operator would refuse), and problems of the folder. */
  problems: Problem[];
}

/**
 * What a reconcile would change, without changing anything: no container, no state file, not
 * even an IP allocation or a secret is written. Addresses and secrets not yet allocated are shown
 * as the operator would allocate them.
 */
export async function planCell(loaded: LoadedCell, docker: Dockerode, stateDir: StateDir): Promise<CellPlan> {
  // What the operator would hold (a broken file is not a removal) is held here too.
  const { cell } = holdBrokenDocuments(loaded, await new AppliedStore(stateDir.paths.applied).load());
  const problems: Problem[] = [...cell.checked.general];
  for (const entry of cell.held.values()) for (const p of entry.problems) if (!problems.includes(p)) problems.push(p);
  const cellDoc = cell.cell;
  if (!cellDoc || cell.frozen) return { changes: [], problems, notices: [] };

  const journal = new PlanJournal();
  const ips = new IpAllocationStore(stateDir.paths.ipAllocations, { dryRun: true });
  await ips.load();
  const status = new StatusStore(stateDir.paths.status);
  const silent = createLogger({ json: true, level: 'error' });
  const ctx = new OperatorContext(docker, ips, new SecretsStore(stateDir.paths.secrets), status, new EventLog(stateDir.paths.events), silent, stateDir.paths.data, undefined, journal);
  ctx.useCell(cellDoc);

  // The operator's resync: one listing, each owner handed its share, in the same order.
  const listing = await listOwnedContainers(docker, { cell: cellDoc.metadata.name });
  const owners = ownersOfPass(cell, listing, [...(await status.keys()).map((s) => s.key), ...Object.keys(ips.assignments())]);
  const dirs = { stateRoot: stateDir.root, cellDir: cell.dir };
  for (const [key, observed] of owners) {
    // Held at what it was: nothing changes, its problems are listed above.
    if (cell.held.has(key)) continue;
    try {
      const name = key.slice(key.indexOf('/') + 1);
      if (isCoreKey(key)) await reconcileCoreReporting(ctx, cell, key, dirs, observed);
      else if (nameInKey(key, CONNECTION_KIND) !== undefined) await reconcileConnection(ctx, cell, name, observed);
      else await reconcileServiceReporting(ctx, cell, name, observed);
    } catch (err) {
      problems.push(...refusalOf(cell, key, err));
    }
  }
  // Routes, zone, rules, peers and accounts as they would be once the owners above converged: from
  // the addresses the dry run allocated and released.
  const shared = new SharedResources(ctx, CELL_RESOURCES, stateDir.root, cell.dir);
  const changes = [...journal.changes(), ...(await shared.planResources(cell))];
  return { changes, problems, notices: journal.notices };
}

/** What the operator would say of a reconcile that failed or refused: its problems, else one naming the document. */
function refusalOf(cell: LoadedCell, key: string, err: unknown): Problem[] {
  if (isTerminal(err) && err.problems.length > 0) return [...err.problems];
  const document = [...cell.docs.services, ...cell.docs.connections].find((d) => documentKey(d.doc) === key);
  const file = document?.file ?? (isCoreKey(key) ? path.join(cell.dir, 'cell.yaml') : key);
  const message = err instanceof Error ? err.message : String(err);
  return [{ file, pointer: '', message: isTerminal(err) ? `${key} is refused (${err.reason}): ${message}` : `${key} cannot converge now: ${message}` }];
}

export { serviceKey };
