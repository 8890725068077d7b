/**
 * The git client, as pic uses it: always `execFile('git', [...])`, never a shell string. One bare
 * repository in the state directory holds what was fetched; a revision is written out of it into
 * a folder of its own (read-tree into a private index, then checkout-index), symlinks as plain
 * files and submodules never.
 *
 * Credentials never reach git's command line: an http(s) password becomes an Authorization
 * header set through GIT_CONFIG_* variables; ssh gets a deploy key and a known_hosts file through
 * GIT_SSH_COMMAND, built from shell-quoted paths (StrictHostKeyChecking=yes: an unknown host key
 * is refused, never accepted on first use).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { quote } from 'shell-quote';
import { GitSourceError, redactUrls, type GitRemote } from './git-remote.js';

export interface GitAuth {
  /** http(s): user and password or token (sent as a Basic Authorization header). */
  http?: { username: string; password: string };
  /** ssh: the deploy key and the known_hosts file that must hold the server's key. */
  ssh?: { keyFile: string; knownHostsFile: string };
  /** https: the CA certificates (PEM) the server's certificate must chain to, instead of the system's. */
  caFile?: string;
}

export interface GitResult {
  stdout: string;
  stderr: string;
}

/** A git command failed; its message has every URL's userinfo and every secret taken out. */
export class GitCommandError extends Error {
  constructor(message: string, readonly exitCode: number | string | undefined) {
    super(message);
    this.name = 'GitCommandError';
  }
}

const TIMEOUT_MS = 120_000;

/** The environment every git command runs with: no prompt, no system or user config, only our transports. */
export function gitEnvironment(remote: GitRemote | undefined, auth: GitAuth, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const config: [string, string][] = [
    ['protocol.allow', 'never'],
    ['protocol.file.allow', 'always'],
    ['protocol.git.allow', 'always'],
    ['protocol.http.allow', 'always'],
    ['protocol.https.allow', 'always'],
    ['protocol.ssh.allow', 'always'],
    ['core.symlinks', 'false'],
    ['core.hooksPath', '/dev/null'],
    ['submodule.recurse', 'false'],
    ['fetch.recurseSubmodules', 'false'],
    ['credential.helper', ''],
  ];
  if (auth.http && remote && (remote.transport === 'https' || remote.transport === 'http')) {
    const basic = Buffer.from(`${auth.http.username}:${auth.http.password}`).toString('base64');
    // Scoped to the remote's URL: a redirect to another host does not carry it.
    config.push([`http.${remote.url}.extraHeader`, `Authorization: Basic ${basic}`]);
  }
  if (auth.caFile && remote && remote.transport === 'https') config.push([`http.${remote.url}.sslCAInfo`, auth.caFile]);
  const env: NodeJS.ProcessEnv = {
    PATH: base.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: base.HOME ?? '/root',
    LANG: 'C',
    LC_ALL: 'C',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '/bin/false',
    SSH_ASKPASS: '/bin/false',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ALLOW_PROTOCOL: 'file:git:http:https:ssh',
    GIT_CONFIG_COUNT: String(config.length),
  };
  config.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  if (auth.ssh) {
    // Paths are the admin's, but still quoted: nothing of them is ever read as shell syntax.
    env.GIT_SSH_COMMAND = quote([
      'ssh',
      '-i', auth.ssh.keyFile,
      '-o', 'IdentitiesOnly=yes',
      '-o', 'StrictHostKeyChecking=yes',
      '-o', `UserKnownHostsFile=${auth.ssh.knownHostsFile}`,
      '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'ConnectTimeout=20',
      '-F', '/dev/null',
    ]);
  } else {
    env.GIT_SSH_COMMAND = quote(['ssh', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-F', '/dev/null']);
  }
  return env;
}

/**
 * What git (and ssh under it) said, in one line: the lines that say what went wrong (ssh's
 * banners of @ left out), else the last three.
 */
export function gitComplaint(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^@+$/.test(l));
  const telling = lines.filter((l) => /fatal|error|fail|denied|refused|verification|not found|could not|unable/i.test(l));
  const chosen = telling.length > 0 ? telling.slice(-4) : lines.slice(-3);
  const text = chosen.join('; ');
  return text.length > 600 ? `${text.slice(0, 597)}...` : text;
}

/** Run git with `args`; the error names the command and what git said, with URLs and secrets redacted. */
export function runGit(args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; secrets?: string[]; timeoutMs?: number }): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    execFile('git', args, { env: opts.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      const clean = (text: string) => {
        let out = redactUrls(text);
        for (const s of opts.secrets ?? []) if (s) out = out.split(s).join('***');
        return out;
      };
      const said = clean(gitComplaint(stderr)) || clean(err.message);
      const verb = args.find((a, i) => !a.startsWith('-') && !['--git-dir', '--work-tree', '-c', '-C'].includes(args[i - 1] ?? '')) ?? 'git';
      reject(new GitCommandError(`git ${verb} failed: ${said}`, (err as NodeJS.ErrnoException).code ?? undefined));
    });
  });
}

/** The local side: a bare repository under `dir` that fetches from one remote. */
export class GitMirror {
  readonly gitDir: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly secrets: string[];

  constructor(
    dir: string,
    private readonly remote: GitRemote,
    auth: GitAuth,
  ) {
    this.gitDir = path.join(dir, 'repo.git');
    this.env = gitEnvironment(remote, auth);
    this.secrets = [auth.http?.password ?? '', remote.password ?? ''].filter((s) => s !== '');
  }

  private git(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<GitResult> {
    return runGit(['--git-dir', this.gitDir, ...args], { env: { ...this.env, ...extraEnv }, secrets: this.secrets });
  }

  /** Create the bare repository when it is not there (idempotent). */
  async ensure(): Promise<void> {
    try {
      await fs.access(path.join(this.gitDir, 'HEAD'));
      return;
    } catch {
      // first use
    }
    await fs.mkdir(path.dirname(this.gitDir), { recursive: true, mode: 0o700 });
    await runGit(['init', '--quiet', '--bare', this.gitDir], { env: this.env });
  }

  /**
   * The commit the remote advertises for a branch or tag (`git ls-remote`: no objects move), or
   * undefined when the remote has no such ref. A tag is peeled to its commit.
   */
  async advertised(name: string): Promise<string | undefined> {
    const refs = name.startsWith('refs/') ? [name, `${name}^{}`] : [`refs/heads/${name}`, `refs/tags/${name}`, `refs/tags/${name}^{}`];
    const { stdout } = await this.git(['ls-remote', '--', this.remote.url, ...refs]);
    const lines = new Map(
      stdout
        .split('\n')
        .filter((l) => l.includes('\t'))
        .map((l) => {
          const [sha = '', ref = ''] = l.split('\t');
          return [ref, sha] as const;
        }),
    );
    for (const ref of name.startsWith('refs/') ? [`${name}^{}`, name] : [`refs/heads/${name}`, `refs/tags/${name}^{}`, `refs/tags/${name}`]) {
      const sha = lines.get(ref);
      if (sha && /^[0-9a-f]{40}$/.test(sha)) return sha;
    }
    return undefined;
  }

  /**
   * Fetch `name` (a branch or tag) or, for a commit, every branch; the remote's history wins
   * (forced update: a force-push is followed like any other revision). Returns the fetched commit.
   */
  async fetch(target: { kind: 'name'; name: string } | { kind: 'commit'; sha: string }): Promise<string> {
    if (target.kind === 'commit') {
      await this.git(['fetch', '--quiet', '--no-tags', '--no-recurse-submodules', '--force', '--', this.remote.url, '+refs/heads/*:refs/pic/branches/*']);
      return this.commitOf(target.sha);
    }
    const source = target.name.startsWith('refs/') ? target.name : (await this.isTag(target.name)) ? `refs/tags/${target.name}` : `refs/heads/${target.name}`;
    await this.git(['fetch', '--quiet', '--no-tags', '--no-recurse-submodules', '--force', '--', this.remote.url, `+${source}:refs/pic/fetched`]);
    return this.commitOf('refs/pic/fetched');
  }

  private async isTag(name: string): Promise<boolean> {
    const { stdout } = await this.git(['ls-remote', '--', this.remote.url, `refs/heads/${name}`]);
    return stdout.trim() === '';
  }

  /** The commit `rev` names here (a tag peeled). */
  async commitOf(rev: string): Promise<string> {
    const { stdout } = await this.git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`]);
    const sha = stdout.trim();
    if (!/^[0-9a-f]{40}$/.test(sha)) throw new GitSourceError(`${rev}: not a commit in ${this.remote.display}`);
    return sha;
  }

  /** Whether the commit is here already (a revision fetched before). */
  async has(sha: string): Promise<boolean> {
    return this.git(['cat-file', '-e', `${sha}^{commit}`]).then(
      () => true,
      () => false,
    );
  }

  /** The commit's subject line. */
  async subject(sha: string): Promise<string> {
    const { stdout } = await this.git(['log', '-1', '--no-show-signature', '--format=%s', sha, '--']);
    return stdout.trim();
  }

  /**
   * Check the commit's signature with git's own verify-commit against an SSH allowed_signers
   * file. Returns undefined when it is signed by a listed key, else why not.
   */
  async verifySsh(sha: string, allowedSigners: string): Promise<string | undefined> {
    try {
      await this.git(['-c', 'gpg.format=ssh', '-c', `gpg.ssh.allowedSignersFile=${allowedSigners}`, 'verify-commit', '--', sha]);
      return undefined;
    } catch (err) {
      const message = (err as Error).message.replace(/^git verify-commit failed: /, '');
      return message || 'no valid signature';
    }
  }

  /** Write the commit's tree into `dir` (which must not exist yet). */
  async checkout(sha: string, dir: string, indexFile: string): Promise<void> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.rm(indexFile, { force: true });
    const env = { GIT_INDEX_FILE: indexFile };
    try {
      await this.git(['read-tree', sha], env);
      await this.git(['--work-tree', dir, 'checkout-index', '--all', '--force'], env);
    } finally {
      await fs.rm(indexFile, { force: true });
    }
  }

  /** Drop objects no ref or revision needs any more (cheap; run after a switch). */
  async prune(keep: string[]): Promise<void> {
    const { stdout } = await this.git(['for-each-ref', '--format=%(refname)', 'refs/pic/keep/']);
    for (const ref of stdout.split('\n').filter((r) => r !== '')) {
      if (!keep.includes(ref.slice('refs/pic/keep/'.length))) await this.git(['update-ref', '-d', ref]);
    }
    for (const sha of keep) await this.git(['update-ref', `refs/pic/keep/${sha}`, sha]);
  }
}
