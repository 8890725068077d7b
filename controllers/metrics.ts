/**
 * The operator's Prometheus metrics, in a registry the operator owns. The reconcile and work-queue
 * series carry controller-runtime's and client-go's names (a dashboard made for a Kubernetes
 * controller reads them), with the document kind as the controller. Everything else is computed
 * when scraped, from what the operator already holds: its statuses (as it last wrote them), its
 * queue, and Caddy's CA asked at most hourly. A scrape makes no Docker call.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CertificateExpiry } from '../reconcilers/caddy/ca-expiry.js';
import type { DocumentStatus } from '../state/status-types.js';
import type { WorkOutcome, WorkQueueObserver } from './queue.js';

/** The work queue's name in `workqueue_*{name}`: the operator has one queue for every kind. */
export const QUEUE_NAME = 'pic';

/** What the metrics read when scraped; the operator provides it. */
export interface MetricsSource {
  /** Every document's status as the operator last wrote or read it. */
  statuses(): Promise<DocumentStatus[]>;
  queueDepth(): number;
  /** When each reconcile in progress started (ms since the epoch), by key. */
  runningSince(): ReadonlyMap<string, number>;
  /** When the last full pass finished (ms since the epoch), if one has. */
  lastPassAt(): number | undefined;
  /** The admin address of the cell's Caddy, when pic knows one. */
  caddyAdminAddress(): string | undefined;
  fetchCaExpiries(adminAddress: string): Promise<CertificateExpiry[]>;
}

/** The controller of a key: its kind (`ServiceInstall/notes` → `ServiceInstall`), or the key (`resync`). */
export function controllerOf(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? key : key.slice(0, slash);
}

/** The Ready condition as a sample: 1 when True, 0 when False or Unknown. */
export function readyValue(status: DocumentStatus): number {
  return status.conditions.some((c) => c.type === 'Ready' && c.status === 'True') ? 1 : 0;
}

/** A service's backup facts as its status carries them (controllers/backup-status.ts). */
function backupOf(status: DocumentStatus): { lastVerifiedAt?: number; overdue: boolean } | undefined {
  const backup = status.facts?.backup as { lastVerified?: { at?: unknown }; overdue?: unknown } | undefined;
  if (typeof backup !== 'object' || backup === null) return undefined;
  const at = typeof backup.lastVerified?.at === 'string' ? Date.parse(backup.lastVerified.at) : Number.NaN;
  return { ...(Number.isNaN(at) ? {} : { lastVerifiedAt: at }), overdue: backup.overdue === true };
}

/** Labels and value of one sample of a gauge computed at scrape time. */
type Sample = [Partial<Record<string, string>>, number];

/** A gauge whose samples are computed when scraped; a series absent from `samples` is absent from the scrape. */
function scrapedGauge(registry: Registry, name: string, help: string, labelNames: string[], samples: () => Sample[] | Promise<Sample[]>): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      const list = await samples();
      this.reset();
      for (const [labels, value] of list) this.set(labels, value);
    },
  });
}

// Reconciles take from milliseconds (in sync) to minutes (an image pull, an upgrade's wait).
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const QUEUE_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300];
const RESULTS = ['success', 'error'] as const;
/** How often Caddy's CA is asked, and after a failure. */
const CA_REFRESH_MS = 60 * 60_000;
const CA_RETRY_MS = 5 * 60_000;
/** Statuses read for one scrape serve every gauge of that scrape. */
const SCRAPE_MEMO_MS = 1000;

/**
 * Registers the operator's metrics in `registry` and records reconciles as the queue reports them
 * (it is the queue's observer).
 */
export class OperatorMetrics implements WorkQueueObserver {
  readonly #reconciles: Counter<'controller' | 'result'>;
  readonly #errors: Counter<'controller'>;
  readonly #terminalErrors: Counter<'controller'>;
  readonly #reconcileTime: Histogram<'controller'>;
  readonly #adds: Counter<'name'>;
  readonly #retries: Counter<'name'>;
  readonly #queueDuration: Histogram<'name'>;
  readonly #workDuration: Histogram<'name'>;
  readonly #controllers = new Set<string>();
  #source?: MetricsSource;
  #scrape?: { at: number; statuses: Promise<DocumentStatus[]> };
  #ca: { at: number; ok: boolean; expiries: CertificateExpiry[]; address?: string } = { at: 0, ok: false, expiries: [] };

  constructor(readonly registry: Registry, options: { now?: () => number; processMetrics?: boolean } = {}) {
    const now = options.now ?? Date.now;
    const registers = [registry];
    if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
    this.#reconciles = new Counter({ name: 'controller_runtime_reconcile_total', help: 'Total number of reconciliations per controller (document kind)', labelNames: ['controller', 'result'], registers });
    this.#errors = new Counter({ name: 'controller_runtime_reconcile_errors_total', help: 'Total number of reconciliation errors per controller', labelNames: ['controller'], registers });
    this.#terminalErrors = new Counter({ name: 'controller_runtime_terminal_reconcile_errors_total', help: 'Total number of terminal reconciliation errors per controller (bad input: not retried, the document is Stalled)', labelNames: ['controller'], registers });
    this.#reconcileTime = new Histogram({ name: 'controller_runtime_reconcile_time_seconds', help: 'Length of time per reconciliation per controller', labelNames: ['controller'], buckets: RECONCILE_BUCKETS, registers });
    this.#adds = new Counter({ name: 'workqueue_adds_total', help: 'Total number of adds handled by the work queue', labelNames: ['name'], registers });
    this.#retries = new Counter({ name: 'workqueue_retries_total', help: 'Total number of retries (after a failed reconcile) handled by the work queue', labelNames: ['name'], registers });
    this.#queueDuration = new Histogram({ name: 'workqueue_queue_duration_seconds', help: 'How long in seconds a key stays in the work queue before it is reconciled', labelNames: ['name'], buckets: QUEUE_BUCKETS, registers });
    this.#workDuration = new Histogram({ name: 'workqueue_work_duration_seconds', help: 'How long in seconds reconciling a key from the work queue takes', labelNames: ['name'], buckets: QUEUE_BUCKETS, registers });
    for (const metric of [this.#adds, this.#retries]) metric.inc({ name: QUEUE_NAME }, 0);

    const running = () => [...(this.#source?.runningSince() ?? new Map<string, number>())];
    const queue = { name: QUEUE_NAME };
    scrapedGauge(registry, 'controller_runtime_active_workers', 'Number of reconciles running now per controller', ['controller'], () => {
      const counts = new Map<string, number>();
      for (const controller of running().map(([key]) => controllerOf(key))) counts.set(controller, (counts.get(controller) ?? 0) + 1);
      return [...counts].map(([controller, n]) => [{ controller }, n]);
    });
    scrapedGauge(registry, 'workqueue_depth', 'Current depth of the work queue: keys waiting for a worker', ['name'], () => [[queue, this.#source?.queueDepth() ?? 0]]);
    scrapedGauge(registry, 'workqueue_unfinished_work_seconds', 'How many seconds of work are in progress and not yet observed by work_duration; large values indicate stuck workers', ['name'], () => [
      [queue, running().reduce((sum, [, since]) => sum + Math.max(0, now() - since), 0) / 1000],
    ]);
    scrapedGauge(registry, 'workqueue_longest_running_processor_seconds', 'How many seconds the longest reconcile in progress has been running', ['name'], () => [
      [queue, running().reduce((longest, [, since]) => Math.max(longest, now() - since), 0) / 1000],
    ]);
    const services = async () => (await this.#statuses(now())).filter((s) => s.kind === 'ServiceInstall');
    scrapedGauge(registry, 'pic_document_ready', "1 when the document's Ready condition is True, 0 when it is False or Unknown", ['kind', 'name'], async () =>
      (await this.#statuses(now())).map((s) => [{ kind: s.kind, name: s.name }, readyValue(s)]),
    );
    scrapedGauge(registry, 'pic_backup_last_verified_timestamp_seconds', 'When the newest snapshot holding the service that passed its test restore was taken (Unix time); absent when there is none', ['service'], async () =>
      (await services()).flatMap((s) => {
        const at = backupOf(s)?.lastVerifiedAt;
        return at === undefined ? [] : [[{ service: s.name }, at / 1000]];
      }),
    );
    scrapedGauge(registry, 'pic_backup_overdue', "1 when the service's last verified backup is older than the Cell's spec.backup.schedule allows, else 0; absent when the cell takes no backups", ['service'], async () =>
      (await services()).flatMap((s) => {
        const backup = backupOf(s);
        return backup ? [[{ service: s.name }, backup.overdue ? 1 : 0]] : [];
      }),
    );
    scrapedGauge(registry, 'pic_certificate_expiry_timestamp_seconds', "When a certificate of the cell's Caddy internal CA expires (Unix time), read from Caddy's admin API at most hourly", ['ca', 'certificate'], async () =>
      (await this.#caExpiries(now())).map((e) => [{ ca: 'local', certificate: e.certificate }, e.notAfter.getTime() / 1000]),
    );
    scrapedGauge(registry, 'pic_last_pass_timestamp_seconds', 'When the operator last finished a full pass over the cell (Unix time); absent before the first', [], () => {
      const at = this.#source?.lastPassAt();
      return at === undefined ? [] : [[{}, at / 1000]];
    });
  }

  /** Where the scrape-time gauges read from; set once by the operator that owns this registry. */
  attach(source: MetricsSource): void {
    this.#source = source;
  }

  added(): void {
    this.#adds.inc({ name: QUEUE_NAME });
  }

  started(_key: string, waitedMs: number): void {
    this.#queueDuration.observe({ name: QUEUE_NAME }, Math.max(0, waitedMs) / 1000);
  }

  finished(outcome: WorkOutcome): void {
    const controller = controllerOf(outcome.key);
    if (!this.#controllers.has(controller)) {
      // Every series of a controller exists from its first reconcile, so rate() sees the first error.
      this.#controllers.add(controller);
      for (const result of RESULTS) this.#reconciles.inc({ controller, result }, 0);
      this.#errors.inc({ controller }, 0);
      this.#terminalErrors.inc({ controller }, 0);
    }
    const seconds = outcome.durationMs / 1000;
    this.#reconcileTime.observe({ controller }, seconds);
    this.#workDuration.observe({ name: QUEUE_NAME }, seconds);
    this.#reconciles.inc({ controller, result: outcome.ok ? 'success' : 'error' });
    if (outcome.ok) return;
    this.#errors.inc({ controller });
    if (outcome.terminal) this.#terminalErrors.inc({ controller });
    if (outcome.retryInMs !== undefined) this.#retries.inc({ name: QUEUE_NAME });
  }

  #statuses(now: number): Promise<DocumentStatus[]> {
    const source = this.#source;
    if (!source) return Promise.resolve([]);
    if (this.#scrape && now - this.#scrape.at < SCRAPE_MEMO_MS) return this.#scrape.statuses;
    const statuses = source.statuses();
    this.#scrape = { at: now, statuses };
    return statuses;
  }

  /** The CA's expiries, asked again when an hour old (five minutes after a failure) or when Caddy moved. */
  async #caExpiries(now: number): Promise<CertificateExpiry[]> {
    const address = this.#source?.caddyAdminAddress();
    if (address === undefined) return [];
    const age = now - this.#ca.at;
    if (address === this.#ca.address && age < (this.#ca.ok ? CA_REFRESH_MS : CA_RETRY_MS)) return this.#ca.expiries;
    try {
      const expiries = await this.#source!.fetchCaExpiries(address);
      this.#ca = { at: now, ok: expiries.length > 0, expiries, address };
    } catch {
      // Caddy not up yet, or it has not made its CA (it does when a site first uses tls internal).
      this.#ca = { at: now, ok: false, expiries: address === this.#ca.address ? this.#ca.expiries : [], address };
    }
    return this.#ca.expiries;
  }
}
