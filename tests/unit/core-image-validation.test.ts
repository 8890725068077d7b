/**
 * A core container's `run.image` is read by the one image-reference parser every service image
 * goes through: a tag, a digest pin or both, under the Cell's allowedImagePrefix.
 */
import { validateDocument } from '../../crds/validate-documents.js';

const HEX = 'a'.repeat(64);

function cell(image: string, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'pic.ngo/v1alpha1',
    kind: 'Cell',
    metadata: { name: 'alice' },
    spec: { domain: 'alice.pic.ngo', store: { path: './store' }, ...extra, caddy: { run: { image, address: '172.20.0.10' } } },
  };
}

const POINTER = '/spec/caddy/run/image';

describe('spec.<core>.run.image', () => {
  test.each([
    ['a tag', 'git.pic.ngo/roof/pic-core-caddy:1.0.0'],
    ['a digest pin', `git.pic.ngo/roof/pic-core-caddy@sha256:${HEX}`],
    ['a tag and a digest', `git.pic.ngo/roof/pic-core-caddy:1.0.0@sha256:${HEX}`],
    ['a name alone', 'git.pic.ngo/roof/pic-core-caddy'],
  ])('accepts %s', (_what, image) => {
    expect(validateDocument(cell(image), 'cell.yaml')).toEqual([]);
  });

  test.each([
    ['a digest of the wrong length', `git.pic.ngo/roof/pic-core-caddy@sha256:${'a'.repeat(63)}`, /malformed digest/],
    ['an upper-case digest', `git.pic.ngo/roof/pic-core-caddy@sha256:${'A'.repeat(64)}`, /malformed digest/],
    ['a sha512 digest', `git.pic.ngo/roof/pic-core-caddy@sha512:${'a'.repeat(128)}`, /sha256 digest/],
    ['a bad tag', 'git.pic.ngo/roof/pic-core-caddy:-1', /invalid tag/],
    ['upper-case path', 'git.pic.ngo/roof/Caddy:1', /invalid path component/],
    ['whitespace', 'git.pic.ngo/roof/caddy:1 --privileged', /whitespace/],
    ['another registry', 'docker.io/library/caddy:2', /allowed registry path "git\.pic\.ngo\/roof\/"/],
    ['a look-alike folder', 'git.pic.ngo/roofx/caddy:2', /allowed registry path/],
    ['the prefix itself', 'git.pic.ngo/roof', /not the prefix itself/],
  ])('refuses %s', (_what, image, message) => {
    const problems = validateDocument(cell(image), 'cell.yaml');
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.every((p) => p.pointer === POINTER && p.file === 'cell.yaml')).toBe(true);
    expect(problems.map((p) => p.message).join('\n')).toMatch(message);
  });

  test('the Cell\'s own allowedImagePrefix applies', () => {
    expect(validateDocument(cell('pictest/core-caddy:1.0.0', { allowedImagePrefix: 'pictest/' }), 'cell.yaml')).toEqual([]);
    expect(validateDocument(cell('git.pic.ngo/roof/pic-core-caddy:1.0.0', { allowedImagePrefix: 'pictest/' }), 'cell.yaml')).toEqual([
      expect.objectContaining({ pointer: POINTER, message: expect.stringMatching(/allowed registry path "pictest\/"/) }),
    ]);
  });

  test('each core section is checked, at its own pointer', () => {
    const doc = cell('git.pic.ngo/roof/c:1');
    Object.assign(doc.spec, { dns: { run: { image: 'elsewhere/dns:1', address: '172.20.0.11' } }, wireguard: { run: { image: 'elsewhere/wg:1', address: '172.20.0.12' } } });
    expect(validateDocument(doc, 'cell.yaml').map((p) => p.pointer)).toEqual(['/spec/dns/run/image', '/spec/wireguard/run/image']);
  });
});
