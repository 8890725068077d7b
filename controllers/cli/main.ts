import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { commandHelp, InternalError, overviewHelp, parseCommandArgs, splitCommandLine, type Command } from './command.js';
import { COMMANDS, type CommandEntry } from './registry.js';
import { safeLine, safeText } from '../safe-text.js';
import { UsageError, type Io } from './usage.js';

export { UsageError, type Io };

/** Exit codes of every command: 0 success, 1 failure or problems found, 2 usage error, 3 a bug in pic. */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 3 } as const;

import { picVersion } from '../../state/pic-version.js';

/** pic's version, from the package.json of the checkout or package it runs from. */
export { picVersion };

const helpCommand: Command = {
  name: 'help',
  summary: 'Show the commands, or one command\'s flags and examples',
  args: '[COMMAND]',
  description: '',
  flags: [],
  examples: ['pic help', 'pic help get'],
  completeArgs: [],
  async run(parsed, ctx) {
    const [name, ...more] = parsed.positionals;
    if (more.length > 0) throw new UsageError('pic help takes at most one COMMAND');
    const commands = await ctx.commands();
    if (name === undefined) {
      ctx.io.out(overviewHelp(commands));
      return 0;
    }
    const command = commands.find((c) => c.name === name);
    if (!command) throw new UsageError(`unknown command "${safeLine(name)}"; the commands are ${commands.map((c) => c.name).join(', ')}`);
    ctx.io.out(commandHelp(command));
    return 0;
  },
};

const versionCommand: Command = {
  name: 'version',
  summary: "Print pic's version",
  args: '',
  description: '',
  flags: [],
  examples: ['pic version', 'pic --version'],
  async run(parsed, ctx) {
    if (parsed.positionals.length > 0) throw new UsageError('pic version takes no arguments');
    ctx.io.out(`pic ${picVersion()}`);
    return 0;
  },
};

/** A command table entry: a command, or where to load it from (the registry's). */
export type CommandSource = Command | CommandEntry;

/** Everything `pic` answers to: the registered commands and the built-ins. */
export const ALL_COMMANDS: readonly CommandSource[] = [...COMMANDS, helpCommand, versionCommand];

function loadCommand(source: CommandSource): Promise<Command> {
  return 'load' in source ? source.load() : Promise.resolve(source);
}

/** Every command of the table, loaded (for help, completion and the tests that go through them all). */
export async function loadCommands(sources: readonly CommandSource[] = ALL_COMMANDS): Promise<Command[]> {
  // One after another: modules they share are then linked once (and jest's ESM loader, which the
  // tests run under, fails on parallel imports of a shared module).
  const loaded: Command[] = [];
  for (const source of sources) loaded.push(await loadCommand(source));
  return loaded;
}

/** Errors that are mistakes in pic's own code rather than in what it was given or found. */
function isBug(err: unknown): boolean {
  return err instanceof InternalError || err instanceof TypeError || err instanceof ReferenceError || err instanceof RangeError;
}

/** Run the pic command line; returns the exit code instead of exiting, so tests can call it. */
export function main(argv: string[], io: Io, signal: AbortSignal = new AbortController().signal): Promise<number> {
  return runCommandLine(argv, io, signal, ALL_COMMANDS);
}

/** The dispatcher over a given command table: help, flags, and the mapping of errors to exit codes. */
export async function runCommandLine(argv: string[], io: Io, signal: AbortSignal, sources: readonly CommandSource[]): Promise<number> {
  const { command: name, args, leading } = splitCommandLine(argv);
  const ctx = { io, signal, commands: () => loadCommands(sources) };
  let command: Command | undefined;
  try {
    if (name === undefined) {
      if (leading.includes('--version')) return await versionCommand.run({ values: {}, positionals: [] }, ctx);
      io.out(overviewHelp(await ctx.commands()));
      return leading.includes('--help') || leading.includes('-h') ? EXIT.ok : EXIT.usage;
    }
    const source = sources.find((c) => c.name === name);
    if (!source) throw new UsageError(`unknown command "${safeLine(name)}"; the commands are ${sources.map((c) => c.name).join(', ')}`);
    command = await loadCommand(source);
    const dashDash = args.indexOf('--');
    const flagPart = dashDash < 0 ? args : args.slice(0, dashDash);
    if (flagPart.includes('--help') || flagPart.includes('-h')) {
      io.out(commandHelp(command));
      return EXIT.ok;
    }
    const parsed = parseCommandArgs(command, args);
    return await command.run(parsed, ctx);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(err.message.startsWith('pic ') ? safeLine(err.message) : `pic: ${safeLine(err.message)}`);
      io.err(command && command !== helpCommand ? `Run "pic help ${command.name}" for its flags and examples.` : 'Run "pic help" for usage.');
      return EXIT.usage;
    }
    if (isBug(err)) {
      io.err(`pic: internal error: this is a bug in pic, not a problem in your files; please report it with this output.`);
      const error = err as Error;
      if (error instanceof InternalError) io.err(`pic: ${safeLine(error.message)}`);
      const cause = error instanceof InternalError && error.cause instanceof Error ? error.cause : error;
      io.err(safeText(cause.stack ?? String(cause)));
      return EXIT.internal;
    }
    // Anything else pic met (a missing state directory, no Docker engine, a held lock) says what it is.
    if (err instanceof Error) {
      io.err(`pic: ${safeLine(err.message)}`);
      return EXIT.failed;
    }
    io.err(`pic: internal error: this is a bug in pic; please report it: ${safeLine(String(err))}`);
    return EXIT.internal;
  }
}

const isEntryPoint = process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isEntryPoint) {
  // SIGTERM/SIGINT: let the command finish what it is doing and return; a second signal forces exit.
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`pic: ${sig} received, stopping\n`);
    controller.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // A reader piped into `head` closes early; that is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  const code = await main(
    process.argv.slice(2),
    {
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
    },
    controller.signal,
  );
  process.exitCode = code;
}
