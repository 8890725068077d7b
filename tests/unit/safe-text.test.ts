import { hasUnsafe, safeJson, safeLine, safeText, toSafeJson } from '../../controllers/safe-text.js';

/** Nothing a terminal acts on: no C0/C1 control, DEL, bidi, zero-width or line-separator character. */
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/u;

describe('safeLine', () => {
  test.each([
    ['plain text is unchanged', 'notes is Ready', 'notes is Ready'],
    ['ESC', 'a\u001bb', 'a\\eb'],
    ['CSI clear screen', '\u001b[2J\u001b[HReady', '\\e[2J\\e[HReady'],
    ['SGR colour', '\u001b[31mred\u001b[0m', '\\e[31mred\\e[0m'],
    ['OSC title with BEL', '\u001b]0;owned\u0007', '\\e]0;owned\\a'],
    ['BEL', 'ding\u0007', 'ding\\a'],
    ['CR overwriting a line', 'Stalled\rReady  ', 'Stalled\\rReady  '],
    ['backspace', 'Stalled\b\b\b\b\b\b\bReady', 'Stalled\\b\\b\\b\\b\\b\\b\\bReady'],
    ['tab', 'a\tb', 'a\\tb'],
    ['NUL', 'a\u0000b', 'a\\x00b'],
    ['DEL', 'a\u007fb', 'a\\x7fb'],
    ['C1 8-bit CSI', 'a\u009b2Jb', 'a\\x9b2Jb'],
    ['C1 NEL', 'a\u0085b', 'a\\x85b'],
    ['C1 first and last', '\u0080\u009f', '\\x80\\x9f'],
    ['LRE', 'a\u202ab', 'a\\u{202a}b'],
    ['RLO reorders', 'file\u202etxt.exe', 'file\\u{202e}txt.exe'],
    ['PDF', 'a\u202cb', 'a\\u{202c}b'],
    ['LRI and PDI', '\u2066x\u2069', '\\u{2066}x\\u{2069}'],
    ['FSI, RLI', '\u2068\u2067', '\\u{2068}\\u{2067}'],
    ['zero-width space', 'no\u200btes', 'no\\u{200b}tes'],
    ['zero-width joiner', 'a\u200db', 'a\\u{200d}b'],
    ['RLM', 'a\u200fb', 'a\\u{200f}b'],
    ['word joiner', 'a\u2060b', 'a\\u{2060}b'],
    ['BOM', '\ufeffname', '\\u{feff}name'],
    ['line separator', 'a\u2028b', 'a\\u{2028}b'],
    ['newline in a single-line field', 'first\nReady   True', 'first\\nReady   True'],
    ['CRLF', 'a\r\nb', 'a\\r\\nb'],
    ['printable unicode stays', 'café — ✓ 日本', 'café — ✓ 日本'],
  ])('%s', (_name, input, expected) => {
    expect(safeLine(input)).toBe(expected);
    expect(safeLine(input)).not.toMatch(RAW);
    expect(safeLine(input)).not.toContain('\n');
    expect(hasUnsafe(input)).toBe(input !== expected);
  });
});

describe('safeText', () => {
  test.each([
    ['keeps newlines', 'a\nb', 'a\nb'],
    ['escapes CR', 'a\r\nb', 'a\\r\nb'],
    ['escapes ESC across lines', 'one\n\u001b[2Jtwo', 'one\n\\e[2Jtwo'],
    ['escapes bidi', 'x\u202ey', 'x\\u{202e}y'],
  ])('%s', (_name, input, expected) => {
    expect(safeText(input)).toBe(expected);
    expect(safeText(input)).not.toMatch(RAW);
  });
});

describe('safeJson', () => {
  test.each([
    ['C0 already escaped by JSON', { m: '\u001b[2J' }],
    ['C1', { m: 'a\u009bb\u0085' }],
    ['bidi', { m: 'a\u202eb\u2066' }],
    ['zero width and separators', { m: '\u200b\u2028\u2029\ufeff' }],
    ['keys too', { 'k\u202e': 'v' }],
    ['plain', { m: 'Ready', n: 3, l: [true, null] }],
  ])('%s: no raw character and the same value', (_name, value) => {
    const text = toSafeJson(value, 2);
    expect(text).not.toMatch(RAW);
    expect(JSON.parse(text)).toEqual(value);
    expect(safeJson(JSON.stringify(value))).toBe(toSafeJson(value));
  });
});
