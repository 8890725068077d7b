/**
 * When the Cell's backup schedule makes a snapshot due, and whether a service's last verified
 * snapshot is older than its schedule allows. Pure: the clock is an argument, times are UTC.
 */
import type { BackupSpec, BackupWeekday } from '../../crds/types.js';
import {  } from '../../crds/values.js';
import { newestFirst } from './retention.js';

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

/** The first moment after `now` at which the schedule asks for a snapshot. */
export function nextSlot(schedule: Schedule, now: Date): Date {
  return new Date(lastSlot(schedule, now).getTime() + intervalMs(schedule));
}

/** What a service's status says about its backups. */
export interface BackupFacts {
  /** The newest snapshot holding the service that passed its test restore. */
  lastVerified?: { snapshot: string; at: string };
  /** The newest snapshot holding it, verified or not. */
  last?: { snapshot: string; at: string; verified: boolean };
  /** The Cell has a schedule and the last verified snapshot is older than it allows. */
  overdue: boolean;
  /** A line for the status when overdue (undefined otherwise). */
  notice?: string;
}

function describeSchedule(schedule: Schedule): string {
  return schedule.every === 'hourly' ? 'hourly' : schedule.every === 'daily' ? `daily at ${schedule.at ?? '03:00'} UTC` : `weekly on ${schedule.weekday ?? 'sunday'} at ${schedule.at ?? '03:00'} UTC`;
}

/** The backup facts of one service from the snapshots in the store (any order). Pure. */
export function backupFactsOf(
  service: string,
  snapshots: readonly { id: string; createdAt: string; services: readonly { service: string }[]; verification?: { ok: boolean } }[],
  schedule: Schedule | undefined,
  now: Date,
): BackupFacts {
  const mine = snapshots.filter((s) => s.services.some((x) => x.service === service)).sort(newestFirst);
  const newest = mine[0];
  const verified = mine.find((s) => s.verification?.ok === true);
  const facts: BackupFacts = { overdue: false };
  if (newest) facts.last = { snapshot: newest.id, at: newest.createdAt, verified: newest.verification?.ok === true };
  if (verified) facts.lastVerified = { snapshot: verified.id, at: verified.createdAt };
  if (schedule && verifiedBackupOverdue(schedule, verified ? new Date(verified.createdAt) : undefined, now)) {
    facts.overdue = true;
    facts.notice = verified
      ? `backup overdue: the last verified snapshot (${verified.id}) is older than the schedule (${describeSchedule(schedule)}) allows`
      : `backup overdue: no verified snapshot holds this service, and the schedule is ${describeSchedule(schedule)}`;
  }
  return facts;
}
