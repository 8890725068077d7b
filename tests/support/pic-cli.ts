/** `bin/pic` as a separate process, as an admin runs it: exit code and both streams, never a throw. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PIC = path.join(process.cwd(), 'bin', 'pic');

export interface PicResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runPic(args: string[], env: NodeJS.ProcessEnv = {}): Promise<PicResult> {
  try {
    const { stdout, stderr } = await run(PIC, args, { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export interface RunningPic {
  child: ChildProcess;
  /** Everything it printed so far, stdout and stderr together. */
  output(): string;
  exited: Promise<number | null>;
}

/** `bin/pic` started in the background (an operator, a watch): the caller stops it. */
export function startPic(args: string[], env: NodeJS.ProcessEnv = {}): RunningPic {
  const child = spawn(PIC, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += String(d)));
  child.stderr.on('data', (d) => (out += String(d)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}
