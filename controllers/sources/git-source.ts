/**
 * `pic run --git`: the cell folder is a Git remote's. Each poll asks the remote which commit the
 * ref names (`git ls-remote`: nothing is fetched, checked out or written when it did not change);
 * a new commit is fetched (forced: the remote's history wins, a force-push included), checked out
 * whole into a folder of its own, STATE/git/revisions/<sha>, and validated in full with the
 * checks `pic validate` runs. Only a valid revision becomes the folder the operator reconciles,
 * in one step: the symlink STATE/git/current is replaced by rename(2), so the loop never sees a
 * half-updated tree, and a process killed at any point leaves `current` naming one whole
 * revision. A revision that fails is not applied at all; the status names the commit, the file
 * and the field.
 *
 * An unreachable remote (or a deleted branch) keeps the last good revision running, is retried
 * with back-off, and the status says since when; the operator never stops for it.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../state/atomic-write.js';
import type { Problem } from '../../crds/types.js';
import { progressing, ready, refused, type Outcome } from '../outcome.js';
import { GitMirror, type GitAuth } from './git-client.js';
import { backoffMs, redactUrls, revisionText, type GitRef, type GitRemote } from './git-remote.js';

/** What the Cell's status says about the source (its facts; status-writers.ts turns it into conditions). */
export interface SourceReport {
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  /** The applied commit: short id and subject, for `pic get`. */
  applied?: { id: string; subject: string };
  source: {
    url: string;
    ref: string;
    path: string;
    /** When a fetch last brought a new revision (a poll that found nothing new writes nothing). */
    lastFetchTime?: string;
    lastError?: string;
    lastErrorSince?: string;
  };
  /** The last attempted revision when it was refused: why. */
  refused?: { revision: string; subject: string; reason: 'RevisionInvalid' | 'RevisionUnverified'; problems: string[] };
}

export interface GitSourceOptions {
  remote: GitRemote;
  ref: GitRef;
  /** The cell's folder inside the repository ('.' for its top). */
  path: string;
  intervalMs: number;
  stateRoot: string;
  auth: GitAuth;
  /** An SSH allowed_signers file: only commits signed by a key in it are applied. */
  allowedSigners?: string;
  logger: { info(m: string): unknown; warn(m: string): unknown; error(m: string): unknown };
  /** The checks of `pic validate` on a cell folder. */
  validate: (cellDir: string) => Promise<Problem[]>;
  /** Run `swap` where the operator reads no folder, then make it read the folder anew. */
  switchFolder: (swap: () => Promise<void>) => Promise<void>;
  /** Store the Cell's status (through its status writer). */
  report: (report: SourceReport) => Promise<void>;
  /** Record an event about the Cell. */
  event: (type: 'Normal' | 'Warning', reason: string, message: string) => void;
  clock?: () => Date;
}

/** What the source remembers across restarts: the last attempt, and why it was refused. */
interface SourceMemory {
  lastAttempted?: string;
  lastFetchTime?: string;
  refused?: SourceReport['refused'];
}

const KEEP_REVISIONS = 2;

export class GitSource {
  readonly root: string;
  private readonly revisionsDir: string;
  private readonly currentLink: string;
  private readonly memoryFile: string;
  private readonly mirror: GitMirror;
  private memory: SourceMemory = {};
  private applied?: { sha: string; subject: string };
  private lastError?: { message: string; since: string };
  private failures = 0;
  private timer?: NodeJS.Timeout;
  private polling?: Promise<void>;
  private again = false;
  private stopped = false;
  private lastReport = '';

  constructor(private readonly opts: GitSourceOptions) {
    this.root = path.join(opts.stateRoot, 'git');
    this.revisionsDir = path.join(this.root, 'revisions');
    this.currentLink = path.join(this.root, 'current');
    this.memoryFile = path.join(this.root, 'source.json');
    this.mirror = new GitMirror(this.root, opts.remote, opts.auth);
  }

  /** The folder the operator reconciles: through the `current` link, so it never changes name. */
  get cellDir(): string {
    return this.opts.path === '.' ? this.currentLink : path.join(this.currentLink, this.opts.path);
  }

  /** The revision the cell runs, if any. */
  get appliedRevision(): string | undefined {
    return this.applied ? revisionText(this.opts.ref, this.applied.sha) : undefined;
  }

  /**
   * Ready the state: the bare repository, what a killed run left (half-written checkouts, a link
   * not yet renamed), and the last good revision. Returns whether there is one to run at once.
   */
  async prepare(): Promise<boolean> {
    await fs.mkdir(this.revisionsDir, { recursive: true, mode: 0o700 });
    await this.mirror.ensure();
    for (const name of await fs.readdir(this.revisionsDir)) {
      if (name.startsWith('.')) await fs.rm(path.join(this.revisionsDir, name), { recursive: true, force: true });
    }
    await fs.rm(`${this.currentLink}.new`, { force: true });
    for (const name of await fs.readdir(this.root)) if (/^index\.\d+$/.test(name)) await fs.rm(path.join(this.root, name), { force: true });
    try {
      this.memory = JSON.parse(await fs.readFile(this.memoryFile, 'utf8')) as SourceMemory;
    } catch {
      this.memory = {};
    }
    const sha = await this.currentSha();
    if (sha === undefined) return false;
    const subject = await this.mirror.subject(sha).catch(() => '');
    this.applied = { sha, subject };
    this.opts.logger.info(`starting on the last good revision ${revisionText(this.opts.ref, sha)} (${subject})`);
    return true;
  }

  /** The commit `current` points at, when it points at a whole revision. */
  private async currentSha(): Promise<string | undefined> {
    try {
      const target = await fs.readlink(this.currentLink);
      const sha = path.basename(target);
      if (!/^[0-9a-f]{40}$/.test(sha)) return undefined;
      await fs.access(path.join(this.revisionsDir, sha));
      return sha;
    } catch {
      return undefined;
    }
  }

  /** Poll now (the remote may have moved while pic was stopped), then every interval (longer after failures) until stopped. */
  start(): void {
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.poll().finally(() => this.schedule(this.lastError ? backoffMs(this.opts.intervalMs, this.failures) : this.opts.intervalMs));
    }, ms);
    this.timer.unref();
  }

  /** Fetch now (`pic reconcile source`, SIGHUP): a back-off under way is cut short. */
  pollNow(): void {
    this.failures = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    void this.poll().finally(() => this.schedule(this.lastError ? backoffMs(this.opts.intervalMs, this.failures) : this.opts.intervalMs));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.polling;
  }

  /** One poll; a poll asked for while one runs runs after it. Never throws. */
  poll(): Promise<void> {
    if (this.polling) {
      this.again = true;
      return this.polling;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        await this.pollOnce();
      } while (this.again && !this.stopped);
    };
    this.polling = run().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private now(): string {
    return (this.opts.clock ?? (() => new Date()))().toISOString();
  }

  private async pollOnce(): Promise<void> {
    const ref = this.opts.ref;
    let sha: string;
    try {
      if (ref.kind === 'commit') {
        sha = ref.sha;
        if (sha === this.memory.lastAttempted && !this.lastError) return;
        if (!(await this.mirror.has(sha))) await this.mirror.fetch(ref);
      } else {
        const advertised = await this.mirror.advertised(ref.name);
        if (advertised === undefined) throw new Error(`the remote has no branch or tag "${ref.name}" (deleted?)`);
        // Cheap when nothing changed: no fetch, no checkout, no write.
        if (advertised === this.memory.lastAttempted && !this.lastError && (this.applied?.sha === advertised || this.memory.refused)) return;
        // Fetched before (a force-push back to an older revision): nothing to fetch.
        sha = (await this.mirror.has(advertised)) ? advertised : await this.mirror.fetch(ref);
      }
    } catch (err) {
      await this.failed(err as Error);
      return;
    }
    const recovered = this.lastError !== undefined;
    this.failures = 0;
    this.lastError = undefined;
    if (sha === this.memory.lastAttempted && (this.applied?.sha === sha || this.memory.refused?.revision === revisionText(ref, sha))) {
      if (recovered) {
        this.opts.logger.info(`${this.opts.remote.display} is reachable again`);
        await this.writeReport();
      }
      return;
    }
    await this.attempt(sha);
  }

  private async failed(err: Error): Promise<void> {
    this.failures++;
    const message = redactUrls(err.message);
    const changed = this.lastError?.message !== message;
    this.lastError = { message, since: this.lastError?.since ?? this.now() };
    if (changed) {
      const running = this.applied ? `; ${this.appliedRevision} keeps running` : '';
      this.opts.logger.warn(`cannot fetch ${this.opts.remote.display} (${this.refName()}): ${message}${running}; retrying with back-off`);
      await this.writeReport();
    }
  }

  private refName(): string {
    return this.opts.ref.kind === 'commit' ? this.opts.ref.sha : this.opts.ref.name;
  }

  /** Check out, verify and validate one revision, and switch to it when all of it is good. */
  private async attempt(sha: string): Promise<void> {
    const revision = revisionText(this.opts.ref, sha);
    const subject = await this.mirror.subject(sha).catch(() => '');
    this.memory.lastAttempted = sha;
    this.memory.lastFetchTime = this.now();
    this.memory.refused = undefined;
    try {
      if (this.opts.allowedSigners) {
        const why = await this.mirror.verifySsh(sha, this.opts.allowedSigners);
        if (why !== undefined) {
          await this.refuse(revision, subject, 'RevisionUnverified', [`commit ${sha}: not signed by a key in ${this.opts.allowedSigners}: ${why}`]);
          return;
        }
      }
      const dir = path.join(this.revisionsDir, sha);
      if (!(await exists(dir))) {
        // Written beside, then renamed: a revision folder is whole or absent.
        const partial = path.join(this.revisionsDir, `.partial-${sha}-${process.pid}`);
        await fs.rm(partial, { recursive: true, force: true });
        this.opts.logger.info(`checking out ${revision} (${subject})`);
        await this.mirror.checkout(sha, partial, path.join(this.root, `index.${process.pid}`));
        await fs.rename(partial, dir);
      }
      const cellDir = this.opts.path === '.' ? dir : path.join(dir, this.opts.path);
      const problems = (await this.opts.validate(cellDir)).map((p) => formatInRevision(p, dir));
      if (problems.length > 0) {
        await this.refuse(revision, subject, 'RevisionInvalid', problems);
        return;
      }
      await this.opts.switchFolder(() => this.swap(sha));
      const before = this.appliedRevision;
      this.applied = { sha, subject };
      await this.remember();
      this.opts.logger.info(`applied ${revision} (${subject})`);
      this.opts.event('Normal', 'RevisionApplied', `${revision} applied (${subject})${before ? `, replacing ${before}` : ''}`);
      await this.writeReport();
      await this.pruneRevisions();
    } catch (err) {
      // A fault of the state directory or of git itself: the revision is tried again next poll.
      this.memory.lastAttempted = undefined;
      await this.failed(err as Error);
    }
  }

  private async refuse(revision: string, subject: string, reason: 'RevisionInvalid' | 'RevisionUnverified', problems: string[]): Promise<void> {
    this.memory.refused = { revision, subject, reason, problems };
    await this.remember();
    const running = this.applied ? `; ${this.appliedRevision} keeps running` : '; nothing was applied yet';
    const first = problems[0] ?? 'refused';
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
    this.opts.logger.warn(`refused ${revision} (${subject}): ${first}${more}${running}`);
    this.opts.event('Warning', reason, `${revision} refused: ${first}${more}${running}`);
    await this.writeReport();
  }

  /** Point `current` at the revision in one rename(2). */
  private async swap(sha: string): Promise<void> {
    const next = `${this.currentLink}.new`;
    await fs.rm(next, { force: true });
    await fs.symlink(path.join('revisions', sha), next);
    await fs.rename(next, this.currentLink);
    // The rename is durable once the folder holding it is.
    const handle = await fs.open(this.root, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Keep the running revision and the one before it (containers may still mount its files). */
  private async pruneRevisions(): Promise<void> {
    const names = (await fs.readdir(this.revisionsDir)).filter((n) => /^[0-9a-f]{40}$/.test(n));
    const byAge = await Promise.all(names.map(async (n) => ({ n, t: (await fs.stat(path.join(this.revisionsDir, n))).mtimeMs })));
    byAge.sort((a, b) => b.t - a.t);
    const keep = new Set([this.applied?.sha, ...byAge.slice(0, KEEP_REVISIONS).map((e) => e.n)]);
    for (const { n } of byAge) if (!keep.has(n)) await fs.rm(path.join(this.revisionsDir, n), { recursive: true, force: true });
    await this.mirror.prune([...keep].filter((s): s is string => s !== undefined)).catch((err: Error) => this.opts.logger.warn(`git: ${err.message}`));
  }

  private async remember(): Promise<void> {
    await writeFileAtomic(this.memoryFile, `${JSON.stringify(this.memory)}\n`);
  }

  /** What the Cell's status says now. */
  report(): SourceReport {
    const attempted = this.memory.lastAttempted;
    return {
      ...(this.applied ? { lastAppliedRevision: revisionText(this.opts.ref, this.applied.sha), applied: { id: this.applied.sha.slice(0, 7), subject: this.applied.subject } } : {}),
      ...(attempted ? { lastAttemptedRevision: revisionText(this.opts.ref, attempted) } : {}),
      source: {
        url: this.opts.remote.display,
        ref: this.refName(),
        path: this.opts.path,
        ...(this.memory.lastFetchTime ? { lastFetchTime: this.memory.lastFetchTime } : {}),
        ...(this.lastError ? { lastError: this.lastError.message, lastErrorSince: this.lastError.since } : {}),
      },
      ...(this.memory.refused ? { refused: this.memory.refused } : {}),
    };
  }

  /** Write the status (again only when it says something new, unless `force`). */
  async writeReport(force = false): Promise<void> {
    const report = this.report();
    const text = JSON.stringify(report);
    if (text === this.lastReport && !force) return;
    this.lastReport = text;
    await this.opts.report(report).catch((err: Error) => this.opts.logger.error(`cannot write the Cell's status: ${err.message}`));
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

/** A problem as the status shows it: its file relative to the repository's top. */
function formatInRevision(p: Problem, revisionDir: string): string {
  const relative = path.relative(revisionDir, p.file);
  const file = relative.startsWith('..') || path.isAbsolute(relative) ? p.file : relative;
  return `${file}: ${p.pointer || '/'}: ${p.message}`;
}

/**
 * The Cell's conditions from what the source says: Stalled while the last attempt was refused
 * (naming the commit and the file) or the remote cannot be fetched (since when); Ready while the
 * revision it last fetched runs; Reconciling until a first revision is applied.
 */
export function sourceOutcome(report: SourceReport): Outcome {
  const running = report.applied ? `${report.applied.id} (${report.applied.subject}) keeps running` : 'no revision was applied yet';
  if (report.refused) {
    const [first = 'refused', ...rest] = report.refused.problems;
    const more = rest.length > 0 ? ` (and ${rest.length} more)` : '';
    const short = report.refused.revision.replace(/@sha1:([0-9a-f]{7})[0-9a-f]{33}$/, '@$1');
    return refused(report.refused.reason, `revision ${short} refused: ${first}${more}; ${running}`);
  }
  if (report.source.lastError) {
    return refused('SourceUnavailable', `cannot fetch ${report.source.url} (${report.source.ref}) since ${report.source.lastErrorSince}: ${report.source.lastError}; ${running}`);
  }
  if (report.applied) return ready('RevisionApplied', `${report.source.ref}@${report.applied.id}: ${report.applied.subject}`);
  return progressing('Fetching', `fetching ${report.source.url} (${report.source.ref})`);
}
