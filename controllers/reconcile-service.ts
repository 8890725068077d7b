import { mergeServiceConfig, type ConfigValue } from '../crds/config.js';
import { reconcileServiceContainers, removeServiceContainers, summariseProblems } from '../reconcilers/containers/index.js';
import type { ObservedContainer } from '../reconcilers/containers/observe.js';
import { DEFAULT_MIN_READY_SECONDS, judgeReadiness, LOOP_MIN_READY_SECONDS } from '../reconcilers/containers/readiness.js';
import { templateSecretNames } from '../reconcilers/containers/render.js';
import { publishedPortsOf } from '../reconcilers/containers/translate.js';
import type { ServicePlan } from '../reconcilers/containers/types.js';
import type { ServiceInstance } from '../reconcilers/containers/desired.js';
import { TerminalError } from '../reconcilers/errors.js';
import { ServiceImages, verifyServiceImages, type GateRefusal } from '../reconcilers/images/index.js';
import type { LoadedCell } from '../state/cell.js';
import type { CatalogService } from '../state/catalog.js';
import { generationOf } from '../state/generation.js';
import { serviceKey } from '../state/document-keys.js';
import { changeLine, diffPackages } from '../state/manifest-diff.js';
import type { ContainerFact, DocumentStatus } from '../state/status-types.js';
import type { OperatorContext } from './context.js';
import { installScriptStep } from './install-script.js';
import { progressing, ready, refused } from './outcome.js';
import type { DocumentRef, StatusReport } from './status-writers.js';
import { upgradeService } from './upgrade-service.js';

export { generationOf };

export interface ReconcileOutcome {
  /** Ask the queue to look again after this long (a container still starting, say). */
  requeueAfterMs?: number;
  /** Whether anything was changed in Docker. */
  changed: boolean;
  /** Whether the service ended Ready. */
  ready?: boolean;
  /** The admitted version changed (admitted, upgraded, rolled back): read the cell again. */
  admissionChanged?: boolean;
  /** What the document's status says; none when there is nothing new to say (the document is gone: its status went with it). */
  status?: StatusReport;
  /** Handed to the queue once the status is written: a TerminalError is not retried, any other error is, with back-off. */
  error?: Error;
}

/** Why a package cannot converge now: the status it leaves, and the error the queue gets. */
export interface PackageHalt {
  halt: StatusReport;
  error: Error;
}

/** Stalled with `reason`, not retried until the document changes. */
function stalled(doc: DocumentRef, reason: string, message: string, error: Error = new TerminalError(message, reason)): ReconcileOutcome {
  return { changed: false, status: { doc, outcome: refused(reason, message) }, error };
}

/**
 * A refusal of the image gate: Stalled for a bad artifact or key, Reconciling for a registry that
 * may come back (retried with back-off); the verification facts are laid over the stored ones.
 */
export function gateHalt(doc: DocumentRef, gate: GateRefusal): PackageHalt {
  return {
    halt: { doc, outcome: gate.retry ? progressing(gate.reason, gate.message) : refused(gate.reason, gate.message), ...(gate.facts ? { facts: { ...gate.facts }, how: 'merge' as const } : {}) },
    error: gate.retry ? new Error(gate.message) : new TerminalError(gate.message, gate.reason),
  };
}

/** What the containers of a service look like, for its status. */
function containerFacts(plan: ServicePlan, observed: ObservedContainer[]): ContainerFact[] {
  return plan.containers.map((c) => {
    const o = observed.find((x) => x.name === c.name && x.specHash === c.specHash) ?? observed.find((x) => x.name === c.name);
    return {
      name: c.name,
      state: o?.state ?? 'absent',
      ...(o?.id ? { id: o.id.slice(0, 12) } : {}),
      ...(o?.health ? { health: o.health } : {}),
      ...(c.create.Image ? { image: String(c.create.Image) } : {}),
    };
  });
}

/**
 * Reconcile a service and write the status it returns through the ServiceInstall writer; a
 * reconcile that threw midway (Docker refused something) is reported by the one rule
 * (ServiceStatuses.failed). The error a reconcile returns or throws then goes to the queue.
 */
export async function reconcileServiceReporting(ctx: OperatorContext, cell: LoadedCell, name: string, cached?: ObservedContainer[], hooks: ReconcileHooks = {}): Promise<ReconcileOutcome> {
  const key = serviceKey(name);
  let result: ReconcileOutcome;
  try {
    result = await reconcileService(ctx, cell, name, cached, hooks);
  } catch (err) {
    const source = cell.docs.services.find((s) => s.doc.metadata.name === name);
    if (source) await ctx.statuses.services.failed(key, { file: source.file, generation: generationOf(source.doc.spec) }, err);
    throw err;
  }
  if (result.status) {
    await ctx.statuses.services.report(key, result.status);
    if (result.changed && result.status.outcome.state === 'ready') ctx.event(key, 'Normal', 'Ready', result.status.outcome.message);
  }
  if (result.error) throw result.error;
  return result;
}

/**
 * Converge one ServiceInstall: its IP, secrets, rendered containers and volumes. Level-based: it
 * reads the desired snapshot and observes Docker afresh every time, never trusting what woke it.
 */
export interface ReconcileHooks {
  /**
   * Containers were created and are about to start (called once a pass, with the service's
   * address): routes and rules that only need the address can converge while they start, which
   * takes Docker far longer than any of that work, without slowing the creates before it.
   */
  starting?: (ip: string) => void;
  /**
   * Awaited once before the first container starts: a service assigned to a Connection has its
   * address fenced on the host first, so not one packet leaves directly.
   */
  fence?: (ip: string) => Promise<void>;
  /**
   * For a service assigned to a Connection: why it is not Ready although its containers are (its
   * exit is down), or undefined while the exit is healthy.
   */
  egress?: () => { reason: string; message: string } | undefined;
}

export async function reconcileService(ctx: OperatorContext, cell: LoadedCell, name: string, cached?: ObservedContainer[], hooks: ReconcileHooks = {}): Promise<ReconcileOutcome> {
  const key = serviceKey(name);
  const source = cell.docs.services.find((s) => s.doc.metadata.name === name);
  const cellDoc = cell.cell;
  if (!cellDoc) {
    const problems = cell.checked.general.length ? cell.checked.general : [{ file: `${cell.dir}/cell.yaml`, pointer: '', message: 'no valid Cell document' }];
    if (!source) return removeService(ctx, name, cached);
    const message = summariseProblems(problems);
    return stalled({ file: source.file, generation: generationOf(source.doc.spec) }, 'CellInvalid', message, new TerminalError(`the cell itself is invalid: ${message}`, 'CellInvalid'));
  }
  if (!source) {
    const rejected = cell.checked.byDocument.get(key);
    if (!rejected) return removeService(ctx, name, cached);
  }
  const generation = generationOf(source?.doc.spec);
  const file = source?.file ?? cell.docs.rejected.find((r) => r.key === key)?.file;
  const doc: DocumentRef = { ...(file ? { file } : {}), generation };
  const problems = cell.checked.byDocument.get(key) ?? [];
  const packages = ctx.packages;
  if (problems.length > 0 || !source) {
    // An upgrade left halfway by a killed operator is not left so because the document broke
    // meanwhile: nothing asks for it any more, so it is rolled back (or abandoned) first. What its
    // status would say gives way to the document's problem.
    if (source && (await packages.progress(name))) {
      await upgradeService(ctx, cell, name, { key, file: file!, generation, decision: undefined, packages }, (pkg, config) => convergePackage(ctx, cell, name, pkg, config, undefined, {}, { key, file, generation, notices: [] }), configFor);
    }
    return stalled(doc, 'InvalidSpec', summariseProblems(problems), new TerminalError(summariseProblems(problems), 'InvalidSpec', problems));
  }

  const decision = cell.checked.versions.get(name);
  // An upgrade asked for, or one a killed operator left halfway, runs before anything else.
  const upgraded = await upgradeService(ctx, cell, name, { key, file: file!, generation, decision, packages }, (pkg, config) => convergePackage(ctx, cell, name, pkg, config, undefined, {}, { key, file, generation, notices: [] }), configFor);
  if (upgraded) return upgraded;

  const service = cell.catalog!.services.get(name)!;
  let admissionChanged = false;
  if (decision?.kind === 'install') {
    // Kept before anything runs: from now on this package renders the service, whatever the catalog holds.
    if (ctx.dryRun) ctx.dryRun.note(key, `+ admit version ${decision.version} (its package is kept in the state directory and renders the service from now on)`);
    else {
      await packages.admit(name, service, ctx.clock());
      ctx.event(key, 'Normal', 'Admitted', `version ${decision.version} admitted; its package is kept in the state directory`);
    }
    admissionChanged = true;
  }
  const config = cell.checked.configs.get(name)!;
  const notices = cell.checked.notices.get(key) ?? [];
  const converged = await convergePackage(ctx, cell, name, service, config, cached, hooks, { key, file, generation, notices });
  if ('halt' in converged) return { changed: false, admissionChanged, status: converged.halt, error: converged.error };
  const { allocation, changed, facts: base } = converged;
  const offered = cell.catalog!.offered.get(name);
  const update = decision?.kind === 'admitted' && decision.update && offered
    ? { update: { version: decision.update, changes: diffPackages(service, offered).map(changeLine) } }
    : {};
  const failedUpgrade = decision?.kind === 'upgrade-failed' ? { upgradeFailed: { version: decision.target, reason: decision.failed.reason, at: decision.failed.at } } : {};
  const facts: ConvergedPackage['facts'] = { ...base, ...update, ...failedUpgrade };
  if (ctx.dryRun) {
    await installScriptStep(ctx, { key, name, service, generation, plan: converged.plan });
    // What would change is noted; whether it then runs is Docker's to tell, after the change.
    if (decision?.kind === 'admitted' && decision.update) ctx.dryRun.notice(`${key}: version ${decision.update} is in the catalog (admitted: ${decision.version}); set spec.version to ${decision.update} to upgrade`);
    if (decision?.kind === 'upgrade-failed') ctx.dryRun.notice(`${key}: the upgrade to ${decision.target} failed (${decision.failed.reason}); running ${decision.running}, not retried until the document changes`);
    return { changed, admissionChanged };
  }
  // The one readiness rule (reconcilers/containers/readiness.ts), with the loop's window: judged
  // again on every Docker event of the service, so a container that dies later is seen then.
  const window = Math.min(LOOP_MIN_READY_SECONDS, minReadySecondsOf(cell, name));
  const verdict = judgeReadiness(converged.expected, converged.observed, window);
  if (verdict.state === 'failed') {
    const reason = verdict.cause === 'health' ? 'ContainersUnhealthy' : 'ContainersNotRunning';
    return { changed, admissionChanged, status: { doc, outcome: progressing(reason, verdict.reason), facts }, error: new Error(verdict.reason) };
  }
  // install.sh runs once the service's containers run with the admitted version (ADR: sandboxed,
  // controllers/install-script.ts); a failure stalls the service until the version or document changes.
  if (converged.expected.every((n) => converged.observed.some((o) => o.name === n && o.state === 'running'))) {
    const install = await installScriptStep(ctx, { key, name, service, generation, plan: converged.plan });
    if (install.fact) facts.installScript = install.fact;
    if (install.failure) return { changed: changed || install.ran, admissionChanged, status: { doc, outcome: refused(install.failure.reason, install.failure.message), facts }, error: new TerminalError(install.failure.message, install.failure.reason) };
  }
  if (verdict.state === 'waiting') {
    const reason = verdict.cause === 'health' ? 'HealthCheckPending' : verdict.cause === 'window' ? 'Settling' : 'ContainersNotRunning';
    return { requeueAfterMs: verdict.retryAfterMs, changed, admissionChanged, status: { doc, outcome: progressing(reason, verdict.reason), facts } };
  }
  const running = `${facts.containers.length} container${facts.containers.length === 1 ? '' : 's'} running at ${allocation.ip}`;
  if (decision?.kind === 'upgrade-failed') {
    // Running, at the previous version: the failed upgrade is not tried again until the document changes.
    const message = `upgrade to ${decision.target} failed: ${decision.failed.reason}; running version ${decision.running} (${running}); edit the document to try again`;
    return { changed, ready: false, admissionChanged, status: { doc, outcome: refused('UpgradeFailed', message), facts } };
  }
  const egressDown = hooks.egress?.();
  if (egressDown) return { changed, ready: false, admissionChanged, status: { doc, outcome: progressing(egressDown.reason, `${running}; ${egressDown.message}`), facts } };
  return { changed, ready: true, admissionChanged, status: { doc, outcome: ready(changed ? 'Converged' : 'InSync', running), facts } };
}

/** What converging one package of a service gives: its address, whether Docker changed, its facts. */
export interface ConvergedPackage {
  allocation: { ip: string };
  changed: boolean;
  /** The names of the containers the package renders, and what Docker showed of them after the pass. */
  expected: string[];
  observed: ObservedContainer[];
  /** What was rendered (the containers' create options), for the install script's helper. */
  plan: ServicePlan;
  facts: { serviceIp: string; containers: ContainerFact[]; notices: string[]; version: string; [key: string]: unknown };
}

/**
 * Converge the service's containers to one package (the admitted one; during an upgrade the new
 * one, or the previous one on rollback): image verification, address, secrets, containers.
 */
/** The stability window of the service's readiness (ServiceInstall spec.minReadySeconds). */
export function minReadySecondsOf(cell: LoadedCell, name: string): number {
  return cell.docs.services.find((s) => s.doc.metadata.name === name)?.doc.spec.minReadySeconds ?? DEFAULT_MIN_READY_SECONDS;
}

/** The host ports the admin consented to for the service (its ServiceInstall's spec.publish). */
export function consentedPortsOf(cell: LoadedCell, name: string): string[] {
  return cell.docs.services.find((s) => s.doc.metadata.name === name)?.doc.spec.publish ?? [];
}

export async function convergePackage(
  ctx: OperatorContext,
  cell: LoadedCell,
  name: string,
  service: CatalogService,
  config: Record<string, ConfigValue>,
  cached: ObservedContainer[] | undefined,
  hooks: ReconcileHooks,
  where: { key: string; file: string | undefined; generation: string; notices: string[]; instance?: ServiceInstance },
): Promise<ConvergedPackage | PackageHalt> {
  const { key, file, generation, notices, instance } = where;
  const doc: DocumentRef = { ...(file ? { file } : {}), generation };
  // A Connection's exit is converged here too: its status is its own kind's.
  const statuses = ctx.statuses.of(key);
  const cellDoc = cell.cell!;
  // ADR 001: every image is checked against the Cell's keys before anything of the service exists;
  // a refusal is returned (nothing is created), and whatever ran before keeps running.
  const verifiedImages = await verifyServiceImages(ctx, {
    key,
    cell: cellDoc,
    cellDir: cell.dir,
    template: service.template,
    ...(instance ? { instanceId: instance.id } : {}),
    progressing: async (reason, message) => {
      await statuses.write(key, doc, progressing(reason, message), undefined, 'merge');
    },
  });
  if (!(verifiedImages instanceof ServiceImages)) return gateHalt(doc, verifiedImages);
  const network = cellDoc.spec.network;
  const owner = key;
  const before = ctx.ips.assignmentOf(owner);
  const allocation = await ctx.ips.allocate(owner, network.servicePool, network.subnet);
  if (allocation.ip !== before) ctx.dryRun?.note(key, `+ allocate IP ${allocation.ip}`);
  // An exit's secrets are its instance's: a ServiceInstall of the same name never shares them.
  const secrets = await ensureSecrets(ctx, key, instance ? `${service.manifest.id}-${instance.id}` : name, templateSecretNames(service.composeTemplate));
  const result = await reconcileServiceContainers(
    ctx.docker,
    {
      owner,
      cellName: cellDoc.metadata.name,
      inputs: {
        manifest: service.manifest,
        template: service.composeTemplate,
        templateFile: service.templateFile,
        manifestFile: service.manifestFile,
        config,
        secrets,
        serviceIp: allocation.ip,
        publish: instance ? [] : consentedPortsOf(cell, name),
        cell: { ...ctx.cellContext(cellDoc), stateDir: ctx.stateRoot },
        ...(instance ? { instance } : {}),
      },
      ...(cached ? { observed: cached } : {}),
      memo: cell.memo,
    },
    ctx.dryRun ? 'dry-run' : {
      network: ctx.network,
      event: (e) => ctx.event(key, e.type ?? 'Normal', e.reason, e.message),
      log: (line) => ctx.logger.info(line, { key }),
      // Written while Docker works (statuses of one key are stored in order, so a later verdict
      // cannot be overtaken).
      progressing: async (summary, plan, observed) => {
        await statuses.write(key, doc, progressing('Progressing', summary), { serviceIp: allocation.ip, containers: containerFacts(plan, observed), notices });
      },
      starting: () => hooks.starting?.(allocation.ip),
      ...(hooks.fence ? { fence: () => hooks.fence!(allocation.ip) } : {}),
      prepareImages: (plan, images) => verifiedImages.ensurePresent(plan, images),
    },
  );
  if (result.outcome === 'refused') {
    const facts = result.reason === 'NameConflict' ? { facts: { serviceIp: allocation.ip, notices } } : {};
    return { halt: { doc, outcome: refused(result.reason, result.message), ...facts }, error: new TerminalError(result.message, result.reason, result.problems) };
  }
  const { plan, observed, changed } = result;
  ctx.dryRun?.noteActions(key, result.actions);
  const published = publishedPortsOf(plan);
  return {
    allocation,
    changed,
    expected: plan.containers.map((c) => c.name),
    observed,
    plan,
    facts: { serviceIp: allocation.ip, containers: containerFacts(plan, observed), notices, version: service.manifest.version, ...(published.length > 0 ? { publishedPorts: published } : {}), ...verifiedImages.facts },
  };
}

/** The service's secrets, the missing ones generated (never rotated); a dry run notes which would be. */
async function ensureSecrets(ctx: OperatorContext, key: string, name: string, names: readonly string[]): Promise<Record<string, string>> {
  if (!ctx.dryRun) return ctx.secrets.ensure(name, names);
  const stored = await ctx.secrets.get(name);
  const secrets: Record<string, string> = {};
  for (const secret of names) {
    const value = Object.prototype.hasOwnProperty.call(stored, secret) ? stored[secret] : undefined;
    if (value === undefined) ctx.dryRun.note(key, `+ generate secret PIC_SECRET_${secret}`);
    Object.defineProperty(secrets, secret, { value: value ?? '(to be generated)', enumerable: true, writable: true, configurable: true });
  }
  return secrets;
}

/** The config of a service merged against another package's schema (the previous one, on rollback). */
export function configFor(service: CatalogService, given: Record<string, unknown> | undefined, file: string): Record<string, ConfigValue> {
  const m = service.manifest;
  return mergeServiceConfig(m.capabilities.has_admin_config ? m.config_schema : {}, given, file).config;
}

/** Converge a ServiceInstall whose document is gone: containers removed, IP released, volumes kept. */
export async function removeService(ctx: OperatorContext, name: string, cached?: ObservedContainer[]): Promise<ReconcileOutcome> {
  const key = serviceKey(name);
  const actions = await removeServiceContainers(
    ctx.docker,
    { owner: key, cellName: ctx.cellName, ...(cached ? { observed: cached } : {}) },
    ctx.dryRun ? 'dry-run' : { network: ctx.network, event: (e) => ctx.event(key, e.type ?? 'Normal', e.reason, e.message) },
  );
  const ip = ctx.ips.assignmentOf(key);
  const released = await ctx.ips.release(key);
  if (ctx.dryRun) {
    ctx.dryRun.noteActions(key, actions);
    if (released) ctx.dryRun.note(key, `- release IP ${ip}`);
    if (actions.length > 0 || released) ctx.dryRun.note(key, '  (volumes and data are kept)');
    return { changed: false };
  }
  // A reinstall admits the catalog's version afresh; the volumes (the data) are kept as always.
  const forgotten = await ctx.packages.forget(name);
  const hadStatus = await ctx.statuses.services.remove(key);
  if (actions.length > 0 || released || hadStatus) ctx.event(key, 'Normal', 'Removed', `uninstalled: ${actions.length} container(s) removed, volumes and data kept`);
  return { changed: actions.length > 0, ...(forgotten ? { admissionChanged: true } : {}) };
}

export type { DocumentStatus };
