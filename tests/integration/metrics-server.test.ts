/**
 * The metrics endpoint on a Unix socket, as a proxy beside pic reads it: the three paths, what
 * it does with a socket left by a killed operator, and what it refuses to take over.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Registry } from 'prom-client';
import { OperatorMetrics } from '../../controllers/metrics.js';
import { startMetricsServer, type Readiness } from '../../controllers/metrics-server.js';

let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-metrics-socket-'));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function request(socketPath: string, route: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: route, method }, (res) => {
      let body = '';
      res.on('data', (d) => (body += String(d)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the metrics server on a Unix socket', () => {
  test('serves /metrics, /healthz and /readyz, and removes its socket when closed', async () => {
    const socket = path.join(dir, 'metrics.sock');
    const registry = new Registry();
    new OperatorMetrics(registry, { processMetrics: false });
    let readiness: Readiness = { ready: false, message: 'the first pass over the cell has not finished yet' };
    const server = await startMetricsServer({ kind: 'unix', path: socket }, { registry, readiness: () => readiness });
    try {
      expect((await fs.stat(socket)).mode & 0o777).toBe(0o660);
      const metrics = await request(socket, '/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.type).toBe(registry.contentType);
      expect(metrics.body).toContain('workqueue_depth{name="pic"} 0');
      expect(await request(socket, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
      expect(await request(socket, '/readyz')).toMatchObject({ status: 503, body: 'not ready: the first pass over the cell has not finished yet\n' });
      readiness = { ready: true, message: 'the last full pass finished 3s ago' };
      expect(await request(socket, '/readyz')).toMatchObject({ status: 200, body: 'ok: the last full pass finished 3s ago\n' });
      expect(await request(socket, '/readyz', 'HEAD')).toMatchObject({ status: 200, body: '' });
      expect((await request(socket, '/')).status).toBe(404);
      expect((await request(socket, '/metrics', 'POST')).status).toBe(405);
    } finally {
      await server.close();
    }
    await expect(fs.lstat(socket)).rejects.toThrow(/ENOENT/);
  });

  test('a socket nothing listens on (a killed operator left it) is replaced; a live one or a plain file is refused', async () => {
    const registry = new Registry();
    const options = { registry, readiness: () => ({ ready: true, message: 'ok' }) };
    const stale = path.join(dir, 'stale.sock');
    const leftover = net.createServer();
    await new Promise<void>((resolve) => leftover.listen(stale, resolve));
    // Closing unlinks the socket file; a killed process leaves it. Take a hard link first.
    await fs.link(stale, `${stale}.kept`);
    await new Promise<void>((resolve) => leftover.close(() => resolve()));
    await fs.rename(`${stale}.kept`, stale);
    const replaced = await startMetricsServer({ kind: 'unix', path: stale }, options);
    expect((await request(stale, '/healthz')).status).toBe(200);

    await expect(startMetricsServer({ kind: 'unix', path: stale }, options)).rejects.toThrow(/another process is listening on that socket/);
    await replaced.close();

    const plain = path.join(dir, 'notes.txt');
    await fs.writeFile(plain, 'keep me');
    await expect(startMetricsServer({ kind: 'unix', path: plain }, options)).rejects.toThrow(/exists and is not a socket/);
    expect(await fs.readFile(plain, 'utf8')).toBe('keep me');
  });
});
