/**
 * When a package's install.sh runs, and what is kept of it. The source system runs it on the host
 * after the service's container starts, to initialise data and default configuration; pic runs it
 * sandboxed (reconcilers/containers/install-script.ts) once per admitted version, after the
 * service's containers run with that version: again after an upgrade, never again after a success,
 * and after a failure only once the version or the ServiceInstall changes (no retry loop).
 */
import path from 'node:path';
import { installTargetOf, runInstallScript, type InstallTarget } from '../reconcilers/containers/install-script.js';
import type { ServicePlan } from '../reconcilers/containers/types.js';
import { readInstallScript, type CatalogService } from '../state/catalog.js';
import type { InstallScriptRecord } from '../state/packages.js';
import { helperSettings } from './backup-schedule.js';
import type { OperatorContext } from './context.js';
import { safeText } from './safe-text.js';

export const DEFAULT_INSTALL_TIMEOUT_SECONDS = 120;
/** How much of the script's output is kept (its end, where a failure says why). */
export const INSTALL_OUTPUT_BYTES = 4096;

export type InstallDecision =
  | { kind: 'none' }
  | { kind: 'done'; record: InstallScriptRecord }
  | { kind: 'failed'; record: InstallScriptRecord }
  | { kind: 'run'; why: 'first' | 'upgrade' | 'retry' };

/**
 * Whether install.sh runs now: not when the package has none; not again for a version it succeeded
 * with; not again for a version it failed with under the same generation of the document (an edit
 * of the ServiceInstall is the admin's retry); otherwise it runs.
 */
export function decideInstallScript(input: { hasScript: boolean; version: string; generation: string; record: InstallScriptRecord | undefined }): InstallDecision {
  const { record } = input;
  if (!input.hasScript) return { kind: 'none' };
  if (!record) return { kind: 'run', why: 'first' };
  if (record.version !== input.version) return { kind: 'run', why: 'upgrade' };
  if (record.result === 'succeeded') return { kind: 'done', record };
  if (record.generation === input.generation) return { kind: 'failed', record };
  return { kind: 'run', why: 'retry' };
}

/**
 * The end of `text`, at most `maxBytes` of UTF-8 (cut at a character boundary, marked with `…`
 * when cut), trailing blank space dropped, every control character but the newline escaped.
 */
export function boundOutput(text: string, maxBytes = INSTALL_OUTPUT_BYTES): string {
  const trimmed = text.replace(/\s+$/u, '');
  const bytes = Buffer.from(trimmed, 'utf8');
  if (bytes.length <= maxBytes) return safeText(trimmed);
  let start = bytes.length - maxBytes;
  // Not inside a character: continuation bytes are 10xxxxxx.
  while (start < bytes.length && ((bytes[start] as number) & 0xc0) === 0x80) start++;
  return `…${safeText(bytes.subarray(start).toString('utf8'))}`;
}

/** The last line of the output, for a one-line message; `(no output)` when it printed nothing. */
export function lastLine(output: string): string {
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  return lines.at(-1)?.slice(-300) ?? '(no output)';
}

/** The time limit: PIC_INSTALL_SCRIPT_TIMEOUT_SECONDS (a positive integer) or 120 s. */
export function installTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const given = env.PIC_INSTALL_SCRIPT_TIMEOUT_SECONDS;
  const seconds = given !== undefined && /^[1-9][0-9]{0,5}$/.test(given) ? Number(given) : DEFAULT_INSTALL_TIMEOUT_SECONDS;
  return seconds * 1000;
}

/** What the service's status says of its install.sh. */
export interface InstallScriptFact {
  version: string;
  result: 'succeeded' | 'failed';
  at: string;
  exitCode: number;
  timedOut?: boolean;
}

export interface InstallScriptStep {
  /** Set when the script failed (now or before, for this version and generation): the service is Stalled with it. */
  failure?: { reason: 'InstallScriptFailed'; message: string };
  fact?: InstallScriptFact;
  /** Whether the script ran in this pass. */
  ran: boolean;
}

function factOf(r: InstallScriptRecord): InstallScriptFact {
  return { version: r.version, result: r.result, at: r.at, exitCode: r.exitCode, ...(r.timedOut ? { timedOut: true } : {}) };
}

function failureOf(r: InstallScriptRecord, timeoutMs: number): InstallScriptStep['failure'] {
  const how = r.timedOut ? `was stopped at the time limit (${Math.round(timeoutMs / 1000)} s)` : `exited with code ${r.exitCode}`;
  const tail = r.output === '' ? '(no output)' : r.output.split('\n').slice(-10).join('\n');
  return { reason: 'InstallScriptFailed', message: `install.sh of version ${r.version} ${how}; not run again until the version or the ServiceInstall changes. Its output ends:\n${tail}` };
}

/** The package's install.sh: as kept with the admitted package, or (at a first install) as the catalog holds it. */
function installScriptText(service: CatalogService): string | undefined {
  if (service.installScriptText !== undefined) return service.installScriptText;
  if (service.installScript !== true) return undefined;
  const read = readInstallScript(service.dir);
  if (read.problem) throw new Error(`cannot read install.sh: ${read.problem.file}: ${read.problem.message}`);
  return read.text;
}

/**
 * Run the service's install.sh when it is due, once its containers run: the outcome is recorded
 * with the admitted version (state/packages.ts) and its output goes into an event.
 */
export async function installScriptStep(ctx: OperatorContext, input: { key: string; name: string; service: CatalogService; generation: string; plan: ServicePlan }): Promise<InstallScriptStep> {
  const { key, name, service, generation } = input;
  const version = service.manifest.version;
  const text = installScriptText(service);
  const timeoutMs = installTimeoutMs();
  const decision = decideInstallScript({ hasScript: text !== undefined, version, generation, record: await ctx.packages.installRecord(name) });
  if (decision.kind === 'none') return { ran: false };
  if (decision.kind === 'done') return { ran: false, fact: factOf(decision.record) };
  if (decision.kind === 'failed') return { ran: false, fact: factOf(decision.record), failure: failureOf(decision.record, timeoutMs) };
  if (ctx.dryRun) {
    ctx.dryRun.note(key, `+ run install.sh of version ${version} (sandboxed helper: no network, no capabilities, time limit ${timeoutMs / 1000} s)`);
    return { ran: false };
  }
  const target: InstallTarget | undefined = installTargetOf(input.plan, service.manifest.container_name);
  if (!target) throw new Error(`cannot run install.sh of ${name}: the plan has no container "${service.manifest.container_name}"`);
  const cellName = ctx.cellName;
  ctx.event(key, 'Normal', 'InstallScriptStarted', `running install.sh of version ${version} in a sandboxed helper (image ${target.image}, ${target.volumes.length} volume(s), no network, time limit ${timeoutMs / 1000} s)`);
  const run = await runInstallScript(
    ctx.docker,
    helperSettings(cellName),
    target,
    { 'install.sh': text!, 'manifest.json': `${JSON.stringify(service.manifest, null, 2)}\n`, 'compose-template.yml': service.template },
    path.join(ctx.stateRoot, 'install-scripts'),
    timeoutMs,
  );
  const succeeded = run.exitCode === 0 && !run.timedOut;
  const record: InstallScriptRecord = {
    formatVersion: 1,
    version,
    generation,
    result: succeeded ? 'succeeded' : 'failed',
    at: ctx.clock().toISOString(),
    exitCode: run.exitCode,
    ...(run.timedOut ? { timedOut: true } : {}),
    output: boundOutput(run.output),
  };
  await ctx.packages.writeInstallRecord(name, record);
  const shown = record.output === '' ? '(no output)' : record.output;
  if (succeeded) {
    ctx.event(key, 'Normal', 'InstallScriptSucceeded', `install.sh of version ${version} succeeded; output:\n${shown}`);
    return { ran: true, fact: factOf(record) };
  }
  const failure = failureOf(record, timeoutMs)!;
  ctx.event(key, 'Warning', 'InstallScriptFailed', `${failure.message.split('\n')[0]}; output:\n${shown}`);
  return { ran: true, fact: factOf(record), failure };
}
