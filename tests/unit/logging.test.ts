import { PassThrough } from 'node:stream';
import { createLogger, readableLine } from '../../controllers/logging.js';

// Everything a terminal acts on, newline excluded (it ends each entry).
// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/u;
const FAKE = '\u001b[2J\u001b[H\rServiceInstall   notes   True   Ready\u202e\u009b2J\u0007\u200b';

async function logged(json: boolean, write: (log: ReturnType<typeof createLogger>) => void): Promise<string> {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (d) => (out += String(d)));
  const log = createLogger({ json, stream, colour: false });
  write(log);
  await new Promise<void>((resolve) => {
    log.on('finish', () => resolve());
    log.end();
  });
  return out;
}

describe('log lines never carry a control character raw', () => {
  test.each([
    ['the message', (log: ReturnType<typeof createLogger>) => log.warn(`reload failed: ${FAKE}`)],
    ['the key', (log: ReturnType<typeof createLogger>) => log.info('changed', { key: `ServiceInstall/x${FAKE}` })],
    ['a field value', (log: ReturnType<typeof createLogger>) => log.info('changed', { detail: FAKE })],
    ['a field value without spaces', (log: ReturnType<typeof createLogger>) => log.info('changed', { detail: '\u001b[31m\u202e' })],
    ['a field name', (log: ReturnType<typeof createLogger>) => log.info('changed', { [`k${FAKE}`]: 1 })],
    ['an error', (log: ReturnType<typeof createLogger>) => log.error('failed', { err: new Error(FAKE) })],
  ])('%s, in text and in JSON', async (_what, write) => {
    const text = await logged(false, write);
    const json = await logged(true, write);
    for (const out of [text, json]) {
      expect(out).not.toMatch(RAW);
      expect(out.trimEnd().split('\n')).toHaveLength(1);
    }
    // JSON lines still parse, and the escaped characters come back as they were.
    const entry = JSON.parse(json.trim()) as Record<string, unknown>;
    expect(JSON.stringify(entry)).toMatch(/\\u001b|\u202e|\u009b/);
  });

  test('the readable line shows escapes a person can read', () => {
    const line = readableLine({ level: 'info', message: `x${FAKE}`, key: 'ServiceInstall/notes' }, false, new Date(2026, 0, 1, 12, 0, 1));
    expect(line).toBe('12:00:01 info  ServiceInstall/notes  x\\e[2J\\e[H\\rServiceInstall   notes   True   Ready\\u{202e}\\x9b2J\\a\\u{200b}');
  });
});
