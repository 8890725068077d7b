/**
 * The Caddy reconciler against a real Caddy process on this machine (Debian's caddy): files are
 * written only when Caddy accepted them, nothing is written or loaded when nothing changed, a
 * refused config names its routes and keeps the last good file, and a Caddy that went away is
 * retried until it is back. Caddy's admin API is reached through a counting proxy on loopback,
 * so the test sees every call the reconciler makes.
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { applyCaddyfile } from '../../reconcilers/caddy/apply.js';
import { createCaddyReconciler, planCaddy } from '../../reconcilers/caddy/index.js';
import { liveRoutes } from '../../reconcilers/caddy/observe.js';
import { TerminalError } from '../../reconcilers/errors.js';
import type { Manifest } from '../../crds/types.js';
import {
  caddyAdapt,
  caddyConfig,
  freePort,
  goldenOutputs,
  startCountingProxy,
  startHostCaddy,
  testContext,
  testRouting,
  type CountingProxy,
  type HostCaddy,
} from '../support/caddy.js';

const DOMAIN = 'itest.pic.test';
const reconciler = createCaddyReconciler({ adminTimeoutMs: 5000 });

let work: string;
let adminPort: number;
let bootFile: string;
let caddy: HostCaddy | undefined;
let proxy: CountingProxy;

const services = (...names: string[]): Record<string, Partial<Manifest>> =>
  Object.fromEntries(names.map((n) => [n, { subdomain: n, backend: `cell-${n}:8080` }]));

function routing(names: string[], caddyFields: Record<string, unknown> = {}) {
  return testRouting({ domain: DOMAIN, caddy: { adminAddress: proxy.address, tls: { mode: 'off' }, ...caddyFields } }, services(...names));
}

async function startCaddy(): Promise<void> {
  caddy = await startHostCaddy(bootFile, `127.0.0.1:${adminPort}`, path.join(work, 'caddy-home'));
}

async function stopCaddy(): Promise<void> {
  await caddy?.stop();
  caddy = undefined;
}

async function liveHosts(): Promise<string[]> {
  return [...liveRoutes(await caddyConfig(`127.0.0.1:${adminPort}`)).hosts.keys()].sort();
}

async function fileStamp(file: string): Promise<{ ino: number; mtimeMs: number; text: string }> {
  const st = await fs.stat(file);
  return { ino: st.ino, mtimeMs: st.mtimeMs, text: await fs.readFile(file, 'utf8') };
}

/** Listens on :80 as Caddy's sites would, to make Caddy's load fail the way a busy port does. */
async function holdPort80(): Promise<net.Server> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`port 80 must be free for this test: ${err.message}`)));
    server.listen(80, () => resolve());
  });
  return server;
}

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-caddy-'));
  adminPort = await freePort();
  const sitePort = await freePort();
  bootFile = path.join(work, 'boot.Caddyfile');
  await fs.writeFile(
    bootFile,
    `{\n\tadmin 127.0.0.1:${adminPort}\n\tauto_https off\n}\n\nhttp://boot.${DOMAIN}:${sitePort} {\n\trespond "booting"\n}\n`,
  );
  await startCaddy();
  proxy = await startCountingProxy(() => `127.0.0.1:${adminPort}`);
});

afterAll(async () => {
  await proxy?.close();
  await stopCaddy();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('golden Caddyfiles', () => {
  test('caddy adapt accepts every one, without a formatting warning', async () => {
    const files = await goldenOutputs('caddy', '.Caddyfile');
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const file of files) {
      const { json, warnings } = await caddyAdapt(file);
      expect({ file, ok: json.trim().startsWith('{') }).toEqual({ file, ok: true });
      expect({ file, warnings: warnings.trim() }).toEqual({ file, warnings: '' });
    }
  });
});

describe('Caddy reconciler against a real Caddy', () => {
  const stateRoot = () => path.join(work, 'state');
  const caddyfile = () => path.join(stateRoot(), 'caddy', 'Caddyfile');
  const ctx = () => testContext(stateRoot(), path.join(work, 'cell'));

  test('a busy port is a fault that may pass: a plain error, no file', async () => {
    const busy = await holdPort80();
    try {
      const err = await reconciler.reconcile(routing(['one', 'two']), ctx()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(TerminalError);
      expect((err as Error).message).toMatch(/address already in use/);
      await expect(fs.stat(caddyfile())).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await liveHosts()).toEqual([`boot.${DOMAIN}`]);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });

  test('first reconcile: Caddy loads the routes, then the file is written', async () => {
    proxy.requests.length = 0;
    const c = ctx();
    const outcome = await reconciler.reconcile(routing(['one', 'two']), c);
    expect(outcome.changed).toBe(true);
    expect(outcome.summary).toBe(`2 routes; Caddyfile written and loaded into Caddy at ${proxy.address}`);
    expect(proxy.requests).toEqual(['GET /config/', 'POST /load']);
    expect(await liveHosts()).toEqual([`one.${DOMAIN}`, `two.${DOMAIN}`]);
    const live = liveRoutes(await caddyConfig(`127.0.0.1:${adminPort}`));
    expect(live.hosts.get(`one.${DOMAIN}`)).toEqual(['cell-one:8080']);
    // The admin API stays where Caddy had it, although pic reaches it through another address.
    expect(live.adminListen).toBe(`127.0.0.1:${adminPort}`);
    const text = await fs.readFile(caddyfile(), 'utf8');
    expect(text).toContain(`admin 127.0.0.1:${adminPort}`);
    expect(text).toContain(`http://one.${DOMAIN} {\n\treverse_proxy cell-one:8080 {\n`);
    expect((await fs.stat(caddyfile())).mode & 0o777).toBe(0o644);
    expect(c.events.map((e) => e.reason)).toEqual(['CaddyfileWritten']);
  });

  test('nothing changed: one GET, no load, no write', async () => {
    const before = await fileStamp(caddyfile());
    proxy.requests.length = 0;
    const outcome = await reconciler.reconcile(routing(['two', 'one']), ctx());
    expect(outcome).toMatchObject({ changed: false, summary: '2 routes; Caddyfile unchanged' });
    expect(proxy.requests).toEqual(['GET /config/']);
    expect(await fileStamp(caddyfile())).toEqual(before);
    expect(await reconciler.plan(routing(['one', 'two']), ctx())).toEqual([]);
  });

  test('plan shows the diff of a new route and changes nothing', async () => {
    const before = await fileStamp(caddyfile());
    proxy.requests.length = 0;
    const lines = await reconciler.plan(routing(['one', 'two', 'three']), ctx());
    expect(lines).toContain(`+http://three.${DOMAIN} {`);
    expect(lines).toContain('+\treverse_proxy cell-three:8080 {');
    expect(proxy.requests).toEqual(['GET /config/']);
    expect(await fileStamp(caddyfile())).toEqual(before);
    expect(await liveHosts()).toEqual([`one.${DOMAIN}`, `two.${DOMAIN}`]);
  });

  test('a Caddyfile Caddy refuses: a terminal error with its message and the routes concerned; the last good file and config stay', async () => {
    const before = await fileStamp(caddyfile());
    const observed = { file: caddyfile(), current: before.text, live: { reachable: true as const, config: await caddyConfig(`127.0.0.1:${adminPort}`) } };
    const p = planCaddy(routing(['one', 'two', 'three']), observed);
    // A misspelt directive on the line of one route: no manifest can produce it, Caddy refuses it.
    const broken = { ...p.rendered, text: p.rendered.text.replace('\treverse_proxy cell-three:8080', '\treverse_proxi cell-three:8080') };
    const err = await applyCaddyfile({ file: caddyfile(), adminAddress: proxy.address, rendered: broken, previous: before.text, write: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as TerminalError).reason).toBe('CaddyRejected');
    expect((err as Error).message).toMatch(/unrecognized directive: reverse_proxi/);
    expect((err as Error).message).toContain(`three.${DOMAIN} → cell-three:8080 (service three)`);
    expect((err as Error).message).not.toContain(`one.${DOMAIN}`);
    expect(await fileStamp(caddyfile())).toEqual(before);
    expect(await liveHosts()).toEqual([`one.${DOMAIN}`, `two.${DOMAIN}`]);
  });

  test('Caddy lost its config: the unchanged file is loaded again, not rewritten', async () => {
    const before = await fileStamp(caddyfile());
    const res = await fetch(`http://127.0.0.1:${adminPort}/load`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ admin: { listen: `127.0.0.1:${adminPort}` } }),
    });
    expect(res.status).toBe(200);
    expect(await liveHosts()).toEqual([]);
    proxy.requests.length = 0;
    const c = ctx();
    const outcome = await reconciler.reconcile(routing(['one', 'two']), c);
    expect(outcome.changed).toBe(true);
    expect(outcome.summary).toMatch(/Caddyfile unchanged; Caddy at .* had lost it and loaded it again/);
    expect(proxy.requests).toEqual(['GET /config/', 'POST /load']);
    expect(c.events.map((e) => e.reason)).toEqual(['CaddyReloaded']);
    expect(await fileStamp(caddyfile())).toEqual(before);
    expect(await liveHosts()).toEqual([`one.${DOMAIN}`, `two.${DOMAIN}`]);
  });

  test('Caddy stopped: a plain error and no write; once it is back, the next reconcile converges', async () => {
    const before = await fileStamp(caddyfile());
    await stopCaddy();
    const err = await reconciler.reconcile(routing(['one', 'two', 'three']), ctx()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(TerminalError);
    expect((err as Error).message).toContain(`Caddy's admin API at ${proxy.address} is unreachable`);
    expect(await fileStamp(caddyfile())).toEqual(before);

    // Restarted from its boot file, Caddy runs none of the routes until pic loads them again.
    await startCaddy();
    expect(await liveHosts()).toEqual([`boot.${DOMAIN}`]);
    const outcome = await reconciler.reconcile(routing(['one', 'two', 'three']), ctx());
    expect(outcome.changed).toBe(true);
    expect(await liveHosts()).toEqual([`one.${DOMAIN}`, `three.${DOMAIN}`, `two.${DOMAIN}`]);
    expect(await fs.readFile(caddyfile(), 'utf8')).toContain(`http://three.${DOMAIN} {`);
  });

  test('a removed service loses its route', async () => {
    const outcome = await reconciler.reconcile(routing(['one', 'three']), ctx());
    expect(outcome.summary).toMatch(/^2 routes; Caddyfile written/);
    expect(await liveHosts()).toEqual([`one.${DOMAIN}`, `three.${DOMAIN}`]);
    expect(await fs.readFile(caddyfile(), 'utf8')).not.toContain('two');
  });

  test('without an admin address the file alone is written, at the path the Cell names', async () => {
    const cellDir = path.join(work, 'cell-no-admin');
    const input = testRouting({ domain: DOMAIN, caddy: { caddyfile: 'proxy/Caddyfile', tls: { mode: 'internal' } } }, services('solo'));
    proxy.requests.length = 0;
    const first = await reconciler.reconcile(input, testContext(path.join(work, 'state-no-admin'), cellDir));
    expect(first.changed).toBe(true);
    expect(first.summary).toMatch(/Caddyfile written; Caddy not told \(no spec\.caddy\.adminAddress\)/);
    const file = path.join(cellDir, 'proxy', 'Caddyfile');
    expect(await fs.readFile(file, 'utf8')).toContain(`solo.${DOMAIN} {`);
    const stamp = await fileStamp(file);
    const again = await reconciler.reconcile(input, testContext(path.join(work, 'state-no-admin'), cellDir));
    expect(again.changed).toBe(false);
    expect(await fileStamp(file)).toEqual(stamp);
    expect(proxy.requests).toEqual([]);
  });
});
