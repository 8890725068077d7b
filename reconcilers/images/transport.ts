/**
 * The registry's HTTP exchanges, through node:http/https like reconcilers/shared/http.ts (see
 * there why not `fetch`), but keeping what a registry client needs and that helper drops: the
 * answer's headers and its exact bytes (digests are computed over them).
 */
import http from 'node:http';
import https from 'node:https';

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

function once(target: URL, headers: Record<string, string>, options: RawRequest): Promise<RawAnswer> {
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise<RawAnswer>((resolve, reject) => {
    let settled = false;
    const finish = (err: TransportError | undefined, answer?: RawAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(answer!);
    };
    const req = transport.request(target, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBytes) finish(new TransportError(`${target.host} answered more than ${options.maxBytes} bytes for ${target.pathname}`, 'ETOOLARGE'));
        else chunks.push(chunk);
      });
      res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), url: target.href }));
      res.on('error', (err: NodeJS.ErrnoException) => finish(new TransportError(err.message, err.code ?? 'ERESPONSE')));
      res.on('aborted', () => finish(new TransportError('the connection closed in the middle of the answer', 'ECONNRESET')));
    });
    const deadline = setTimeout(() => finish(new TransportError(`no answer from ${target.host} within ${options.timeoutMs} ms`, 'TIMEOUT')), options.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish(new TransportError(`${target.host}: ${err.message}`, err.code ?? 'EREQUEST')));
    req.end();
  });
}
