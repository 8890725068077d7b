/**
 * Writes the zone file. There is no reload to ask for: CoreDNS's `file` plugin re-reads a zone
 * whose SOA serial grew, which is why every content change bumps the serial.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../state/atomic-write.js';

/** Atomically, mode 0644: a DNS server running as its own user must be able to read it. */
export async function writeZoneFile(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, text, 0o644);
}
