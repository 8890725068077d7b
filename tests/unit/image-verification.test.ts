/** Pure parts of image verification: references, mirrors, policy, challenges, credentials, facts. */
import { describe, expect, test } from '@jest/globals';
import { credentialsFromDockerConfig } from '../../reconcilers/images/credentials.js';
import { describeVerification, templateImages } from '../../reconcilers/images/index.js';
import { templateContainers } from '../../reconcilers/images/verifier.js';
import { decide, effectiveMode, registrySettingsOf, trustedKeyFiles } from '../../reconcilers/images/policy.js';
import { parseImageReference } from '../../crds/image-reference.js';
import { isLoopbackHost } from '../../crds/ipv4.js';
import { endpointFor, namesSameRepository, pullReference } from '../../reconcilers/images/reference.js';
import { parseAuthenticate } from '../../reconcilers/images/registry.js';
import type { Refused, Verified } from '../../reconcilers/images/verdict.js';

const D = `sha256:${'ab'.repeat(32)}`;

describe('endpoints and mirrors', () => {
  const settings = { mirrors: { 'git.pic.ngo': '127.0.0.1:5000' }, insecure: ['registry.lan:5000'] };
  test.each([
    ['git.pic.ngo', { host: '127.0.0.1:5000', baseUrl: 'http://127.0.0.1:5000', mirrored: true }],
    ['ghcr.io', { host: 'ghcr.io', baseUrl: 'https://ghcr.io', mirrored: false }],
    ['registry.lan:5000', { host: 'registry.lan:5000', baseUrl: 'http://registry.lan:5000', mirrored: false }],
    ['docker.io', { host: 'registry-1.docker.io', baseUrl: 'https://registry-1.docker.io', mirrored: false }],
    ['localhost:5000', { host: 'localhost:5000', baseUrl: 'http://localhost:5000', mirrored: false }],
  ])('%s', (registry, want) => {
    expect(endpointFor({ registry }, settings)).toEqual(want);
  });

  test('loopback hosts', () => {
    expect(['127.0.0.1:5000', '127.3.4.5', 'localhost', '[::1]:5000'].every(isLoopbackHost)).toBe(true);
    expect(['10.0.0.1:5000', 'git.pic.ngo', '127.0.0.1.evil.com'].some(isLoopbackHost)).toBe(false);
  });

  test('pulls go to the mirror, by the same digest', () => {
    expect(pullReference(parseImageReference(`git.pic.ngo/roof/x@${D}`)!, settings)).toBe(`127.0.0.1:5000/roof/x@${D}`);
    expect(pullReference(parseImageReference(`ghcr.io/roof/x@${D}`)!, settings)).toBe(`ghcr.io/roof/x@${D}`);
  });

  test.each([
    ['git.pic.ngo/roof/x', true],
    ['git.pic.ngo/roof/x:1.0.0', true],
    ['127.0.0.1:5000/roof/x', true],
    ['git.pic.ngo/roof/y', false],
    ['evil.example/roof/x', false],
    ['not a reference', false],
  ])('a signature naming %s names git.pic.ngo/roof/x: %s', (named, same) => {
    expect(namesSameRepository(named, parseImageReference(`git.pic.ngo/roof/x@${D}`)!, settings)).toBe(same);
  });

  test('cosign spells Docker Hub index.docker.io', () => {
    expect(namesSameRepository('index.docker.io/library/busybox', parseImageReference(`busybox@${D}`)!, settings)).toBe(true);
  });
});

describe('policy', () => {
  test.each([
    [{ mode: 'off' }, 'off'],
    [{ mode: 'warn' }, 'warn'],
    [{ mode: 'enforce' }, 'enforce'],
    [{ mode: 'strict' }, 'enforce'],
    [{ mode: 'WARN' }, 'enforce'],
    [{ mode: 1 }, 'enforce'],
    [{}, 'enforce'],
    [undefined, 'enforce'],
    [null, 'enforce'],
    ['warn', 'enforce'],
    [['warn'], 'enforce'],
  ])('imageVerification %j is %s', (section, mode) => {
    expect(effectiveMode(section)).toBe(mode);
  });

  test('key files: publicKey and publicKeys, resolved, without repeats', () => {
    expect(trustedKeyFiles({ publicKey: './a.pub', publicKeys: ['./b.pub', 'a.pub', '/etc/pic/c.pub'] }, '/cell')).toEqual(['/cell/a.pub', '/cell/b.pub', '/etc/pic/c.pub']);
    expect(trustedKeyFiles({ mode: 'enforce' }, '/cell')).toEqual([]);
    expect(trustedKeyFiles(undefined, '/cell')).toEqual([]);
  });

  test('registry settings default to none', () => {
    expect(registrySettingsOf({})).toEqual({ mirrors: {}, insecure: [] });
    expect(registrySettingsOf({ registries: { mirrors: { a: 'b' } } })).toEqual({ mirrors: { a: 'b' }, insecure: [] });
  });

  const ok: Verified = { ok: true, reference: 'r', digest: D, keyId: 'k', keyFile: 'f', format: 'cosign-legacy', transparencyLog: false };
  const refused = (reason: Refused['reason']): Refused => ({ ok: false, reference: 'r', digest: D, reason, message: `r: ${reason}` });

  test.each([
    ['enforce', [ok], { proceed: true, notes: [] }],
    ['enforce', [], { proceed: true, notes: [] }],
    ['warn', [ok, refused('Unsigned')], { proceed: true, notes: [refused('Unsigned')] }],
    ['off', [refused('Unsigned')], { proceed: true, notes: [] }],
    ['enforce', [ok, refused('Unsigned')], { proceed: false, retry: false, refused: refused('Unsigned') }],
    ['enforce', [refused('RegistryUnreachable')], { proceed: false, retry: true, refused: refused('RegistryUnreachable') }],
    // A bad artifact outranks an unreachable registry: retrying cannot mend it.
    ['enforce', [refused('RegistryUnreachable'), refused('DigestMismatch')], { proceed: false, retry: false, refused: refused('DigestMismatch') }],
  ] as const)('%s with %j', (mode, verdicts, want) => {
    expect(decide(mode, verdicts)).toMatchObject(want);
  });

  test('the refusal message says nothing is created and counts the other refused images', () => {
    const d = decide('enforce', [refused('Unsigned'), refused('UnknownKey')]);
    expect(d.proceed).toBe(false);
    if (!d.proceed) expect(d.message).toBe('r: Unsigned (and 1 more image refused); image verification is enforce, so nothing of this service is created');
  });

  test('a core container\'s refusal names the container, not a service', () => {
    const d = decide('enforce', [refused('NotPinned')], 'Core/caddy');
    expect(d).toMatchObject({ proceed: false, retry: false, refused: { reason: 'NotPinned' } });
    if (!d.proceed) expect(d.message).toBe('r: NotPinned; image verification is enforce, so nothing of Core/caddy is created');
  });
});

describe('WWW-Authenticate', () => {
  test.each([
    ['Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"', { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } }],
    ['Basic realm="basic-realm"', { scheme: 'basic', params: { realm: 'basic-realm' } }],
    ['Bearer realm=https://a/t, service=reg', { scheme: 'bearer', params: { realm: 'https://a/t', service: 'reg' } }],
    ['Bearer realm="with \\"quote\\""', { scheme: 'bearer', params: { realm: 'with "quote"' } }],
  ])('%s', (header, want) => {
    expect(parseAuthenticate(header)).toEqual(want);
  });
});

describe('Docker credentials file', () => {
  test('auth, username/password and identity tokens; unreadable entries skipped', () => {
    const text = JSON.stringify({
      auths: {
        'git.pic.ngo': { auth: Buffer.from('roof:s3cr:et').toString('base64') },
        'https://index.docker.io/v1/': { auth: Buffer.from('alice:pw').toString('base64') },
        'ghcr.io': { identitytoken: 'refresh' },
        'plain.example': { username: 'u', password: 'p' },
        'broken.example': 'nope',
        'empty.example': {},
      },
      credsStore: 'desktop',
    });
    const creds = credentialsFromDockerConfig(text);
    expect(Object.fromEntries(creds)).toEqual({
      'git.pic.ngo': { username: 'roof', password: 's3cr:et' },
      'registry-1.docker.io': { username: 'alice', password: 'pw' },
      'ghcr.io': { identityToken: 'refresh' },
      'plain.example': { username: 'u', password: 'p' },
    });
  });

  test.each(['', 'not json', '[]', '{"auths": 3}'])('%j gives no credentials', (text) => {
    expect(credentialsFromDockerConfig(text).size).toBe(0);
  });
});

describe('facts', () => {
  test('one readable clause per image', () => {
    const line = describeVerification('enforce', [
      { reference: `git.pic.ngo/roof/a@${D}`, digest: D, verified: true, key: '/cell/cosign.pub', keyId: '0123456789abcdef', format: 'cosign-legacy', transparencyLog: false },
      { reference: `git.pic.ngo/roof/b@${D}`, digest: D, verified: false, reason: 'Unsigned' },
    ]);
    expect(line).toBe(`enforce: git.pic.ngo/roof/a@${D.slice(0, 19)}… verified with /cell/cosign.pub (key 0123456789abcdef, cosign-legacy); git.pic.ngo/roof/b@${D.slice(0, 19)}… NOT verified: Unsigned`);
    expect(describeVerification('off', [])).toBe('off: signatures not checked');
  });

  test('the images a template runs, sorted and without repeats', () => {
    expect(templateImages(`services:\n  b: {image: "x/b@${D}"}\n  a: {image: x/a:1}\n  c: {image: x/a:1}\n  d: {}\n`)).toEqual([`x/a:1`, `x/b@${D}`]);
    expect(templateImages(': not yaml [')).toEqual([]);
    expect(templateContainers(`services:\n  web: {image: x/w:1, container_name: cell-web}\n  db: {image: x/d:1}\n`)).toEqual([{ container: 'cell-web', image: 'x/w:1' }, { container: 'db', image: 'x/d:1' }]);
    // Merge keys, as the renderer reads them: an image from a shared block is found too.
    expect(templateImages(`x-base: &base\n  image: x/base@${D}\nservices:\n  a:\n    <<: *base\n    container_name: a\n`)).toEqual([`x/base@${D}`]);
  });
});

describe('ensurePresent under enforce', () => {
  test('an image the containers run that was not verified is refused before Docker is asked', async () => {
    const { ServiceImages } = await import('../../reconcilers/images/index.js');
    const asked: string[] = [];
    const host = new Proxy({}, { get: (_t, p) => (asked.push(String(p)), undefined) }) as never;
    const gate = new ServiceImages({ verification: '', signatures: [], images: [] }, new Set([`x/a@${D}`]), host, 'ServiceInstall/a', { mirrors: {}, insecure: [] }, async () => undefined);
    const plan = { containers: [{ create: { Image: `x/a@${D}` } }, { create: { Image: `x/b@${D}` } }] };
    await expect(gate.ensurePresent(plan, new Map())).rejects.toMatchObject({ name: 'TerminalError', reason: 'Unsigned' });
    expect(asked).toEqual([]);
  });
});

describe('parsers never throw on any input', () => {
  test('WWW-Authenticate, Docker config, verification mode', async () => {
    const { default: check } = await import('fast-check');
    check.assert(check.property(check.string(), (s) => void parseAuthenticate(s)));
    check.assert(check.property(check.string(), (s) => void credentialsFromDockerConfig(s)));
    check.assert(check.property(check.jsonValue(), (v) => void credentialsFromDockerConfig(JSON.stringify({ auths: v }))));
    check.assert(check.property(check.anything(), (v) => ['off', 'warn', 'enforce'].includes(effectiveMode(v))));
  });
});
