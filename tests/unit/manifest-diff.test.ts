import { changeLine, diffFields, diffPackages } from '../../state/manifest-diff.js';

describe('manifest diff', () => {
  test.each([
    ['equal values: nothing', { image: 'a' }, { image: 'a' }, []],
    ['a changed scalar', { image: 'a:1' }, { image: 'a:2' }, ['~ image: "a:1" → "a:2"']],
    ['an added field', {}, { subdomain: 'notes' }, ['+ subdomain: "notes"']],
    ['a removed field', { backend: 'x:80' }, {}, ['- backend: "x:80"']],
    ['key order does not matter', { a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 }, []],
    ['env compared by key', { env: [{ key: 'A', value: '1' }, { key: 'B', value: '2' }] }, { env: [{ key: 'B', value: '3' }, { key: 'C', value: '4' }, { key: 'A', value: '1' }] }, ['~ env[B].value: "2" → "3"', '+ env[C]: {"key":"C","value":"4"}']],
    ['volumes compared by name', { volumes: [{ name: 'd', mount: '/data' }] }, { volumes: [{ name: 'd', mount: '/srv' }] }, ['~ volumes[d].mount: "/data" → "/srv"']],
    ['plain lists compared whole', { extra_subdomains: ['a'] }, { extra_subdomains: ['a', 'b'] }, ['~ extra_subdomains: ["a"] → ["a","b"]']],
    ['nested objects by path', { capabilities: { has_storage: false } }, { capabilities: { has_storage: true } }, ['~ capabilities.has_storage: false → true']],
  ])('%s', (_name, before, after, lines) => {
    expect(diffFields(before, after).map(changeLine)).toEqual(lines);
  });

  test('the template is compared by its services: ports, healthcheck, image', () => {
    const before = 'services:\n  web:\n    image: a:1\n    ports: ["8080:80"]\n';
    const after = 'services:\n  web:\n    image: a:2\n    ports: ["8081:80"]\n    healthcheck:\n      test: ["CMD", "true"]\n';
    expect(diffPackages({ manifest: { version: '1.0.0' }, template: before }, { manifest: { version: '1.1.0' }, template: after }).map(changeLine)).toEqual([
      '~ version: "1.0.0" → "1.1.0"',
      '+ template.services.web.healthcheck: {"test":["CMD","true"]}',
      '~ template.services.web.image: "a:1" → "a:2"',
      '~ template.services.web.ports: ["8080:80"] → ["8081:80"]',
    ]);
  });

  test('a template that is not YAML is compared as text', () => {
    const d = diffPackages({ manifest: {}, template: 'a: [' }, { manifest: {}, template: 'b: [' });
    expect(d.map((c) => c.field)).toEqual(['template.text']);
  });
});
