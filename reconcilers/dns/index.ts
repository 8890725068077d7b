/**
 * The DNS reconciler: the cell's routes → the zone file of its domain, served by the DNS server
 * pic runs. The SOA serial lives in the file itself, so it survives restarts of pic: a change is
 * "the zone rendered with the old serial differs from the file", and only then is the serial
 * bumped and the file rewritten. Whether the zone is served is observed each pass (the serial the
 * server answers with): a reload is planned while it differs from the file's, and its effect is
 * observed too, never assumed.
 *
 * observe (observe.ts) → plan (plan.ts, pure) → apply (apply.ts).
 */
import path from 'node:path';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';
import { DEFAULT_CORE_CONTAINERS } from '../../crds/schemas.js';
import { reloadDnsServer, resolveDnsServer, writeZoneFile } from './apply.js';
import { queryServedZone, readZoneFile, servedAfterReload, zoneFilePath } from './observe.js';
import { planDns, type DnsObservation, type DnsServer } from './plan.js';
import { serialDay } from './serial.js';
import type { ServedZone } from './wire.js';

export { nextSerial, serialDay } from './serial.js';
export { parseZoneSerial, renderZone, zoneOf, type Zone, type ZonePlan } from './render.js';
export { planDns, type DnsObservation, type DnsPlan, type DnsServer, type DnsServerStep } from './plan.js';

export const DNS_KEY = 'Resource/dns';

/** How long a reload is given to show in what the server answers before the pass fails (and is retried). */
export const RELOAD_CONFIRM_MS = 3000;

export interface DnsReconcilerOptions {
  /** The clock the serial's date comes from. */
  now?: () => Date;
  /** See RELOAD_CONFIRM_MS. */
  reloadConfirmMs?: number;
}

/** The DNS server pic runs for this Cell, if it runs one. */
function dnsServerOf(input: CellRouting): DnsServer | undefined {
  const run = input.cell.spec.dns?.run;
  return run ? { container: run.container ?? DEFAULT_CORE_CONTAINERS.dns, address: run.address } : undefined;
}

function describeServed(served: ServedZone): string {
  return served.state === 'serving' ? `serves serial ${served.serial}` : served.state === 'not-serving' ? served.why : `gives ${served.why}`;
}

export function createDnsReconciler(options: DnsReconcilerOptions = {}): ResourceReconciler {
  const now = options.now ?? (() => new Date());
  const confirmMs = options.reloadConfirmMs ?? RELOAD_CONFIRM_MS;

  async function observe(input: CellRouting, ctx: ResourceContext): Promise<DnsObservation> {
    const file = zoneFilePath(input.cell, ctx);
    const current = await readZoneFile(file);
    const server = dnsServerOf(input);
    return server ? { file, current, server: { ...server, served: await queryServedZone(server.address, input.cell.spec.domain) } } : { file, current };
  }

  const cellFile = (ctx: ResourceContext) => path.join(ctx.cellDir, 'cell.yaml');

  return {
    key: DNS_KEY,

    // A server that does not answer is no change pic can make here (Core/dns's plan shows its start).
    async plan(input, ctx) {
      const p = planDns(input, await observe(input, ctx), serialDay(now()), cellFile(ctx));
      if (!p.publish) return [];
      const { server } = p;
      return !p.write && server.step === 'reload' ? [`reload the DNS server ${server.server.container} (${server.server.address}): it ${server.why}`] : p.diff;
    },

    async reconcile(input, ctx): Promise<ResourceOutcome> {
      const observed = await observe(input, ctx);
      const p = planDns(input, observed, serialDay(now()), cellFile(ctx));
      const file = observed.file;
      if (!p.publish) return { changed: false, summary: `no zone: ${p.why}`, facts: { zoneFile: file, notices: [p.why] } };
      const records = p.table.routes.length;
      const head = `${records} record${records === 1 ? '' : 's'} in ${input.cell.spec.domain}`;
      const facts = { zoneFile: file, serial: p.serial, records: p.table.routes.map((r) => r.host) };

      // Checked before anything is written or signalled: a name another container holds stops the
      // pass here (Stalled, naming it). A pass with nothing to do asks Docker nothing.
      const acts = p.write || p.server.step === 'reload' || p.server.step === 'unreachable';
      const server = acts && input.cell.spec.dns?.run ? await resolveDnsServer(ctx.docker, input.cell) : undefined;
      if (p.write) await writeZoneFile(file, p.text);
      const written = p.write ? `${file} written with serial ${p.serial} and ${head}` : '';

      switch (p.server.step) {
        case 'none':
          if (!p.write) return { changed: false, summary: `${head}; zone unchanged (serial ${p.serial})`, facts };
          ctx.event('ZoneWritten', written);
          return { changed: true, summary: `${head}; zone written with serial ${p.serial}`, facts };
        case 'in-sync':
          return { changed: false, summary: `${head}; zone unchanged and served (serial ${p.serial})`, facts };
        case 'unreachable':
          if (p.write) ctx.event('ZoneWritten', `${written}; the DNS server does not answer`, 'Warning');
          throw new Error(
            `the DNS server ${p.server.server.container} (${p.server.server.address}) does not answer for ${input.cell.spec.domain}: ${p.server.why}; ` +
              (p.write ? `the zone file was written with serial ${p.serial}, which it loads when it starts` : `cannot confirm it serves serial ${p.serial}`) +
              '; Core/dns runs it, and this is tried again',
          );
        case 'reload': {
          const { container, address } = p.server.server;
          try {
            await reloadDnsServer(ctx.docker, server, container);
            const after = await servedAfterReload(address, input.cell.spec.domain, p.serial, confirmMs);
            if (after.state !== 'serving' || after.serial !== p.serial) {
              throw new Error(
                `the DNS server ${container} (${address}) was sent SIGHUP to load serial ${p.serial} of ${file}, but ${confirmMs} ms later it ${describeServed(after)}: ` +
                  `its log says why (docker logs ${container}); the reload is sent again on the next pass`,
              );
            }
          } catch (err) {
            if (p.write) ctx.event('ZoneWritten', `${written}; the DNS server ${container} does not serve it yet`, 'Warning');
            throw err;
          }
          if (p.write) {
            ctx.event('ZoneWritten', `${written}; the DNS server ${container} serves it`);
            return { changed: true, summary: `${head}; zone written with serial ${p.serial} and served`, facts };
          }
          ctx.event('ZoneReloaded', `the DNS server ${container} (${address}) ${p.server.why}: sent SIGHUP, and it now serves serial ${p.serial}`);
          return { changed: true, summary: `${head}; zone unchanged (serial ${p.serial}), now served: the DNS server had not loaded it (it ${p.server.why}) and was sent SIGHUP`, facts };
        }
      }
    },
  };
}

export const dnsReconciler: ResourceReconciler = createDnsReconciler();
