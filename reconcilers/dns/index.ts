/**
 * The DNS reconciler: the cell's routes → the zone file of its domain. The SOA serial lives in
 * the file itself, so it survives restarts of pic: a change is "the zone rendered with the old
 * serial differs from the file", and only then is the serial bumped and the file rewritten.
 */
import path from 'node:path';
import { cellRouteTable, type RouteTable } from '../caddy/routes.js';
import { unifiedDiffLines } from '../shared/diff.js';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';
import { reloadDnsServer, resolveDnsServer, writeZoneFile } from './apply.js';
import { readZoneFile, zoneFilePath } from './observe.js';
import { parseZoneSerial, renderZone, zoneOf } from './render.js';
import { nextSerial, serialDay } from './serial.js';

export { nextSerial, serialDay } from './serial.js';
export { parseZoneSerial, renderZone, zoneOf, type Zone, type ZonePlan } from './render.js';

export const DNS_KEY = 'Resource/dns';

export type DnsPlan =
  | { publish: false; why: string; table: RouteTable }
  | {
      publish: true;
      table: RouteTable;
      /** The zone to write: the file's content when unchanged, else with the next serial. */
      text: string;
      serial: number;
      changed: boolean;
      /** Unified diff of the file, [] when unchanged. */
      diff: string[];
    };

/**
 * Pure: desired routes + the zone file as it is + today's date (YYYYMMDD) → what to write.
 * `cellFile` only names the Cell document in error messages.
 */
export function planDns(input: CellRouting, file: string, current: string, today: string, cellFile?: string): DnsPlan {
  const table = cellRouteTable(input);
  const plan = zoneOf(input.cell.spec, table.routes, cellFile);
  if (!plan.publish) return { publish: false, why: plan.why, table };
  const previous = parseZoneSerial(current);
  if (previous !== undefined && renderZone(plan.zone, previous) === current) {
    return { publish: true, table, text: current, serial: previous, changed: false, diff: [] };
  }
  const serial = nextSerial(previous, today);
  const text = renderZone(plan.zone, serial);
  return { publish: true, table, text, serial, changed: true, diff: unifiedDiffLines(file, current, text) };
}

export interface DnsReconcilerOptions {
  /** The clock the serial's date comes from. */
  now?: () => Date;
}

export function createDnsReconciler(options: DnsReconcilerOptions = {}): ResourceReconciler {
  const now = options.now ?? (() => new Date());

  async function observeAndPlan(input: CellRouting, ctx: ResourceContext): Promise<{ file: string; plan: DnsPlan }> {
    const file = zoneFilePath(input.cell, ctx);
    const current = await readZoneFile(file);
    return { file, plan: planDns(input, file, current, serialDay(now()), path.join(ctx.cellDir, 'cell.yaml')) };
  }

  return {
    key: DNS_KEY,

    async plan(input, ctx) {
      const { plan } = await observeAndPlan(input, ctx);
      return plan.publish ? plan.diff : [];
    },

    async reconcile(input, ctx): Promise<ResourceOutcome> {
      const { file, plan } = await observeAndPlan(input, ctx);
      if (!plan.publish) return { changed: false, summary: `no zone: ${plan.why}`, facts: { zoneFile: file, notices: [plan.why] } };
      const records = plan.table.routes.length;
      const facts = { zoneFile: file, serial: plan.serial, records: plan.table.routes.map((r) => r.host) };
      const head = `${records} record${records === 1 ? '' : 's'} in ${input.cell.spec.domain}`;
      if (!plan.changed) return { changed: false, summary: `${head}; zone unchanged (serial ${plan.serial})`, facts };
      // Checked before the zone is written: a name another container holds stops the pass here
      // (Stalled, naming it), and the next pass after it is gone writes and signals.
      const server = input.cell.spec.dns?.run ? await resolveDnsServer(ctx.docker, input.cell) : undefined;
      await writeZoneFile(file, plan.text);
      const reloaded = server ? await reloadDnsServer(ctx.docker, server) : false;
      ctx.event('ZoneWritten', `${file} written with serial ${plan.serial} and ${head}${reloaded ? '; DNS server told to reload' : ''}`);
      return { changed: true, summary: `${head}; zone written with serial ${plan.serial}`, facts };
    },
  };
}

export const dnsReconciler: ResourceReconciler = createDnsReconciler();
