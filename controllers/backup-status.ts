/**
 * The status store of the operator, with each service's backup facts in its status: every status
 * of a ServiceInstall that is written carries `facts.backup` (the last verified snapshot, whether
 * it is overdue) and, when overdue, a notice. The reconcile of a service does not know about
 * backups; the facts come from the backup scheduler and are merged here, so an unchanged service
 * still writes nothing, and a change of its backup facts alone rewrites its status once.
 */
import type { BackupFacts } from '../reconcilers/backup/schedule.js';
import { SERVICE_KIND, serviceKey } from '../state/document-keys.js';
import { StatusStore } from '../state/status-store.js';
import type { DocumentStatus } from '../state/status-types.js';

const NOTICE_PREFIX = 'backup overdue:';

/** A status with the backup facts of its service merged in. Pure. */
export function withBackupFacts(status: DocumentStatus, facts: BackupFacts | undefined): DocumentStatus {
  if (status.kind !== SERVICE_KIND || (facts === undefined && status.facts?.backup === undefined)) return status;
  const notices = (status.facts?.notices ?? []).filter((n) => !n.startsWith(NOTICE_PREFIX));
  const rest = { ...(status.facts ?? {}) };
  delete rest.notices;
  delete rest.backup;
  if (facts === undefined) return { ...status, facts: { ...rest, ...(notices.length > 0 ? { notices } : {}) } };
  const { notice, ...backup } = facts;
  if (notice) notices.push(notice);
  return { ...status, facts: { ...rest, ...(notices.length > 0 ? { notices } : {}), backup } };
}

export class BackupStatusStore extends StatusStore {
  private facts = new Map<string, BackupFacts>();

  override async put(status: DocumentStatus): Promise<boolean> {
    return super.put(withBackupFacts(status, this.facts.get(status.name)));
  }

  /** New facts per service; the status of each service whose facts changed is written again. */
  async setBackupFacts(next: ReadonlyMap<string, BackupFacts>): Promise<void> {
    const before = this.facts;
    this.facts = new Map(next);
    for (const service of new Set([...before.keys(), ...next.keys()])) {
      if (JSON.stringify(before.get(service)) === JSON.stringify(next.get(service))) continue;
      const key = serviceKey(service);
      const current = await this.lastKnown(key);
      if (current) await this.put(current);
    }
  }
}
