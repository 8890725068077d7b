/**
 * Reads what the zone is: the file on disk (the serial it carries and its bytes) and, for the DNS
 * server pic runs, the SOA serial that server answers with, which is what peers get.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { CellDocument } from '../../crds/types.js';
import type { ResourceContext } from '../shared/types.js';
import { decodeSoaAnswer, encodeSoaQuery, type ServedZone } from './wire.js';

/** `spec.dns.zoneFile` resolved against the cell folder; default `<state>/dns/<domain>.zone`. */
export function zoneFilePath(cell: CellDocument, ctx: Pick<ResourceContext, 'cellDir' | 'stateRoot'>): string {
  const configured = cell.spec.dns?.zoneFile;
  return configured ? path.resolve(ctx.cellDir, configured) : path.join(ctx.stateRoot, 'dns', `${cell.spec.domain}.zone`);
}

/** The zone file's content; '' when there is none yet. */
export async function readZoneFile(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw new Error(`cannot read the zone file ${file}: ${(err as Error).message}`);
  }
}

/** How long one SOA query waits for its answer, and how often it is asked before the server counts as silent. */
export const SOA_QUERY = { timeoutMs: 500, tries: 2 } as const;

/**
 * Asks the DNS server at `address` (port 53, UDP) for the SOA of `domain`: one datagram from this
 * host to the container's address on the cell network, answered in well under a millisecond by a
 * running server. No Docker request and no exec, so a pass that finds the zone served costs this
 * query and the read of the file.
 */
export async function queryServedZone(address: string, domain: string, options: { timeoutMs?: number; tries?: number; port?: number } = {}): Promise<ServedZone> {
  const timeoutMs = options.timeoutMs ?? SOA_QUERY.timeoutMs;
  const tries = options.tries ?? SOA_QUERY.tries;
  let last = '';
  for (let attempt = 0; attempt < tries; attempt++) {
    const outcome = await askOnce(address, options.port ?? 53, domain, timeoutMs);
    if (outcome.state !== 'no-answer') return outcome;
    last = outcome.why;
  }
  return { state: 'no-answer', why: `${last} (asked ${tries} time${tries === 1 ? '' : 's'})` };
}

/**
 * After a reload: what the server at `address` serves for `domain`, asked again every `everyMs`
 * until it serves `serial` or `withinMs` have passed (named loads a cell's zone in milliseconds;
 * the wait is bounded so that a reload that did not take is reported, not waited for).
 */
export async function servedAfterReload(address: string, domain: string, serial: number, withinMs: number, everyMs = 50): Promise<ServedZone> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const served = await queryServedZone(address, domain, { tries: 1 });
    if ((served.state === 'serving' && served.serial === serial) || Date.now() >= deadline) return served;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

function askOnce(address: string, port: number, domain: string, timeoutMs: number): Promise<ServedZone> {
  const id = randomInt(0, 0x10000);
  const query = encodeSoaQuery(id, domain);
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    let done = false;
    const finish = (served: ServedZone) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve(served);
    };
    const timer = setTimeout(() => finish({ state: 'no-answer', why: `no answer to a SOA query within ${timeoutMs} ms` }), timeoutMs);
    socket.on('error', (err: NodeJS.ErrnoException) => finish({ state: 'no-answer', why: `a SOA query failed: ${err.code ?? err.message}` }));
    socket.on('message', (message) => {
      const served = decodeSoaAnswer(message, id, domain);
      if (served) finish(served);
    });
    socket.connect(port, address, () => socket.send(query));
  });
}
