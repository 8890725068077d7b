/**
 * What `pic run --git` is told about the remote, checked before any git process runs: the URL
 * (its transport, and without the userinfo everything else ever shows), the ref, the sub-folder
 * and the interval. Pure: no git, no file system.
 *
 * The git client is only ever given a URL of one of five transports (file, git, http(s), ssh)
 * and is told, by GIT_ALLOW_PROTOCOL, to use no other (no `ext::`, which would run a command).
 * A password or token is never given to git in the URL nor on its command line: it goes into an
 * HTTP header set through GIT_CONFIG_* environment variables, which other users cannot read.
 */
import path from 'node:path';

export type GitTransport = 'file' | 'git' | 'http' | 'https' | 'ssh';

export interface GitRemote {
  /** The URL git is given: without user or password for http(s). */
  url: string;
  /** The URL as every status, event and log line shows it: no password, no token. */
  display: string;
  transport: GitTransport;
  /** http(s) only: the user and password the URL carried (the password is never shown). */
  username?: string;
  password?: string;
  /** Host, for ssh and http(s). */
  host?: string;
}

export class GitSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GitSourceError';
  }
}

/** What a URL's userinfo becomes wherever the URL is shown. */
const HIDDEN = '***';

/** `user@host:path`, git's scp-like ssh syntax. */
const SCP_LIKE = /^([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?!\/\/)(.+)$/;

/** Replace the userinfo of every URL in `text` (`scheme://user:secret@host` → `scheme://***@host`). */
export function redactUrls(text: string): string {
  return text.replace(/([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/\s@]+@/g, `$1${HIDDEN}@`);
}

/** Whether `text` holds a space or a control character (which no URL or ref holds). */
function hasControlOrSpace(text: string): boolean {
  return [...text].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) === 0x7f || /\s/.test(c));
}

/** Parse and check a remote URL given to `--git`. */
export function parseGitRemote(raw: string): GitRemote {
  const url = raw.trim();
  if (url === '') throw new GitSourceError('--git needs a URL (file://, git://, https://, ssh:// or user@host:path)');
  if (hasControlOrSpace(url)) throw new GitSourceError(`--git ${redactUrls(url)}: a URL holds no spaces or control characters`);
  if (url.startsWith('-')) throw new GitSourceError(`--git ${redactUrls(url)}: a URL does not start with "-"`);
  const scp = SCP_LIKE.exec(url);
  if (scp && !url.includes('://')) {
    const [, user = '', host = ''] = scp;
    if (host.startsWith('-') || user.startsWith('-')) throw new GitSourceError(`--git ${url}: a host or user does not start with "-"`);
    return { url, display: url, transport: 'ssh', host };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new GitSourceError(`--git ${redactUrls(url)}: not a URL; use file:///path, git://host/repo, https://host/repo, ssh://user@host/repo or user@host:repo`);
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  switch (scheme) {
    case 'file': {
      if (parsed.username || parsed.password) throw new GitSourceError(`--git ${redactUrls(url)}: a file:// URL has no user or password`);
      if (parsed.host !== '') throw new GitSourceError(`--git ${url}: a file:// URL names a local path (file:///path), not a host`);
      return { url, display: url, transport: 'file' };
    }
    case 'git': {
      if (parsed.username || parsed.password) throw new GitSourceError(`--git ${redactUrls(url)}: the git:// protocol has no user or password`);
      return { url, display: url, transport: 'git', host: parsed.hostname };
    }
    case 'http':
    case 'https': {
      const username = decodeURIComponent(parsed.username);
      const password = decodeURIComponent(parsed.password);
      parsed.username = '';
      parsed.password = '';
      const bare = parsed.toString();
      return {
        url: bare,
        display: username || password ? bare.replace('://', `://${HIDDEN}@`) : bare,
        transport: scheme,
        host: parsed.hostname,
        ...(username ? { username } : {}),
        ...(password ? { password } : {}),
      };
    }
    case 'ssh': {
      if (parsed.password) throw new GitSourceError(`--git ${redactUrls(url)}: an ssh:// URL carries no password; give a deploy key with --git-ssh-key`);
      if (parsed.hostname.startsWith('-') || parsed.username.startsWith('-')) throw new GitSourceError(`--git ${url}: a host or user does not start with "-"`);
      return { url, display: url, transport: 'ssh', host: parsed.hostname };
    }
    default:
      throw new GitSourceError(`--git ${redactUrls(url)}: the ${scheme}: transport is not one pic uses; use file://, git://, https://, ssh:// or user@host:path`);
  }
}

/** A loopback host: the only place credentials may go over plain http. */
function isLoopback(host: string | undefined): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host ?? '');
}

/**
 * Credentials for an http(s) remote: from the password file when one is given, else from the
 * URL. Refused over plain http except to loopback (where a test or a local mirror runs).
 */
export function httpCredentials(remote: GitRemote, fromFile: { username?: string; password?: string }): { username: string; password: string } | undefined {
  const password = fromFile.password ?? remote.password;
  if (password === undefined) return undefined;
  if (remote.transport !== 'https' && remote.transport !== 'http') throw new GitSourceError(`a password or token is only used with an https:// remote, not ${remote.display}`);
  if (remote.transport === 'http' && !isLoopback(remote.host)) throw new GitSourceError(`${remote.display}: a password is sent only over https:// (plain http only to a loopback address)`);
  return { username: fromFile.username ?? remote.username ?? 'git', password };
}

/** A branch, tag or commit: what `--ref` may name. */
export type GitRef = { kind: 'commit'; sha: string } | { kind: 'name'; name: string };

export function parseGitRef(raw: string): GitRef {
  const ref = raw.trim();
  if (/^[0-9a-f]{40}$/.test(ref)) return { kind: 'commit', sha: ref };
  // git check-ref-format's rules, strictly: no leading '-', no '..', no control or special characters.
  if (
    ref === '' ||
    ref.startsWith('-') ||
    ref.startsWith('/') ||
    ref.endsWith('/') ||
    ref.endsWith('.') ||
    ref.endsWith('.lock') ||
    ref.includes('..') ||
    ref.includes('//') ||
    ref.includes('@{') ||
    hasControlOrSpace(ref) ||
    /[~^:?*[\\]/.test(ref)
  ) {
    throw new GitSourceError(`--ref "${ref}" is not a branch, tag or 40-hex commit id git accepts`);
  }
  return { kind: 'name', name: ref };
}

/** How a ref is shown in Flux's form `<ref>@sha1:<sha>`. */
export function revisionText(ref: GitRef, sha: string): string {
  return `${ref.kind === 'commit' ? 'HEAD' : ref.name}@sha1:${sha}`;
}

/** `--path`: a folder inside the repository, never outside it. */
export function parseGitPath(raw: string): string {
  const p = raw.trim() === '' ? '.' : raw.trim();
  if (path.isAbsolute(p)) throw new GitSourceError(`--path ${p}: a folder inside the repository, relative to its top (e.g. cell), not an absolute path`);
  const normal = path.posix.normalize(p.replace(/\\/g, '/'));
  if (normal === '..' || normal.startsWith('../')) throw new GitSourceError(`--path ${p}: leaves the repository`);
  return normal.replace(/\/$/, '') || '.';
}

/** `--interval`: `30s`, `1m`, `2h`, `500ms` or a plain number of seconds; at least 100 ms. */
export function parseInterval(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) throw new GitSourceError(`--interval "${raw}": a duration such as 30s, 1m or 2h`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  if (!(ms >= 100)) throw new GitSourceError(`--interval "${raw}": at least 100ms`);
  return ms;
}

/**
 * When the next poll after `failures` failures in a row is due: the interval, doubled per
 * failure, at most eight intervals and at most five minutes (but never less than the interval).
 */
export function backoffMs(intervalMs: number, failures: number): number {
  if (failures <= 0) return intervalMs;
  const cap = Math.max(intervalMs, Math.min(intervalMs * 8, 5 * 60_000));
  return Math.min(cap, intervalMs * 2 ** Math.min(failures, 20));
}
