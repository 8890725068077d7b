import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ImageVerificationMode } from '../../crds/types.js';
import { runValidate } from './validate.js';
import { planCommand } from './plan.js';
import { credentialsCommand } from './credentials.js';
import { verifyCommand, VERIFY_USAGE } from './verify.js';
import { runCommand } from './run.js';
import { backupCommand, BACKUP_USAGE } from './backup.js';
import { dataCommand, DATA_USAGE } from './data.js';
import { describeCommand, getCommand, watchCommand } from './status-commands.js';
import { UsageError, type Io } from './usage.js';

export const USAGE = `pic — keeps a self-hosted cell true to what its admin declared

Usage:
  pic validate [--image-verification enforce|warn|off] PATH...
      Check manifests, service folders, catalogs, cell folders or YAML documents.
      One line per problem (FILE: /json/pointer: message). Exit 0 valid, 1 problems, 2 usage.
  pic plan --cell DIR
      What a reconcile would change. Exit 0 in sync, 2 changes pending, 1 on error.
  pic run --cell DIR [--once] [--timeout S] [--resync S] [--concurrency N] [--log-format json|text]
      The operator. --once converges and exits 0 only if every document is Ready.
  pic get [KIND] [NAME] [-o table|wide|json|yaml]
  pic describe KIND/NAME
  pic watch [-o json]
  pic credentials PEER --cell DIR [-o json]
      The filled connection details of every service the peer has an account on.
${VERIFY_USAGE}
${BACKUP_USAGE}
${DATA_USAGE}
  pic help

Common options:
  --state-dir DIR   where pic keeps status, secrets and allocations
                    (default $PIC_STATE_DIR, else /var/lib/pic)
`;

export { UsageError, type Io };

const VERIFICATION_MODES: readonly ImageVerificationMode[] = ['off', 'warn', 'enforce'];

async function validateCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'image-verification': { type: 'string' } },
  });
  const mode = values['image-verification'];
  if (mode !== undefined && !VERIFICATION_MODES.includes(mode as ImageVerificationMode)) {
    throw new UsageError(`--image-verification must be one of ${VERIFICATION_MODES.join(', ')}, not "${mode}"`);
  }
  if (positionals.length === 0) throw new UsageError('pic validate needs at least one PATH');
  const result = await runValidate(positionals, mode as ImageVerificationMode | undefined);
  result.lines.forEach((l) => io.out(l));
  if (result.exitCode !== 0) io.err(`${result.lines.length} problem${result.lines.length === 1 ? '' : 's'} found`);
  return result.exitCode;
}

/** Run the pic command line; returns the exit code instead of exiting, so tests can call it. */
export async function main(argv: string[], io: Io, signal: AbortSignal = new AbortController().signal): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'validate':
        return await validateCommand(rest, io);
      case 'plan':
        return await planCommand(rest, io);
      case 'run':
        return await runCommand(rest, io, signal);
      case 'get':
        return await getCommand(rest, io);
      case 'describe':
        return await describeCommand(rest, io);
      case 'watch':
        return await watchCommand(rest, io, signal);
      case 'credentials':
        return await credentialsCommand(rest, io);
      case 'verify':
        return await verifyCommand(rest, io);
      case 'backup':
        return await backupCommand(rest, io);
      case 'data':
        return await dataCommand(rest, io);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`pic: ${(err as Error).message}`);
      io.err('Run "pic help" for usage.');
      return 2;
    }
    io.err(`pic: ${(err as Error).message ?? String(err)}`);
    return 1;
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
