import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ImageVerificationMode } from '../../crds/types.js';
import { runValidate } from './validate.js';

export const USAGE = `pic — keeps a self-hosted cell true to what its admin declared

Usage:
  pic validate [--image-verification enforce|warn|off] PATH...
      Check manifests, service folders, catalogs, cell folders or YAML documents.
      Prints one line per problem (FILE: /json/pointer: message).
      Exit 0 when all is valid, 1 on any problem, 2 on a usage error.
  pic help

Options:
  --image-verification MODE   install policy for images (default enforce: digest-pinned images only)
`;

/** An error in how pic was called, as opposed to a problem in what it was given. */
export class UsageError extends Error {}

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

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
export async function main(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'validate':
        return await validateCommand(rest, io);
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
  const code = await main(process.argv.slice(2), {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  });
  process.exitCode = code;
}
