/**
 * `pic run --git URL`: the settings (flags, else PIC_GIT_* environment variables, for the systemd
 * unit), checked before anything starts, and the glue between the Git source and the operator.
 */
import { promises as fs } from 'node:fs';
import type { Flag, Parsed } from './command.js';
import { stringFlag } from './command.js';
import { UsageError } from './usage.js';
import { safeLine } from '../safe-text.js';
import type { GitAuth } from '../sources/git-client.js';
import { GitSourceError, httpCredentials, parseGitPath, parseGitRef, parseGitRemote, parseInterval, redactUrls, type GitRef, type GitRemote } from '../sources/git-remote.js';

/** Each flag of git mode and the environment variable that gives it when the flag is absent. */
export const GIT_SETTINGS = [
  { flag: 'git', env: 'PIC_GIT_URL', value: 'URL', help: 'follow this Git remote (file://, git://, https://, ssh:// or user@host:path) instead of a --cell folder' },
  { flag: 'ref', env: 'PIC_GIT_REF', value: 'REF', help: 'with --git: the branch, tag or 40-hex commit to follow (default main)' },
  { flag: 'path', env: 'PIC_GIT_PATH', value: 'SUBDIR', help: 'with --git: the cell folder inside the repository (default: its top)' },
  { flag: 'interval', env: 'PIC_GIT_INTERVAL', value: 'DURATION', help: 'with --git: how often to ask the remote for a new commit, e.g. 30s, 1m (default 1m)' },
  { flag: 'git-username', env: 'PIC_GIT_USERNAME', value: 'USER', help: 'with an https:// remote: the user the password file is for (default: the URL\'s, else git)' },
  { flag: 'git-password-file', env: 'PIC_GIT_PASSWORD_FILE', value: 'FILE', help: 'with an https:// remote: a file holding the password or token (never put it in the URL)' },
  { flag: 'git-ca-file', env: 'PIC_GIT_CA_FILE', value: 'FILE', help: 'with an https:// remote: the CA certificates (PEM) its certificate must chain to, instead of the system\'s' },
  { flag: 'git-ssh-key', env: 'PIC_GIT_SSH_KEY', value: 'FILE', help: 'with an ssh remote: the deploy key (a private key file)' },
  { flag: 'git-known-hosts', env: 'PIC_GIT_KNOWN_HOSTS', value: 'FILE', help: 'with an ssh remote: a known_hosts file holding the server\'s key (an unknown key is refused)' },
  { flag: 'verify-commits', env: 'PIC_GIT_VERIFY_COMMITS', value: 'FILE', help: 'with --git: apply only commits signed by a key in this SSH allowed_signers file' },
] as const;

export const GIT_FLAGS: readonly Flag[] = GIT_SETTINGS.map((s) => ({ name: s.flag, type: 'string', value: s.value, help: `${s.help} ($${s.env})`, ...(s.flag.endsWith('file') || s.flag.endsWith('key') || s.flag.endsWith('hosts') || s.flag === 'verify-commits' ? { complete: 'file' as const } : {}) }));

export interface GitSettings {
  remote: GitRemote;
  ref: GitRef;
  path: string;
  intervalMs: number;
  auth: GitAuth;
  allowedSigners?: string;
}

type GitSettingName = (typeof GIT_SETTINGS)[number]['flag'];

/** The value of a git-mode setting: its flag, else its environment variable (empty counts as absent). */
function setting(parsed: Parsed, env: NodeJS.ProcessEnv, name: GitSettingName): string | undefined {
  const flag = stringFlag(parsed, name);
  if (flag !== undefined) return flag;
  const entry = GIT_SETTINGS.find((s) => s.flag === name)!;
  const value = env[entry.env];
  return value === undefined || value === '' ? undefined : value;
}

async function readableFile(file: string, what: string): Promise<void> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new Error('not a file');
    await fs.access(file, fs.constants.R_OK);
  } catch (err) {
    throw new UsageError(`${what} ${safeLine(file)}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** Git mode's settings, or undefined when neither --git nor PIC_GIT_URL is given. */
export async function gitSettings(parsed: Parsed, env: NodeJS.ProcessEnv = process.env): Promise<GitSettings | undefined> {
  const url = setting(parsed, env, 'git');
  const others = GIT_SETTINGS.filter((s) => s.flag !== 'git' && stringFlag(parsed, s.flag) !== undefined);
  if (url === undefined) {
    if (others.length > 0) throw new UsageError(`--${others[0]!.flag} is a setting of --git URL`);
    return undefined;
  }
  try {
    const remote = parseGitRemote(url);
    const ref = parseGitRef(setting(parsed, env, 'ref') ?? 'main');
    const subdir = parseGitPath(setting(parsed, env, 'path') ?? '.');
    const interval = setting(parsed, env, 'interval');
    const intervalMs = interval === undefined ? 60_000 : parseInterval(interval);
    const auth: GitAuth = {};
    const passwordFile = setting(parsed, env, 'git-password-file');
    let password: string | undefined;
    if (passwordFile !== undefined) {
      await readableFile(passwordFile, '--git-password-file');
      password = (await fs.readFile(passwordFile, 'utf8')).replace(/\r?\n$/, '');
      if (password === '') throw new UsageError(`--git-password-file ${safeLine(passwordFile)} is empty`);
    }
    const username = setting(parsed, env, 'git-username');
    const http = httpCredentials(remote, { ...(password !== undefined ? { password } : {}), ...(username !== undefined ? { username } : {}) });
    if (http) auth.http = http;
    const caFile = setting(parsed, env, 'git-ca-file');
    if (caFile !== undefined) {
      if (remote.transport !== 'https') throw new UsageError(`--git-ca-file is for an https:// remote, not ${remote.display}`);
      await readableFile(caFile, '--git-ca-file');
      auth.caFile = caFile;
    }
    const key = setting(parsed, env, 'git-ssh-key');
    const knownHosts = setting(parsed, env, 'git-known-hosts');
    if (remote.transport === 'ssh') {
      if (key === undefined || knownHosts === undefined) throw new UsageError(`an ssh remote needs --git-ssh-key FILE (the deploy key) and --git-known-hosts FILE (the server's key: an unknown key is refused)`);
      await readableFile(key, '--git-ssh-key');
      await readableFile(knownHosts, '--git-known-hosts');
      auth.ssh = { keyFile: key, knownHostsFile: knownHosts };
    } else if (key !== undefined || knownHosts !== undefined) {
      throw new UsageError(`--git-ssh-key and --git-known-hosts are for an ssh remote, not ${remote.display}`);
    }
    const allowedSigners = setting(parsed, env, 'verify-commits');
    if (allowedSigners !== undefined) await readableFile(allowedSigners, '--verify-commits');
    return { remote, ref, path: subdir, intervalMs, auth, ...(allowedSigners !== undefined ? { allowedSigners } : {}) };
  } catch (err) {
    if (err instanceof GitSourceError) throw new UsageError(redactUrls(err.message));
    throw err;
  }
}
