/**
 * The backup engine: take a snapshot (create.ts), verify it by a test restore (verify.ts), restore
 * it staged (restore.ts), and sweep what a crashed run left behind (sweep.ts). Decisions are in
 * plan.ts, entries.ts, retention.ts and schedule.ts; Docker and file I/O in archive.ts, helper.ts
 * and observe.ts; snapshot folders and journals in state/snapshots.ts.
 */
export { BackupError, type BackupEnv, type BackupNotice, type BackupPhase, type Progress, type ServiceTarget } from './context.js';
export { createKeptDataSnapshot, createSnapshot, type CreateOptions, type CreateResult } from './create.js';
export { restoreSnapshot, type RestoreReport } from './restore.js';
export { sweep, type SweepReport } from './sweep.js';
export { verifySnapshot } from './verify.js';
