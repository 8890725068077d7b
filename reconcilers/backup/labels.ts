/**
 * Labels of what the backup engine creates for a moment: helper containers, scratch and staged
 * volumes, and previous volumes kept until a restored service is Ready. The pid label lets a later
 * run tell a crashed run's leftovers from a live run's resources.
 */
export const BACKUP_LABEL = {
  /** helper | cleanup (removing a restore's previous tree, in the background) | scratch | staged | previous */
  role: 'ngo.pic.backup.role',
  pid: 'ngo.pic.backup.pid',
  /** On a previous volume: the live volume it holds the old contents of. */
  previousOf: 'ngo.pic.backup.previous-of',
  snapshot: 'ngo.pic.backup.snapshot',
} as const;

export type BackupRole = 'helper' | 'cleanup' | 'scratch' | 'staged' | 'previous';
