/**
 * `pic run --git` against remotes that come and go (issue 21): a `git daemon` on loopback that
 * is stopped (the cell keeps its last good revision, the status says since when), an operator
 * restarted while the remote is down (it starts on the last good checkout), the remote back (the
 * commit pushed meanwhile applies), `pic reconcile source` fetching at once; and an HTTP remote
 * whose URL carries a password, which never shows in `pic get`, `pic describe`, the events, the
 * logs or any file of the state directory.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { removeTestCell, serviceInstallDocument, waitFor } from '../support/cell.js';
import { startStoreServer } from '../support/store-server.js';
import { containerState, createGitCell, facts, startGitDaemon, startGitPic, waitCell, type GitCell, type GitDaemon, type GitPic } from '../support/git-cell.js';
import { runPic } from '../support/pic-cli.js';

const cells: GitCell[] = [];
let pic: GitPic | undefined;
let daemon: GitDaemon | undefined;
const secretDirs: string[] = [];

afterAll(async () => {
  await pic?.stop();
  await daemon?.stop();
  for (const cell of cells) await removeTestCell(cell);
  for (const dir of secretDirs) await fs.rm(dir, { recursive: true, force: true });
}, 120_000);

const applied = (cell: GitCell, sha: string) => waitCell(cell, `${sha} applied`, (s) => (facts(s).lastAppliedRevision ?? '').includes(sha) && s.phase === 'Ready');
const running = (cell: GitCell, id: string) => waitFor(`${id} running`, async () => ((await containerState(cell.containerName(id))) === 'running' ? true : undefined), 120_000);

test('a git:// remote that goes away and comes back; an operator restarted while it is away; pic reconcile source', async () => {
  const cell = await createGitCell([{ id: 'alpha' }, { id: 'beta' }]);
  cells.push(cell);
  daemon = await startGitDaemon(cell.root);
  const url = daemon.url('remote.git');
  pic = startGitPic(cell, url);
  const alpha = await cell.commit('install alpha', cell.serviceFile('alpha'));
  await applied(cell, alpha);
  await running(cell, 'alpha');

  // The remote goes away: the cell keeps its revision, the status says since when, the operator runs on.
  await daemon.stop();
  const down = await waitCell(cell, 'source error', (s) => facts(s).source?.lastError !== undefined);
  expect(down.phase).toBe('Stalled');
  expect(facts(down).lastAppliedRevision).toBe(`main@sha1:${alpha}`);
  const since = facts(down).source?.lastErrorSince ?? '';
  expect(Number.isNaN(Date.parse(since))).toBe(false);
  const describe = await runPic(['describe', `Cell/${cell.name}`, '--state-dir', cell.stateDir]);
  expect(describe.stdout).toContain(`Source error:`);
  expect(describe.stdout).toContain(since);
  expect(pic.child.exitCode).toBeNull();

  // A commit pushed meanwhile; the operator restarted while the remote is still away.
  const beta = await cell.commit('install beta', cell.serviceFile('beta'));
  await pic.stop();
  pic = startGitPic(cell, url);
  await waitFor('the restarted operator on its last good revision', async () => (pic!.output().includes('starting on the last good revision') ? true : undefined), 60_000);
  const restarted = await waitCell(cell, 'source error after restart', (s) => facts(s).source?.lastError !== undefined && s.updatedAt > down.updatedAt);
  expect(facts(restarted).lastAppliedRevision).toBe(`main@sha1:${alpha}`);
  expect(await containerState(cell.containerName('alpha'))).toBe('running');
  expect(await containerState(cell.containerName('beta'))).toBe('absent');

  // The remote is back (same port): what was pushed meanwhile applies.
  daemon = await startGitDaemon(cell.root, daemon.port);
  const back = await applied(cell, beta);
  expect(facts(back).source?.lastError).toBeUndefined();
  await running(cell, 'beta');

  // pic reconcile source: with an interval of an hour, only the request can fetch the next commit.
  await pic.stop();
  pic = startGitPic(cell, url, [], '1h');
  await waitFor('the operator to start', async () => (pic!.output().includes('pic is converging') ? true : undefined), 60_000);
  const removal = await cell.commit('remove beta', { 'cell/services/beta.yaml': null });
  const asked = await runPic(['reconcile', 'source', '--state-dir', cell.stateDir]);
  expect(asked.code).toBe(0);
  expect(asked.stdout).toContain(`pid ${pic.child.pid}`);
  await applied(cell, removal);
  await waitFor('beta removed', async () => ((await containerState(cell.containerName('beta'))) === 'absent' ? true : undefined), 120_000);
  await pic.stop();
  pic = undefined;
}, 600_000);

/** A static file server in front of the bare repository (git's dumb HTTP transport) that wants a user and password. */
async function startHttpRemote(root: string, user: string, password: string, tls?: { key: Buffer; cert: Buffer }): Promise<{ port: number; authorized: () => number; close(): Promise<void> }> {
  let authorized = 0;
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="cell"' }).end();
      return;
    }
    authorized++;
    const file = path.resolve(root, `.${decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/')}`);
    if (!file.startsWith(`${root}/`)) {
      res.writeHead(403).end();
      return;
    }
    fs.readFile(file).then(
      (body) => res.writeHead(200).end(body),
      () => res.writeHead(404).end(),
    );
  };
  const server = tls ? https.createServer(tls, handler) : http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    authorized: () => authorized,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Every file below `dir` that holds `text`. */
async function filesHolding(dir: string, text: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const p = path.join(entry.parentPath, entry.name);
    if ((await fs.readFile(p)).includes(text)) found.push(p);
  }
  return found;
}

test('a password in the URL, or in a password file, is never shown or stored', async () => {
  const password = 's3cret-PW-42';
  const cell = await createGitCell([{ id: 'alpha' }]);
  cells.push(cell);
  const server = await startHttpRemote(cell.root, 'admin', password);
  try {
    const url = `http://admin:${password}@127.0.0.1:${server.port}/remote.git`;
    pic = startGitPic(cell, url);
    const first = await cell.commit('an empty commit', {});
    const s = await applied(cell, first);
    expect(server.authorized()).toBeGreaterThan(0);
    expect(facts(s).source?.url).toBe(`http://***@127.0.0.1:${server.port}/remote.git`);
    // The server goes: git's error (which names the URL) is shown redacted too.
    await server.close();
    await waitCell(cell, 'source error', (st) => facts(st).source?.lastError !== undefined);
    const shown = [
      await runPic(['get', '-o', 'json', '--state-dir', cell.stateDir]),
      await runPic(['get', 'Cell', '-o', 'yaml', '--state-dir', cell.stateDir]),
      await runPic(['get', '-o', 'wide', '--state-dir', cell.stateDir]),
      await runPic(['describe', `Cell/${cell.name}`, '--state-dir', cell.stateDir]),
    ];
    for (const r of shown) expect(r.stdout + r.stderr).not.toContain(password);
    expect(shown[3]!.stdout).toContain(`http://***@127.0.0.1:${server.port}/remote.git`);
    await pic.stop();
    expect(pic.output()).toContain('http://***@127.0.0.1');
    expect(pic.output()).not.toContain(password);
    const events = await fs.readFile(path.join(cell.stateDir, 'events.jsonl'), 'utf8');
    expect(events).toContain('RevisionApplied');
    expect(events).not.toContain(password);
    expect(await filesHolding(cell.stateDir, password)).toEqual([]);
  } finally {
    await server.close().catch(() => undefined);
  }

  // The same remote with the password in a file (the way the issue asks for): applies, shows nothing.
  const again = await startHttpRemote(cell.root, 'admin', password);
  try {
    // Beside the repository, not in it (a commit would carry it into every checkout).
    const secretFile = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'gto-secret-')), 'git-password');
    await fs.writeFile(secretFile, `${password}\n`, { mode: 0o600 });
    secretDirs.push(path.dirname(secretFile));
    pic = startGitPic(cell, `http://127.0.0.1:${again.port}/remote.git`, ['--git-username', 'admin', '--git-password-file', secretFile]);
    const next = await cell.commit('another commit', {});
    await applied(cell, next);
    await pic.stop();
    expect(pic.output()).not.toContain(password);
    expect(await filesHolding(cell.stateDir, password)).toEqual([]);
  } finally {
    await again.close();
  }
  pic = undefined;
}, 300_000);

test('https with a private CA (--git-ca-file) and a token file: an unknown certificate is refused, the CA\'s is followed', async () => {
  const token = 'tok-7f3a-very-secret';
  const cell = await createGitCell([{ id: 'alpha' }]);
  cells.push(cell);
  const tlsDir = await fs.mkdtemp(path.join(os.tmpdir(), 'gto-tls-'));
  secretDirs.push(tlsDir);
  const key = path.join(tlsDir, 'key.pem');
  const cert = path.join(tlsDir, 'cert.pem');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
  const tokenFile = path.join(tlsDir, 'token');
  await fs.writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const server = await startHttpRemote(cell.root, 'deploy', token, { key: await fs.readFile(key), cert: await fs.readFile(cert) });
  try {
    const url = `https://127.0.0.1:${server.port}/remote.git`;
    const auth = ['--git-username', 'deploy', '--git-password-file', tokenFile];
    // Without the CA: git refuses the server's certificate, nothing is fetched or applied.
    pic = startGitPic(cell, url, auth);
    const refused = await waitCell(cell, 'certificate refused', (s) => facts(s).source?.lastError !== undefined);
    expect(facts(refused).source?.lastError).toMatch(/certificate|SSL/i);
    expect(facts(refused).lastAppliedRevision).toBeUndefined();
    expect(server.authorized()).toBe(0);
    await pic.stop();
    // With it: followed.
    pic = startGitPic(cell, url, [...auth, '--git-ca-file', cert]);
    const sha = await cell.commit('install alpha over https', cell.serviceFile('alpha'));
    await applied(cell, sha);
    await running(cell, 'alpha');
    expect(server.authorized()).toBeGreaterThan(0);
    await pic.stop();
    expect(pic.output()).not.toContain(token);
    expect(await filesHolding(cell.stateDir, token)).toEqual([]);
    pic = undefined;
  } finally {
    await server.close();
  }
}, 300_000);

test('a revision whose Cell names a published store (spec.store.url) is validated against that store and applies', async () => {
  const cell = await createGitCell([{ id: 'alpha' }]);
  cells.push(cell);
  const server = await startStoreServer(cell.storeDir);
  try {
    const cellYaml = await fs.readFile(path.join(cell.work, 'cell', 'cell.yaml'), 'utf8');
    const published = cellYaml.replace('store: {path: ../store}', `store: {url: "${server.url}"}`);
    expect(published).not.toBe(cellYaml);
    // The first revision pic sees already reads its catalog from the store: nothing was cached before.
    const sha = await cell.commit('the catalog from the published store, with alpha', { 'cell/cell.yaml': published, ...cell.serviceFile('alpha') });
    pic = startGitPic(cell, `file://${cell.bare}`);
    await applied(cell, sha);
    await running(cell, 'alpha');
    expect(server.log.some((r) => r.path.endsWith('/index.json') && r.status === 200)).toBe(true);
    // A service the store does not offer is refused, naming the file.
    const bad = await cell.commit('a service the store does not offer', { 'cell/services/nope.yaml': serviceInstallDocument('nope') });
    const s = await waitCell(cell, `${bad} refused`, (st) => facts(st).refused?.revision === `main@sha1:${bad}`);
    expect(facts(s).refused?.problems.join('\n')).toContain('cell/services/nope.yaml');
    await pic.stop();
    pic = undefined;
  } finally {
    await server.close();
  }
}, 300_000);
