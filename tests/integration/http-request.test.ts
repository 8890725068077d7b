import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { HttpRequestError, httpRequest } from '../../reconcilers/shared/http.js';

/** Loopback servers that behave like the neighbours pic meets: well, slowly, rudely. */
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
let port: { http: number; silent: number; hangUp: number; closed: number };

async function listen(server: net.Server): Promise<number> {
  servers.push(server);
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  const web = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      if (req.url === '/big') {
        res.end('x'.repeat(64 * 1024));
        return;
      }
      res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, type: req.headers['content-type'] ?? null, body }));
    });
  });
  // Accepts and never answers.
  const silent = net.createServer(() => undefined);
  // Accepts and closes at once, as Docker's port proxy does while the container behind it starts.
  const hangUp = net.createServer((socket) => socket.destroy());
  // A port nobody listens on: bind one, note it, close it.
  const closed = await listen(net.createServer());
  await new Promise<void>((resolve) => servers.pop()!.close(() => resolve()));
  port = { http: await listen(web), silent: await listen(silent), hangUp: await listen(hangUp), closed };
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

async function failure(promise: Promise<unknown>): Promise<HttpRequestError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HttpRequestError);
  return err as HttpRequestError;
}

describe('httpRequest', () => {
  test('sends the method, headers and body, and returns status and text', async () => {
    const answer = await httpRequest(`http://127.0.0.1:${port.http}/load`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/caddyfile' },
      body: 'héllo {\n}\n',
      timeoutMs: 5000,
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual({ method: 'POST', url: '/load', type: 'text/caddyfile', body: 'héllo {\n}\n' });
  });

  test('a 4xx is an answer, not an error', async () => {
    const answer = await httpRequest(`http://127.0.0.1:${port.http}/missing`, { timeoutMs: 5000 });
    expect(answer.status).toBe(404);
  });

  test.each([
    ['connection refused', () => `http://127.0.0.1:${port.closed}/`, 'ECONNREFUSED', false],
    ['accepted and closed at once', () => `http://127.0.0.1:${port.hangUp}/`, 'ECONNRESET', true],
  ])('%s: an error with its code, and whether the request may have arrived', async (_what, url, code, sent) => {
    const err = await failure(httpRequest(url(), { timeoutMs: 5000 }));
    expect(err.code).toBe(code);
    expect(err.sent).toBe(sent);
    expect(err.timedOut).toBe(false);
  });

  test('no answer within the time-out: TIMEOUT, sent', async () => {
    const err = await failure(httpRequest(`http://127.0.0.1:${port.silent}/`, { timeoutMs: 200 }));
    expect(err.code).toBe('TIMEOUT');
    expect(err.timedOut).toBe(true);
    expect(err.sent).toBe(true);
    expect(err.message).toBe('no answer within 200 ms');
  });

  test('an answer longer than the limit is cut off', async () => {
    const err = await failure(httpRequest(`http://127.0.0.1:${port.http}/big`, { timeoutMs: 5000, maxBytes: 1024 }));
    expect(err.code).toBe('ETOOLARGE');
  });

  test('a one-shot process waits for the answer of a peer that hangs up (fetch would let Node exit mid-request)', async () => {
    const helper = fileURLToPath(new URL('../../reconcilers/shared/http.js', import.meta.url));
    const script = `
      const { httpRequest } = await import(process.argv[1]);
      for (let i = 0; i < 100; i++) {
        await httpRequest('http://127.0.0.1:' + process.argv[2] + '/', { timeoutMs: 2000 }).catch((e) => e.code);
      }
      console.log('done');
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, helper, String(port.hangUp)], { timeout: 30_000 });
    expect(stdout.trim()).toBe('done');
  });
});
