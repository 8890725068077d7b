/**
 * The operator's side of a published store (spec.store.url): when to refresh its cache
 * (state/store/refresh.ts) and what the Cell's status says of it. A refresh is due when this
 * process has not refreshed that URL yet, when `refreshSeconds` (default one hour) passed since
 * the last one, or five minutes after one that failed. What the last refresh found is read back
 * from the cache's record (meta.json), so a `pic catalog refresh` run beside the operator is
 * reported the same way.
 */
import { checkStoreUrl } from '../crds/store-url.js';
import type { CellDocument } from '../crds/types.js';
import type { ManifestPolicy } from '../crds/validate-manifest.js';
import { readStoreMeta, storeCacheDir, storeStateLine } from '../state/store/cache.js';
import { checkBlobBundle, checkBlobSignature } from '../reconcilers/images/bundle.js';
import { loadPublicKeys, type TrustedKey } from '../reconcilers/images/keys.js';
import { trustedKeyFiles } from '../reconcilers/images/policy.js';
import { refreshStore, type RefreshReport, type SignaturePolicy, type StoreLimits } from '../state/store/refresh.js';
import type { StoreStatus } from './status-writers.js';

export const DEFAULT_REFRESH_SECONDS = 3600;
const RETRY_AFTER_FAILURE_MS = 5 * 60_000;

export interface StoreRefresherOptions {
  stateRoot: string;
  clock?: () => Date;
  limits?: Partial<StoreLimits>;
}

/** The base URL of a cell's published store, when it names one pic may fetch. */
export function storeUrlOf(cell: CellDocument | undefined): URL | undefined {
  const url = cell?.spec.store.url;
  if (url === undefined) return undefined;
  return checkStoreUrl(url).url;
}

/**
 * What the Cell asks of its store's signature: `requireSignature`, and a check with the Cell's
 * image keys (spec.imageVerification.publicKey/publicKeys, the keys its images are verified
 * with) when it names any. Keys that cannot be read fail every check, naming the file.
 */
export async function storeSignaturePolicy(cell: CellDocument, cellDir: string): Promise<SignaturePolicy> {
  const require = cell.spec.store.requireSignature === true;
  const files = trustedKeyFiles(cell.spec.imageVerification, cellDir);
  if (files.length === 0) return { require };
  let keys: TrustedKey[];
  try {
    keys = await loadPublicKeys(files);
  } catch (err) {
    const message = `cannot be checked: ${(err as Error).message}`;
    return { require, verify: () => ({ ok: false, message }) };
  }
  return { require, verify: (index, signature) => (signature.kind === 'bundle' ? checkBlobBundle(signature.bytes, index, keys) : checkBlobSignature(signature.bytes, index, keys)) };
}

export class StoreRefresher {
  /** The last refresh this process made of each URL: when, and whether it failed. */
  private readonly last = new Map<string, { atMs: number; failed: boolean; checkedAt: string }>();
  private readonly clock: () => Date;

  constructor(private readonly options: StoreRefresherOptions) {
    this.clock = options.clock ?? (() => new Date());
  }

  due(cell: CellDocument | undefined): boolean {
    const url = storeUrlOf(cell);
    if (!url) return false;
    const last = this.last.get(url.href);
    if (!last) return true;
    const intervalMs = (cell!.spec.store.refreshSeconds ?? DEFAULT_REFRESH_SECONDS) * 1000;
    const elapsed = this.clock().getTime() - last.atMs;
    return elapsed >= intervalMs || (last.failed && elapsed >= Math.min(intervalMs, RETRY_AFTER_FAILURE_MS));
  }

  /** Refresh the cell's store when due; the report, or undefined when nothing was due. */
  async refreshIfDue(cell: CellDocument | undefined, policy: ManifestPolicy, cellDir: string): Promise<RefreshReport | undefined> {
    if (!this.due(cell)) return undefined;
    const url = storeUrlOf(cell)!;
    const signature = await storeSignaturePolicy(cell!, cellDir);
    const report = await refreshStore({ stateRoot: this.options.stateRoot, url, policy, signature, clock: this.clock, ...(this.options.limits ? { limits: this.options.limits } : {}) });
    const now = this.clock();
    this.last.set(url.href, { atMs: now.getTime(), failed: report.outcome === 'failed', checkedAt: now.toISOString() });
    return report;
  }

  /** What the Cell's status says of its published store; undefined for a catalog folder. */
  async status(cell: CellDocument | undefined): Promise<StoreStatus | undefined> {
    const url = storeUrlOf(cell);
    if (!url) return undefined;
    const meta = await readStoreMeta(storeCacheDir(this.options.stateRoot, url.href), url.href);
    const checkedAt = this.last.get(url.href)?.checkedAt;
    return {
      message: storeStateLine(meta),
      facts: {
        url: url.href,
        ...(meta.fetchedAt ? { fetchedAt: meta.fetchedAt } : {}),
        ...(checkedAt ? { checkedAt } : {}),
        ...(meta.lastFailure ? { lastFailure: meta.lastFailure } : {}),
        signedBy: meta.signedBy ?? null,
      },
    };
  }
}
