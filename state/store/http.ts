/**
 * One file of a published store, fetched: conditional (If-None-Match, If-Modified-Since), within a
 * time-out and a size limit, following redirects only within the store's origin. Node's own
 * fetch (undici); no other HTTP client. The adapter the store cache (refresh.ts) fetches through.
 */
import { redirectTarget } from '../../crds/store-url.js';

export interface Validators {
  etag?: string;
  lastModified?: string;
  /** The body's sha256 (hex), recorded beside the validators (never sent). */
  sha256?: string;
}

export interface FetchLimits {
  maxBytes: number;
  timeoutMs: number;
}

export type FetchedFile =
  | { status: 'not-modified'; url: URL }
  | { status: 'missing'; url: URL }
  | { status: 'ok'; url: URL; body: Buffer; contentType?: string; validators: Validators };

/** A fetch that failed, with the URL it was for and a reason an admin can act on. */
export class StoreFetchError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
  ) {
    super(`${url}: ${reason}`);
  }
}

const MAX_REDIRECTS = 5;

/** What a fetch costs, counted by the caller (benchmarks, `pic catalog refresh`). */
export interface FetchCounters {
  requests: number;
  bytes: number;
}

/**
 * GET `url`. 304 → not-modified; 404 → missing (the caller decides whether the file is optional);
 * any other non-2xx, a body over `maxBytes`, a time-out or a redirect out of the origin throws a
 * StoreFetchError naming the URL first asked for.
 */
export async function fetchStoreFile(url: URL, validators: Validators | undefined, limits: FetchLimits, counters?: FetchCounters): Promise<FetchedFile> {
  const signal = AbortSignal.timeout(limits.timeoutMs);
  const headers: Record<string, string> = { accept: 'application/json, application/zip, text/plain, */*;q=0.1', 'user-agent': 'pic-store-client' };
  if (validators?.etag) headers['if-none-match'] = validators.etag;
  if (validators?.lastModified) headers['if-modified-since'] = validators.lastModified;
  let current = url;
  try {
    for (let hop = 0; ; hop++) {
      if (counters) counters.requests++;
      const response = await fetch(current, { headers, redirect: 'manual', signal });
      if (response.status >= 300 && response.status < 400 && response.status !== 304) {
        await response.body?.cancel();
        if (hop >= MAX_REDIRECTS) throw new StoreFetchError(url.href, `more than ${MAX_REDIRECTS} redirects`);
        const next = redirectTarget(current, response.headers.get('location'));
        if (next.problem) throw new StoreFetchError(url.href, next.problem);
        current = next.url!;
        continue;
      }
      if (response.status === 304) {
        await response.body?.cancel();
        return { status: 'not-modified', url: current };
      }
      if (response.status === 404) {
        await response.body?.cancel();
        return { status: 'missing', url: current };
      }
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new StoreFetchError(url.href, `answered HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`);
      }
      const body = await readBounded(response, limits.maxBytes, url.href);
      if (counters) counters.bytes += body.length;
      const etag = response.headers.get('etag') ?? undefined;
      const lastModified = response.headers.get('last-modified') ?? undefined;
      const contentType = response.headers.get('content-type') ?? undefined;
      return { status: 'ok', url: current, body, ...(contentType ? { contentType } : {}), validators: { ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) } };
    }
  } catch (err) {
    if (err instanceof StoreFetchError) throw err;
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError' || e.name === 'AbortError') throw new StoreFetchError(url.href, `no complete answer within ${Math.round(limits.timeoutMs / 100) / 10} s`);
    const cause = e.cause?.code ?? e.cause?.message;
    throw new StoreFetchError(url.href, `cannot be fetched: ${e.message}${cause ? ` (${cause})` : ''}`);
  }
}

/** The body, refused as soon as it passes `maxBytes` (announced or streamed). */
async function readBounded(response: Response, maxBytes: number, url: string): Promise<Buffer> {
  const announced = Number(response.headers.get('content-length') ?? NaN);
  if (Number.isFinite(announced) && announced > maxBytes) {
    await response.body?.cancel();
    throw new StoreFetchError(url, `is ${announced} bytes, more than the ${maxBytes} allowed`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) break;
    total += chunk.value.byteLength;
    if (total > maxBytes) {
      await reader.cancel();
      throw new StoreFetchError(url, `is more than the ${maxBytes} bytes allowed`);
    }
    chunks.push(Buffer.from(chunk.value));
  }
  return Buffer.concat(chunks);
}
