/**
 * SOA serials in the date form YYYYMMDDnn. Secondaries and CoreDNS's `file` plugin reload a zone
 * only when its serial grows, so a serial must never go backwards: not when the clock does, and
 * not after a hundred changes in one day (it then runs into the next day's numbers, which is fine).
 */

/** The serial for a zone whose content changed. `today` is the date as YYYYMMDD. */
export function nextSerial(previous: number | undefined, today: string): number {
  if (!/^\d{8}$/.test(today)) throw new Error(`nextSerial: today must be YYYYMMDD, not "${today}"`);
  const firstOfToday = Number(today) * 100;
  if (previous === undefined || previous < firstOfToday) return firstOfToday;
  return previous + 1;
}

/** A date as YYYYMMDD in UTC, the form `nextSerial` takes. */
export function serialDay(date: Date): string {
  return date.toISOString().slice(0, 10).replace(/-/g, '');
}
