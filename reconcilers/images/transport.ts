/**
 * The registry's HTTP exchanges, through reconcilers/shared/http.ts (see there why not `fetch`):
 * redirects followed with credentials kept to the registry's own host, and every failure to get an
 * answer as one TransportError.
 */
import type http from 'node:http';
import { httpRequest, HttpRequestError } from '../shared/http.js';

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The URL that answered, after redirects. */
  url: string;
}

export interface RawRequest {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  timeoutMs: number;
  maxBytes: number;
}

/** No answer at all: refused, reset, timed out, too large. */
export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

const MAX_REDIRECTS = 3;

/** One request, following up to three redirects (blob stores answer 307 to another host). */
export async function rawRequest(url: string, options: RawRequest): Promise<RawAnswer> {
  let target = new URL(url);
  let headers = { ...options.headers };
  for (let hop = 0; ; hop++) {
    const answer = await once(target, headers, options);
    const location = answer.headers.location;
    if (![301, 302, 303, 307, 308].includes(answer.status) || !location || hop >= MAX_REDIRECTS) return answer;
    const next = new URL(location, target);
    // Credentials meant for the registry never follow it to another host.
    if (next.host !== target.host) {
      const { authorization: _dropped, ...rest } = headers;
      headers = rest;
    }
    if (target.protocol === 'https:' && next.protocol !== 'https:') throw new TransportError(`${target.host} redirected to plain HTTP (${next.origin}); refusing`, 'EINSECURE');
    target = next;
  }
}

async function once(target: URL, headers: Record<string, string>, options: RawRequest): Promise<RawAnswer> {
  try {
    const answer = await httpRequest(target.href, { method: options.method ?? 'GET', headers, timeoutMs: options.timeoutMs, maxBytes: options.maxBytes });
    return { status: answer.status, headers: answer.headers, body: answer.body, url: target.href };
  } catch (err) {
    if (!(err instanceof HttpRequestError)) throw err;
    const why = err.code === 'ETOOLARGE' ? `answered more than ${options.maxBytes} bytes for ${target.pathname}` : err.message;
    throw new TransportError(`${target.host}: ${why}`, err.code);
  }
}
