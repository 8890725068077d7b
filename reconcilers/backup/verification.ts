/**
 * The verdict of a snapshot's test restore, from what each service's archives gave back: one event
 * per service, and the verification recorded in the snapshot's manifest. Pure: the results and the
 * time are arguments.
 */
import { serviceKey } from '../../state/document-keys.js';
import type { BackupNotice } from './context.js';
import type { Verification } from './types.js';

/** What the test restore of one service's archives found ([] when each matched what was archived). */
export interface ServiceCheck {
  service: string;
  problems: string[];
}

export function verificationVerdict(id: string, results: readonly ServiceCheck[], at: Date): { notices: BackupNotice[]; verification: Verification } {
  // Each service is told its own problems only; the snapshot's verification holds them all.
  const notices = results.map(
    ({ service, problems }): BackupNotice =>
      problems.length > 0
        ? { key: serviceKey(service), type: 'Warning', reason: 'BackupVerificationFailed', message: `snapshot ${id}: ${problems.join('; ')}` }
        : { key: serviceKey(service), type: 'Normal', reason: 'BackupVerified', message: `snapshot ${id}: every archive restored into a scratch volume matches what was archived` },
  );
  const problems = results.flatMap((r) => r.problems);
  return { notices, verification: { ok: problems.length === 0, at: at.toISOString(), ...(problems.length > 0 ? { problems } : {}) } };
}
