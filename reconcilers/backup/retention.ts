/**
 * Which snapshots a retention rule keeps: the newest `last`, plus the newest snapshot of each of
 * the latest `daily` days, `weekly` ISO weeks and `monthly` months (the 7 daily + 4 weekly style).
 * Only verified snapshots count toward a slot; unverified ones are kept only while they are newer
 * than the newest verified one (a running verification, a failed one to look at). Pure: the clock
 * is not read, days are UTC.
 */
import { compareText } from '../../crds/values.js';

export interface RetentionRule {
  last?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
}

export interface RetainedSnapshot {
  id: string;
  createdAt: string;
  verified: boolean;
}

export interface RetentionPlan {
  keep: { id: string; because: string[] }[];
  delete: string[];
}

function dayKey(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** ISO 8601 week: the year of its Thursday and the week number. */
export function isoWeekKey(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const weekday = t.getUTCDay() === 0 ? 7 : t.getUTCDay();
  t.setUTCDate(t.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

function monthKey(d: Date): string {
  return d.toISOString().slice(0, 7);
}

/** Snapshots newest first (by creation time, then by id): the order retention and the schedule judge them in. */
export function newestFirst(a: { createdAt: string; id: string }, b: { createdAt: string; id: string }): number {
  return compareText(b.createdAt, a.createdAt) || compareText(b.id, a.id);
}

export function planRetention(snapshots: readonly RetainedSnapshot[], rule: RetentionRule): RetentionPlan {
  const byAge = [...snapshots].sort(newestFirst);
  const reasons = new Map<string, string[]>();
  const give = (id: string, why: string) => reasons.set(id, [...(reasons.get(id) ?? []), why]);
  const verified = byAge.filter((s) => s.verified);
  verified.slice(0, rule.last ?? 0).forEach((s, i) => give(s.id, `last ${i + 1}`));
  const buckets: [keyof RetentionRule, (d: Date) => string][] = [
    ['daily', dayKey],
    ['weekly', isoWeekKey],
    ['monthly', monthKey],
  ];
  for (const [slot, keyOf] of buckets) {
    const wanted = rule[slot] ?? 0;
    const seen = new Set<string>();
    for (const s of verified) {
      if (seen.size >= wanted) break;
      const key = keyOf(new Date(s.createdAt));
      if (seen.has(key)) continue;
      seen.add(key);
      give(s.id, `${slot} ${key}`);
    }
  }
  const newestVerified = verified[0]?.createdAt;
  for (const s of byAge) {
    if (!s.verified && (newestVerified === undefined || s.createdAt > newestVerified)) give(s.id, 'newer than the last verified snapshot');
  }
  return {
    keep: byAge.filter((s) => reasons.has(s.id)).map((s) => ({ id: s.id, because: reasons.get(s.id) as string[] })),
    delete: byAge.filter((s) => !reasons.has(s.id)).map((s) => s.id),
  };
}
