/**
 * The expiry of Caddy's internal CA as the metrics read it: a real Caddy (Debian's) with its admin
 * API on a Unix socket and one `tls internal` site on loopback, so it makes its CA at start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Registry } from 'prom-client';
import { OperatorMetrics } from '../../controllers/metrics.js';
import { fetchCaExpiries } from '../../reconcilers/caddy/ca-expiry.js';
import { freePort } from '../support/caddy.js';
import { waitFor } from '../support/cell.js';

let work: string;
let caddy: ChildProcess | undefined;
let admin: string;

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-metrics-caddy-'));
  admin = `unix/${path.join(work, 'admin.sock')}`;
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const caddyfile = path.join(work, 'Caddyfile');
  await fs.writeFile(
    caddyfile,
    `{\n\tadmin ${admin}\n\tskip_install_trust\n\thttp_port ${httpPort}\n\tauto_https disable_redirects\n}\n\nhttps://localhost:${httpsPort} {\n\tbind 127.0.0.1\n\ttls internal\n\trespond "ok"\n}\n`,
  );
  const env = { ...process.env, HOME: work, XDG_DATA_HOME: path.join(work, 'data'), XDG_CONFIG_HOME: path.join(work, 'config') };
  caddy = spawn('caddy', ['run', '--config', caddyfile, '--adapter', 'caddyfile'], { cwd: work, env, stdio: 'ignore' });
});

afterAll(async () => {
  if (caddy && caddy.exitCode === null) {
    const exited = new Promise((resolve) => caddy!.once('exit', resolve));
    caddy.kill('SIGTERM');
    await exited;
  }
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe("Caddy's internal CA", () => {
  test('its root and intermediate expiries are read from the admin API and scraped as gauges', async () => {
    const expiries = await waitFor('Caddy answering GET /pki/ca/local', async () => {
      const list = await fetchCaExpiries(admin, 2000);
      return list.length === 2 ? list : undefined;
    }, 30_000);
    const [root, intermediate] = expiries;
    expect(root?.certificate).toBe('root');
    expect(intermediate?.certificate).toBe('intermediate');
    // Caddy's defaults: a root for years, an intermediate it renews within days.
    expect(root!.notAfter.getTime()).toBeGreaterThan(intermediate!.notAfter.getTime());
    expect(intermediate!.notAfter.getTime()).toBeGreaterThan(Date.now());

    const registry = new Registry();
    const metrics = new OperatorMetrics(registry, { processMetrics: false });
    metrics.attach({
      statuses: async () => [],
      queueDepth: () => 0,
      runningSince: () => new Map(),
      lastPassAt: () => undefined,
      caddyAdminAddress: () => admin,
      fetchCaExpiries: (address) => fetchCaExpiries(address, 2000),
    });
    const text = await registry.metrics();
    expect(text).toContain(`pic_certificate_expiry_timestamp_seconds{ca="local",certificate="root"} ${root!.notAfter.getTime() / 1000}`);
    expect(text).toContain(`pic_certificate_expiry_timestamp_seconds{ca="local",certificate="intermediate"} ${intermediate!.notAfter.getTime() / 1000}`);
  });
});
