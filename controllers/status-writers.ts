/**
 * The one place statuses are written. A reconcile returns an Outcome (outcome.ts); the writer of
 * its document's kind stores what `conditionsOf` makes of it, with the document's generation and
 * facts. One writer per kind: ServiceInstall, PeerAccount, Connection, the cell's own (Cell/* and
 * Core/*) and the shared resources (Resource/*). Only these call the status store's put and
 * remove; everything else reads.
 *
 * A write that would store what is stored writes nothing (the store compares), and a status that
 * turns Stalled is also recorded as a Warning event. A dry run (`pic plan`) writes nothing at all.
 */
import { isTerminal } from '../reconcilers/errors.js';
import { computeConditions, findCondition, phaseOf } from '../state/conditions.js';
import { generationOf } from '../state/generation.js';
import { heldMessage, type HeldDocument } from '../state/hold.js';
import type { StatusStore } from '../state/status-store.js';
import type { DocumentStatus, OperatorEvent } from '../state/status-types.js';
import { conditionsOf, failed, ready, refused, type Outcome } from './outcome.js';

/** Which version of which document a status speaks of. */
export interface DocumentRef {
  file?: string;
  /** A hash of the spec (state/generation.ts), or 'invalid'. */
  generation: string;
}

export type Facts = NonNullable<DocumentStatus['facts']>;

/**
 * How a write treats the facts stored before: `replace` stores the facts given (none: none);
 * `merge` lays them over the stored ones (none given: the stored ones stay).
 */
export type FactsMode = 'replace' | 'merge';

/** A status as a reconcile returns it: the document, the outcome, and its facts. */
export interface StatusReport {
  doc: DocumentRef;
  outcome: Outcome;
  facts?: Facts;
  /** Default `replace`. */
  how?: FactsMode;
}

export interface StatusWriterOptions {
  clock: () => Date;
  /** Record an event about a document (a status that turns Stalled is one). */
  event: (key: string, type: OperatorEvent['type'], reason: string, message: string) => void;
  /** `pic plan`: every write and removal is dropped; reads still see the stored statuses. */
  dryRun?: boolean;
}

/** The writer of the statuses of some kinds. */
export class KindStatuses {
  constructor(
    /** The kinds of key this writer keeps, e.g. ['ServiceInstall']. */
    readonly kinds: readonly string[],
    protected readonly store: StatusStore,
    protected readonly options: StatusWriterOptions,
  ) {}

  owns(key: string): boolean {
    return this.kinds.includes(key.slice(0, key.indexOf('/')));
  }

  /** Store the status `outcome` gives the document. Returns whether anything was written. */
  async write(key: string, doc: DocumentRef, outcome: Outcome, facts?: Facts, how: FactsMode = 'replace'): Promise<boolean> {
    this.check(key);
    if (this.options.dryRun || !this.accepts(key)) return false;
    const [kind = '', name = ''] = key.split('/');
    const previous = await this.store.lastKnown(key);
    const now = this.options.clock().toISOString();
    const conditions = computeConditions(previous?.conditions, conditionsOf(outcome), now);
    // The Ready reason flips between Converged and InSync across passes; keep the first one so an
    // unchanged, ready document is not rewritten on every pass.
    const prevReady = findCondition(previous?.conditions, 'Ready');
    const ready = findCondition(conditions, 'Ready');
    if (prevReady && ready && prevReady.status === 'True' && ready.status === 'True') ready.reason = prevReady.reason;
    const stored = how === 'merge' && (previous?.facts || facts) ? { ...(previous?.facts ?? {}), ...(facts ?? {}) } : facts;
    const status: DocumentStatus = {
      key,
      kind,
      name,
      observedGeneration: doc.generation,
      phase: phaseOf(conditions),
      conditions,
      ...(doc.file ? { file: doc.file } : {}),
      ...(stored ? { facts: stored } : {}),
      updatedAt: now,
    };
    const wrote = await this.store.put(status);
    if (wrote && status.phase === 'Stalled' && previous?.phase !== 'Stalled') {
      const stalled = findCondition(conditions, 'Stalled');
      this.options.event(key, 'Warning', stalled?.reason ?? 'Stalled', stalled?.message ?? 'stalled');
    }
    return wrote;
  }

  /** Store a status a reconcile returned. */
  report(key: string, status: StatusReport): Promise<boolean> {
    return this.write(key, status.doc, status.outcome, status.facts, status.how);
  }

  /** Delete the document's status. Returns whether there was one. */
  async remove(key: string): Promise<boolean> {
    this.check(key);
    if (this.options.dryRun) return false;
    return this.store.remove(key);
  }

  /**
   * A held document (state/hold.ts): Stalled with the problem and what is kept; the generation
   * and facts it had stay, so readers still see what runs.
   */
  async held(entry: HeldDocument): Promise<void> {
    const previous = await this.store.lastKnown(entry.key);
    const file = entry.applied?.file ?? entry.file;
    const generation = previous?.observedGeneration ?? (entry.applied ? generationOf(entry.applied.doc.spec) : 'invalid');
    await this.write(entry.key, { ...(file ? { file } : {}), generation }, refused(entry.reason, heldMessage(entry)), undefined, 'merge');
  }

  /** Whether a status of `key` may be written now (a writer that tracks its documents says no for a gone one). */
  protected accepts(_key: string): boolean {
    return true;
  }

  private check(key: string): void {
    if (!this.owns(key)) throw new Error(`${key}: not a status the ${this.kinds.join('/')} writer keeps`);
  }
}

/** ServiceInstall statuses: a reconcile that threw is reported by the one rule, with two exceptions. */
export class ServiceStatuses extends KindStatuses {
  /**
   * A reconcile that threw `error` midway (Docker refused something, a fault of the state
   * directory): Stalled for a terminal error, Reconciling for one retried. The same retry failing
   * again is not news (no write: the reason it was written with stays), and a Stalled status is
   * not replaced by a fault on the way. Facts stay.
   */
  async failed(key: string, doc: DocumentRef, error: unknown): Promise<void> {
    const previous = await this.store.lastKnown(key);
    if (previous?.phase === 'Stalled') return;
    const message = error instanceof Error ? error.message : String(error);
    if (!isTerminal(error) && findCondition(previous?.conditions, 'Reconciling')?.message === message) return;
    await this.write(key, doc, failed(error), undefined, 'merge');
  }
}

/**
 * Statuses of a kind that is written from more than one pass (PeerAccount: validation and the
 * accounts; Connection): told the documents the newest snapshot declares, it deletes the statuses
 * of any other and refuses to write one again, so a pass that outlived its snapshot cannot bring
 * back the status of a deleted document.
 */
export class TrackedStatuses extends KindStatuses {
  private present?: ReadonlySet<string>;

  async track(present: ReadonlySet<string>): Promise<void> {
    this.present = present;
    if (this.options.dryRun) return;
    for (const status of await this.store.keys()) {
      if (this.owns(status.key) && !present.has(status.key)) await this.store.remove(status.key);
    }
  }

  protected override accepts(key: string): boolean {
    return this.present === undefined || this.present.has(key);
  }
}

/**
 * What the Cell's status says of a published store (spec.store.url): the cache in use, how old it
 * is, why the last refresh failed (state/store/cache.ts storeStateLine), as `facts.store`.
 */
export interface StoreStatus {
  message: string;
  facts: { url: string; fetchedAt?: string; checkedAt?: string; lastFailure?: { url: string; message: string; since: string }; signedBy: string | null };
}

/**
 * The cell's own statuses: `Core/<name>` for each core container, and `Cell/<name>`, which exists
 * while the whole cell is held or its folder cannot be read, and for a cell whose catalog is a
 * published store (it says how old the cache is and why the last refresh failed).
 */
export class CellStatuses extends KindStatuses {
  /** Keys of the Cell statuses on disk, looked up once (one an earlier run left), then remembered. */
  private cellKeys?: Set<string>;
  /**
   * What a Git source (`pic run --git`) last said of the cell: with one, the Cell status is always
   * there, its facts the revisions and the source, its conditions what the source's outcome is.
   */
  private source?: { key: string; file: string; outcome: Outcome; facts: Facts };
  /** The published store's status as the last reload gave it (kept beside the source's facts). */
  private lastStore?: StoreStatus;

  /**
   * The Cell's status: `problem` (Stalled, with why); else, with a Git source, what the source
   * says (the revision that runs), and with `store` its facts beside; else with `store` Ready
   * (StoreCatalog: the cell runs from the cached catalog; while refreshing fails the message and
   * `facts.store.lastFailure` say why, with the URL); else none: every Cell status is removed.
   */
  async cellProblem(key: string, file: string, problem: Outcome | undefined, store?: StoreStatus): Promise<void> {
    this.cellKeys ??= new Set((await this.store.keys()).filter((s) => s.kind === 'Cell').map((s) => s.key));
    this.lastStore = store;
    if (!problem && !store) {
      for (const cellKey of this.cellKeys) if (cellKey !== this.source?.key) await this.remove(cellKey);
      this.cellKeys.clear();
      if (this.source) {
        this.cellKeys.add(this.source.key);
        await this.write(this.source.key, { file: this.source.file, generation: 'source' }, this.source.outcome, this.source.facts);
      }
      return;
    }
    for (const other of [...this.cellKeys].filter((k) => k !== key)) {
      await this.remove(other);
      this.cellKeys.delete(other);
    }
    this.cellKeys.add(key);
    const outcome = problem ?? this.source?.outcome ?? ready('StoreCatalog', store!.message);
    const facts = { ...(this.source?.facts ?? {}), ...(store ? { store: store.facts } : {}) };
    await this.write(key, { file: this.source && !problem ? this.source.file : file, generation: problem ? 'invalid' : this.source ? 'source' : 'store' }, outcome, Object.keys(facts).length > 0 ? facts : undefined);
  }

  /**
   * What the Git source says (revisions applied and attempted, the remote, a refused revision):
   * the Cell status under `key`, its outcome `outcome` (with a published store's facts beside). A
   * Cell status under another key (the cell was renamed, or named only once its first revision
   * was read) is removed.
   */
  async sourceReport(key: string, file: string, outcome: Outcome, facts: Facts): Promise<void> {
    this.cellKeys ??= new Set((await this.store.keys()).filter((s) => s.kind === 'Cell').map((s) => s.key));
    this.source = { key, file, outcome, facts };
    for (const cellKey of this.cellKeys) if (cellKey !== key) await this.remove(cellKey);
    this.cellKeys = new Set([key]);
    await this.write(key, { file, generation: 'source' }, outcome, { ...facts, ...(this.lastStore ? { store: this.lastStore.facts } : {}) });
  }
}

/** Every writer, one per kind. */
export class StatusWriters {
  readonly services: ServiceStatuses;
  readonly peers: TrackedStatuses;
  readonly connections: TrackedStatuses;
  readonly cell: CellStatuses;
  readonly resources: KindStatuses;
  private readonly all: KindStatuses[];

  constructor(store: StatusStore, options: StatusWriterOptions) {
    this.services = new ServiceStatuses(['ServiceInstall'], store, options);
    this.peers = new TrackedStatuses(['PeerAccount'], store, options);
    this.connections = new TrackedStatuses(['Connection'], store, options);
    this.cell = new CellStatuses(['Cell', 'Core'], store, options);
    this.resources = new KindStatuses(['Resource'], store, options);
    this.all = [this.services, this.peers, this.connections, this.cell, this.resources];
  }

  /** The writer of `key`'s kind. */
  of(key: string): KindStatuses {
    const writer = this.all.find((w) => w.owns(key));
    if (!writer) throw new Error(`${key}: no status writer keeps this kind`);
    return writer;
  }
}
