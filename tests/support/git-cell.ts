/**
 * A test cell whose folder is a Git repository, for `pic run --git`: the test cell's folder and
 * catalog (tests/support/cell.ts) committed as `cell/` and `store/` of a repository in the cell's
 * temporary folder, helpers to commit, reset and push, a `git daemon` on loopback, and `pic run
 * --git` as its own process (so it can be killed as a crash would).
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { createTestCell, serviceInstallDocument, waitFor, type TestCell, type TestService } from './cell.js';
import { docker } from './docker.js';
import { spawnPic, type PicProcess } from './egress-operator-process.js';

const run = promisify(execFile);

/** The prefix of every Docker object and folder these tests create. */
export const GITOPS_PREFIX = 'gto-';

const IDENTITY = ['-c', 'user.name=pic tests', '-c', 'user.email=tests@pic.test', '-c', 'commit.gpgsign=false', '-c', 'init.defaultBranch=main'];

export async function git(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await run('git', [...IDENTITY, ...args], { cwd, env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1', ...env } });
  return stdout.trim();
}

export interface GitCell extends TestCell {
  /** The working repository (holds cell/ and store/). */
  work: string;
  /** The bare repository the operator follows (pushed to by `commit`). */
  bare: string;
  /** Write (string) or delete (null) files below the repository's top, commit, push; returns the commit id. */
  commit(message: string, files: Record<string, string | null>, opts?: { sign?: string }): Promise<string>;
  /** The ServiceInstall file of a service, as `commit` takes it. */
  serviceFile(id: string): Record<string, string>;
  /** Reset main to `sha` and force-push it. */
  forcePush(sha: string): Promise<void>;
}

export async function createGitCell(services: TestService[]): Promise<GitCell> {
  const cell = await createTestCell(services, { prefix: GITOPS_PREFIX });
  const work = cell.root;
  const bare = path.join(cell.root, 'remote.git');
  await fs.writeFile(path.join(work, '.gitignore'), 'state/\nremote.git/\n');
  await git(work, ['init', '--quiet', '-b', 'main']);
  await git(work, ['add', '.']);
  await git(work, ['commit', '--quiet', '-m', 'the cell, no services']);
  await git(cell.root, ['init', '--quiet', '--bare', bare]);
  await git(work, ['push', '--quiet', bare, 'main']);
  await git(bare, ['update-server-info']);
  return {
    ...cell,
    work,
    bare,
    async commit(message, files, opts = {}) {
      for (const [file, text] of Object.entries(files)) {
        const p = path.join(work, file);
        if (text === null) await fs.rm(p, { force: true });
        else {
          await fs.mkdir(path.dirname(p), { recursive: true });
          await fs.writeFile(p, text);
        }
      }
      await git(work, ['add', '-A', '.']);
      const sign = opts.sign ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${opts.sign}`, 'commit', '-S'] : ['commit'];
      await git(work, [...sign, '--quiet', '--allow-empty', '-m', message]);
      await git(work, ['push', '--quiet', '--force', bare, 'main']);
      // For the dumb HTTP transport (a static file server in front of the bare repository).
      await git(bare, ['update-server-info']);
      return git(work, ['rev-parse', 'HEAD']);
    },
    serviceFile(id) {
      return { [`cell/services/${id}.yaml`]: serviceInstallDocument(id) };
    },
    async forcePush(sha) {
      await git(work, ['reset', '--quiet', '--hard', sha]);
      await git(work, ['push', '--quiet', '--force', bare, 'main']);
      await git(bare, ['update-server-info']);
    },
  };
}

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface GitDaemon {
  port: number;
  url(repo: string): string;
  stop(): Promise<void>;
}

/** `git daemon` serving the repositories below `base` on loopback (on `port`, or a free one). */
export async function startGitDaemon(base: string, port?: number): Promise<GitDaemon> {
  const p = port ?? (await freePort());
  const child = spawn('git', ['daemon', '--reuseaddr', '--listen=127.0.0.1', `--port=${p}`, `--base-path=${base}`, '--export-all', '--informative-errors', base], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(`git daemon on 127.0.0.1:${p}`, () => new Promise<true | undefined>((resolve) => {
    const s = net.connect(p, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(undefined));
  }), 15_000);
  return {
    port: p,
    url: (repo) => `git://127.0.0.1:${p}/${repo}`,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export type GitPic = PicProcess;

/** `pic run --git URL --path cell --interval 1s` on the cell's state directory (its whole output kept). */
export function startGitPic(cell: TestCell, url: string, extra: string[] = [], interval = '1s', resync = '5'): GitPic {
  return spawnPic(['run', '--git', url, '--ref', 'main', '--path', 'cell', '--interval', interval, '--state-dir', cell.stateDir, '--resync', resync, '--log-format', 'json', ...extra], { PIC_STATE_DIR: '' });
}

/** The Cell status the source keeps (the only Cell status of a test cell). */
export async function cellStatus(cell: TestCell): Promise<DocumentStatus | undefined> {
  const store = new StatusStore(path.join(cell.stateDir, 'status'));
  return (await store.list()).find((s) => s.kind === 'Cell');
}

/** Wait until the Cell status satisfies `check`. */
export function waitCell(cell: TestCell, what: string, check: (s: DocumentStatus) => boolean, timeoutMs = 90_000): Promise<DocumentStatus> {
  return waitFor(`Cell status: ${what}`, async () => {
    const s = await cellStatus(cell);
    return s && check(s) ? s : undefined;
  }, timeoutMs);
}

export interface CellFacts {
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
  source?: Record<string, string>;
  refused?: { revision: string; reason: string; problems: string[] };
}

export function facts(s: DocumentStatus | undefined): CellFacts {
  return (s?.facts ?? {}) as CellFacts;
}

/** The state of a container ('absent' when there is none). */
export async function containerState(name: string): Promise<string> {
  try {
    return (await docker.getContainer(name).inspect()).State.Status;
  } catch {
    return 'absent';
  }
}
