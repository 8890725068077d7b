/**
 * The routes of a cell: which host name Caddy forwards to which container:port. Both the
 * Caddyfile and the DNS zone are built from this one table, so a name is published in DNS exactly
 * when Caddy answers for it.
 */
import type { Manifest } from '../../crds/types.js';
import { compareText } from '../../crds/values.js';
import type { CellRouting } from '../shared/types.js';

export interface Route {
  /** `<subdomain>.<cell domain>` */
  host: string;
  subdomain: string;
  /** container:port Caddy forwards to. */
  backend: string;
  /** The installed service the route belongs to; null for a core site of the Cell. */
  service: string | null;
  /**
   * For a subdomain the manifest lists in `direct_subdomains`: the service's own address, which
   * the DNS record names instead of Caddy's (clients reach the service's opened ports there).
   */
  direct?: string;
}

/** A subdomain asked for twice: the first claim (core sites, then services by name) keeps it. */
export interface RouteConflict {
  subdomain: string;
  /** Who keeps the subdomain: a service name, or "cell" for a core site. */
  keptBy: string;
  keptBackend: string;
  /** Whose claim was dropped. */
  droppedFor: string;
  droppedBackend: string;
}

export interface RouteTable {
  /** Core sites first, then the services' routes; each part sorted by subdomain. */
  routes: Route[];
  conflicts: RouteConflict[];
}

export const CORE_OWNER = 'cell';

/** The routes of the cell, without the conflicts. See `cellRouteTable`. */
export function cellRoutes(input: CellRouting): Route[] {
  return cellRouteTable(input).routes;
}

/**
 * Builds the route table. Validation already refuses two services claiming one subdomain; should
 * such a pair reach here anyway, the claim met first wins and the other is reported, so the
 * output never depends on the order the documents were read in.
 */
export function cellRouteTable(input: CellRouting): RouteTable {
  const domain = input.cell.spec.domain;
  const claimed = new Map<string, { owner: string; backend: string }>();
  const conflicts: RouteConflict[] = [];
  const core: Route[] = [];
  const services: Route[] = [];

  const claim = (owner: string, subdomain: string, backend: string, into: Route[], service: string | null, direct?: string): void => {
    const earlier = claimed.get(subdomain);
    if (earlier) {
      // The same service naming one subdomain twice for one backend is a repetition, not a clash.
      if (earlier.owner !== owner || earlier.backend !== backend) {
        conflicts.push({ subdomain, keptBy: earlier.owner, keptBackend: earlier.backend, droppedFor: owner, droppedBackend: backend });
      }
      return;
    }
    claimed.set(subdomain, { owner, backend });
    into.push({ host: `${subdomain}.${domain}`, subdomain, backend, service, ...(direct === undefined ? {} : { direct }) });
  };

  for (const site of input.cell.spec.caddy?.sites ?? []) claim(CORE_OWNER, site.subdomain, site.backend, core, null);
  const byName = [...input.services].sort((a, b) => compareText(a.name, b.name));
  for (const s of byName) {
    const direct = new Set(s.manifest.direct_subdomains ?? []);
    for (const [subdomain, backend] of serviceClaims(s.manifest)) claim(s.name, subdomain, backend, services, s.name, direct.has(subdomain) && s.serviceIp ? s.serviceIp : undefined);
  }

  const bySubdomain = (a: Route, b: Route) => compareText(a.subdomain, b.subdomain);
  return { routes: [...core.sort(bySubdomain), ...services.sort(bySubdomain)], conflicts };
}

/**
 * The [subdomain, backend] pairs one manifest asks for, in the order they are claimed: the
 * primary subdomain, its aliases, the subdomains with a backend of their own, the web UI route.
 * Only a service with `has_subdomain` is routed at all.
 */
export function serviceClaims(m: Manifest): [string, string][] {
  if (!m.capabilities?.has_subdomain || typeof m.subdomain !== 'string' || typeof m.backend !== 'string') return [];
  const backend = m.backend;
  const pairs: [string, string][] = [[m.subdomain, backend]];
  for (const alias of m.extra_subdomains ?? []) pairs.push([alias, backend]);
  for (const key of Object.keys(m.extra_backends ?? {}).sort(compareText)) {
    const own = m.extra_backends?.[key];
    if (typeof own === 'string') pairs.push([key, own]);
  }
  const web = m.caddy_route?.subdomain;
  if (typeof web === 'string' && !pairs.some(([name]) => name === web)) pairs.push([web, backend]);
  return pairs;
}

