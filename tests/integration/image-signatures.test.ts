/**
 * The signature check against a real registry (docker-registry, distribution 2.8, on loopback):
 * both formats cosign writes, every refusal reason, mirrors, key rotation and the cache.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ImageVerifier } from '../../reconcilers/images/index.js';
import { loadPublicKeys } from '../../reconcilers/images/keys.js';
import type { RegistrySettings } from '../../reconcilers/images/reference.js';
import { generateTestKey, signBundle, signLegacy, writePublicKey, type TestKey } from '../support/cosign-signer.js';
import { pushBlob, pushManifest, pushSyntheticImage, startRegistry, type TestRegistry } from '../support/registry.js';

let registry: TestRegistry;
let dir: string;
let oldKey: TestKey;
let newKey: TestKey;
let strangerKey: TestKey;
let oldFile: string;
let newFile: string;
let settings: RegistrySettings;
const noCredentials = async () => undefined;

beforeAll(async () => {
  registry = await startRegistry();
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-sig-'));
  [oldKey, newKey, strangerKey] = [generateTestKey(), generateTestKey(), generateTestKey()];
  oldFile = await writePublicKey(dir, 'old.pub', oldKey);
  newFile = await writePublicKey(dir, 'new.pub', newKey);
  settings = { mirrors: { 'git.pic.ngo': registry.host }, insecure: [] };
}, 60_000);

afterAll(async () => {
  await registry?.stop();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** A fresh repository with one image in it; its name as the catalog writes it (through the mirror). */
async function image(name: string) {
  const repository = `roof/${name}-${Math.random().toString(16).slice(2, 8)}`;
  const subject = await pushSyntheticImage(registry.host, repository, name);
  const dockerReference = `git.pic.ngo/${repository}`;
  return { repository, subject, dockerReference, ref: `${dockerReference}@${subject.digest}` };
}

function verifier(): ImageVerifier {
  return new ImageVerifier(dir, noCredentials, 5000);
}

async function check(ref: string, keyFiles: string[] = [oldFile], v = verifier()) {
  return (await v.verify(ref, await loadPublicKeys(keyFiles), settings)).verdict;
}

describe('signatures cosign writes verify', () => {
  test('legacy .sig tag', async () => {
    const img = await image('legacy');
    await signLegacy(registry.host, img.repository, img.dockerReference, img.subject.digest, oldKey);
    expect(await check(img.ref)).toMatchObject({ ok: true, format: 'cosign-legacy', keyId: oldKey.id, keyFile: oldFile, digest: img.subject.digest, transparencyLog: false });
  });

  test('sigstore bundle through the referrers tag-schema index', async () => {
    const img = await image('bundle');
    await signBundle(registry.host, img.repository, img.dockerReference, img.subject, oldKey);
    expect(await check(img.ref)).toMatchObject({ ok: true, format: 'sigstore-bundle-tag-index', keyId: oldKey.id });
  });

  test('sigstore bundle through an older index whose entries lack artifactType', async () => {
    const img = await image('oldindex');
    await signBundle(registry.host, img.repository, img.dockerReference, img.subject, oldKey, { withoutArtifactType: true });
    expect(await check(img.ref)).toMatchObject({ ok: true, format: 'sigstore-bundle-tag-index' });
  });

  test('one good signature among bad ones is enough', async () => {
    const img = await image('mixed');
    await signLegacy(registry.host, img.repository, img.dockerReference, img.subject.digest, strangerKey);
    await signLegacy(registry.host, img.repository, img.dockerReference, img.subject.digest, oldKey);
    expect(await check(img.ref)).toMatchObject({ ok: true, format: 'cosign-legacy' });
  });

  test('the registry name the catalog uses or the mirror both count as the same repository', async () => {
    const img = await image('mirrorname');
    await signLegacy(registry.host, img.repository, `${registry.host}/${img.repository}`, img.subject.digest, oldKey);
    expect(await check(img.ref)).toMatchObject({ ok: true });
  });
});

describe('refusals', () => {
  test('NotPinned: a tag-only reference', async () => {
    expect(await check('git.pic.ngo/roof/anything:1.0.0')).toMatchObject({ ok: false, reason: 'NotPinned' });
  });

  test('Unsigned: nothing signed the digest', async () => {
    const img = await image('unsigned');
    expect(await check(img.ref)).toMatchObject({ ok: false, reason: 'Unsigned' });
  });

  test('UnknownKey: signed by a key the cell does not trust (both formats)', async () => {
    const a = await image('stranger');
    await signLegacy(registry.host, a.repository, a.dockerReference, a.subject.digest, strangerKey);
    expect(await check(a.ref)).toMatchObject({ ok: false, reason: 'UnknownKey' });
    const b = await image('strangerb');
    await signBundle(registry.host, b.repository, b.dockerReference, b.subject, strangerKey);
    expect(await check(b.ref)).toMatchObject({ ok: false, reason: 'UnknownKey' });
  });

  test('DigestMismatch: a signature replayed from another image (both formats)', async () => {
    const other = await image('other');
    const a = await image('replay');
    // A valid payload over the other image, copied under this image's .sig tag.
    await signLegacy(registry.host, a.repository, a.dockerReference, a.subject.digest, oldKey, { claimedDigest: other.subject.digest });
    expect(await check(a.ref)).toMatchObject({ ok: false, reason: 'DigestMismatch' });
    const b = await image('replayb');
    await signBundle(registry.host, b.repository, b.dockerReference, b.subject, oldKey, { claimedDigest: other.subject.digest });
    expect(await check(b.ref)).toMatchObject({ ok: false, reason: 'DigestMismatch' });
  });

  test('DigestMismatch: a signature naming another repository', async () => {
    const a = await image('otherrepo');
    await signLegacy(registry.host, a.repository, a.dockerReference, a.subject.digest, oldKey, { dockerReference: 'git.pic.ngo/roof/evil' });
    expect(await check(a.ref)).toMatchObject({ ok: false, reason: 'DigestMismatch' });
  });

  test('a tampered payload verifies with no key (both formats)', async () => {
    const a = await image('tampered');
    await signLegacy(registry.host, a.repository, a.dockerReference, a.subject.digest, oldKey, { signedPayload: Buffer.from('something else') });
    expect(await check(a.ref)).toMatchObject({ ok: false, reason: 'UnknownKey' });
    const b = await image('tamperedb');
    await signBundle(registry.host, b.repository, b.dockerReference, b.subject, oldKey, { tamper: true });
    expect(await check(b.ref)).toMatchObject({ ok: false, reason: 'UnknownKey' });
  });

  test('Malformed: a signature annotation that is not base64, a bundle that is not one', async () => {
    const a = await image('malformed');
    await signLegacy(registry.host, a.repository, a.dockerReference, a.subject.digest, oldKey, { signatureText: '%%% not base64 %%%' });
    expect(await check(a.ref)).toMatchObject({ ok: false, reason: 'Malformed' });
    const b = await image('malformedb');
    await signBundle(registry.host, b.repository, b.dockerReference, b.subject, oldKey, { bundleText: '{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}' });
    expect(await check(b.ref)).toMatchObject({ ok: false, reason: 'Malformed' });
  });

  test('Malformed: a .sig tag without simple-signing layers', async () => {
    const a = await image('emptysig');
    const config = await pushBlob(registry.host, a.repository, Buffer.from('{}'));
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [] }));
    await pushManifest(registry.host, a.repository, `${a.subject.digest.replace(':', '-')}.sig`, manifest, 'application/vnd.oci.image.manifest.v1+json');
    expect(await check(a.ref)).toMatchObject({ ok: false, reason: 'Malformed' });
  });

  test('RegistryUnreachable: nothing listens at the mirror', async () => {
    const v = new ImageVerifier(dir, noCredentials, 5000);
    const verdict = (await v.verify(`git.pic.ngo/roof/x@sha256:${'a'.repeat(64)}`, await loadPublicKeys([oldFile]), { mirrors: { 'git.pic.ngo': '127.0.0.1:9' }, insecure: [] })).verdict;
    expect(verdict).toMatchObject({ ok: false, reason: 'RegistryUnreachable' });
  });

  test('UnknownKey: the cell lists no key at all', async () => {
    const img = await image('nokeys');
    await signLegacy(registry.host, img.repository, img.dockerReference, img.subject.digest, oldKey);
    expect(await check(img.ref, [])).toMatchObject({ ok: false, reason: 'UnknownKey' });
  });
});

describe('key rotation', () => {
  test('old and new images verify while both keys are listed; dropping the old key refuses the old images', async () => {
    const old = await image('rot-old');
    await signLegacy(registry.host, old.repository, old.dockerReference, old.subject.digest, oldKey);
    const fresh = await image('rot-new');
    await signBundle(registry.host, fresh.repository, fresh.dockerReference, fresh.subject, newKey);
    const v = verifier();
    expect(await check(old.ref, [oldFile, newFile], v)).toMatchObject({ ok: true, keyId: oldKey.id });
    expect(await check(fresh.ref, [oldFile, newFile], v)).toMatchObject({ ok: true, keyId: newKey.id });
    expect(await check(old.ref, [newFile], v)).toMatchObject({ ok: false, reason: 'UnknownKey' });
    expect(await check(fresh.ref, [newFile], v)).toMatchObject({ ok: true });
  });
});

describe('the verification cache', () => {
  test('a verified digest is not asked again with the same keys, and is with other keys', async () => {
    const img = await image('cached');
    await signLegacy(registry.host, img.repository, img.dockerReference, img.subject.digest, oldKey);
    const stateRoot = await fs.mkdtemp(path.join(dir, 'state-'));
    const first = new ImageVerifier(stateRoot, noCredentials, 5000);
    expect((await first.verify(img.ref, await loadPublicKeys([oldFile]), settings)).cached).toBe(false);
    expect(first.requests).toBeGreaterThan(0);
    // A new operator process over the same state directory: the cache file answers.
    const second = new ImageVerifier(stateRoot, noCredentials, 5000);
    const again = await second.verify(img.ref, await loadPublicKeys([oldFile]), settings);
    expect(again).toMatchObject({ cached: true, verdict: { ok: true, keyId: oldKey.id } });
    expect(second.requests).toBe(0);
    const rotated = await second.verify(img.ref, await loadPublicKeys([oldFile, newFile]), settings);
    expect(rotated.cached).toBe(false);
    expect(second.requests).toBeGreaterThan(0);
  });

  test('a refusal is not cached: signing the image later is enough', async () => {
    const img = await image('signlater');
    const v = verifier();
    expect(await check(img.ref, [oldFile], v)).toMatchObject({ ok: false, reason: 'Unsigned' });
    await signLegacy(registry.host, img.repository, img.dockerReference, img.subject.digest, oldKey);
    expect(await check(img.ref, [oldFile], v)).toMatchObject({ ok: true });
  });
});

describe('interoperability with signatures cosign produced (tests/fixtures/cosign, from sigstore-rs)', () => {
  const fixtures = path.join(process.cwd(), 'tests', 'fixtures', 'cosign');
  const read = (name: string) => fs.readFile(path.join(fixtures, name));
  const interop = { mirrors: { 'registry-testing.svc.lan': '' }, insecure: [] } as RegistrySettings;

  test('a legacy signature made by cosign sign --key verifies byte for byte through the registry', async () => {
    interop.mirrors['registry-testing.svc.lan'] = registry.host;
    const payload = await read('legacy-payload.json');
    const signature = (await read('legacy-signature.b64')).toString().trim();
    const digest = 'sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b';
    const repository = 'busybox';
    const layer = await pushBlob(registry.host, repository, payload);
    const config = await pushBlob(registry.host, repository, Buffer.from('{}'));
    const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', ...layer, annotations: { 'dev.cosignproject.cosign/signature': signature } }] };
    await pushManifest(registry.host, repository, `${digest.replace(':', '-')}.sig`, Buffer.from(JSON.stringify(manifest)), manifest.mediaType);
    const keys = await loadPublicKeys([path.join(fixtures, 'legacy-cosign.pub')]);
    const v = new ImageVerifier(dir, noCredentials, 5000);
    expect((await v.verify(`registry-testing.svc.lan/busybox@${digest}`, keys, interop)).verdict).toMatchObject({ ok: true, format: 'cosign-legacy' });
    // The same signature does not verify for any other digest, nor with another key.
    expect((await v.verify(`registry-testing.svc.lan/busybox@sha256:${'1'.repeat(64)}`, keys, interop)).verdict).toMatchObject({ ok: false, reason: 'Unsigned' });
    expect((await v.verify(`registry-testing.svc.lan/busybox@${digest}`, await loadPublicKeys([oldFile]), interop)).verdict).toMatchObject({ ok: false, reason: 'UnknownKey' });
  });

  test('the DSSE envelope of a cosign v3 bundle verifies with its signer\'s key; as published (keyless) it is refused as UnknownKey', async () => {
    interop.mirrors['registry-testing.svc.lan'] = registry.host;
    const published = JSON.parse((await read('cosign-v3-keyless.sigstore.json')).toString()) as { verificationMaterial: { certificate: { rawBytes: string } }; dsseEnvelope: unknown; mediaType: string };
    const { X509Certificate } = await import('node:crypto');
    const signer = new X509Certificate(Buffer.from(published.verificationMaterial.certificate.rawBytes, 'base64')).publicKey;
    const keyFile = path.join(dir, 'cosign-v3-signer.pub');
    await fs.writeFile(keyFile, signer.export({ type: 'spki', format: 'pem' }));
    const digest = 'sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172';
    const subject = { digest, size: 1234, mediaType: 'application/vnd.oci.image.index.v1+json' };
    const keyed = JSON.stringify({ mediaType: published.mediaType, verificationMaterial: { publicKey: { hint: 'ignored' }, tlogEntries: [] }, dsseEnvelope: published.dsseEnvelope });
    const repository = 'kubewarden/kubewarden-controller';
    const ref = `registry-testing.svc.lan/${repository}@${digest}`;
    const key = generateTestKey(); // unused: the bundle text is given as is
    await signBundle(registry.host, repository, ref, subject, key, { bundleText: keyed });
    const keys = await loadPublicKeys([keyFile]);
    const v = new ImageVerifier(dir, noCredentials, 5000);
    expect((await v.verify(ref, keys, interop)).verdict).toMatchObject({ ok: true, format: 'sigstore-bundle-tag-index', transparencyLog: false });

    const other = `registry-testing.svc.lan/kubewarden/published@${digest}`;
    await signBundle(registry.host, 'kubewarden/published', other, subject, key, { bundleText: JSON.stringify(published) });
    expect((await v.verify(other, keys, interop)).verdict).toMatchObject({ ok: false, reason: 'UnknownKey' });
  });
});

describe('the referrers API (OCI 1.1)', () => {
  /**
   * distribution 2.8 has no referrers API and nothing here has one, so this front adds it to the
   * real registry: GET /v2/<repo>/referrers/<digest> answers what the `sha256-<hex>` index lists
   * (filtered by artifactType, as the spec says), the index tag itself is hidden, and every other
   * request goes to the registry unchanged.
   */
  async function referrersFront(target: string): Promise<{ host: string; close(): Promise<void> }> {
    const http = await import('node:http');
    const server = http.createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://front');
      const referrers = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
      const indexTag = /^\/v2\/.+\/manifests\/sha256-[0-9a-f]{64}$/.test(url.pathname);
      const upstream = referrers ? `/v2/${referrers[1]}/manifests/${referrers[2]!.replace(':', '-')}` : url.pathname + url.search;
      if (indexTag) return void res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      const proxied = http.request(`http://${target}${upstream}`, { method: req.method, headers: { ...req.headers, host: target, ...(referrers ? { accept: 'application/vnd.oci.image.index.v1+json' } : {}) } }, (up) => {
        if (!referrers) {
          res.writeHead(up.statusCode ?? 502, up.headers);
          return void up.pipe(res);
        }
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          const wanted = url.searchParams.get('artifactType');
          const listed = up.statusCode === 200 ? ((JSON.parse(Buffer.concat(chunks).toString()) as { manifests?: { artifactType?: string }[] }).manifests ?? []) : [];
          const manifests = wanted ? listed.filter((m) => m.artifactType === wanted) : listed;
          res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', ...(wanted ? { 'oci-filters-applied': 'artifactType' } : {}) });
          res.end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
        });
      });
      proxied.on('error', () => res.writeHead(502).end());
      req.pipe(proxied);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    return { host: `127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) };
  }

  test('a bundle found through the referrers API verifies; the fallback tag is not needed', async () => {
    const front = await referrersFront(registry.host);
    try {
      const img = await image('referrers');
      await signBundle(registry.host, img.repository, img.dockerReference, img.subject, newKey);
      const viaFront = { mirrors: { 'git.pic.ngo': front.host }, insecure: [] };
      const v = verifier();
      expect((await v.verify(img.ref, await loadPublicKeys([newFile]), viaFront)).verdict).toMatchObject({ ok: true, format: 'sigstore-bundle-referrers', keyId: newKey.id });
      const unsigned = await image('referrers-unsigned');
      expect((await v.verify(unsigned.ref, await loadPublicKeys([newFile]), viaFront)).verdict).toMatchObject({ ok: false, reason: 'Unsigned' });
    } finally {
      await front.close();
    }
  });
});

describe('pic verify', () => {
  async function pic(...args: string[]) {
    const { main } = await import('../../controllers/cli/main.js');
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['verify', ...args], { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  test('exit 0 with the key and format; 1 with the reason; 2 on a usage error', async () => {
    const img = await image('cli');
    await signLegacy(registry.host, img.repository, img.dockerReference, img.subject.digest, oldKey);
    const mirror = `git.pic.ngo=${registry.host}`;
    const ok = await pic(img.ref, '--key', newFile, '--key', oldFile, '--mirror', mirror);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.out).toContain(`verified: ${img.ref}`);
    expect(ok.out).toContain(`key:    ${oldFile} (sha256 ${oldKey.id})`);
    expect(ok.out).toContain('format: cosign-legacy');

    const refused = await pic(img.ref, '--key', newFile, '--mirror', mirror);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/^refused: UnknownKey: /);
    const json = await pic(img.ref, '--key', newFile, '--mirror', mirror, '-o', 'json');
    expect(JSON.parse(json.out)).toMatchObject({ ok: false, reason: 'UnknownKey', digest: img.subject.digest });

    expect((await pic(img.ref)).code).toBe(2);
    expect((await pic(img.ref, '--key', oldFile, '--mirror', 'nonsense')).code).toBe(2);
    expect((await pic('--key', oldFile)).code).toBe(2);
  });

  test('--cell takes the Cell\'s keys and mirrors', async () => {
    const img = await image('clicell');
    await signBundle(registry.host, img.repository, img.dockerReference, img.subject, newKey);
    const cellDir = await fs.mkdtemp(path.join(dir, 'cell-'));
    await fs.mkdir(path.join(cellDir, 'store', 'services'), { recursive: true });
    await fs.writeFile(path.join(cellDir, 'store', 'index.json'), '[]');
    await fs.copyFile(newFile, path.join(cellDir, 'cosign.pub'));
    await fs.writeFile(
      path.join(cellDir, 'cell.yaml'),
      `apiVersion: pic.ngo/v1alpha1\nkind: Cell\nmetadata: {name: clicell}\nspec:\n  domain: clicell.pic.test\n  store: {path: ./store}\n  imageVerification: {mode: enforce, publicKeys: [./cosign.pub]}\n  registries: {mirrors: {git.pic.ngo: "${registry.host}"}}\n`,
    );
    const ok = await pic(img.ref, '--cell', cellDir);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('format: sigstore-bundle-tag-index');
  });
});
