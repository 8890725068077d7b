/**
 * One HTTP request to a neighbour on the cell (Caddy's admin API, a service's account endpoint),
 * through node:http.
 *
 * Not `fetch`: undici can leave a request unsettled when the peer accepts the connection and
 * drops it at once (as Docker's port proxy does while the container behind it starts), and its
 * time-out timer does not keep Node running, so a one-shot command could end in the middle of
 * its work, and the operator would sit out the whole time-out. Here the socket and the deadline
 * are ordinary handles, and such a peer is a plain "socket hang up" error.
 *
 * A Host header given in `headers` is sent exactly as given, even empty (node:http would otherwise
 * put the URL's host in its place).
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpAnswer {
  status: number;
  /** The body as UTF-8 text. */
  text: string;
  /** The body's exact bytes (digests are computed over them). */
  body: Buffer;
  headers: http.IncomingHttpHeaders;
}

export interface HttpRequestOptions {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  headers?: Record<string, string>;
  body?: string;
  /** The whole exchange: connect, send, and read the answer. */
  timeoutMs: number;
  /** Answers longer than this are cut off with an error (default 8 MiB). */
  maxBytes?: number;
  /**
   * A Unix socket to send the request through instead of connecting to the URL's host (whose
   * name then only fills the Host header). Caddy's admin API on a socket wants an empty Host:
   * give `headers: { Host: '' }`.
   */
  socketPath?: string;
}

/** Why a request got no answer. `sent` is false when the request cannot have reached the peer. */
export class HttpRequestError extends Error {
  override readonly name = 'HttpRequestError';
  constructor(
    message: string,
    /** A Node error code (ECONNREFUSED, ENOTFOUND, ECONNRESET…), or TIMEOUT. */
    readonly code: string,
    readonly sent: boolean,
  ) {
    super(message);
  }

  get timedOut(): boolean {
    return this.code === 'TIMEOUT';
  }
}

/** Codes of connection errors raised before a byte of the request left (ENOENT, EACCES: a Unix socket's path). */
const BEFORE_SENDING = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'ENOENT', 'EACCES']);

const DEFAULT_MAX_BYTES = 8 * 1024 * 1024;

export function httpRequest(url: string, options: HttpRequestOptions): Promise<HttpAnswer> {
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? https : http;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const headers: Record<string, string | number> = { ...options.headers };
  if (options.body !== undefined) headers['content-length'] = Buffer.byteLength(options.body);
  const ownHost = Object.keys(headers).some((name) => name.toLowerCase() === 'host');
  const where: http.RequestOptions = options.socketPath === undefined ? {} : { socketPath: options.socketPath };

  return new Promise<HttpAnswer>((resolve, reject) => {
    let connected = false;
    let settled = false;
    const finish = (err: HttpRequestError | undefined, answer?: HttpAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(answer!);
    };
    // A new connection each time (no keep-alive pool): these calls are few, and a pooled socket
    // that the peer closed meanwhile would fail the next request for nothing.
    const req = transport.request(target, { ...where, method: options.method ?? 'GET', headers, agent: false, setHost: !ownHost }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) finish(new HttpRequestError(`the answer is longer than ${maxBytes} bytes`, 'ETOOLARGE', true));
        else chunks.push(chunk);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        finish(undefined, { status: res.statusCode ?? 0, text: body.toString('utf8'), body, headers: res.headers });
      });
      res.on('error', (err: NodeJS.ErrnoException) => finish(new HttpRequestError(err.message, err.code ?? 'ERESPONSE', true)));
      res.on('aborted', () => finish(new HttpRequestError('the connection closed in the middle of the answer', 'ECONNRESET', true)));
    });
    const deadline = setTimeout(() => {
      finish(new HttpRequestError(`no answer within ${options.timeoutMs} ms`, 'TIMEOUT', connected));
    }, options.timeoutMs);
    req.on('socket', (socket) => {
      socket.once('connect', () => {
        connected = true;
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'EREQUEST';
      finish(new HttpRequestError(err.message, code, connected && !BEFORE_SENDING.has(code)));
    });
    req.end(options.body);
  });
}
