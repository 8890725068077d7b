/**
 * Reads what Caddy is living by: the Caddyfile on disk, and (with one GET of /config/) the
 * config Caddy is actually running, which tells whether it still serves that file.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { CellDocument } from '../../crds/types.js';
import { isRecord } from '../../crds/values.js';
import { TerminalError } from '../errors.js';
import { HttpRequestError, httpRequest, type HttpAnswer, type HttpRequestOptions } from '../shared/http.js';
import type { ResourceContext } from '../shared/types.js';
import type { Route } from './routes.js';

/** How long one call to the admin API may take before Caddy counts as unreachable. */
export const ADMIN_TIMEOUT_MS = 10_000;

export type LiveCaddy =
  | { reachable: true; config: unknown }
  | { reachable: false; problem: string };

/** `spec.caddy.caddyfile` resolved against the cell folder; default `<state>/caddy/Caddyfile`. */
export function caddyfilePath(cell: CellDocument, ctx: Pick<ResourceContext, 'cellDir' | 'stateRoot'>): string {
  const configured = cell.spec.caddy?.caddyfile;
  return configured ? path.resolve(ctx.cellDir, configured) : path.join(ctx.stateRoot, 'caddy', 'Caddyfile');
}

/** The Caddyfile as it is on disk; '' when there is none yet. */
export async function readCaddyfile(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new Error(`cannot read the Caddyfile ${file}: ${(err as Error).message}`);
  }
}

/**
 * How to reach the admin API at an admin address: "host:port", a URL, or a Unix socket written as
 * Caddy writes it (`unix//run/caddy/admin.sock`, the path absolute).
 */
export interface AdminTarget {
  /** The URL's scheme and host; on a socket the host only stands in (the Host header is sent empty). */
  base: string;
  socketPath?: string;
  headers: Record<string, string>;
}

export function adminTarget(adminAddress: string): AdminTarget {
  const unix = /^unix\/(.*)$/.exec(adminAddress);
  if (unix) {
    const socketPath = unix[1] ?? '';
    if (!path.isAbsolute(socketPath)) {
      throw new TerminalError(
        `spec.caddy.adminAddress "${adminAddress}": a Unix socket needs an absolute path, as in unix//run/caddy/admin.sock`,
        'InvalidSpec',
      );
    }
    // On a socket Caddy's admin API accepts only an empty Host (its check against DNS rebinding:
    // Caddy 2.6 allows nothing else, later versions also 127.0.0.1 and ::1).
    return { base: 'http://caddy-admin', socketPath, headers: { Host: '' } };
  }
  const base = /^https?:\/\//.test(adminAddress) ? adminAddress : `http://${adminAddress}`;
  return { base: base.replace(/\/+$/, ''), headers: {} };
}

/** One request to the admin API at `adminAddress`; `route` starts with a slash. */
export async function adminRequest(adminAddress: string, route: string, options: HttpRequestOptions): Promise<HttpAnswer> {
  const target = adminTarget(adminAddress);
  return httpRequest(`${target.base}${route}`, {
    ...options,
    headers: { ...target.headers, ...options.headers },
    ...(target.socketPath === undefined ? {} : { socketPath: target.socketPath }),
  });
}

/**
 * One GET of the running config. Connection failures, time-outs and 5xx answers mean "Caddy is
 * not there right now" (worth a retry); a 4xx means pic is not allowed to talk to it, which no
 * retry fixes.
 */
export async function fetchLiveConfig(adminAddress: string, timeoutMs = ADMIN_TIMEOUT_MS): Promise<LiveCaddy> {
  adminTarget(adminAddress); // a malformed address is the admin's to fix, not a failure to retry
  let res: HttpAnswer;
  try {
    res = await adminRequest(adminAddress, '/config/', { timeoutMs });
  } catch (err) {
    return { reachable: false, problem: describeRequestFailure(err, timeoutMs) };
  }
  const body = res.text;
  if (res.status >= 500) return { reachable: false, problem: `it answered GET /config/ with HTTP ${res.status}: ${errorText(body)}` };
  if (res.status !== 200) {
    throw new TerminalError(`${adminAddress} answered GET /config/ with HTTP ${res.status}: ${errorText(body)}. ${adminHint(res.status)}`, 'CaddyAdminRefused');
  }
  try {
    return { reachable: true, config: JSON.parse(body) as unknown };
  } catch {
    return { reachable: false, problem: `it answered GET /config/ with something that is not JSON: ${body.slice(0, 200)}` };
  }
}

export interface LiveRoutes {
  /** `admin.listen` of the running config; undefined when Caddy uses its default. */
  adminListen?: string;
  /** host → the upstreams (`dial`) of the routes matching that host. */
  hosts: Map<string, string[]>;
  /** True when Caddy runs with no config at all (started without one, or it was unloaded). */
  empty: boolean;
}

/** What the running JSON config serves: the host matchers of its HTTP routes and their upstreams. */
export function liveRoutes(config: unknown): LiveRoutes {
  const hosts = new Map<string, string[]>();
  if (!isRecord(config)) return { hosts, empty: true };
  const admin = isRecord(config.admin) && typeof config.admin.listen === 'string' ? config.admin.listen : undefined;
  const apps = isRecord(config.apps) ? config.apps : {};
  const http = isRecord(apps.http) ? apps.http : {};
  const servers = isRecord(http.servers) ? http.servers : {};
  for (const server of Object.values(servers)) {
    if (!isRecord(server) || !Array.isArray(server.routes)) continue;
    for (const route of server.routes) {
      if (!isRecord(route)) continue;
      const matched = Array.isArray(route.match) ? route.match.flatMap((m) => (isRecord(m) && Array.isArray(m.host) ? (m.host as unknown[]) : [])) : [];
      const dials = collectDials(route.handle);
      for (const host of matched) {
        if (typeof host === 'string') hosts.set(host, [...(hosts.get(host) ?? []), ...dials]);
      }
    }
  }
  return { ...(admin === undefined ? {} : { adminListen: admin }), hosts, empty: false };
}

/**
 * Whether the running config serves exactly `routes`: every host forwarded to its backend, and no
 * other host. When it does not (Caddy restarted without the file, or someone loaded another
 * config), the file on disk is right but Caddy must be given it again.
 */
export function liveServes(live: LiveRoutes, routes: readonly Route[]): boolean {
  if (live.hosts.size !== routes.length) return false;
  return routes.every((r) => {
    const dials = live.hosts.get(r.host);
    return dials !== undefined && dials.length > 0 && dials.every((d) => d === r.backend);
  });
}

/**
 * Every `dial` under a route's handlers, in document order. Walked with an explicit stack: the
 * config comes from a process pic does not control, and nesting must not be able to overflow ours.
 */
function collectDials(value: unknown): string[] {
  const dials: string[] = [];
  const stack: unknown[] = [value];
  const seen = new Set<unknown>();
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    seen.add(v);
    const children = Array.isArray(v) ? v : Object.values(v);
    if (!Array.isArray(v) && typeof (v as Record<string, unknown>).dial === 'string') dials.push((v as Record<string, unknown>).dial as string);
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return dials;
}

/** What to check when the admin address answers with a 4xx other than a refused config. */
export function adminHint(status: number): string {
  return status === 403
    ? "Caddy's admin API does not accept requests for this address: make spec.caddy.adminAddress match Caddy's admin listen address or its allowed origins."
    : "Is spec.caddy.adminAddress really Caddy's admin API?";
}

/** Caddy's error answers are `{"error": "..."}`; anything else is shown as it came. */
export function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (isRecord(parsed) && typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: fall through
  }
  return body.trim().slice(0, 500) || '(empty answer)';
}

/** "connection refused", "no answer within 10 s", ... for a failed admin API request. */
export function describeRequestFailure(err: unknown, timeoutMs: number): string {
  if (!(err instanceof HttpRequestError)) return err instanceof Error ? err.message : String(err);
  if (err.timedOut) return `no answer within ${Math.round(timeoutMs / 1000)} s`;
  if (err.code === 'ECONNREFUSED') return 'connection refused (is Caddy running?)';
  if (err.code === 'ENOENT') return 'its socket is not there (is Caddy running?)';
  if (err.code === 'EACCES') return 'permission to its socket is denied';
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return `its host name does not resolve (${err.code})`;
  return `${err.code}: ${err.message}`;
}
