/**
 * SOA serials in the date form YYYYMMDDnn. Secondaries and CoreDNS's `file` plugin reload a zone
 * only when its serial grows, so a serial must never go backwards: not when the clock does, and
 * not after a hundred changes in one day (it then runs into the next day's numbers, which is fine).
 */

/** The serial for a zone whose content changed. `today` is the date as YYYYMMDD. */
export function nextSerial(previous: number | undefined, today: string): number {
  if (!/^\d{8}$/.test(today)) throw new Error(`nextSerial: today must be YYYYMMDD, not "${today}"`);
  const firstOfToday = Number(today) * 100;
  // A serial is a 32-bit number compared in RFC 1982's circular order; what is not one (a
  // hand-edited zone) is as good as none.
  if (previous === undefined || !Number.isInteger(previous) || previous < 0 || previous > MAX_SERIAL) return firstOfToday;
  if (serialAfter(firstOfToday, previous)) return firstOfToday;
  // Past 4294967295 the next serial wraps to 0, which RFC 1982 orders after it.
  return previous === MAX_SERIAL ? 0 : previous + 1;
}

const MAX_SERIAL = 0xffffffff;

/** Whether serial `a` comes after `b` in RFC 1982's order (the distance forward is under 2^31). */
function serialAfter(a: number, b: number): boolean {
  const forward = (a - b + 2 ** 32) % 2 ** 32;
  return forward > 0 && forward < 2 ** 31;
}

/** A date as YYYYMMDD in UTC, the form `nextSerial` takes. */
export function serialDay(date: Date): string {
  return date.toISOString().slice(0, 10).replace(/-/g, '');
}

/** The later of two serials in RFC 1982's order; either may be missing. */
export function laterSerial(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return serialAfter(b, a) ? b : a;
}
