/**
 * The shape of a pic command and the one parser every command goes through: its flags (with the
 * global ones it takes, wherever they stand on the line), `-h/--help`, and usage errors that name
 * the command. A command is a value; controllers/cli/registry.ts lists them, one line each.
 */
import { parseArgs } from 'node:util';
import { safeLine } from '../safe-text.js';
import { UsageError, type Io } from './usage.js';

/** A failure of pic itself, not of what it was given or found: exit 3, and the message says so. */
export class InternalError extends Error {}

export interface Flag {
  name: string;
  short?: string;
  type: 'string' | 'boolean';
  /** What the value is, for the usage text: `DIR`, `S`, `json|text`. */
  value?: string;
  help: string;
  /** May be given more than once (`--key A --key B`); its value is then a list. */
  multiple?: boolean;
  /** For shell completion: the values it takes, or that it names a file/folder. */
  complete?: readonly string[] | 'dir' | 'file';
}

export interface Parsed {
  values: Record<string, string | string[] | boolean | undefined>;
  positionals: string[];
}

export interface Context {
  io: Io;
  signal: AbortSignal;
  /** Every registered command, loaded (help and completion list them). */
  commands(): Promise<readonly Command[]>;
}

export interface Command {
  name: string;
  /** One line for `pic help`. */
  summary: string;
  /** What follows the name in the usage line: `[KIND] [NAME]`, `PATH...`. */
  args: string;
  /** A paragraph or two after the usage line (exit codes, what the command reads). */
  description: string;
  flags: readonly Flag[];
  /** Example lines, each a whole command (`pic get -o wide`). */
  examples: readonly string[];
  /** For shell completion: what a positional argument is. */
  completeArgs?: readonly string[] | 'dir' | 'file';
  run(parsed: Parsed, ctx: Context): Promise<number>;
}

/** Flags several commands take; `pic --state-dir X get` and `pic get --state-dir X` mean the same. */
export const STATE_DIR_FLAG: Flag = {
  name: 'state-dir',
  type: 'string',
  value: 'DIR',
  help: "where pic keeps status, events, secrets and allocations (default $PIC_STATE_DIR, else the one the cell's operator recorded in CELL/.pic/, else /var/lib/pic)",
  complete: 'dir',
};
export const CELL_FLAG: Flag = { name: 'cell', type: 'string', value: 'DIR', help: 'the cell folder (the one holding cell.yaml)', complete: 'dir' };
export const LOG_FORMAT_FLAG: Flag = { name: 'log-format', type: 'string', value: 'json|text', help: 'log lines as JSON or as readable text (default: text on a terminal)', complete: ['json', 'text'] };
export const GLOBAL_FLAGS: readonly Flag[] = [STATE_DIR_FLAG, CELL_FLAG, LOG_FORMAT_FLAG];
export const HELP_FLAG: Flag = { name: 'help', short: 'h', type: 'boolean', help: 'show this help' };

/**
 * Split `pic [GLOBAL FLAGS] COMMAND [ARGS]` into the command and its arguments; the global flags
 * before the command are handed to it as if written after it.
 */
export function splitCommandLine(argv: readonly string[]): { command: string | undefined; args: string[]; leading: string[] } {
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const token = argv[i]!;
    if (token === '--') {
      i++;
      break;
    }
    if (!token.startsWith('-')) break;
    leading.push(token);
    const name = token.replace(/^--?/, '').split('=')[0];
    const global = GLOBAL_FLAGS.find((f) => f.name === name);
    if (global && global.type === 'string' && !token.includes('=') && i + 1 < argv.length) {
      leading.push(argv[i + 1]!);
      i++;
    }
    i++;
  }
  return { command: argv[i], args: [...leading, ...argv.slice(i + 1)], leading };
}

/** Parse a command's arguments strictly: an option it does not take is an error naming it. */
export function parseCommandArgs(command: Command, args: readonly string[]): Parsed & { help: boolean } {
  const flags = [...command.flags, HELP_FLAG];
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const f of flags) options[f.name] = { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${command.name} ${describeParseError(err as Error & { code?: string }, command, flags)}`);
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  return { values, positionals: parsed.positionals, help: values.help === true };
}

function flagList(flags: readonly Flag[]): string {
  return flags.map((f) => `--${f.name}${f.short ? `/-${f.short}` : ''}`).join(', ');
}

function describeParseError(err: Error & { code?: string }, command: Command, flags: readonly Flag[]): string {
  const quoted = /'([^']+)'/.exec(err.message)?.[1] ?? '';
  const long = /--[A-Za-z0-9-]+/.exec(quoted)?.[0];
  const option = long ?? quoted.split(' ')[0] ?? '';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const global = GLOBAL_FLAGS.find((f) => `--${f.name}` === option);
      const why = global ? `does not take ${option} (it uses no ${global.name === 'state-dir' ? 'state directory' : global.name === 'cell' ? 'cell folder' : 'logger'})` : `has no flag ${safeLine(option)}`;
      return `${why}; it takes ${flagList(flags)}`;
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const flag = flags.find((f) => option === `--${f.name}` || option === `-${f.short}`);
      if (flag?.type === 'string') return `--${flag.name} needs a value (${flag.value ?? 'VALUE'})`;
      if (flag?.type === 'boolean') return `--${flag.name} takes no value`;
      return safeLine(err.message);
    }
    default:
      return safeLine(err.message);
  }
}

/** The usage text of one command: the line, what it does, its flags and its examples. */
export function commandHelp(command: Command): string {
  const flags = [...command.flags, HELP_FLAG];
  const lines = [`Usage: pic ${command.name}${command.flags.length > 0 ? ' [flags]' : ''}${command.args ? ` ${command.args}` : ''}`, '', command.summary];
  if (command.description) lines.push('', command.description);
  lines.push('', 'Flags:');
  const left = flags.map((f) => `  ${f.short ? `-${f.short}, ` : '    '}--${f.name}${f.value ? ` ${f.value}` : ''}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  flags.forEach((f, i) => lines.push(`${left[i]!.padEnd(width)}${f.help}`));
  if (command.examples.length > 0) lines.push('', 'Examples:', ...command.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

/** `pic help`: every command with its summary. */
export function overviewHelp(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 3;
  return [
    'pic — keeps a self-hosted cell true to what its admin declared',
    '',
    'Usage: pic [--state-dir DIR] [--cell DIR] COMMAND [flags] [args]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Global flags (before or after the command, where the command takes them):',
    ...GLOBAL_FLAGS.map((f) => `  --${f.name} ${f.value ?? ''}`.padEnd(24) + f.help),
    '',
    'Run "pic help COMMAND" or "pic COMMAND --help" for a command\'s flags and examples.',
    'Exit codes: 0 success, 1 failure or problems found, 2 usage error, 3 internal error (a bug).',
  ].join('\n');
}

/**
 * Resolves when the command is asked to stop (SIGTERM/SIGINT), including when it already was:
 * a signal that arrived while the command was still starting must not be waited for again.
 */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Every value of a flag that may be given more than once (none: an empty list). */
export function listFlag(parsed: Parsed, name: string): string[] {
  const v = parsed.values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** A string flag's value, or undefined; a flag given as `--x ""` is kept as "" for the caller to refuse. */
export function stringFlag(parsed: Parsed, name: string): string | undefined {
  const v = parsed.values[name];
  return typeof v === 'string' ? v : undefined;
}
