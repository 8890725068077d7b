/**
 * Pure: the cell's routes, the zone file as it is, what the DNS server pic runs answers, and
 * today's date → what to write and whether the server must load the zone again.
 *
 * The file alone cannot say whether the zone is served: a write whose reload never arrived (the
 * Docker API away, the container restarting) leaves a file that is right and a server that still
 * answers with the old serial. So the serial the server answers with is compared with the file's
 * on every pass, and a difference is a reload to do, however the difference came about.
 */
import { cellRouteTable, type RouteTable } from '../caddy/routes.js';
import { unifiedDiffLines } from '../shared/diff.js';
import type { CellRouting } from '../shared/types.js';
import { parseZoneSerial, renderZone, zoneOf } from './render.js';
import { laterSerial, nextSerial } from './serial.js';
import type { ServedZone } from './wire.js';

/** What was read. */
export interface DnsObservation {
  /** The zone file's path and its content ('' when absent). */
  file: string;
  current: string;
  /** The DNS server pic runs and what it answers for the zone; absent when pic runs none (nothing to ask, nothing to reload). */
  server?: DnsServer & { served: ServedZone };
}

/** The DNS server pic runs: its container and its address on the cell network. */
export interface DnsServer {
  container: string;
  address: string;
}

/** What to do about the DNS server pic runs. */
export type DnsServerStep =
  /** pic runs no DNS server: the admin's loads the file on its own terms. */
  | { step: 'none' }
  /** It serves the zone's serial. */
  | { step: 'in-sync'; server: DnsServer }
  /** Send it a reload; `why` completes "it …". */
  | { step: 'reload'; server: DnsServer; why: string }
  /** It does not answer: nothing can be sent that it would act on; the pass fails and is retried. */
  | { step: 'unreachable'; server: DnsServer; why: string };

export type DnsPlan =
  | { publish: false; why: string; table: RouteTable }
  | {
      publish: true;
      table: RouteTable;
      /** The zone: the file's content when unchanged, else rendered with the next serial. */
      text: string;
      serial: number;
      /** The rendered zone differs from the file: write it. */
      write: boolean;
      /** Unified diff of the file, [] when unchanged. */
      diff: string[];
      server: DnsServerStep;
    };

/**
 * `today` is the date as YYYYMMDD (the clock is the caller's); `cellFile` only names the Cell
 * document in messages. A new serial comes after both the file's and the one served, so that
 * neither the server nor a secondary ever sees it go backwards.
 */
export function planDns(input: CellRouting, observed: DnsObservation, today: string, cellFile?: string): DnsPlan {
  const table = cellRouteTable(input);
  const zone = zoneOf(input.cell.spec, table.routes, cellFile);
  if (!zone.publish) return { publish: false, why: zone.why, table };
  const { file, current } = observed;
  const previous = parseZoneSerial(current);
  if (previous !== undefined && renderZone(zone.zone, previous) === current) {
    return { publish: true, table, text: current, serial: previous, write: false, diff: [], server: serverStep(observed.server, previous, false) };
  }
  const served = observed.server?.served;
  const serial = nextSerial(laterSerial(previous, served?.state === 'serving' ? served.serial : undefined), today);
  const text = renderZone(zone.zone, serial);
  return { publish: true, table, text, serial, write: true, diff: unifiedDiffLines(file, current, text), server: serverStep(observed.server, serial, true) };
}

function serverStep(observed: DnsObservation['server'], serial: number, write: boolean): DnsServerStep {
  if (observed === undefined) return { step: 'none' };
  const { served, ...server } = observed;
  switch (served.state) {
    case 'no-answer':
      return { step: 'unreachable', server, why: served.why };
    case 'not-serving':
      return { step: 'reload', server, why: served.why };
    case 'serving':
      if (served.serial === serial) return { step: 'in-sync', server };
      return { step: 'reload', server, why: `serves serial ${served.serial}, the zone file ${write ? 'gets' : 'has'} ${serial}` };
  }
}
