/**
 * The verdict of a snapshot's test restore, from what each service's archives gave back: one event
 * per service, and the verification recorded in the snapshot's manifest. Pure: the results and the
 * time are arguments.
 */
import { ownerKey, type BackupNotice } from './context.js';
import type { Verification } from './types.js';

/** What the test restore of one service's archives found ([] when each matched what was archived). */
export interface ServiceCheck {
  service: string;
  problems: string[];
}

export function verificationVerdict(id: string, results: readonly ServiceCheck[], at: Date): { notices: BackupNotice[]; verification: Verification } {
  const problems: string[] = [];
  const notices: BackupNotice[] = [];
  for (const r of results) {
    problems.push(...r.problems);
    notices.push({
      key: ownerKey(r.service),
      type: problems.length > 0 ? 'Warning' : 'Normal',
      reason: problems.length > 0 ? 'BackupVerificationFailed' : 'BackupVerified',
      message: problems.length > 0 ? `snapshot ${id}: ${problems.join('; ')}` : `snapshot ${id}: every archive restored into a scratch volume matches what was archived`,
    });
  }
  return { notices, verification: { ok: problems.length === 0, at: at.toISOString(), ...(problems.length > 0 ? { problems } : {}) } };
}
