/**
 * Writes the zone file, and tells the DNS server pic runs to load it again. Every content change
 * bumps the SOA serial, so a server that watches its zone (or a secondary) sees a newer zone too.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { writeFileAtomic } from '../../state/atomic-write.js';
import { dockerStatusCode } from '../containers/types.js';

/** Atomically, mode 0644: a DNS server running as its own user must be able to read it. */
export async function writeZoneFile(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, text, 0o644);
}

/**
 * SIGHUP to the DNS server's container: BIND's named reloads its zones on it. A container that
 * is not running needs none (it reads the zone when it starts); that returns false.
 */
export async function reloadDnsServer(docker: Dockerode, container: string): Promise<boolean> {
  try {
    await docker.getContainer(container).kill({ signal: 'SIGHUP' });
    return true;
  } catch (err) {
    const code = dockerStatusCode(err);
    if (code === 404 || code === 409) return false;
    throw err;
  }
}
