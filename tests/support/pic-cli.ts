/** `bin/pic` as a separate process, as an admin runs it: exit code and both streams, never a throw. */
import { execFile } from 'node:child_process';
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
