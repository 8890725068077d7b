/**
 * The Caddy reconciler: the cell's routes → a Caddyfile on disk and in force in Caddy.
 *
 * Where pic reaches Caddy's admin API: for the Caddy pic runs (`spec.caddy.run`), the Unix socket
 * in the state directory that only that container mounts (reconcilers/core/spec.ts), and every
 * Caddyfile pic renders for it keeps the admin API there; for the admin's own Caddy,
 * `spec.caddy.adminAddress`. Where the admin's Caddy itself listens can differ from that address
 * (Caddy in a container with its admin port published), so the `admin` option written into the
 * Caddyfile is the one Caddy already runs with: loading a config without it would move the admin
 * API to Caddy's default and lock pic out.
 */
import { caddyAdminAddressOf, CADDY_ADMIN_LISTEN } from '../core/spec.js';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';
import { unifiedDiffLines } from '../shared/diff.js';
import { applyCaddyfile } from './apply.js';
import { ADMIN_TIMEOUT_MS, caddyfilePath, fetchLiveConfig, liveRoutes, liveServes, readCaddyfile, type LiveCaddy } from './observe.js';
import { adminListenOf, renderCaddyfile, type RenderedCaddyfile } from './render.js';
import { cellRouteTable, type RouteConflict, type RouteTable } from './routes.js';

export { cellRoutes, cellRouteTable, type Route, type RouteConflict, type RouteTable } from './routes.js';
export { renderCaddyfile, type RenderedCaddyfile } from './render.js';

export const CADDY_KEY = 'Resource/caddy';

/** What was read: the file (path and content, '' when absent) and, with an admin address, Caddy's running config. */
export interface CaddyObservation {
  file: string;
  current: string;
  /** Undefined when the Cell gives no admin address. */
  live?: LiveCaddy;
}

export interface CaddyPlan {
  table: RouteTable;
  rendered: RenderedCaddyfile;
  /** The rendered bytes differ from the file: load into Caddy, then write. */
  fileChanged: boolean;
  /** The file is right but Caddy runs something else (it lost its config): load it again. */
  reloadNeeded: boolean;
  /** Unified diff of the file, [] when unchanged. */
  diff: string[];
}

/** Pure: desired routes + what was observed → what to do. */
export function planCaddy(input: CellRouting, observed: CaddyObservation): CaddyPlan {
  const table = cellRouteTable(input);
  const running = observed.live?.reachable ? liveRoutes(observed.live.config) : undefined;
  // pic's own Caddy keeps its socket. The admin's: its running admin option wins; a Caddy with no
  // config at all falls back to the file's.
  const adminListen = input.cell.spec.caddy?.run ? CADDY_ADMIN_LISTEN : running && !running.empty ? running.adminListen : adminListenOf(observed.current);
  const rendered = renderCaddyfile(table.routes, {
    ...(input.cell.spec.caddy?.tls ? { tls: input.cell.spec.caddy.tls } : {}),
    ...(adminListen ? { adminListen } : {}),
  });
  const fileChanged = rendered.text !== observed.current;
  const reloadNeeded = !fileChanged && running !== undefined && !liveServes(running, table.routes);
  return { table, rendered, fileChanged, reloadNeeded, diff: unifiedDiffLines(observed.file, observed.current, rendered.text) };
}

export interface CaddyReconcilerOptions {
  /** Time allowed for each call to Caddy's admin API. */
  adminTimeoutMs?: number;
}

export function createCaddyReconciler(options: CaddyReconcilerOptions = {}): ResourceReconciler {
  const timeoutMs = options.adminTimeoutMs ?? ADMIN_TIMEOUT_MS;

  async function observe(input: CellRouting, ctx: ResourceContext): Promise<CaddyObservation> {
    const file = caddyfilePath(input.cell, ctx);
    const current = await readCaddyfile(file);
    const adminAddress = caddyAdminAddressOf(input.cell, ctx.stateRoot);
    return adminAddress === undefined ? { file, current } : { file, current, live: await fetchLiveConfig(adminAddress, timeoutMs) };
  }

  return {
    key: CADDY_KEY,

    async plan(input, ctx) {
      const p = planCaddy(input, await observe(input, ctx));
      const adminAddress = caddyAdminAddressOf(input.cell, ctx.stateRoot);
      return p.reloadNeeded ? [...p.diff, `reload Caddy at ${adminAddress}: it does not run the Caddyfile's routes`] : p.diff;
    },

    async reconcile(input, ctx): Promise<ResourceOutcome> {
      const observed = await observe(input, ctx);
      const p = planCaddy(input, observed);
      const adminAddress = caddyAdminAddressOf(input.cell, ctx.stateRoot);
      const routes = p.table.routes;
      const facts = {
        caddyfile: observed.file,
        routes: routes.map((r) => ({ host: r.host, backend: r.backend, service: r.service })),
        ...(p.table.conflicts.length > 0 ? { conflicts: p.table.conflicts } : {}),
      };
      const head = `${count(routes.length, 'route')}${conflictNote(p.table.conflicts)}`;

      if (observed.live && !observed.live.reachable) {
        throw new Error(
          `Caddy's admin API at ${adminAddress} is unreachable: ${observed.live.problem}; ` +
            (p.fileChanged ? 'the new Caddyfile was not written' : 'cannot confirm Caddy serves the Caddyfile'),
        );
      }
      if (!p.fileChanged && !p.reloadNeeded) return { changed: false, summary: `${head}; Caddyfile unchanged`, facts };

      for (const c of p.table.conflicts) {
        ctx.event('RouteConflict', `subdomain ${c.subdomain} stays with ${c.keptBy} (${c.keptBackend}); ${c.droppedFor} is not routed there`, 'Warning');
      }
      await applyCaddyfile({
        file: observed.file,
        ...(adminAddress === undefined ? {} : { adminAddress }),
        rendered: p.rendered,
        previous: observed.current,
        write: p.fileChanged,
        timeoutMs,
      });

      let summary: string;
      if (!p.fileChanged) {
        summary = `${head}; Caddyfile unchanged; Caddy at ${adminAddress} had lost it and loaded it again`;
        ctx.event('CaddyReloaded', `Caddy at ${adminAddress} was not running the routes of ${observed.file}; loaded it again`);
      } else if (adminAddress === undefined) {
        summary = `${head}; Caddyfile written; Caddy not told (no spec.caddy.adminAddress): a Caddy started with --watch, or restarted, picks it up`;
        ctx.event('CaddyfileWritten', `${observed.file} written with ${count(routes.length, 'route')}; no admin address to reload Caddy through`);
      } else {
        summary = `${head}; Caddyfile written and loaded into Caddy at ${adminAddress}`;
        ctx.event('CaddyfileWritten', `${observed.file} written with ${count(routes.length, 'route')} and loaded into Caddy at ${adminAddress}`);
      }
      return { changed: true, summary, facts };
    },
  };
}

export const caddyReconciler: ResourceReconciler = createCaddyReconciler();

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function conflictNote(conflicts: RouteConflict[]): string {
  if (conflicts.length === 0) return '';
  return ` (${count(conflicts.length, 'subdomain')} claimed twice: ${conflicts.map((c) => `${c.subdomain} kept by ${c.keptBy}, not ${c.droppedFor}`).join(', ')})`;
}
