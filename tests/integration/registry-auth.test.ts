/**
 * Bearer-token auth against a real registry: docker-registry with `auth: token`, and a token
 * server of the test's own that issues the JWTs distribution verifies (ES256, x5c chain to the
 * configured root certificate) to the user/password in a Docker credentials file.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { dockerCredentials } from '../../reconcilers/images/credentials.js';
import { ImageVerifier } from '../../reconcilers/images/index.js';
import { loadPublicKeys } from '../../reconcilers/images/keys.js';
import { generateTestKey, signLegacy, writePublicKey } from '../support/cosign-signer.js';
import { pushSyntheticImage, startRegistry, type TestRegistry } from '../support/registry.js';

const run = promisify(execFile);
const USER = 'roof';
const PASSWORD = 'correct horse';
const SERVICE = 'pic-test-registry';
const ISSUER = 'pic-test-issuer';

let dir: string;
let registry: TestRegistry | undefined;
let tokens: http.Server;
let tokenRequests = 0;
let ref: string;
let keyFile: string;

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-auth-'));
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', path.join(dir, 'token.key'), '-out', path.join(dir, 'token.crt'), '-days', '1', '-subj', '/CN=pic-test-token']);
  const tokenKey = createPrivateKey(await fs.readFile(path.join(dir, 'token.key')));
  const cert = new X509Certificate(await fs.readFile(path.join(dir, 'token.crt')));

  tokens = http.createServer((req, res) => {
    tokenRequests++;
    const url = new URL(req.url ?? '/', 'http://x');
    const expected = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
    if (url.pathname !== '/token' || req.headers.authorization !== expected || url.searchParams.get('service') !== SERVICE) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const [, name = '', actions = ''] = (url.searchParams.get('scope') ?? '').split(':');
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'ES256', x5c: [cert.raw.toString('base64')] }));
    const claims = b64url(JSON.stringify({ iss: ISSUER, sub: USER, aud: SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access: [{ type: 'repository', name, actions: actions.split(',') }] }));
    const signature = b64url(sign('sha256', Buffer.from(`${header}.${claims}`), { key: tokenKey, dsaEncoding: 'ieee-p1363' }));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${header}.${claims}.${signature}` }));
  });
  await new Promise<void>((resolve) => tokens.listen(0, '127.0.0.1', resolve));
  const realm = `http://127.0.0.1:${(tokens.address() as AddressInfo).port}/token`;

  // Images and signatures go in while the registry is open; then it restarts with token auth.
  const root = path.join(dir, 'registry');
  await fs.mkdir(root);
  const open = await startRegistry({ root });
  const key = generateTestKey();
  keyFile = await writePublicKey(dir, 'cosign.pub', key);
  const subject = await pushSyntheticImage(open.host, 'roof/private', 'private');
  await signLegacy(open.host, 'roof/private', 'git.pic.ngo/roof/private', subject.digest, key);
  await open.stop();
  registry = await startRegistry({ root, extraConfig: `auth:\n  token:\n    realm: ${realm}\n    service: ${SERVICE}\n    issuer: ${ISSUER}\n    rootcertbundle: ${path.join(dir, 'token.crt')}\n` });
  ref = `git.pic.ngo/roof/private@${subject.digest}`;
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  await new Promise((r) => tokens?.close(r));
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

async function configWith(auths: Record<string, unknown>): Promise<string> {
  const file = path.join(dir, `config-${randomBytes(3).toString('hex')}.json`);
  await fs.writeFile(file, JSON.stringify({ auths }));
  return file;
}

test('a registry that answers 401 with a Bearer challenge is read with a token got for the Docker credentials', async () => {
  const file = await configWith({ [registry!.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } });
  const v = new ImageVerifier(await fs.mkdtemp(path.join(dir, 'state-')), dockerCredentials(file), 5000);
  const before = tokenRequests;
  const { verdict } = await v.verify(ref, await loadPublicKeys([keyFile]), { mirrors: { 'git.pic.ngo': registry!.host }, insecure: [] });
  expect(verdict).toMatchObject({ ok: true, format: 'cosign-legacy' });
  // One token for the repository, reused for every later request of it.
  expect(tokenRequests - before).toBe(1);
});

test.each([
  ['no credentials for the registry', {}],
  ['a wrong password', { 'REGISTRY': { auth: Buffer.from(`${USER}:wrong`).toString('base64') } }],
])('%s: RegistryUnreachable, naming the refusal', async (_name, auths) => {
  const named = Object.fromEntries(Object.entries(auths).map(([k, v]) => [k === 'REGISTRY' ? registry!.host : k, v]));
  const v = new ImageVerifier(await fs.mkdtemp(path.join(dir, 'state-')), dockerCredentials(await configWith(named)), 5000);
  const { verdict } = await v.verify(ref, await loadPublicKeys([keyFile]), { mirrors: { 'git.pic.ngo': registry!.host }, insecure: [] });
  expect(verdict).toMatchObject({ ok: false, reason: 'RegistryUnreachable' });
  if (!verdict.ok) expect(verdict.message).toContain('refused a token');
});

test('credentials added to the file later are used at the next attempt, by the same operator', async () => {
  const file = await configWith({});
  const v = new ImageVerifier(await fs.mkdtemp(path.join(dir, 'state-')), dockerCredentials(file), 5000);
  const keys = await loadPublicKeys([keyFile]);
  const settings = { mirrors: { 'git.pic.ngo': registry!.host }, insecure: [] };
  expect((await v.verify(ref, keys, settings)).verdict).toMatchObject({ ok: false, reason: 'RegistryUnreachable' });
  await fs.writeFile(file, JSON.stringify({ auths: { [registry!.host]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } }, extra: 'a different size' }));
  expect((await v.verify(ref, keys, settings)).verdict).toMatchObject({ ok: true });
});
