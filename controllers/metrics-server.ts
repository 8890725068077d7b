/**
 * The HTTP endpoint of `pic run --metrics-address`: `/metrics` (Prometheus text), `/healthz` (the
 * process answers) and `/readyz` (the operator finished its first pass and its last one is
 * recent). It listens only on loopback or on a Unix socket: metrics name every service and peer
 * of the cell, so reaching them from elsewhere is a decision for a proxy the admin sets up.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { Registry } from 'prom-client';
import { isIpv4, isIpv6, isLoopbackAddress } from '../crds/ipv4.js';

export type MetricsAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** A --metrics-address that pic refuses, with why and what it takes instead. */
export class MetricsAddressError extends Error {}

const ACCEPTED = 'a loopback HOST:PORT (127.0.0.1:9464, [::1]:9464, localhost:9464) or unix:/absolute/path';
/** Linux's limit on a socket path (sun_path), less its terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** Parse a --metrics-address; anything but loopback or an absolute socket path is refused. Pure. */
export function parseMetricsAddress(text: string): MetricsAddress {
  const shown = JSON.stringify(text);
  if (text.startsWith('unix:')) {
    const file = text.slice('unix:'.length);
    if (!path.isAbsolute(file)) throw new MetricsAddressError(`--metrics-address ${shown}: the socket path must be absolute (unix:/run/pic/metrics.sock)`);
    if (file.includes('\0') || path.normalize(file) !== file || file.endsWith('/')) throw new MetricsAddressError(`--metrics-address ${shown}: the socket path must be a plain absolute file path (no "..", "//" or trailing "/")`);
    if (Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES) throw new MetricsAddressError(`--metrics-address ${shown}: a socket path is at most ${MAX_SOCKET_PATH_BYTES} bytes`);
    return { kind: 'unix', path: file };
  }
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):([0-9]+)$/.exec(text);
  if (!match) throw new MetricsAddressError(`--metrics-address ${shown}: expected ${ACCEPTED}`);
  const bracketed = match[1];
  const host = bracketed ?? match[2] ?? '';
  const port = Number(match[3]);
  if (!(port >= 1 && port <= 65535) || match[3]!.length > 5) throw new MetricsAddressError(`--metrics-address ${shown}: the port must be between 1 and 65535`);
  if (host === '') throw new MetricsAddressError(`--metrics-address ${shown} names no host, which would listen on every address; metrics are served only on loopback: ${ACCEPTED}`);
  if (host === 'localhost') return { kind: 'tcp', host: '127.0.0.1', port };
  if (!(bracketed === undefined ? isIpv4(host) : isIpv6(host))) {
    throw new MetricsAddressError(`--metrics-address ${shown}: "${host}" is not an IP address; expected ${ACCEPTED} (an IPv6 address goes in brackets)`);
  }
  if (!isLoopbackAddress(host)) {
    throw new MetricsAddressError(`--metrics-address ${shown}: ${host} is not a loopback address; metrics are served only on ${ACCEPTED}. To scrape from another machine, put a proxy with authentication in front`);
  }
  return { kind: 'tcp', host, port };
}

/** How a person reaches the metrics, for the log. */
export function metricsUrl(address: MetricsAddress): string {
  if (address.kind === 'unix') return `unix:${address.path} (GET /metrics)`;
  return `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}/metrics`;
}

export interface Readiness {
  ready: boolean;
  message: string;
}

/**
 * Ready when the operator finished a full pass and the last one is no older than two resync
 * intervals and a minute (a pass is due every interval; one may run long). Pure.
 */
export function readinessOf(lastPassAt: number | undefined, resyncIntervalMs: number, now: number): Readiness {
  if (lastPassAt === undefined) return { ready: false, message: 'the first pass over the cell has not finished yet' };
  const age = Math.max(0, now - lastPassAt);
  const limit = 2 * resyncIntervalMs + 60_000;
  const ago = `${Math.round(age / 1000)}s ago`;
  if (age > limit) return { ready: false, message: `the last full pass finished ${ago}, longer than ${Math.round(limit / 1000)}s (passes are due every ${Math.round(resyncIntervalMs / 1000)}s): the loop may be stuck` };
  return { ready: true, message: `the last full pass finished ${ago}` };
}

export interface MetricsServer {
  /** Where it listens: the socket path, or host:port (with the port bound). */
  readonly address: MetricsAddress;
  close(): Promise<void>;
}

/** Serve `registry` and the health endpoints on `address`. Resolves once listening. */
export async function startMetricsServer(address: MetricsAddress, options: { registry: Registry; readiness: () => Readiness }): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    void answer(req, res, options).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`cannot collect the metrics: ${err.message}\n`);
    });
  });
  if (address.kind === 'unix') await removeStaleSocket(address.path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if (address.kind === 'unix') server.listen(address.path, done);
    else server.listen(address.port, address.host, done);
  });
  if (address.kind === 'unix') await fs.chmod(address.path, 0o660);
  const bound = server.address();
  const actual: MetricsAddress = address.kind === 'tcp' && typeof bound === 'object' && bound !== null ? { ...address, port: bound.port } : address;
  return {
    address: actual,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (address.kind === 'unix') await fs.rm(address.path, { force: true });
    },
  };
}

async function answer(req: http.IncomingMessage, res: http.ServerResponse, options: { registry: Registry; readiness: () => Readiness }): Promise<void> {
  const route = new URL(req.url ?? '/', 'http://pic').pathname;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('only GET and HEAD\n');
    return;
  }
  const text = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
  };
  switch (route) {
    case '/metrics':
      return text(200, await options.registry.metrics(), options.registry.contentType);
    case '/healthz':
      return text(200, 'ok\n');
    case '/readyz': {
      const readiness = options.readiness();
      return text(readiness.ready ? 200 : 503, `${readiness.ready ? 'ok' : 'not ready'}: ${readiness.message}\n`);
    }
    default:
      return text(404, 'not found; pic serves /metrics, /healthz and /readyz\n');
  }
}

/**
 * A socket file left by an operator that was killed is removed; one something still answers on,
 * or a file that is not a socket, is refused rather than taken over.
 */
async function removeStaleSocket(file: string): Promise<void> {
  const stat = await fs.lstat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (stat === undefined) return;
  if (!stat.isSocket()) throw new MetricsAddressError(`--metrics-address unix:${file}: that path exists and is not a socket; choose another path`);
  const inUse = await new Promise<boolean>((resolve) => {
    const probe = net.connect(file);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (inUse) throw new MetricsAddressError(`--metrics-address unix:${file}: another process is listening on that socket`);
  await fs.rm(file, { force: true });
}
