/**
 * A Connection runs its exit: one instance of the connectivity service that provides its type,
 * converged like a service (the same pipeline, image gate, labels and readiness rule), named by
 * `${INSTANCE_ID}`, with the Connection's configFile mounted read-only. Ready means what a person
 * means by it: the exit runs and its health probe (the image's healthcheck: a fresh WireGuard
 * handshake, a connection through the tunnel) passes. Steering and the kill switch are the
 * egress resource's (reconcilers/egress/); this tells it whether the exit is healthy.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { mergeServiceConfig } from '../crds/config.js';
import { DEFAULT_CONNECTION_CONFIG_PATH } from '../crds/schemas.js';
import type { ConnectionDocument } from '../crds/types.js';
import { removeServiceContainers } from '../reconcilers/containers/index.js';
import type { ObservedContainer } from '../reconcilers/containers/observe.js';
import { DEFAULT_MIN_READY_SECONDS, judgeReadiness, LOOP_MIN_READY_SECONDS } from '../reconcilers/containers/readiness.js';
import { TerminalError } from '../reconcilers/errors.js';
import { writeFileAtomic } from '../state/atomic-write.js';
import type { LoadedCell } from '../state/cell.js';
import type { CatalogService } from '../state/catalog.js';
import { exitServiceOf } from '../state/check-desired.js';
import { connectionKey } from '../state/document-keys.js';
import { generationOf } from '../state/generation.js';
import type { OperatorContext } from './context.js';
import { failed, progressing, ready, refused } from './outcome.js';
import { convergePackage, type ReconcileOutcome } from './reconcile-service.js';

/** `${INSTANCE_ID}` of a Connection: 8 hex characters of its name's SHA-256, stable for the name. */
export function instanceIdOf(connection: string): string {
  return createHash('sha256').update(connection).digest('hex').slice(0, 8);
}

/** The catalog package that implements a Connection (state/check-desired.ts decides which). */
export function exitPackageOf(offered: ReadonlyMap<string, CatalogService>, doc: ConnectionDocument): { service?: CatalogService; problem?: string } {
  const resolved = exitServiceOf(new Map([...offered].map(([id, pkg]) => [id, pkg.manifest])), doc);
  if ('problem' in resolved) return { problem: resolved.problem };
  return { service: offered.get(resolved.id)! };
}

/** Where pic keeps an instance's copy of the configFile (0600), which the exit mounts read-only. */
export function connectionFilesDir(stateRoot: string, instanceId: string): string {
  return path.join(stateRoot, 'connections', instanceId);
}

/**
 * Reads the configFile (relative to the document, or absolute on the host) and keeps a copy pic
 * owns, written only when its content changed (a dry run writes none). The content is never logged
 * or put in a status.
 */
async function keepConfigFile(stateRoot: string, instanceId: string, doc: ConnectionDocument, documentFile: string, warn: (message: string) => void, dryRun: boolean): Promise<{ source: string; digest: string } | undefined> {
  const given = doc.spec.configFile;
  if (given === undefined) return undefined;
  const file = path.isAbsolute(given) ? given : path.resolve(path.dirname(documentFile), given);
  let content: Buffer;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new TerminalError(`${documentFile}: /spec/configFile: ${file} is not a regular file`, 'ConfigFileInvalid');
    if ((stat.mode & 0o077) !== 0) warn(`${file} (spec.configFile) is readable by ${stat.mode & 0o007 ? 'others' : 'its group'}; it may hold a private key: chmod 600 it`);
    content = await fs.readFile(file);
  } catch (err) {
    if (err instanceof TerminalError) throw err;
    throw new TerminalError(`${documentFile}: /spec/configFile: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'ConfigFileMissing');
  }
  const digest = createHash('sha256').update(content).digest('hex');
  const dir = connectionFilesDir(stateRoot, instanceId);
  const source = path.join(dir, 'config');
  const kept = await fs.readFile(source).catch(() => undefined);
  if (!dryRun && (!kept || !kept.equals(content))) {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(source, content, 0o600);
  }
  return { source, digest };
}

export interface ConnectionOutcome extends ReconcileOutcome {
  /** Whether the exit is healthy (running, its probe passing): what fail-open steering follows. */
  healthy: boolean;
}

/**
 * Converge one Connection's exit and write the status it returns through the Connection writer
 * (a reconcile that threw midway is reported by the one rule); the error it returns or throws
 * then goes to the queue.
 */
export async function reconcileConnection(ctx: OperatorContext, cell: LoadedCell, name: string, cached?: ObservedContainer[]): Promise<ConnectionOutcome> {
  const key = connectionKey(name);
  const source = cell.docs.connections.find((c) => c.doc.metadata.name === name);
  if (!source || !cell.cell || !cell.catalog) return { ...(await removeConnection(ctx, name, cached)), healthy: false };
  const statuses = ctx.statuses.connections;
  let result: ConnectionOutcome;
  try {
    result = await convergeConnection(ctx, cell, source, cached);
  } catch (err) {
    await statuses.write(key, { file: source.file, generation: generationOf(source.doc.spec) }, failed(err), undefined, 'merge');
    throw err;
  }
  if (result.status) {
    await statuses.report(key, result.status);
    if (result.changed && result.status.outcome.state === 'ready') ctx.event(key, 'Normal', 'Ready', result.status.outcome.message);
  }
  if (result.error) throw result.error;
  return result;
}

/** One Connection's exit: the catalog service that provides it, its config file, its containers; returns its status. */
async function convergeConnection(ctx: OperatorContext, cell: LoadedCell, source: { doc: ConnectionDocument; file: string }, cached: ObservedContainer[] | undefined): Promise<ConnectionOutcome> {
  const { doc, file } = source;
  const name = doc.metadata.name;
  const key = connectionKey(name);
  const generation = generationOf(doc.spec);
  const ref = { file, generation };
  const users = cell.docs.services.filter((s) => s.doc.spec.egress?.connection === name).map((s) => s.doc.metadata.name).sort();
  const usedBy = users.length > 0 ? users.join(', ') : 'no service';
  const stalled = (reason: string, message: string): ConnectionOutcome => ({ changed: false, healthy: false, status: { doc: ref, outcome: refused(reason, message), facts: { services: users } }, error: new TerminalError(message, reason) });
  const { service, problem } = exitPackageOf(cell.catalog!.offered, doc);
  if (!service) return stalled('NoExitService', `${file}: /spec/type: ${problem}`);
  const instanceId = instanceIdOf(name);
  let configFile: { source: string; digest: string } | undefined;
  try {
    configFile = await keepConfigFile(ctx.stateRoot, instanceId, doc, file, (message) => ctx.event(key, 'Warning', 'ConfigFileExposed', message), Boolean(ctx.dryRun));
  } catch (err) {
    if (err instanceof TerminalError) return stalled(err.reason ?? 'ConfigFileInvalid', err.message);
    throw err;
  }
  const m = service.manifest;
  const config = mergeServiceConfig(m.capabilities.has_admin_config ? m.config_schema : {}, doc.spec.config, file);
  if (config.problems.length > 0) return stalled('InvalidSpec', config.problems.map((p) => `${p.file}: ${p.pointer}: ${p.message}`).join('; '));

  const instance = { id: instanceId, owner: key, ...(configFile ? { configFile } : {}) };
  const converged = await convergePackage(ctx, cell, name, service, config.config, cached, {}, { key, file, generation, notices: [], instance });
  if ('halt' in converged) return { changed: false, healthy: false, status: converged.halt, error: converged.error };
  // A dry run has noted what would change; whether the exit then comes up is Docker's to tell.
  if (ctx.dryRun) return { changed: false, healthy: false };
  const facts = {
    ...converged.facts,
    instance: instanceId,
    service: service.id,
    exitAddress: converged.allocation.ip,
    services: users,
    failOpen: doc.spec.failOpen ?? false,
    ...(configFile ? { configFile: { mountedAt: m.connectivity?.config_path ?? DEFAULT_CONNECTION_CONFIG_PATH, sha256: configFile.digest.slice(0, 12) } } : {}),
  };
  const verdict = judgeReadiness(converged.expected, converged.observed, Math.min(LOOP_MIN_READY_SECONDS, DEFAULT_MIN_READY_SECONDS));
  const consequence = doc.spec.failOpen ? `traffic of ${usedBy} goes direct (fail-open) until it is back` : `traffic of ${usedBy} is blocked (kill switch) until it is back`;
  if (verdict.state !== 'ready') {
    const running = converged.observed.some((c) => c.state === 'running');
    const reason = !running ? 'ExitNotRunning' : verdict.cause === 'health' ? 'ConnectionDown' : 'ExitStarting';
    const message = `exit ${converged.facts.containers.map((c) => c.name).join(', ')} not ready: ${verdict.reason}; ${consequence}`;
    const status = { doc: ref, outcome: progressing(reason, message), facts };
    if (verdict.state === 'failed') return { changed: converged.changed, healthy: false, status, error: new Error(message) };
    return { requeueAfterMs: verdict.retryAfterMs, changed: converged.changed, healthy: false, status };
  }
  const message = `exit ${converged.facts.containers.map((c) => c.name).join(', ')} at ${converged.allocation.ip} up, probe passing; carries ${usedBy}`;
  return { changed: converged.changed, ready: true, healthy: true, status: { doc: ref, outcome: ready(converged.changed ? 'Converged' : 'InSync', message), facts } };
}

/** A Connection whose document is gone: its exit removed, its address released. Its services stay fenced. */
export async function removeConnection(ctx: OperatorContext, name: string, cached?: ObservedContainer[]): Promise<ReconcileOutcome> {
  const key = connectionKey(name);
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
    return { changed: false };
  }
  await fs.rm(connectionFilesDir(ctx.stateRoot, instanceIdOf(name)), { recursive: true, force: true });
  const hadStatus = await ctx.statuses.connections.remove(key);
  if (actions.length > 0 || released || hadStatus) ctx.event(key, 'Normal', 'Removed', `exit removed: ${actions.length} container(s)`);
  return { changed: actions.length > 0 };
}
