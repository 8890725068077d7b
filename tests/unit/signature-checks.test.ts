/**
 * The two signature checks, pure: a simple-signing layer (cosign's legacy format) and a sigstore
 * bundle, each against a table of payloads, keys and digests; and the real cosign output in
 * tests/fixtures/cosign.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { checkBundle } from '../../reconcilers/images/bundle.js';
import { parsePublicKey, type TrustedKey } from '../../reconcilers/images/keys.js';
import { checkLegacySignature, signatureLayers, SIMPLE_SIGNING } from '../../reconcilers/images/legacy.js';
import { parseImageReference, type ImageReference } from '../../crds/image-reference.js';
import type { Descriptor } from '../../reconcilers/images/registry.js';

function keyPair(name: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, trusted: parsePublicKey(publicKey.export({ type: 'spki', format: 'pem' }).toString(), `/keys/${name}.pub`) };
}

const signer = keyPair('signer');
const other = keyPair('other');
const D = `sha256:${'c'.repeat(64)}`;
const E = `sha256:${'e'.repeat(64)}`;
const image = parseImageReference(`git.pic.ngo/roof/app@${D}`) as ImageReference & { digest: string };
const settings = { mirrors: { 'git.pic.ngo': '127.0.0.1:5000' }, insecure: [] };

const payload = (o: { ref?: string; digest?: string; type?: string } = {}) =>
  Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': o.ref ?? 'git.pic.ngo/roof/app' }, image: { 'docker-manifest-digest': o.digest ?? D }, type: o.type ?? 'cosign container image signature' }, optional: null }));
const layer = (signature: string | undefined, annotations: Record<string, string> = {}): Descriptor => ({
  mediaType: SIMPLE_SIGNING,
  digest: D,
  size: 1,
  annotations: { ...(signature !== undefined ? { 'dev.cosignproject.cosign/signature': signature } : {}), ...annotations },
});
const sig = (bytes: Buffer, key = signer.privateKey) => sign('sha256', bytes, key).toString('base64');

describe('checkLegacySignature', () => {
  test.each<[string, Descriptor, Buffer, TrustedKey[], object]>([
    ['a valid signature', layer(sig(payload())), payload(), [signer.trusted], { ok: true, keyFile: '/keys/signer.pub', transparencyLog: false }],
    ['any one of several keys', layer(sig(payload())), payload(), [other.trusted, signer.trusted], { ok: true, keyId: signer.trusted.id }],
    ['the mirror named as the repository', layer(sig(payload({ ref: '127.0.0.1:5000/roof/app' }))), payload({ ref: '127.0.0.1:5000/roof/app' }), [signer.trusted], { ok: true }],
    ['a tag on the docker-reference', layer(sig(payload({ ref: 'git.pic.ngo/roof/app:1.0' }))), payload({ ref: 'git.pic.ngo/roof/app:1.0' }), [signer.trusted], { ok: true }],
    ['a Rekor bundle annotation is recorded', layer(sig(payload()), { 'dev.sigstore.cosign/bundle': '{}' }), payload(), [signer.trusted], { ok: true, transparencyLog: true }],
    ['an untrusted key', layer(sig(payload())), payload(), [other.trusted], { ok: false, reason: 'UnknownKey' }],
    ['a payload changed after signing', layer(sig(payload())), payload({ digest: D.replace('c', 'd') }), [signer.trusted], { ok: false, reason: 'UnknownKey' }],
    ['a signature over another digest', layer(sig(payload({ digest: E }))), payload({ digest: E }), [signer.trusted], { ok: false, reason: 'DigestMismatch' }],
    ['a signature for another repository', layer(sig(payload({ ref: 'git.pic.ngo/roof/evil' }))), payload({ ref: 'git.pic.ngo/roof/evil' }), [signer.trusted], { ok: false, reason: 'DigestMismatch' }],
    ['another critical.type', layer(sig(payload({ type: 'atomic container signature' }))), payload({ type: 'atomic container signature' }), [signer.trusted], { ok: false, reason: 'Malformed' }],
    ['a signed payload that is not JSON', layer(sig(Buffer.from('hello'))), Buffer.from('hello'), [signer.trusted], { ok: false, reason: 'Malformed' }],
    ['no signature annotation', layer(undefined), payload(), [signer.trusted], { ok: false, reason: 'Malformed' }],
    ['a signature that is not base64', layer('not base64!'), payload(), [signer.trusted], { ok: false, reason: 'Malformed' }],
    ['base64 that is no signature', layer('AAAA'), payload(), [signer.trusted], { ok: false, reason: 'UnknownKey' }],
  ])('%s', (_name, l, bytes, keys, want) => {
    expect(checkLegacySignature(l, bytes, keys, image, settings)).toMatchObject(want);
  });

  test('only simple-signing layers are signatures', () => {
    expect(signatureLayers({ layers: [layer('x'), { mediaType: 'application/octet-stream', digest: D, size: 1 }] })).toHaveLength(1);
    expect(signatureLayers({})).toEqual([]);
  });

  test('the signature cosign sign --key made (tests/fixtures/cosign) verifies byte for byte', () => {
    const dir = path.join(process.cwd(), 'tests', 'fixtures', 'cosign');
    const key = parsePublicKey(readFileSync(path.join(dir, 'legacy-cosign.pub'), 'utf8'), 'legacy-cosign.pub');
    const bytes = readFileSync(path.join(dir, 'legacy-payload.json'));
    const real = layer(readFileSync(path.join(dir, 'legacy-signature.b64'), 'utf8').trim());
    const target = parseImageReference('registry-testing.svc.lan/busybox@sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b') as ImageReference & { digest: string };
    expect(checkLegacySignature(real, bytes, [key], target, { mirrors: {}, insecure: [] })).toMatchObject({ ok: true });
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 2] = (flipped[flipped.length - 2] as number) ^ 1;
    expect(checkLegacySignature(real, flipped, [key], target, { mirrors: {}, insecure: [] })).toMatchObject({ ok: false, reason: 'UnknownKey' });
  });
});

describe('checkBundle', () => {
  const type = 'application/vnd.in-toto+json';
  const statement = (digest = D, t = 'https://in-toto.io/Statement/v1') => Buffer.from(JSON.stringify({ _type: t, subject: [{ name: 'git.pic.ngo/roof/app', digest: { sha256: digest.slice(7) } }], predicateType: 'https://sigstore.dev/cosign/sign/v1', predicate: {} }));
  const pae = (p: Buffer, t = type) => Buffer.concat([Buffer.from(`DSSEv1 ${t.length} ${t} ${p.length} `), p]);
  const bundle = (o: { signed?: Buffer; stored?: Buffer; key?: typeof signer; payloadType?: string; tlog?: boolean; material?: object } = {}) => {
    const signed = o.signed ?? statement();
    const payloadType = o.payloadType ?? type;
    return Buffer.from(
      JSON.stringify({
        mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
        verificationMaterial: o.material ?? { publicKey: { hint: 'whatever the signer says' }, tlogEntries: o.tlog ? [{ logIndex: '1', logId: { keyId: 'AAAA' }, kindVersion: { kind: 'dsse', version: '0.0.1' }, integratedTime: '1', inclusionPromise: { signedEntryTimestamp: 'AAAA' }, inclusionProof: { logIndex: '1', rootHash: 'AAAA', treeSize: '2', hashes: [], checkpoint: { envelope: 'x' } }, canonicalizedBody: 'e30=' }] : [] },
        dsseEnvelope: { payload: (o.stored ?? signed).toString('base64'), payloadType, signatures: [{ sig: sig(pae(signed, payloadType), (o.key ?? signer).privateKey) }] },
      }),
    );
  };

  test.each<[string, Buffer, TrustedKey[], object]>([
    ['a valid keyed bundle', bundle(), [signer.trusted], { ok: true, keyId: signer.trusted.id, transparencyLog: false }],
    ['the hint is ignored; any trusted key is tried', bundle(), [other.trusted, signer.trusted], { ok: true, keyId: signer.trusted.id }],
    ['a transparency-log entry is recorded, not required', bundle({ tlog: true }), [signer.trusted], { ok: true, transparencyLog: true }],
    ['an in-toto v0.1 statement', bundle({ signed: statement(D, 'https://in-toto.io/Statement/v0.1') }), [signer.trusted], { ok: true }],
    ['an untrusted key', bundle({ key: other }), [signer.trusted], { ok: false, reason: 'UnknownKey' }],
    ['a statement changed after signing', bundle({ stored: statement(E) }), [signer.trusted], { ok: false, reason: 'UnknownKey' }],
    ['a statement over another digest', bundle({ signed: statement(E) }), [signer.trusted], { ok: false, reason: 'DigestMismatch' }],
    ['another payload type', bundle({ payloadType: 'text/plain' }), [signer.trusted], { ok: false, reason: 'Malformed' }],
    ['not an in-toto statement', bundle({ signed: Buffer.from('{"_type":"x"}') }), [signer.trusted], { ok: false, reason: 'Malformed' }],
    ['a certificate instead of a key', bundle({ material: { certificate: { rawBytes: 'AAAA' }, tlogEntries: [] } }), [signer.trusted], { ok: false, reason: 'UnknownKey' }],
    ['not JSON', Buffer.from('nope'), [signer.trusted], { ok: false, reason: 'Malformed' }],
    ['JSON but no bundle', Buffer.from('{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'), [signer.trusted], { ok: false, reason: 'Malformed' }],
  ])('%s', (_name, bytes, keys, want) => {
    expect(checkBundle(bytes, keys, D)).toMatchObject(want);
  });
});
