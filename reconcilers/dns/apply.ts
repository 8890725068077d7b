/**
 * Writes the zone file, and tells the DNS server pic runs to load it again. Every content change
 * bumps the SOA serial, so a server that watches its zone (or a secondary) sees a newer zone too.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { CellDocument } from '../../crds/types.js';
import { writeFileAtomic } from '../../state/atomic-write.js';
import { dockerStatusCode } from '../containers/types.js';
import { coreContainerClaim } from '../core/spec.js';
import { ContainerUnavailableError } from '../shared/exec.js';
import { ContainerNotOwnedError, resolveOwnedContainer, type OwnedContainer } from '../shared/owned-container.js';

/** Atomically, mode 0644: a DNS server running as its own user must be able to read it. */
export async function writeZoneFile(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, text, 0o644);
}

/**
 * The DNS server pic runs, checked to be pic's own before its zone is written or it is signalled
 * (a name held by another container throws ContainerNotOwnedError, which stalls the resource
 * naming the holder); undefined when no container has the name: it reads the zone when it starts.
 */
export async function resolveDnsServer(docker: Dockerode, cell: CellDocument): Promise<OwnedContainer | undefined | { unreachable: Error }> {
  try {
    return await resolveOwnedContainer(docker, coreContainerClaim(cell, 'dns', 'signal'));
  } catch (err) {
    if (err instanceof ContainerUnavailableError) return undefined;
    if (err instanceof ContainerNotOwnedError) throw err;
    // Docker itself did not answer: the zone is still written (the server loads it when it can),
    // and the reload fails below with this reason.
    return { unreachable: err as Error };
  }
}

/**
 * SIGHUP to the DNS server's container, by the id checked to be pic's: BIND's named loads its
 * zones again on it. Whether it did is not taken from Docker's reply but observed (the serial it
 * then answers with), so every failure here is an error saying what stood in the way; the next
 * pass observes and sends again.
 */
export async function reloadDnsServer(docker: Dockerode, container: OwnedContainer | undefined | { unreachable: Error }, name: string): Promise<void> {
  try {
    if (!container) throw Object.assign(new Error('no such container'), { statusCode: 404 });
    if ('unreachable' in container) throw container.unreachable;
    await docker.getContainer(container.id).kill({ signal: 'SIGHUP' });
  } catch (err) {
    const code = dockerStatusCode(err);
    const why = code === 404 ? 'there is no such container (Core/dns creates it)' : code === 409 ? 'it is not running (Core/dns starts it)' : (err as Error).message;
    throw new Error(`cannot send SIGHUP to the DNS server's container ${name} to load the zone again: ${why}; the next pass sends it again`, { cause: err });
  }
}
