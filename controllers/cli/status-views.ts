import { compareText } from '../../crds/values.js';
import type { BackupFacts } from '../../reconcilers/backup/schedule.js';
import type { TunnelTraffic } from '../../reconcilers/egress/exit-traffic.js';
import { findCondition, isConditionTrue } from '../../state/conditions.js';
import type { OperatorPresence } from '../../state/operator-presence.js';
import type { UnreadableStatus } from '../../state/status-store.js';
import type { Condition, DocumentStatus, OperatorEvent } from '../../state/status-types.js';
import { listObject, renderJsonPath, renderNames, toJsonText, toYamlText, type Output } from './output.js';
import { safeLine, safeText } from '../safe-text.js';

/**
 * What `pic get`, `pic describe` and `pic watch` print. Pure and deterministic: the statuses and
 * events come in as values, the clock as `now`, whether an operator runs as `operator`
 * (state/operator-presence.ts), and rows are sorted. Every function returns the text without a
 * final newline.
 */

export const TABLE_WIDTH = 100;
const NONE = '<none>';

export interface TableOptions {
  wide?: boolean;
  now: Date;
  /** Lines are kept within this many columns by shortening MESSAGE (not in wide mode). Default 100. */
  width?: number;
  /** Leave out the header line (`--no-headers`). */
  noHeaders?: boolean;
  /** Status files that could not be read: one row each, saying why. */
  unreadable?: readonly UnreadableStatus[];
  /** Whether an operator runs; when its statuses may be stale, each row says as of when (AS OF). */
  operator?: OperatorPresence;
}

/** The output formats of `pic get`. */
export const GET_OUTPUTS = ['table', 'wide', 'json', 'yaml', 'name', 'jsonpath'] as const;
/** An output, or the name of one that needs no template. */
export type GetOutput = Output | Exclude<Output['format'], 'jsonpath'>;

export interface GetOptions {
  /** One document was asked for by name: json/yaml print it alone instead of `{items: [...]}`. */
  single?: boolean;
  /** Printed instead of an empty table, e.g. `No documents found in /var/lib/pic.` */
  emptyMessage?: string;
  noHeaders?: boolean;
  unreadable?: readonly UnreadableStatus[];
  /**
   * Whether an operator runs: json and yaml carry it as `operator`; a table whose statuses may be
   * stale says so in a line above its header, and as of when in each row.
   */
  operator?: OperatorPresence;
}

/** `5s`, `3m`, `2h`, `4d` since `since`; `<unknown>` when there is no time to measure from. */
export function formatAge(since: string | undefined, now: Date): string {
  const start = since === undefined ? NaN : Date.parse(since);
  if (Number.isNaN(start)) return '<unknown>';
  const seconds = Math.max(0, Math.floor((now.getTime() - start) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

/**
 * The BACKUP column: how old the service's last verified snapshot is (`never` without one), with
 * `!` when the Cell's schedule says it is overdue. Empty for kinds that have no backups.
 */
export function backupCell(s: DocumentStatus, now: Date): string {
  const backup = s.facts?.backup as { lastVerified?: { at: string }; overdue?: boolean } | undefined;
  if (!backup) return '';
  const age = backup.lastVerified ? formatAge(backup.lastVerified.at, now) : 'never';
  return backup.overdue ? `${age}!` : age;
}

export function renderTable(statuses: readonly DocumentStatus[], opts: TableOptions): string {
  const wide = opts.wide === true;
  const stale = opts.operator?.stale === true;
  const header = [
    ...(wide
      ? ['KIND', 'NAME', 'READY', 'STATUS', 'UPDATE', 'AGE', 'BACKUP', 'VERSION', 'IP', 'CONTAINERS', 'GENERATION']
      : ['KIND', 'NAME', 'READY', 'STATUS', 'UPDATE', 'AGE', 'BACKUP']),
    ...(stale ? ['AS OF'] : []),
    'MESSAGE',
  ];
  const readable = sortStatuses(statuses).map((s) => {
    const conditions = s.conditions ?? [];
    const ready = findCondition(conditions, 'Ready');
    const leading = [s.kind, s.name, ready?.status ?? 'Unknown', s.phase, updateOf(s) ?? '', formatAge(ready?.lastTransitionTime, opts.now), backupCell(s, opts.now)];
    const version = typeof s.facts?.version === 'string' ? s.facts.version : NONE;
    const extra = wide ? [version, s.facts?.serviceIp ?? NONE, containerSummary(s), shortGeneration(s.observedGeneration)] : [];
    const asOf = stale ? [statusAsOf(s, opts.operator, opts.now)] : [];
    return { kind: s.kind, name: s.name, cells: [...leading, ...extra, ...asOf, headline(conditions)] };
  });
  const broken = (opts.unreadable ?? []).map((u) => ({
    kind: u.kind,
    name: u.name,
    cells: [u.kind, u.name, 'Unknown', 'Unreadable', '', '<unknown>', '', ...(wide ? [NONE, NONE, NONE, NONE] : []), ...(stale ? ['<unknown>'] : []), u.message],
  }));
  const rows = [...readable, ...broken]
    .sort((a, b) => compareText(a.kind, b.kind) || compareText(a.name, b.name))
    .map((r) => r.cells.map(oneLine));
  // Columns are as wide with --no-headers as with them (a blank UPDATE column keeps its place).
  const all = [header, ...rows];
  if (!wide) truncateLastColumn(all, opts.width ?? TABLE_WIDTH, 3);
  const lines = formatColumns(all, { gap: 3 });
  return (opts.noHeaders ? lines.slice(1) : lines).join('\n');
}

export function renderGet(statuses: readonly DocumentStatus[], output: GetOutput, now: Date, opts: GetOptions = {}): string {
  if (opts.single && statuses.length !== 1) {
    throw new Error(`renderGet: single output needs exactly one status, got ${statuses.length}`);
  }
  const out: Output = typeof output === 'string' ? { format: output } : output;
  const operator = opts.operator;
  const listed = opts.single ? statuses[0] : listObject(sortStatuses(statuses));
  // Added beside what was there, so a consumer of `items` (or of the single status) reads on unchanged.
  const value = operator ? { ...listed, operator } : listed;
  switch (out.format) {
    case 'table':
    case 'wide': {
      const notice = operator?.stale && opts.noHeaders !== true ? [capitalise(operatorLine(operator, now))] : [];
      const body =
        statuses.length === 0 && (opts.unreadable ?? []).length === 0
          ? opts.emptyMessage ?? 'No documents found.'
          : renderTable(statuses, { wide: out.format === 'wide', now, noHeaders: opts.noHeaders === true, unreadable: opts.unreadable ?? [], ...(operator ? { operator } : {}) });
      return [...notice, body].join('\n');
    }
    case 'json':
      return toJsonText(value);
    case 'yaml':
      return toYamlText(value);
    case 'name':
      return renderNames(sortStatuses(statuses));
    case 'jsonpath':
      return renderJsonPath(out.template, value);
  }
}

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** What `pic describe` read live for a Connection: its exit's tunnel counters, or why it could not. */
export type LiveTunnel = { traffic: readonly TunnelTraffic[] } | { problem: string };

/** kubectl-describe-like detail of one document: identity, facts, conditions and its events. */
export function renderDescribe(status: DocumentStatus, events: readonly OperatorEvent[], now: Date, operator?: OperatorPresence, tunnel?: LiveTunnel): string {
  const lines: string[] = [];
  const conditions = status.conditions ?? [];
  const facts = status.facts ?? {};
  const field = (label: string, value: string): void => {
    lines.push(`${`${oneLine(label)}:`.padEnd(22)}${oneLine(value)}`);
  };

  if (operator) field('Operator', operatorLine(operator, now));
  field('Name', status.name);
  field('Kind', status.kind);
  field('File', status.file ?? NONE);
  field('Phase', status.phase);
  field('Observed generation', status.observedGeneration || NONE);
  field('Updated', status.updatedAt ? `${status.updatedAt} (${formatAge(status.updatedAt, now)} ago)` : NONE);
  if (operator?.stale) field('As of', `${statusAsOf(status, operator, now)} UTC; nothing has checked it since`);

  const isService = status.kind === 'ServiceInstall';
  if (isService || facts.serviceIp !== undefined) field('Service IP', facts.serviceIp ?? NONE);
  for (const key of Object.keys(facts).sort()) {
    // signatures: summarised by the Verification line and the Images table.
    if (['serviceIp', 'containers', 'images', 'notices', 'update', 'upgradeFailed', 'signatures', 'backup', 'installScript', ...GIT_SOURCE_FACTS].includes(key) || facts[key] === undefined) continue;
    field(humanise(key), factText(facts[key]));
  }
  describeGitSource(facts, field, lines, now);
  const backup = facts.backup as BackupFacts | undefined;
  if (backup) {
    const when = (b: { snapshot: string; at: string }) => `${b.snapshot} at ${b.at} (${formatAge(b.at, now)} ago)`;
    field('Last verified backup', `${backup.lastVerified ? when(backup.lastVerified) : 'none'}${backup.overdue ? '; overdue' : ''}`);
    if (backup.last && backup.last.snapshot !== backup.lastVerified?.snapshot) field('Last backup', `${when(backup.last)}, ${backup.last.verified ? 'verified' : 'not verified'}`);
  }
  const install = facts.installScript as { version?: string; result?: string; at?: string; exitCode?: number; timedOut?: boolean } | undefined;
  if (install?.version) {
    const how = install.result === 'succeeded' ? 'succeeded' : install.timedOut ? 'stopped at the time limit' : `failed (exit code ${install.exitCode ?? NONE})`;
    field('install.sh', `${how} for version ${install.version}${install.at ? ` at ${install.at} (${formatAge(install.at, now)} ago)` : ''}`);
  }
  const failed = facts.upgradeFailed as { version?: string; reason?: string; at?: string } | undefined;
  if (failed?.version) field('Upgrade failed', `to ${failed.version}${failed.at ? ` at ${failed.at}` : ''}: ${failed.reason ?? 'no reason recorded'}`);
  const update = facts.update as { version?: string; changes?: string[] } | undefined;
  if (update?.version) {
    field('Update available', `${update.version} (admitted: ${typeof facts.version === 'string' ? facts.version : NONE}); set spec.version to ${update.version} to upgrade`);
    lines.push(`Changes in ${oneLine(update.version)}:`);
    const changes = update.changes ?? [];
    if (changes.length === 0) lines.push('  (the two packages differ in no field pic compares)');
    for (const change of changes) lines.push(`  ${oneLine(change)}`);
  }
  if (isService || facts.containers !== undefined) {
    section(
      lines,
      'Containers',
      ['NAME', 'STATE', 'HEALTH', 'IMAGE'],
      [...(facts.containers ?? [])]
        .sort((a, b) => compareText(a.name, b.name))
        .map((c) => [c.name, c.state, c.health ?? '-', c.image ?? '-']),
    );
  }
  if (isService || facts.images !== undefined) {
    section(
      lines,
      'Images',
      ['CONTAINER', 'REFERENCE', 'VERIFIED'],
      [...(facts.images ?? [])]
        .sort((a, b) => compareText(a.container, b.container))
        .map((i) => [i.container, i.reference, verifiedText(i.verified)]),
    );
  }
  if (tunnel) {
    if ('problem' in tunnel) field('Tunnel traffic', `not read: ${tunnel.problem}`);
    else if (tunnel.traffic.length === 0) field('Tunnel traffic', 'the exit has no tunnel interface (it relays connections, e.g. a proxy)');
    else section(lines, 'Tunnel traffic (now, since the exit started)', ['INTERFACE', 'SENT', 'RECEIVED'], tunnel.traffic.map((t) => [t.iface, formatBytes(t.sent), formatBytes(t.received)]));
  }
  if (facts.notices !== undefined) {
    lines.push('Notices:');
    if (facts.notices.length === 0) lines.push(`  ${NONE}`);
    for (const notice of facts.notices) lines.push(`  - ${oneLine(notice)}`);
  }

  section(
    lines,
    'Conditions',
    ['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'],
    conditions.map((c) => [c.type, c.status, c.reason, formatAge(c.lastTransitionTime, now), c.message]),
  );
  section(
    lines,
    'Events',
    ['TYPE', 'REASON', 'AGE', 'MESSAGE'],
    collapseEvents(events).map((e) => [e.type, e.reason, eventAge(e, now), e.message]),
  );
  return lines.join('\n');
}

/** One screen of `pic watch`: how many documents are Ready, when, and the table. */
export function renderWatchFrame(
  statuses: readonly DocumentStatus[],
  now: Date,
  opts: { emptyMessage?: string; unreadable?: readonly UnreadableStatus[]; operator?: OperatorPresence } = {},
): string {
  const ready = statuses.filter((s) => isConditionTrue(s.conditions, 'Ready')).length;
  const time = now.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  const operator = opts.operator;
  const header = `${ready}/${statuses.length} Ready   ${time}${operator ? `   ${operatorLine(operator, now)}` : ''}`;
  const unreadable = opts.unreadable ?? [];
  const body = statuses.length === 0 && unreadable.length === 0 ? safeText(opts.emptyMessage ?? 'No documents found.') : renderTable(statuses, { now, unreadable, ...(operator ? { operator } : {}) });
  return `${header}\n\n${body}`;
}

/**
 * One line on who keeps the statuses current: `operator running (pid 4242), last pass 11:58:58
 * UTC`, or, when nothing does, `no operator since 11:58:58 UTC — statuses may be stale`.
 */
export function operatorLine(operator: OperatorPresence, now: Date): string {
  const at = (iso: string) => `${formatClock(iso, now)} UTC`;
  const pid = operator.pid !== undefined ? ` (pid ${operator.pid})` : '';
  const STALE = ' — statuses may be stale';
  if (operator.running && !operator.stale) {
    if (operator.mode === 'once') return `pic run --once${pid} is converging`;
    return `operator running${pid}${operator.lastPass ? `, last pass ${at(operator.lastPass)}` : ''}`;
  }
  if (operator.running) return `operator${pid} has finished no pass since ${operator.lastSeen ? at(operator.lastSeen) : 'it started'}${STALE}`;
  if (operator.mode === 'once' && operator.lastPass) return `no operator running; last converged by pic run --once at ${at(operator.lastPass)}${STALE}`;
  if (operator.lastSeen) return `no operator since ${at(operator.lastSeen)}${STALE}`;
  return `no operator is running for this state directory${STALE}`;
}

/**
 * When a status was last known true: its last write, or the operator's last pass after it (a
 * pass that finds a document in sync confirms its status without writing it).
 */
function statusAsOf(s: DocumentStatus, operator: OperatorPresence | undefined, now: Date): string {
  const times = [s.updatedAt, operator?.lastPass].map((t) => (t === undefined ? NaN : Date.parse(t))).filter((t) => !Number.isNaN(t));
  return times.length === 0 ? '<unknown>' : formatClock(new Date(Math.max(...times)).toISOString(), now);
}

/** `11:58:58` on the day of `now` (UTC), else `2024-04-30 11:58:58`. */
export function formatClock(iso: string, now: Date): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '<unknown>';
  const [day, time] = new Date(t).toISOString().replace(/\.\d+Z$/, '').split('T') as [string, string];
  return day === now.toISOString().slice(0, 10) ? time : `${day} ${time}`;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** What a person should read first: why it is stalled, else what Ready says. */
function headline(conditions: readonly Condition[]): string {
  const stalled = findCondition(conditions, 'Stalled');
  if (stalled?.status === 'True') return stalled.message;
  return findCondition(conditions, 'Ready')?.message ?? '';
}

/** The catalog's newer version of a service, when it offers one. */
function updateOf(status: DocumentStatus): string | undefined {
  const update = status.facts?.update as { version?: unknown } | undefined;
  return typeof update?.version === 'string' ? update.version : undefined;
}

function containerSummary(status: DocumentStatus): string {
  const containers = status.facts?.containers;
  if (!containers || containers.length === 0) return NONE;
  const running = containers.filter((c) => c.state === 'running').length;
  return `${running}/${containers.length} running`;
}

/** Generations are spec hashes; twelve characters tell them apart at a glance, as Docker's short ids do. */
function shortGeneration(generation: string | undefined): string {
  if (!generation) return NONE;
  const bare = generation.replace(/^sha256:/, '');
  return bare.length > 12 ? bare.slice(0, 12) : bare;
}

function verifiedText(verified: boolean | 'skipped' | undefined): string {
  if (verified === true) return 'yes';
  if (verified === false) return 'no';
  return verified ?? '-';
}

function factText(value: unknown): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return NONE;
    if (value.every((v) => ['string', 'number', 'boolean'].includes(typeof v))) return value.join(', ');
  }
  if (typeof value === 'string') return value === '' ? NONE : value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value) ?? NONE;
}

/** The facts a Git source (`pic run --git`) keeps in the Cell's status. */
const GIT_SOURCE_FACTS = ['lastAppliedRevision', 'lastAttemptedRevision', 'applied', 'source', 'refused'];

interface GitSourceFacts {
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  applied?: { id: string; subject: string };
  source?: { url: string; ref: string; path: string; lastFetchTime?: string; lastError?: string; lastErrorSince?: string };
  refused?: { revision: string; subject: string; reason: string; problems: string[] };
}

/** The Cell's revisions and source, and why the last attempt was refused. */
function describeGitSource(facts: Record<string, unknown>, field: (label: string, value: string) => void, lines: string[], now: Date): void {
  const git = facts as GitSourceFacts;
  if (!git.source) return;
  field('Source', `${git.source.url} ref ${git.source.ref} path ${git.source.path}`);
  field('Applied revision', git.lastAppliedRevision ? `${git.lastAppliedRevision}${git.applied ? ` (${git.applied.subject})` : ''}` : NONE);
  field('Attempted revision', git.lastAttemptedRevision ?? NONE);
  field('Last fetch', git.source.lastFetchTime ? `${git.source.lastFetchTime} (${formatAge(git.source.lastFetchTime, now)} ago)` : NONE);
  if (git.source.lastError) field('Source error', `since ${git.source.lastErrorSince ?? '?'}: ${git.source.lastError}`);
  if (git.refused) {
    lines.push(`Refused revision ${oneLine(git.refused.revision)} (${oneLine(git.refused.subject)}), ${oneLine(git.refused.reason)}:`);
    for (const problem of git.refused.problems) lines.push(`  ${oneLine(problem)}`);
  }
}

/** `provisionedServices` → `Provisioned services`. */
function humanise(key: string): string {
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

interface CollapsedEvent extends OperatorEvent {
  count: number;
  firstTime: string;
}

/** Events oldest first; a run of identical ones (a retry that keeps failing) becomes one row with a count. */
function collapseEvents(events: readonly OperatorEvent[]): CollapsedEvent[] {
  const ordered = events
    .map((e, i) => ({ e, i }))
    .sort((a, b) => compareText(a.e.time, b.e.time) || a.i - b.i)
    .map(({ e }) => e);
  const rows: CollapsedEvent[] = [];
  for (const e of ordered) {
    const last = rows[rows.length - 1];
    if (last && last.key === e.key && last.type === e.type && last.reason === e.reason && last.message === e.message) {
      last.count += 1;
      last.time = e.time;
    } else {
      rows.push({ ...e, count: 1, firstTime: e.time });
    }
  }
  return rows;
}

function eventAge(e: CollapsedEvent, now: Date): string {
  const age = formatAge(e.time, now);
  return e.count > 1 ? `${age} (x${e.count} over ${formatAge(e.firstTime, now)})` : age;
}

function section(lines: string[], title: string, header: string[], rows: string[][]): void {
  lines.push(`${title}:`);
  if (rows.length === 0) {
    lines.push(`  ${NONE}`);
    return;
  }
  const table = formatColumns([header, ...rows.map((r) => r.map(oneLine))], { gap: 2 });
  for (const line of table) lines.push(`  ${line}`);
}

function sortStatuses(statuses: readonly DocumentStatus[]): DocumentStatus[] {
  return [...statuses].sort((a, b) => compareText(a.kind, b.kind) || compareText(a.name, b.name));
}

/** Table cells are one line of printable text: a message cannot break the table or steer the terminal. */
export function oneLine(text: string): string {
  return safeLine(text.trim());
}

/** Shorten the last column so every line fits `width`, keeping at least a readable stub. */
function truncateLastColumn(rows: string[][], width: number, gap: number): void {
  const columns = rows[0]?.length ?? 0;
  let start = 0;
  for (let c = 0; c < columns - 1; c++) start += Math.max(...rows.map((r) => r[c]?.length ?? 0)) + gap;
  const room = Math.max(20, width - start);
  for (const row of rows) {
    const last = row[columns - 1];
    if (last !== undefined && last.length > room) row[columns - 1] = `${last.slice(0, room - 1).trimEnd()}…`;
  }
}

/** Rows as left-aligned columns `gap` spaces apart (the last column unpadded); cells are taken as given. */
export function formatColumns(rows: string[][], opts: { gap: number }): string[] {
  const columns = Math.max(0, ...rows.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, c) => Math.max(...rows.map((r) => r[c]?.length ?? 0)));
  return rows.map((row) =>
    row
      .map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd((widths[c] ?? 0) + opts.gap)))
      .join('')
      .trimEnd(),
  );
}
