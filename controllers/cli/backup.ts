/**
 * `pic backup create|list|restore|verify|delete`: snapshots of the services' declared data, on
 * demand. Progress goes to stderr; with -o json, stdout holds only the answer (create prints the
 * snapshot id and manifest). Exit 0 done, 1 failed (the reason names the service and archive).
 */
import { BackupError, createSnapshot, restoreSnapshot, verifySnapshot } from '../../reconcilers/backup/index.js';
import { planRetention } from '../../reconcilers/backup/retention.js';
import type { SnapshotManifest } from '../../reconcilers/backup/types.js';
import { SnapshotStore } from '../../state/snapshots.js';
import { StateDir, resolveStateDir } from '../../state/state-dir.js';
import { backupRoot, commandEnv, loadCellOrFail, serviceTargets } from './backup-env.js';
import { CELL_FLAG, STATE_DIR_FLAG, stringFlag, type Command, type Parsed } from './command.js';
import { chooseStateDir } from './state-location.js';
import { safeLine } from '../safe-text.js';
import { UsageError, type Io } from './usage.js';


function jsonOrText(values: { output?: string | undefined }): boolean {
  if (values.output !== undefined && values.output !== 'json') throw new UsageError(`pic backup: -o takes json or nothing, not "${safeLine(values.output)}"`);
  return values.output === 'json';
}

function summary(m: SnapshotManifest): string {
  const archives = m.services.reduce((n, s) => n + s.archives.length, 0);
  const bytes = m.services.reduce((n, s) => n + s.archives.reduce((k, a) => k + a.size, 0), 0);
  const verified = m.verification === undefined ? 'unverified' : m.verification.ok ? 'verified' : 'FAILED verification';
  return `${m.id}  ${m.createdAt}  ${m.reason.padEnd(9)} ${verified.padEnd(20)} ${String(archives).padStart(3)} archives ${String(bytes).padStart(12)} bytes  ${m.services.map((s) => s.service).join(',')}`;
}

async function storeFor(values: { cell?: string | undefined; 'state-dir'?: string | undefined }): Promise<{ store: SnapshotStore; cellName?: string; root: string }> {
  const state = new StateDir(resolveStateDir(values['state-dir']));
  if (values.cell) {
    const cell = await loadCellOrFail(values.cell, state.root, 'backup');
    const root = backupRoot(state, cell);
    return { store: new SnapshotStore(root), cellName: cell.cell.metadata.name, root };
  }
  const root = backupRoot(state);
  return { store: new SnapshotStore(root), root };
}

async function runBackup(parsed: Parsed, io: Io): Promise<number> {
  const [sub, ...positionals] = parsed.positionals;
  const chosen = await chooseStateDir({ stateDir: stringFlag(parsed, 'state-dir'), cell: stringFlag(parsed, 'cell') });
  const values = { cell: stringFlag(parsed, 'cell'), 'state-dir': chosen.dir, output: stringFlag(parsed, 'output'), 'no-verify': parsed.values['no-verify'] === true, 'dry-run': parsed.values['dry-run'] === true };
  const json = jsonOrText(values);
  try {
    switch (sub) {
      case 'create': {
        const cell = await loadCellOrFail(values.cell, values['state-dir'], 'backup create');
        const state = new StateDir(resolveStateDir(values['state-dir']));
        const targets = serviceTargets(cell, state, positionals);
        const { env } = await commandEnv(values, cell.cell.metadata.name, backupRoot(state, cell), io, cell);
        const { manifest, warnings } = await createSnapshot(env, targets, { verify: values['no-verify'] !== true });
        warnings.forEach((w) => io.err(`pic: warning: ${w}`));
        if (json) io.out(JSON.stringify(manifest, null, 2));
        else {
          io.out(`snapshot ${manifest.id}`);
          for (const s of manifest.services) {
            io.out(`  ${s.service}: ${s.archives.length} archive(s)${s.consistency === 'none' ? '' : `, ${s.consistency === 'stop' ? 'stopped' : 'paused'} for ${s.downtimeMs} ms`}`);
          }
          if (manifest.verification) io.out(manifest.verification.ok ? '  verified by a test restore' : `  verification FAILED:\n    ${(manifest.verification.problems ?? []).join('\n    ')}`);
        }
        return manifest.verification === undefined || manifest.verification.ok ? 0 : 1;
      }
      case 'list': {
        if (positionals.length > 0) throw new UsageError('pic backup list takes no arguments');
        const { store, root } = await storeFor(values);
        const { snapshots, problems } = await store.list();
        problems.forEach((p) => io.err(`pic: ${p}`));
        if (json) io.out(JSON.stringify(snapshots.map((s) => ({ id: s.id, createdAt: s.createdAt, reason: s.reason, verification: s.verification ?? null, services: s.services.map((x) => ({ service: x.service, version: x.version, archives: x.archives.length, downtimeMs: x.downtimeMs })) })), null, 2));
        else if (snapshots.length === 0) io.out(`No snapshots in ${root}.`);
        else snapshots.forEach((s) => io.out(summary(s)));
        return 0;
      }
      case 'verify': {
        if (positionals.length !== 1) throw new UsageError('pic backup verify takes one SNAPSHOT (see pic backup list)');
        const { store, cellName, root } = await storeFor(values);
        const manifest = await store.read(positionals[0] as string);
        const { env } = await commandEnv(values, cellName ?? manifest.cell, root, io);
        const verification = await verifySnapshot(env, manifest.id);
        if (json) io.out(JSON.stringify(verification, null, 2));
        else io.out(verification.ok ? `snapshot ${manifest.id}: verified` : `snapshot ${manifest.id}: verification FAILED\n  ${(verification.problems ?? []).join('\n  ')}`);
        return verification.ok ? 0 : 1;
      }
      case 'restore': {
        if (positionals.length < 1) throw new UsageError('pic backup restore takes SNAPSHOT [SERVICE...]');
        const cell = await loadCellOrFail(values.cell, values['state-dir'], 'backup restore');
        const state = new StateDir(resolveStateDir(values['state-dir']));
        const { env } = await commandEnv(values, cell.cell.metadata.name, backupRoot(state, cell), io, cell);
        const [id, ...services] = positionals as [string, ...string[]];
        const report = await restoreSnapshot(env, id, services);
        if (json) io.out(JSON.stringify(report, null, 2));
        else {
          io.out(`snapshot ${report.snapshot} restored`);
          for (const s of report.services) {
            io.out(`  ${s.service}: ${s.archives} archive(s), stopped for ${s.downtimeMs} ms, ${s.ready ? 'Ready again' : `not Ready; previous data kept in ${s.previousKept.join(', ')}`}`);
          }
        }
        return 0;
      }
      case 'delete': {
        if (positionals.length !== 1) throw new UsageError('pic backup delete takes one SNAPSHOT');
        const { store } = await storeFor(values);
        await store.delete(positionals[0] as string);
        io.out(`snapshot ${positionals[0]} deleted`);
        return 0;
      }
      case 'prune': {
        if (positionals.length > 0) throw new UsageError('pic backup prune takes no arguments');
        const cell = await loadCellOrFail(values.cell, values['state-dir'], 'backup prune');
        const rule = cell.cell.spec.backup?.retention;
        if (!rule) throw new UsageError(`the Cell in ${cell.dir} has no spec.backup.retention; add one (e.g. {daily: 7, weekly: 4}) before pruning`);
        const store = new SnapshotStore(backupRoot(new StateDir(resolveStateDir(values['state-dir'])), cell));
        const { snapshots, problems } = await store.list();
        problems.forEach((p) => io.err(`pic: ${p}`));
        const plan = planRetention(snapshots.map((s) => ({ id: s.id, createdAt: s.createdAt, verified: s.verification?.ok === true })), rule);
        if (!values['dry-run']) for (const id of plan.delete) await store.delete(id);
        if (json) io.out(JSON.stringify({ ...plan, dryRun: values['dry-run'] === true }, null, 2));
        else {
          for (const k of plan.keep) io.out(`keep   ${k.id}  (${k.because.join('; ')})`);
          for (const id of plan.delete) io.out(`${values['dry-run'] ? 'would delete' : 'deleted'} ${id}`);
        }
        return 0;
      }
      default:
        throw new UsageError(sub === undefined ? 'pic backup needs a subcommand: create, list, verify, restore, delete or prune' : `unknown backup subcommand "${sub}"`);
    }
  } catch (err) {
    if (err instanceof BackupError) {
      io.err(`pic: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

export const backupCommand: Command = {
  name: 'backup',
  summary: "Snapshots of the services' declared data: create, list, verify (a test restore), restore (staged), delete, prune",
  args: 'create|list|verify|restore|delete|prune [SNAPSHOT] [SERVICE...]',
  description: "Each service is paused (or stopped, per its spec.backup.consistency) for its own archives and started again even when the backup fails; a snapshot is verified by a test restore into scratch volumes. Restore is staged: every archive extracted out of the services' sight and checked before any service is touched, then each service stopped, its data swapped in (by renames for a plain local volume) and started; the previous data is kept until the service is Ready. A running operator leaves a service alone while a backup or restore holds it. Progress goes to stderr. Exit 0 done, 1 failed.",
  flags: [
    CELL_FLAG,
    STATE_DIR_FLAG,
    { name: 'output', short: 'o', type: 'string', value: 'json', help: 'print JSON instead of text', complete: ['json'] },
    { name: 'no-verify', type: 'boolean', help: 'create: skip the test restore (the snapshot stays unverified)' },
    { name: 'dry-run', type: 'boolean', help: 'prune: show what would be deleted' },
  ],
  examples: ['pic backup create --cell .demo/cell', 'pic backup list --cell .demo/cell', 'pic backup restore SNAPSHOT notes --cell .demo/cell'],
  run: (parsed, ctx) => runBackup(parsed, ctx.io),
};
