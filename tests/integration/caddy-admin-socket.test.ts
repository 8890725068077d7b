/**
 * Caddy's admin API on a Unix socket, against a real Caddy process on this machine (Debian's
 * caddy): the one HTTP client reaches it through `socketPath`, the Caddy reconciler loads routes
 * through it and keeps the socket in every Caddyfile it renders, and a missing socket is a fault
 * that may pass, named as such.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createCaddyReconciler } from '../../reconcilers/caddy/index.js';
import { adminRequest, fetchLiveConfig, liveRoutes } from '../../reconcilers/caddy/observe.js';
import { TerminalError } from '../../reconcilers/errors.js';
import { HttpRequestError, httpRequest } from '../../reconcilers/shared/http.js';
import { CADDY_BINARY, testContext, testRouting } from '../support/caddy.js';
import { waitFor } from '../support/cell.js';

const DOMAIN = 'sock.pic.test';
let work: string;
let socket: string;
let caddy: ChildProcess | undefined;

beforeAll(async () => {
  // A short path: a socket's path may not exceed 107 bytes.
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-sock-'));
  socket = path.join(work, 'admin.sock');
  const boot = path.join(work, 'boot.Caddyfile');
  await fs.writeFile(boot, `{\n\tadmin unix/${socket}\n}\n`);
  const log = await fs.open(path.join(work, 'caddy.log'), 'a');
  caddy = spawn(CADDY_BINARY, ['run', '--config', boot, '--adapter', 'caddyfile'], {
    env: { ...process.env, HOME: work, XDG_DATA_HOME: path.join(work, 'data'), XDG_CONFIG_HOME: path.join(work, 'config') },
    stdio: ['ignore', log.fd, log.fd],
  });
  caddy.once('exit', () => void log.close());
  await waitFor('Caddy on its socket', async () => ((await fetchLiveConfig(`unix/${socket}`, 2000)).reachable ? true : undefined), 30_000);
}, 60_000);

afterAll(async () => {
  if (caddy && caddy.exitCode === null) {
    const exited = new Promise((resolve) => caddy!.once('exit', resolve));
    caddy.kill('SIGTERM');
    await exited;
  }
  await fs.rm(work, { recursive: true, force: true });
});

describe('the HTTP client on a Unix socket', () => {
  test('reaches Caddy with the empty Host its admin API wants on a socket', async () => {
    const answer = await httpRequest('http://caddy-admin/config/', { socketPath: socket, headers: { Host: '' }, timeoutMs: 5000 });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toMatchObject({ admin: { listen: `unix/${socket}` } });
  });
  test('sends the URL host otherwise, which Caddy refuses there', async () => {
    const answer = await httpRequest('http://localhost/config/', { socketPath: socket, timeoutMs: 5000 });
    expect(answer.status).toBe(403);
  });
  test('a socket that is not there: ENOENT, not sent', async () => {
    const err = await httpRequest('http://caddy-admin/config/', { socketPath: path.join(work, 'nothing.sock'), timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpRequestError);
    expect(err).toMatchObject({ code: 'ENOENT', sent: false });
  });
});

describe('the admin address of a socket', () => {
  test('unix//absolute/path is reached; a relative path is refused for the admin to fix', async () => {
    expect((await adminRequest(`unix/${socket}`, '/config/', { timeoutMs: 5000 })).status).toBe(200);
    await expect(adminRequest('unix/admin.sock', '/config/', { timeoutMs: 5000 })).rejects.toBeInstanceOf(TerminalError);
  });
  test('a missing socket is unreachable, worth a retry, and says so', async () => {
    expect(await fetchLiveConfig(`unix/${path.join(work, 'nothing.sock')}`, 2000)).toEqual({ reachable: false, problem: 'its socket is not there (is Caddy running?)' });
  });
});

describe('the Caddy reconciler through the socket (the admin runs Caddy, spec.caddy.adminAddress a socket)', () => {
  const reconciler = createCaddyReconciler({ adminTimeoutMs: 5000 });
  // No routes: a site would make this Caddy take port 80, which tests/integration/caddy.test.ts
  // needs free (the route through the socket is shown end to end by tests/e2e/caddy-admin.test.ts).
  const routing = () => testRouting({ domain: DOMAIN, caddy: { adminAddress: `unix/${socket}`, tls: { mode: 'off' } } }, {});

  test('loads the Caddyfile, keeps the admin API on the socket, and loads nothing when in sync', async () => {
    const ctx = testContext(path.join(work, 'state'), work);
    const first = await reconciler.reconcile(routing(), ctx);
    expect(first).toMatchObject({ changed: true, summary: expect.stringMatching(/written and loaded into Caddy at unix\//) });
    const live = await fetchLiveConfig(`unix/${socket}`);
    if (!live.reachable) throw new Error(live.problem);
    expect(liveRoutes(live.config).adminListen).toBe(`unix/${socket}`);
    const caddyfile = await fs.readFile(path.join(work, 'state', 'caddy', 'Caddyfile'), 'utf8');
    expect(caddyfile).toContain(`\tadmin unix/${socket}\n`);
    expect(caddyfile).toContain('\tauto_https off\n');
    const again = await reconciler.reconcile(routing(), ctx);
    expect(again).toMatchObject({ changed: false, summary: expect.stringMatching(/unchanged/) });
  });
});
