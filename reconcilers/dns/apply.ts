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
import { resolveOwnedContainer, type OwnedContainer } from '../shared/owned-container.js';

/** Atomically, mode 0644: a DNS server running as its own user must be able to read it. */
export async function writeZoneFile(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, text, 0o644);
}

/**
 * The DNS server pic runs, checked to be pic's own before it is signalled (a name held by another
 * container throws ContainerNotOwnedError); undefined when no container has the name: it reads
 * the zone when it starts.
 */
export async function resolveDnsServer(docker: Dockerode, cell: CellDocument): Promise<OwnedContainer | undefined> {
  try {
    return await resolveOwnedContainer(docker, coreContainerClaim(cell, 'dns', 'signal'));
  } catch (err) {
    if (err instanceof ContainerUnavailableError) return undefined;
    throw err;
  }
}

/**
 * SIGHUP to the DNS server's container, by id: BIND's named reloads its zones on it. A container
 * that is not running (or gone since) needs none (it reads the zone when it starts); that returns false.
 */
export async function reloadDnsServer(docker: Dockerode, container: OwnedContainer): Promise<boolean> {
  try {
    await docker.getContainer(container.id).kill({ signal: 'SIGHUP' });
    return true;
  } catch (err) {
    const code = dockerStatusCode(err);
    if (code === 404 || code === 409) return false;
    throw err;
  }
}
