/**
 * The pieces the egress end-to-end tests share when pic runs as its own process (so that it can
 * be killed with SIGKILL as a crash would): `pic run` on an egress cell, statuses read from its
 * state directory, the probe answer seen from inside a service, and a sampler that records every
 * answer a service gets while something is done to the cell.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { waitFor, type TestCell } from './cell.js';
import { docker } from './docker.js';

const PIC = path.join(process.cwd(), 'bin', 'pic');

export interface PicProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<void>;
  /** SIGTERM, as an admin stops it; resolves once it has exited. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash or the OOM killer ends it. */
  kill(): Promise<void>;
}

/** `pic run` on the cell, re-checking everything every `resync` seconds. */
export function startPic(cell: TestCell, resync = 5): PicProcess {
  return spawnPic(['run', '--cell', cell.cellDir, '--state-dir', cell.stateDir, '--resync', String(resync), '--log-format', 'json'], { PIC_STATE_DIR: cell.stateDir }, 8000);
}

/**
 * bin/pic with `args` as its own process, its output kept (the last `keepChars` characters, or
 * all of it), and the two ways it ends: stopped as an admin stops it, or killed.
 */
export function spawnPic(args: string[], env: NodeJS.ProcessEnv, keepChars = Infinity): PicProcess {
  const child = spawn(PIC, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-keepChars));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    output: () => out,
    exited,
    async stop() {
      if (alive()) child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
  };
}

export class CellView {
  private readonly status: StatusStore;

  constructor(private readonly cell: TestCell, private readonly probeAddress: string) {
    this.status = new StatusStore(path.join(cell.stateDir, 'status'));
  }

  phase(key: string): Promise<DocumentStatus | undefined> {
    return this.status.get(key);
  }

  waitPhase(key: string, wanted: string, timeoutMs = 150_000): Promise<DocumentStatus> {
    return waitFor(`${key} ${wanted}`, async () => {
      const s = await this.phase(key);
      return s?.phase === wanted ? s : undefined;
    }, timeoutMs);
  }

  exec(service: string, argv: string[]): Promise<{ stdout: string; exitCode: number }> {
    const name = this.cell.containerName(service);
    return execInContainer(docker, { name, id: name }, argv, { timeoutMs: 20_000 });
  }

  /** What `service` gets from the probe address ('' when nothing answers). */
  async probe(service: string): Promise<string> {
    const r = await this.exec(service, ['timeout', '4', 'wget', '-q', '-O', '-', `http://${this.probeAddress}/`]).catch(() => ({ exitCode: 1, stdout: '' }));
    return r.exitCode === 0 ? r.stdout.trim() : '';
  }

  waitAnswer(service: string, answer: string, timeoutMs = 90_000): Promise<true> {
    return waitFor(`${service} to get "${answer}"`, async () => ((await this.probe(service)) === answer ? true : undefined), timeoutMs);
  }

  /**
   * Starts asking the probe address from inside `service` five times a second, in the
   * background; `answers` reads what it got so far ('-' for no answer). It lives as long as the
   * container: a restart of the service ends it.
   */
  async startSampler(service: string): Promise<{ answers(): Promise<string[]> }> {
    const file = '/tmp/pic-egress-samples';
    const loop = `: > ${file}; while :; do a=$(timeout 2 wget -q -O - http://${this.probeAddress}/ 2>/dev/null) || a=-; echo "$a" >> ${file}; sleep 0.2; done`;
    const exec = await docker.getContainer(this.cell.containerName(service)).exec({ Cmd: ['sh', '-c', loop], AttachStdout: false, AttachStderr: false });
    await exec.start({ Detach: true });
    return {
      answers: async () => (await this.exec(service, ['cat', file])).stdout.split('\n').filter((l) => l !== ''),
    };
  }
}
