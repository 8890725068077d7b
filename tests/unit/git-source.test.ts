import { execFileSync } from 'node:child_process';
import { gitSettings } from '../../controllers/cli/run-git.js';
import { UsageError } from '../../controllers/cli/usage.js';
import { gitEnvironment } from '../../controllers/sources/git-client.js';
import { backoffMs, httpCredentials, parseGitPath, parseGitRef, parseGitRemote, parseInterval, redactUrls, revisionText } from '../../controllers/sources/git-remote.js';
import { sourceOutcome, type SourceReport } from '../../controllers/sources/git-source.js';

describe('parseGitRemote', () => {
  test.each([
    ['file:///srv/cell.git', 'file', 'file:///srv/cell.git', 'file:///srv/cell.git'],
    ['git://127.0.0.1:9418/cell', 'git', 'git://127.0.0.1:9418/cell', 'git://127.0.0.1:9418/cell'],
    ['https://git.example.org/admin/cell.git', 'https', 'https://git.example.org/admin/cell.git', 'https://git.example.org/admin/cell.git'],
    ['https://admin:s3cret@git.example.org/cell.git', 'https', 'https://git.example.org/cell.git', 'https://***@git.example.org/cell.git'],
    ['ssh://git@git.example.org:2222/admin/cell.git', 'ssh', 'ssh://git@git.example.org:2222/admin/cell.git', 'ssh://git@git.example.org:2222/admin/cell.git'],
    ['git@git.example.org:admin/cell.git', 'ssh', 'git@git.example.org:admin/cell.git', 'git@git.example.org:admin/cell.git'],
  ])('%s is %s, given to git as %s and shown as %s', (raw, transport, url, display) => {
    const r = parseGitRemote(raw);
    expect(r.transport).toBe(transport);
    expect(r.url).toBe(url);
    expect(r.display).toBe(display);
    expect(JSON.stringify({ url: r.url, display: r.display })).not.toContain('s3cret');
  });

  test.each([
    ['', /needs a URL/],
    ['ext::sh -c touch% /tmp/pwned', /no spaces/],
    ['ext::sh', /transport is not one pic uses/],
    ['-uhelp', /does not start with "-"/],
    ['fd::3', /transport is not one pic uses/],
    ['file://host/path', /local path/],
    ['git://u:p@host/x', /no user or password/],
    ['ssh://u:hunter2@host/x', /carries no password/],
    ['not a url', /no spaces/],
  ])('%j is refused', (raw, why) => {
    expect(() => parseGitRemote(raw)).toThrow(why);
  });

  test('the error for a refused URL never shows its password', () => {
    expect(() => parseGitRemote('ftp://admin:s3cret@host/x')).toThrow(/ftp:\/\/\*\*\*@host/);
  });
});

test.each([
  ['see https://a:b@host/x and git://c@d/e', 'see https://***@host/x and git://***@d/e'],
  ['no url here', 'no url here'],
  ['fatal: unable to access \'http://u:tok@127.0.0.1:9/r/\': refused', "fatal: unable to access 'http://***@127.0.0.1:9/r/': refused"],
])('redactUrls(%j)', (text, out) => {
  expect(redactUrls(text)).toBe(out);
});

describe('httpCredentials', () => {
  test('the password file wins over the URL, and the URL user is kept', () => {
    expect(httpCredentials(parseGitRemote('https://bob:old@h/x'), { password: 'new' })).toEqual({ username: 'bob', password: 'new' });
  });
  test('no password: none', () => {
    expect(httpCredentials(parseGitRemote('https://h/x'), {})).toBeUndefined();
  });
  test('plain http only to loopback', () => {
    expect(httpCredentials(parseGitRemote('http://127.0.0.1:8080/x'), { password: 'p' })).toEqual({ username: 'git', password: 'p' });
    expect(() => httpCredentials(parseGitRemote('http://git.example.org/x'), { password: 'p' })).toThrow(/only over https/);
    expect(() => httpCredentials(parseGitRemote('git://h/x'), { password: 'p' })).toThrow(/only used with an https/);
  });
});

test.each([
  ['main', { kind: 'name', name: 'main' }],
  ['release/1.2', { kind: 'name', name: 'release/1.2' }],
  ['v1.0', { kind: 'name', name: 'v1.0' }],
  ['0123456789abcdef0123456789abcdef01234567', { kind: 'commit', sha: '0123456789abcdef0123456789abcdef01234567' }],
])('parseGitRef(%j)', (raw, ref) => {
  expect(parseGitRef(raw)).toEqual(ref);
});

test.each(['', '-main', '--upload-pack=x', 'a..b', 'a b', 'main.lock', 'x^', 'x:y', 'a@{1}', '/main', 'main/'])('parseGitRef refuses %j', (raw) => {
  expect(() => parseGitRef(raw)).toThrow(/not a branch, tag or 40-hex commit/);
});

test.each([
  ['.', '.'],
  ['', '.'],
  ['cell', 'cell'],
  ['cells/home/', 'cells/home'],
  ['./a/../b', 'b'],
])('parseGitPath(%j) = %j', (raw, out) => {
  expect(parseGitPath(raw)).toBe(out);
});

test.each(['/etc', '..', '../x', 'a/../../x'])('parseGitPath refuses %j', (raw) => {
  expect(() => parseGitPath(raw)).toThrow(/absolute|leaves the repository/);
});

test.each([
  ['2s', 2000],
  ['1m', 60_000],
  ['500ms', 500],
  ['30', 30_000],
  ['1.5h', 5_400_000],
])('parseInterval(%j) = %d ms', (raw, ms) => {
  expect(parseInterval(raw)).toBe(ms);
});

test.each(['', '0', '50ms', '1d', 'soon', '-1s'])('parseInterval refuses %j', (raw) => {
  expect(() => parseInterval(raw)).toThrow(/--interval/);
});

test.each([
  [1000, 0, 1000],
  [1000, 1, 2000],
  [1000, 2, 4000],
  [1000, 3, 8000],
  [1000, 10, 8000],
  [60_000, 10, 300_000],
  [600_000, 3, 600_000],
])('backoffMs(%d, %d) = %d', (interval, failures, ms) => {
  expect(backoffMs(interval, failures)).toBe(ms);
});

test('revisionText is Flux form', () => {
  expect(revisionText({ kind: 'name', name: 'main' }, 'a'.repeat(40))).toBe(`main@sha1:${'a'.repeat(40)}`);
  expect(revisionText({ kind: 'commit', sha: 'b'.repeat(40) }, 'b'.repeat(40))).toBe(`HEAD@sha1:${'b'.repeat(40)}`);
});

describe('gitEnvironment', () => {
  test('no prompt, no user or system config, only the five transports, no hooks', () => {
    const env = gitEnvironment(parseGitRemote('file:///x'), {}, { PATH: '/usr/bin', HOME: '/root', SECRET: 'x' });
    expect(env.GIT_TERMINAL_PROMPT).toBe('0');
    expect(env.GIT_CONFIG_NOSYSTEM).toBe('1');
    expect(env.GIT_ALLOW_PROTOCOL).toBe('file:git:http:https:ssh');
    expect(env.SECRET).toBeUndefined();
    const config = Object.fromEntries(Array.from({ length: Number(env.GIT_CONFIG_COUNT) }, (_, i) => [env[`GIT_CONFIG_KEY_${i}`], env[`GIT_CONFIG_VALUE_${i}`]]));
    expect(config).toMatchObject({ 'protocol.allow': 'never', 'core.symlinks': 'false', 'core.hooksPath': '/dev/null' });
  });

  test('an https password becomes a header scoped to the remote, never part of a URL or argument', () => {
    const remote = parseGitRemote('https://h.example/x.git');
    const env = gitEnvironment(remote, { http: { username: 'bot', password: 'tok' } }, {});
    const values = Object.entries(env).filter(([k]) => k.startsWith('GIT_CONFIG_'));
    const i = values.find(([, v]) => v === 'http.https://h.example/x.git.extraHeader')?.[0].replace('KEY', 'VALUE');
    expect(env[i!]).toBe(`Authorization: Basic ${Buffer.from('bot:tok').toString('base64')}`);
  });

  test.each([
    "/etc/pic/my key's; rm -rf /",
    '/k/$(touch /tmp/pwned)`id`',
    '/k/"double" \\back\\slash $HOME !x',
  ])('ssh: the key path %j reaches ssh as one argument (the shell git runs it with reads it back intact)', (keyFile) => {
    const env = gitEnvironment(parseGitRemote('ssh://git@h/x'), { ssh: { keyFile, knownHostsFile: '/etc/pic/known hosts' } }, {});
    const argv = execFileSync('sh', ['-c', `set -- ${env.GIT_SSH_COMMAND}; printf '%s\\n' "$@"`], { encoding: 'utf8' }).split('\n').slice(0, -1);
    expect(argv[0]).toBe('ssh');
    expect(argv[argv.indexOf('-i') + 1]).toBe(keyFile);
    expect(argv).toContain('StrictHostKeyChecking=yes');
    expect(argv).toContain('UserKnownHostsFile=/etc/pic/known hosts');
  });
});

describe('sourceOutcome', () => {
  const sha = (c: string) => c.repeat(40);
  const base: SourceReport = { source: { url: 'file:///r', ref: 'main', path: 'cell' } };
  const applied = { ...base, lastAppliedRevision: `main@sha1:${sha('a')}`, applied: { id: 'aaaaaaa', subject: 'add notes' } };
  test.each<[string, SourceReport, string, string, RegExp]>([
    ['nothing yet', base, 'progressing', 'Fetching', /fetching file:\/\/\/r \(main\)/],
    ['applied', applied, 'ready', 'RevisionApplied', /^main@aaaaaaa: add notes$/],
    ['unreachable', { ...applied, source: { ...applied.source, lastError: 'git ls-remote failed: gone', lastErrorSince: '2026-01-01T00:00:00.000Z' } }, 'refused', 'SourceUnavailable', /since 2026-01-01T00:00:00.000Z: git ls-remote failed: gone; aaaaaaa \(add notes\) keeps running/],
    [
      'refused',
      { ...applied, refused: { revision: `main@sha1:${sha('b')}`, subject: 'x', reason: 'RevisionInvalid', problems: ['cell/services/a.yaml: /spec/x: unknown field', 'p2'] } },
      'refused',
      'RevisionInvalid',
      /revision main@bbbbbbb refused: cell\/services\/a.yaml: \/spec\/x: unknown field \(and 1 more\); aaaaaaa \(add notes\) keeps running/,
    ],
  ])('%s', (_what, report, state, reason, message) => {
    const o = sourceOutcome(report) as { state: string; reason: string; message: string };
    expect(o.state).toBe(state);
    expect(o.reason).toBe(reason);
    expect(o.message).toMatch(message);
  });
});

describe('gitSettings: flags, else PIC_GIT_* variables', () => {
  const parsed = (values: Record<string, string>) => ({ values, positionals: [] });
  test('neither --git nor PIC_GIT_URL: not git mode', async () => {
    await expect(gitSettings(parsed({}), {})).resolves.toBeUndefined();
  });
  test('a git setting without --git is a usage error', async () => {
    await expect(gitSettings(parsed({ ref: 'main' }), {})).rejects.toThrow(/--ref is a setting of --git URL/);
  });
  test('the environment gives what no flag does; a flag wins', async () => {
    const s = await gitSettings(parsed({ interval: '2s' }), { PIC_GIT_URL: 'git://127.0.0.1/cell', PIC_GIT_REF: 'prod', PIC_GIT_PATH: 'cells/home', PIC_GIT_INTERVAL: '5m' });
    expect(s).toMatchObject({ remote: { url: 'git://127.0.0.1/cell', transport: 'git' }, ref: { kind: 'name', name: 'prod' }, path: 'cells/home', intervalMs: 2000 });
  });
  test('defaults: ref main, the top of the repository, every minute', async () => {
    expect(await gitSettings(parsed({ git: 'file:///srv/cell.git' }), {})).toMatchObject({ ref: { name: 'main' }, path: '.', intervalMs: 60_000, auth: {} });
  });
  test.each([
    [{ git: 'ssh://git@h/x' }, /needs --git-ssh-key FILE .* and --git-known-hosts FILE/],
    [{ git: 'https://h/x', 'git-ssh-key': '/k' }, /for an ssh remote/],
    [{ git: 'git://h/x', 'git-ca-file': '/etc/ssl/ca.pem' }, /--git-ca-file is for an https:\/\/ remote/],
    [{ git: 'https://h/x', 'git-password-file': '/nonexistent/token' }, /--git-password-file \/nonexistent\/token: no such file/],
    [{ git: 'https://u:p@h/x', interval: 'soon' }, /--interval "soon"/],
    [{ git: 'ext::sh' }, /transport is not one pic uses/],
    [{ git: 'https://u:hunter2@h/x', ref: '--upload-pack=evil' }, /not a branch, tag or 40-hex commit/],
  ])('%j is a usage error', async (values, why) => {
    const err = await gitSettings(parsed(values), {}).catch((e: Error) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(why);
    expect((err as Error).message).not.toContain('hunter2');
  });
});
