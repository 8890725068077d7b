/**
 * A published store for tests: a real node:http server on loopback serving a catalog folder (a
 * copy of examples/store) the way a Git forge's raw endpoint does (ETag, Last-Modified, 304 on
 * If-None-Match), with switches that make it misbehave: an HTML page with 200, a truncated
 * body, an oversized one, a redirect to another origin, a reset connection, or no server at all.
 * And a small ZIP writer, so a test can build archives with whatever entries it means to refuse.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { crc32 } from 'node:zlib';

export type Misbehaviour =
  | { kind: 'html' }
  | { kind: 'truncated' }
  | { kind: 'oversized'; bytes: number }
  | { kind: 'redirect'; to: string }
  | { kind: 'reset' }
  | { kind: 'status'; code: number };

export interface StoreServer {
  url: string;
  port: number;
  /** Every request path served, in order (with the answer status). */
  log: { path: string; status: number; conditional: boolean }[];
  /** Misbehave for one path (e.g. `/index.json`), or for every path with `*`. */
  misbehave(pathOrAll: string, how: Misbehaviour | undefined): void;
  /** Stop listening (connections are refused), and listen again on the same port. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startStoreServer(root: string, port = 0): Promise<StoreServer> {
  const log: StoreServer['log'] = [];
  const faults = new Map<string, Misbehaviour>();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    void (async () => {
      const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      const fault = faults.get(urlPath) ?? faults.get('*');
      const conditional = req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined;
      const answer = (status: number, headers: http.OutgoingHttpHeaders, body?: string | Buffer) => {
        log.push({ path: urlPath, status, conditional });
        res.writeHead(status, headers);
        res.end(body);
      };
      if (fault?.kind === 'reset') {
        log.push({ path: urlPath, status: 0, conditional });
        req.socket.destroy();
        return;
      }
      if (fault?.kind === 'html') return answer(200, { 'content-type': 'text/html; charset=utf-8' }, '<!DOCTYPE html><html><head><title>Sign in</title></head><body>Sign in to continue</body></html>');
      if (fault?.kind === 'redirect') return answer(302, { location: fault.to }, '');
      if (fault?.kind === 'status') return answer(fault.code, { 'content-type': 'text/plain' }, 'no');
      if (fault?.kind === 'oversized') return answer(200, { 'content-type': 'application/json' }, Buffer.alloc(fault.bytes, 0x20));
      const file = path.join(root, urlPath);
      if (!file.startsWith(root + path.sep)) return answer(403, {}, 'no');
      let body: Buffer;
      let mtime: Date;
      try {
        body = await fs.readFile(file);
        mtime = (await fs.stat(file)).mtime;
      } catch {
        return answer(404, { 'content-type': 'text/plain' }, 'not found');
      }
      if (fault?.kind === 'truncated') {
        // The whole announced length is sent, but the text itself stops halfway: a torn upload.
        return answer(200, { 'content-type': 'application/json' }, body.subarray(0, Math.floor(body.length / 2)));
      }
      const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"`;
      const type = urlPath.endsWith('.json') ? 'application/json' : urlPath.endsWith('.zip') ? 'application/zip' : 'text/plain; charset=utf-8';
      if (req.headers['if-none-match'] === etag) return answer(304, { etag });
      answer(200, { 'content-type': type, etag, 'last-modified': mtime.toUTCString() }, body);
    })();
  };
  let server = http.createServer(handler);
  const listen = (p: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, '127.0.0.1', () => resolve());
  });
  await listen(port);
  const actual = (server.address() as AddressInfo).port;
  const stop = () => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  return {
    url: `http://127.0.0.1:${actual}/`,
    port: actual,
    log,
    misbehave: (p, how) => (how ? faults.set(p, how) : faults.delete(p)),
    down: stop,
    up: async () => {
      server = http.createServer(handler);
      await listen(actual);
    },
    close: stop,
  };
}

/** A ZIP archive of stored (uncompressed) entries, with the names and Unix modes given, as they are. */
export function zipArchive(entries: { name: string; data: string | Buffer; mode?: number }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const data = typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : e.data;
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6);
    local.writeUInt16LE(0, 8);
    local.writeUInt32LE(0, 10);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt32LE(0, 12);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((e.mode ?? 0o100644) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += 30 + name.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}
