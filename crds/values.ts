/**
 * Facts about plain values that every layer uses, each defined once: whether a value is a mapping
 * (a JSON object), and the order text is sorted in. Pure.
 */

/** A mapping: an object that is not an array (nor null). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The order of text by UTF-16 code unit (the order of `<`, of JSON.stringify's sorted keys and of
 * canonical JSON), never the locale's: rendered files and plans must not depend on the machine.
 */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A comparator ordering items by the text `key` gives for each (compareText). */
export function byText<T>(key: (item: T) => string): (a: T, b: T) => number {
  return (a, b) => compareText(key(a), key(b));
}
