import winston from 'winston';
import { redact } from '../state/events.js';

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
  const level = String((info as Record<symbol, unknown>)[LEVEL] ?? info.level);
  const paddedLevel = level.padEnd(5);
  const shownLevel = colour && LEVEL_COLOURS[level] ? `${LEVEL_COLOURS[level]}${paddedLevel}${RESET}` : paddedLevel;
  const hasKey = typeof info.key === 'string' && info.key !== '';
  const head = `${clock(time)} ${shownLevel} ${hasKey ? `${String(info.key)}  ` : ''}${String(info.message)}`;
  const extras = Object.keys(info)
    .filter((k) => !PLACED.has(k) && info[k] !== undefined)
    .sort()
    .map((k) => `${k}=${formatValue(info[k])}`);
  return [head, ...extras].join('  ');
}

function clock(time: Date): string {
  return [time.getHours(), time.getMinutes(), time.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  if (value instanceof Error) return JSON.stringify(value.message);
  if (typeof value === 'object' && value !== null && 'message' in value && 'name' in value) {
    return JSON.stringify(String((value as { message: unknown }).message));
  }
  return JSON.stringify(value) ?? String(value);
}

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
    ? winston.format.combine(winston.format.timestamp(), winston.format.json())
    : winston.format.printf((info) => readableLine(info, colour, new Date()));
  return winston.createLogger({
    level: opts.level ?? 'info',
    format: winston.format.combine(winston.format.errors({ stack: false }), redactFormat(), output),
    transports: [new winston.transports.Stream({ stream, eol: '\n' })],
  });
}
