/** Reads the zone file as it is on disk: the serial it carries and its bytes. */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { CellDocument } from '../../crds/types.js';
import type { ResourceContext } from '../shared/types.js';

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
