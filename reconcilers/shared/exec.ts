/**
 * Run one program inside a running container through the Docker exec API, the way `docker exec
 * -i` does: an argument vector (never a shell line, so no quoting or injection to get wrong),
 * optional bytes on stdin, and stdout, stderr and the exit code back.
 */
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';

export interface ExecOptions {
  /** Written to the program's stdin, which is then closed. Without it stdin is not attached. */
  stdin?: string;
  /** Give up waiting after this long (the program may go on running in the container). */
  timeoutMs?: number;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Thrown when the container cannot run anything: it does not exist or is not running. The
 * message names it, so a resource that depends on it can say what it is waiting for.
 */
export class ContainerUnavailableError extends Error {
  override readonly name = 'ContainerUnavailableError';
  constructor(
    readonly container: string,
    detail: string,
  ) {
    super(`waiting for container ${container}: ${detail}`);
  }
}

/**
 * `target` is a container resolved by owned-container.ts (run by its id, named by its name), or a
 * bare name for a container nobody else can hold (a test's own, a helper pic just created).
 */
export async function execInContainer(
  docker: Dockerode,
  target: string | { name: string; id: string },
  argv: string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  if (argv.length === 0 || argv[0] === '') throw new Error('execInContainer: empty command');
  const withStdin = opts.stdin !== undefined;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const container = typeof target === 'string' ? target : target.name;
  const what = `${argv.join(' ')} in ${container}`;

  let exec: Dockerode.Exec;
  try {
    exec = await docker.getContainer(typeof target === 'string' ? target : target.id).exec({
      Cmd: argv,
      AttachStdin: withStdin,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
    });
  } catch (err) {
    throw unavailableOr(err, container, what);
  }

  let stream: NodeJS.ReadWriteStream;
  try {
    stream = await exec.start({ hijack: true, stdin: withStdin });
  } catch (err) {
    throw unavailableOr(err, container, what);
  }

  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const out = new PassThrough();
  const err = new PassThrough();
  out.on('data', (chunk: Buffer) => stdout.push(chunk));
  err.on('data', (chunk: Buffer) => stderr.push(chunk));
  docker.modem.demuxStream(stream, out, err);

  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`${what}: no answer after ${timeoutMs} ms`));
        (stream as unknown as { destroy?: () => void }).destroy?.();
      }, timeoutMs);
      stream.on('end', () => resolve());
      stream.on('close', () => resolve());
      stream.on('error', (e: Error) => reject(new Error(`${what}: ${e.message}`)));
      if (withStdin) {
        stream.write(opts.stdin ?? '');
        // Half-close: the program sees end of input while its output still flows back.
        stream.end();
      }
    });
    const exitCode = await exitCodeOf(exec, what, timeoutMs);
    return { stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), exitCode };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** The stream can end a moment before Docker records the exit: ask until it has. */
async function exitCodeOf(exec: Dockerode.Exec, what: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) return info.ExitCode;
    if (Date.now() > deadline) throw new Error(`${what}: still running after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function unavailableOr(err: unknown, container: string, what: string): Error {
  const code = (err as { statusCode?: number } | null)?.statusCode;
  const message = (err as Error | null)?.message ?? String(err);
  if (code === 404) return new ContainerUnavailableError(container, 'no such container');
  if (code === 409) return new ContainerUnavailableError(container, 'it is not running');
  return new Error(`${what}: ${message}`);
}
