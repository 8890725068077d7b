/**
 * Image references (crds/image-reference.ts): Docker's distribution reference grammar, the one
 * parser behind the manifest checks, the container policy, signature look-ups and pulls. The
 * table follows the cases of github.com/distribution/reference (reference_test.go,
 * normalize_test.go); the property tests build references from their parts.
 */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { imageReferenceUnderPrefix, parseImageReference, parsePinnedReference, readImageReference, type ImageReference } from '../../crds/image-reference.js';

const SHA256 = `sha256:${'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'}`;
const SHA512 = `sha512:${'f'.repeat(128)}`;

type Parts = Omit<ImageReference, 'original'>;

describe('parseImageReference reads', () => {
  test.each<[string, Parts]>([
    ['busybox', { name: 'busybox', registry: 'docker.io', repository: 'library/busybox' }],
    ['busybox:1.36', { name: 'busybox', registry: 'docker.io', repository: 'library/busybox', tag: '1.36' }],
    ['alice/tool:2', { name: 'alice/tool', registry: 'docker.io', repository: 'alice/tool', tag: '2' }],
    ['test_com', { name: 'test_com', registry: 'docker.io', repository: 'library/test_com' }],
    ['test.com:tag', { name: 'test.com', registry: 'docker.io', repository: 'library/test.com', tag: 'tag' }],
    ['test.com:5000', { name: 'test.com', registry: 'docker.io', repository: 'library/test.com', tag: '5000' }],
    ['test.com/repo:tag', { name: 'test.com/repo', registry: 'test.com', repository: 'repo', tag: 'tag' }],
    ['test:5000/repo', { name: 'test:5000/repo', registry: 'test:5000', repository: 'repo' }],
    [`test:5000/repo@${SHA256}`, { name: 'test:5000/repo', registry: 'test:5000', repository: 'repo', digest: SHA256 }],
    [`test:5000/repo:tag@${SHA256}`, { name: 'test:5000/repo', registry: 'test:5000', repository: 'repo', tag: 'tag', digest: SHA256 }],
    ['lowercase:Uppercase', { name: 'lowercase', registry: 'docker.io', repository: 'library/lowercase', tag: 'Uppercase' }],
    ['sub-dom1.foo.com/bar/baz/quux:some-long-tag', { name: 'sub-dom1.foo.com/bar/baz/quux', registry: 'sub-dom1.foo.com', repository: 'bar/baz/quux', tag: 'some-long-tag' }],
    ['b.gcr.io/test.example.com/my-app:test.example.com', { name: 'b.gcr.io/test.example.com/my-app', registry: 'b.gcr.io', repository: 'test.example.com/my-app', tag: 'test.example.com' }],
    [`xn--7o8h.com/myimage:xn--7o8h.com@${SHA512}`, { name: 'xn--7o8h.com/myimage', registry: 'xn--7o8h.com', repository: 'myimage', tag: 'xn--7o8h.com', digest: SHA512 }],
    ['foo_bar.com:8080', { name: 'foo_bar.com', registry: 'docker.io', repository: 'library/foo_bar.com', tag: '8080' }],
    ['foo/foo_bar.com:8080', { name: 'foo/foo_bar.com', registry: 'docker.io', repository: 'foo/foo_bar.com', tag: '8080' }],
    ['192.168.1.1:5000', { name: '192.168.1.1', registry: 'docker.io', repository: 'library/192.168.1.1', tag: '5000' }],
    ['192.168.1.1:5000/repo', { name: '192.168.1.1:5000/repo', registry: '192.168.1.1:5000', repository: 'repo' }],
    ['[2001:db8::1]/repo', { name: '[2001:db8::1]/repo', registry: '[2001:db8::1]', repository: 'repo' }],
    [`[2001:db8::1]:5000/repo:tag@${SHA256}`, { name: '[2001:db8::1]:5000/repo', registry: '[2001:db8::1]:5000', repository: 'repo', tag: 'tag', digest: SHA256 }],
    ['[::1]:5000/repo', { name: '[::1]:5000/repo', registry: '[::1]:5000', repository: 'repo' }],
    ['localhost/x', { name: 'localhost/x', registry: 'localhost', repository: 'x' }],
    ['localhost:5000/a/b_c__d-e.f:latest', { name: 'localhost:5000/a/b_c__d-e.f', registry: 'localhost:5000', repository: 'a/b_c__d-e.f', tag: 'latest' }],
    ['127.0.0.1:5000/roof/x', { name: '127.0.0.1:5000/roof/x', registry: '127.0.0.1:5000', repository: 'roof/x' }],
    [`git.pic.ngo/roof/pic-notes:1.0.0@${SHA256}`, { name: 'git.pic.ngo/roof/pic-notes', registry: 'git.pic.ngo', repository: 'roof/pic-notes', tag: '1.0.0', digest: SHA256 }],
    // An uppercase first component is a registry host (and hosts may have capitals).
    ['Foo.example/bar', { name: 'Foo.example/bar', registry: 'Foo.example', repository: 'bar' }],
    ['UPPER/case', { name: 'UPPER/case', registry: 'UPPER', repository: 'case' }],
    [`${'a/'.repeat(127)}a:tag-puts-this-over-max`, { name: `${'a/'.repeat(127)}a`, registry: 'docker.io', repository: `${'a/'.repeat(127)}a`, tag: 'tag-puts-this-over-max' }],
  ])('%s', (ref, parts) => {
    expect(parseImageReference(ref)).toEqual({ original: ref, ...parts });
  });
});

describe('parseImageReference refuses', () => {
  test.each([
    ['', 'empty'],
    [':justtag', 'no name'],
    [`@${SHA256}`, 'no name'],
    ['repo@sha256:ffffffffffffffffffffffffffffffffff', 'a digest too short'],
    [`validname@invaliddigest:${'f'.repeat(64)}`, 'an unknown digest algorithm'],
    [`a@${SHA256.toUpperCase()}`, 'an uppercase digest'],
    [`a@md5:${'0'.repeat(32)}`, 'md5'],
    ['Uppercase:tag', 'an uppercase repository'],
    ['test:5000/Uppercase/lowercase:tag', 'an uppercase path component'],
    [`${'a/'.repeat(128)}a:tag`, 'a name over 255 characters'],
    ['aa/asdf$$^/aa', 'punctuation in a path'],
    ['[2001:db8::1]', 'an IPv6 address alone'],
    ['[2001:db8::1]:5000', 'an IPv6 address and port alone'],
    ['[2001:db8::1]:tag', 'an IPv6 address with a tag'],
    ['[fe80::1%eth0]:5000/repo', 'a zone in an IPv6 host'],
    ['2001:db8::1/repo', 'an IPv6 host without brackets'],
    ['git.pic.ngo/roof/', 'a trailing slash'],
    ['git.pic.ngo//x', 'a doubled slash'],
    ['a..b/x', 'an empty host label'],
    ['-a.b/x', 'a host label starting with a dash'],
    ['a/-b', 'a path component starting with a dash'],
    ['a:', 'an empty tag'],
    ['a:-x', 'a tag starting with a dash'],
    [`a:${'t'.repeat(129)}`, 'a tag over 128 characters'],
    ['a@b@c', 'two @'],
    ['a b', 'a space'],
    ['git.pic.ngo/roof/x:bad tag', 'a space in the tag'],
    ['a\nb', 'a newline'],
    ['a'.repeat(1025), 'over 1024 characters'],
  ])('%j (%s)', (ref) => {
    expect(parseImageReference(ref)).toBeUndefined();
    expect(readImageReference(ref).errors.length).toBeGreaterThan(0);
  });
});

describe('readImageReference says what is wrong and keeps what is sound', () => {
  test.each([
    ['git.pic.ngo/roof/x:-bad', { name: 'git.pic.ngo/roof/x', domain: 'git.pic.ngo' }, 'has an invalid tag "-bad"'],
    ['git.pic.ngo/Roof/x:1', { tag: '1' }, 'has an invalid path component "Roof"'],
    ['a..b/x@sha256:1', {}, 'has a malformed digest "sha256:1"'],
    ['', {}, 'is empty'],
  ])('%j', (ref, sound, error) => {
    const read = readImageReference(ref);
    expect(read).toMatchObject(sound);
    expect(read.errors.join('; ')).toContain(error);
  });
});

describe('pinned references and the allowed prefix', () => {
  test.each([
    [`git.pic.ngo/roof/x@${SHA256}`, { name: 'git.pic.ngo/roof/x', digest: SHA256 }],
    [`git.pic.ngo/roof/x:1.0@${SHA256}`, { name: 'git.pic.ngo/roof/x:1.0', digest: SHA256 }],
    [`git.pic.ngo/roof/x@${SHA512}`, undefined],
    ['git.pic.ngo/roof/x:1.0', undefined],
    ['not a reference', undefined],
  ])('parsePinnedReference(%j)', (ref, pinned) => {
    expect(parsePinnedReference(ref)).toEqual(pinned);
  });

  test.each([
    ['git.pic.ngo/roof/x:1.0', 'git.pic.ngo/roof/', true],
    ['git.pic.ngo/roof/x:1.0', 'git.pic.ngo/roof', true],
    ['git.pic.ngo/roof:1.0', 'git.pic.ngo/roof', false],
    ['git.pic.ngo/roofx/a', 'git.pic.ngo/roof', false],
    ['git.pic.ngo/roof/x', '', false],
    ['git.pic.ngo/roof/X', 'git.pic.ngo/roof', false],
  ])('%s under %j: %s', (ref, prefix, under) => {
    expect(imageReferenceUnderPrefix(ref, prefix)).toBe(under);
  });
});

describe('parseImageReference, property', () => {
  const component = fc.stringMatching(/^[a-z0-9]{1,6}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,4})?$/);
  const hostName = fc.stringMatching(/^[a-z0-9]{1,6}(?:-[a-z0-9]{1,4})?\.[a-z]{2,4}$/);
  const ipv6 = fc.ipV6().filter((a) => /^[0-9a-f:]+$/i.test(a)).map((a) => `[${a}]`);
  const host = fc.tuple(fc.oneof(hostName, ipv6, fc.constant('localhost')), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })).map(([h, port]) => (port === undefined ? h : `${h}:${port}`));
  const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}$/);
  const digest = fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`), fc.stringMatching(/^[0-9a-f]{128}$/).map((h) => `sha512:${h}`));

  test('never throws, and what it reads is what was written', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const got = parseImageReference(s);
        if (got) expect(`${got.name}${got.tag !== undefined ? `:${got.tag}` : ''}${got.digest !== undefined ? `@${got.digest}` : ''}`).toBe(s);
        expect(got === undefined).toBe(readImageReference(s).errors.length > 0);
      }),
    );
  });

  test('a reference built from its parts parses back to them', () => {
    fc.assert(
      fc.property(
        fc.option(host, { nil: undefined }),
        fc.array(component, { minLength: 1, maxLength: 4 }),
        fc.option(tag, { nil: undefined }),
        fc.option(digest, { nil: undefined }),
        (registry, path, t, d) => {
          // Without a host, a first component that looks like one would be read as one.
          fc.pre(registry !== undefined || path.length === 1 || !/[.:]/.test(path[0]!));
          const repository = path.join('/');
          const name = registry === undefined ? repository : `${registry}/${repository}`;
          const ref = `${name}${t !== undefined ? `:${t}` : ''}${d !== undefined ? `@${d}` : ''}`;
          const hub = registry === undefined;
          expect(parseImageReference(ref)).toEqual({
            original: ref,
            name,
            registry: registry ?? 'docker.io',
            repository: hub && path.length === 1 ? `library/${repository}` : repository,
            ...(t !== undefined ? { tag: t } : {}),
            ...(d !== undefined ? { digest: d } : {}),
          });
        },
      ),
    );
  });
});
