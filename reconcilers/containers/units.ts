/** The units of the Compose format: Go durations and memory sizes. Pure. */

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A Compose (Go) duration such as `30s`, `1m30s`, `1.5s`, `500ms`, in nanoseconds. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < trimmed.length) {
    part.lastIndex = at;
    const m = part.exec(trimmed);
    if (!m) break;
    total += Math.round(Number(m[1]) * (DURATION_UNITS[m[2] as string] as number));
    at = part.lastIndex;
  }
  if (trimmed === '' || at !== trimmed.length) {
    throw new Error(`"${text}" is not a duration; write a number with a unit, e.g. 30s, 1m30s, 500ms`);
  }
  if (!Number.isSafeInteger(total)) throw new Error(`"${text}" is too long a duration`);
  return total;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** A Compose memory size (`512m`, `1g`, `1073741824`, `1.5GB`) in bytes; units are binary. */
export function parseByteSize(value: unknown): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b))?$/.exec(text);
  if (!m) throw new Error(`${describeValue(value)} is not a size; write bytes or a number with b, k, m or g (e.g. 512m)`);
  const unit = m[2] ?? m[3] ?? '';
  const bytes = Math.floor(Number(m[1]) * (SIZE_UNITS[unit] as number));
  if (!Number.isSafeInteger(bytes)) throw new Error(`${describeValue(value)} is too large a size`);
  return bytes;
}

/** How a value reads in a message: its kind, and the value itself for scalars. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}
