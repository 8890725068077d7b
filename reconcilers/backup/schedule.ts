/**
 * When the Cell's backup schedule makes a snapshot due, and whether a service's last verified
 * snapshot is older than its schedule allows. Pure: the clock is an argument, times are UTC.
 */
import type { BackupSpec, BackupWeekday } from '../../crds/types.js';

type Schedule = NonNullable<BackupSpec['schedule']>;

const WEEKDAYS: BackupWeekday[] = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];
const HOUR = 3_600_000;

export function intervalMs(schedule: Schedule): number {
  return schedule.every === 'hourly' ? HOUR : schedule.every === 'daily' ? 24 * HOUR : 7 * 24 * HOUR;
}

/** The latest moment at or before `now` at which the schedule asked for a snapshot. */
export function lastSlot(schedule: Schedule, now: Date): Date {
  const [hh, mm] = (schedule.at ?? '03:00').split(':').map(Number) as [number, number];
  const slot = new Date(now.getTime());
  slot.setUTCSeconds(0, 0);
  if (schedule.every === 'hourly') {
    slot.setUTCMinutes(mm);
    if (slot > now) slot.setTime(slot.getTime() - HOUR);
    return slot;
  }
  slot.setUTCHours(hh, mm);
  if (schedule.every === 'daily') {
    if (slot > now) slot.setTime(slot.getTime() - 24 * HOUR);
    return slot;
  }
  const wanted = WEEKDAYS.indexOf(schedule.weekday ?? 'sunday');
  slot.setTime(slot.getTime() - (((slot.getUTCDay() - wanted) % 7) + 7) % 7 * 24 * HOUR);
  if (slot > now) slot.setTime(slot.getTime() - 7 * 24 * HOUR);
  return slot;
}

/** A snapshot is due when none was taken since the last slot. */
export function backupDue(schedule: Schedule, lastTakenAt: Date | undefined, now: Date): boolean {
  return lastTakenAt === undefined || lastTakenAt < lastSlot(schedule, now);
}

/**
 * A service's last verified snapshot is overdue when it is older than the last slot by more than
 * one interval (one missed run is a warning worth a status line, not a retry storm).
 */
export function verifiedBackupOverdue(schedule: Schedule, lastVerifiedAt: Date | undefined, now: Date): boolean {
  if (lastVerifiedAt === undefined) return true;
  return lastVerifiedAt.getTime() < lastSlot(schedule, now).getTime() - intervalMs(schedule);
}
