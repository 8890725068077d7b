/**
 * Text that reaches a person's terminal. Every value pic quotes — a document's name, a message of
 * a problem, a status, an event, a log line — may hold what an admin's file or a container put
 * there: an escape sequence that clears the screen, a carriage return that overwrites a line with
 * a fake "Ready", a bidi override that reorders what is read. Each such character is written as a
 * visible escape instead (`\x1b`, `\r`, `\u{202e}`), so the bytes never reach the terminal raw.
 *
 * The one place that decides which characters are unsafe; the CLI views, the validate report and
 * the logger (controllers/logging.ts) all go through it.
 */

/**
 * C0 controls (with tab, CR, LF), DEL, C1 controls (U+0080–U+009F, which include the 8-bit CSI
 * U+009B), the Arabic letter mark, zero-width characters and directional marks (U+200B–U+200F),
 * the line and paragraph separators, bidi embeddings and overrides (U+202A–U+202E), the word
 * joiner and invisible operators (U+2060–U+2064), bidi isolates (U+2066–U+2069) and the BOM.
 * BEYOND_C0 is all but the C0 controls, which JSON.stringify escapes on its own.
 */
const BEYOND_C0 = '\\u007f-\\u009f\\u061c\\u200b-\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff';
const UNSAFE_CHARS = `\\u0000-\\u001f${BEYOND_C0}`;
const UNSAFE = new RegExp(`[${UNSAFE_CHARS}]`, 'gu');
/** The same but keeping newlines, for text shown as several lines. */
const UNSAFE_KEEP_NEWLINES = new RegExp(`(?!\\n)[${UNSAFE_CHARS}]`, 'gu');
const UNSAFE_IN_JSON = new RegExp(`[${BEYOND_C0}]`, 'gu');

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\u0007': '\\a', '\u001b': '\\e', '\f': '\\f', '\v': '\\v' };

function escapeChar(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  const code = ch.codePointAt(0) ?? 0;
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** True when `text` holds a character this module would escape (newlines included). */
export function hasUnsafe(text: string): boolean {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(text);
}

/** One line of printable text: every control, newline, bidi and zero-width character escaped. */
export function safeLine(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/** Printable text that may span lines: like safeLine, but a newline stays a newline. */
export function safeText(text: string): string {
  return text.replace(UNSAFE_KEEP_NEWLINES, escapeChar);
}

/**
 * JSON text with the characters JSON.stringify leaves raw (C1 controls, bidi and zero-width
 * characters, U+2028/U+2029) written as `\uXXXX`. Such characters only occur inside strings, where
 * the escape means the same character: the result parses to the same value.
 */
export function safeJson(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (ch) => `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/**
 * Every unsafe character except newline as `\uXXXX`: for text whose only strings are
 * double-quoted YAML scalars, where that escape means the same character.
 */
export function unicodeEscaped(text: string): string {
  return text.replace(UNSAFE_KEEP_NEWLINES, (ch) => `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

/** JSON.stringify, made safe for a terminal. */
export function toSafeJson(value: unknown, indent?: number): string {
  return safeJson(JSON.stringify(value, null, indent));
}
