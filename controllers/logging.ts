import winston from 'winston';
import { redact } from '../state/events.js';
import { safeJson, safeLine } from './safe-text.js';

export interface LoggerOptions {
  /** JSON lines (for journald and log collectors) instead of the readable line. Default: when stderr is not a terminal. */
  json?: boolean;
  /** npm levels: error, warn, info, http, verbose, debug, silly. Default info. */
  level?: string;
  /** Where lines go. Default stderr; stdout stays free for command output. */
  stream?: NodeJS.WritableStream;
  /** Colour the level in the readable format. Default: when the stream is a terminal. */
  colour?: boolean;
}

const LEVEL = Symbol.for('level');

/** Replaces the values of password/secret/token-like fields, and such pairs inside messages. */
export const redactFormat = winston.format((info) => redact(info));

const LEVEL_COLOURS: Record<string, string> = {
  error: '\u001b[31m',
  warn: '\u001b[33m',
  info: '\u001b[32m',
  http: '\u001b[36m',
  verbose: '\u001b[36m',
  debug: '\u001b[34m',
  silly: '\u001b[35m',
};
const RESET = '\u001b[0m';

/** Fields the readable line shows in its own columns rather than as `name=value`. */
const PLACED = new Set(['level', 'message', 'timestamp', 'key']);

/**
 * One line per entry for a person at a terminal:
 * `12:00:01 info  ServiceInstall/notes  Created container cell-notes  image=…`
 */
export function readableLine(info: winston.Logform.TransformableInfo, colour: boolean, time: Date): string {
  const level = (info as Record<symbol, string | undefined>)[LEVEL] ?? info.level;
  const paddedLevel = level.padEnd(5);
  const shownLevel = colour && LEVEL_COLOURS[level] ? `${LEVEL_COLOURS[level]}${paddedLevel}${RESET}` : paddedLevel;
  const hasKey = typeof info.key === 'string' && info.key !== '';
  // A message or value may quote what a document or a container said: never let it steer the terminal.
  const head = `${clock(time)} ${shownLevel} ${hasKey ? `${safeLine(String(info.key))}  ` : ''}${safeLine(String(info.message))}`;
  const extras = Object.keys(info)
    .filter((k) => !PLACED.has(k) && info[k] !== undefined)
    .sort()
    .map((k) => `${safeLine(k)}=${formatValue(info[k])}`);
  return [head, ...extras].join('  ');
}

function clock(time: Date): string {
  return [time.getHours(), time.getMinutes(), time.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) ? safeJson(JSON.stringify(value)) : safeLine(value);
  if (value instanceof Error) return safeJson(JSON.stringify(value.message));
  if (typeof value === 'object' && value !== null && 'message' in value && 'name' in value) {
    return safeJson(JSON.stringify(String((value as { message: unknown }).message)));
  }
  return safeLine(JSON.stringify(value) ?? String(value));
}

const MESSAGE = Symbol.for('message');

/** JSON lines escape C0 controls already; this escapes what JSON leaves raw (C1, bidi, zero-width). */
const safeJsonLine = winston.format((info) => {
  const line = (info as Record<symbol, unknown>)[MESSAGE];
  if (typeof line === 'string') (info as Record<symbol, unknown>)[MESSAGE] = safeJson(line);
  return info;
});

/**
 * The operator's logger. It writes to stderr: JSON lines when not attached to a terminal (the
 * daemon under systemd), a readable line otherwise. Secrets never reach either.
 */
export function createLogger(opts: LoggerOptions = {}): winston.Logger {
  const stream = opts.stream ?? process.stderr;
  const isTty = (stream as { isTTY?: boolean }).isTTY === true;
  const json = opts.json ?? !isTty;
  const colour = !json && (opts.colour ?? isTty);
  const output = json
    ? winston.format.combine(winston.format.timestamp(), winston.format.json(), safeJsonLine())
    : winston.format.printf((info) => readableLine(info, colour, new Date()));
  return winston.createLogger({
    level: opts.level ?? 'info',
    format: winston.format.combine(winston.format.errors({ stack: false }), redactFormat(), output),
    transports: [new winston.transports.Stream({ stream, eol: '\n' })],
  });
}
