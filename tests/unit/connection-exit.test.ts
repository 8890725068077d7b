/**
 * Which catalog service runs a Connection's exit (state/check-desired.ts), and the instance id
 * its names derive from (controllers/reconcile-connection.ts).
 */
import { instanceIdOf } from '../../controllers/reconcile-connection.js';
import type { ConnectionDocument, Manifest } from '../../crds/types.js';
import { exitServiceOf } from '../../state/check-desired.js';

const exitManifest = (id: string, provides?: string): Manifest => ({ id, ...(provides ? { connectivity: { provides } } : {}) }) as unknown as Manifest;
const connection = (spec: Partial<ConnectionDocument['spec']>): ConnectionDocument => ({
  apiVersion: 'pic.ngo/v1alpha1',
  kind: 'Connection',
  metadata: { name: 'vpn' },
  spec: { type: 'wireguard_ext', ...spec },
});
const catalog = (...manifests: Manifest[]) => new Map(manifests.map((m) => [m.id, m]));

describe('exitServiceOf', () => {
  test.each<[string, Map<string, Manifest>, Partial<ConnectionDocument['spec']>, string | RegExp]>([
    ['the one provider of the type', catalog(exitManifest('notes'), exitManifest('exit-wireguard', 'wireguard_ext'), exitManifest('exit-tor', 'tor')), {}, 'exit-wireguard'],
    ['no provider', catalog(exitManifest('notes')), {}, /no catalog service provides wireguard_ext/],
    ['two providers: name one', catalog(exitManifest('a', 'wireguard_ext'), exitManifest('b', 'wireguard_ext')), {}, /several catalog services provide wireguard_ext \(a, b\); name one in spec.service/],
    ['two providers, one named', catalog(exitManifest('a', 'wireguard_ext'), exitManifest('b', 'wireguard_ext')), { service: 'b' }, 'b'],
    ['a named service that does not exist', catalog(exitManifest('a', 'wireguard_ext')), { service: 'c' }, /has no service "c"/],
    ['a named service of another type', catalog(exitManifest('t', 'tor')), { service: 't' }, /provides tor, not wireguard_ext/],
    ['a named service that is no exit', catalog(exitManifest('notes')), { service: 'notes' }, /not a connectivity service/],
  ])('%s', (_name, manifests, spec, expected) => {
    const result = exitServiceOf(manifests, connection(spec));
    if (typeof expected === 'string') expect(result).toEqual({ id: expected, manifest: manifests.get(expected) });
    else expect('problem' in result ? result.problem : '').toMatch(expected);
  });
});

describe('instanceIdOf', () => {
  test('8 lowercase hex characters, stable for a name, different for two names', () => {
    expect(instanceIdOf('vpn-home')).toMatch(/^[0-9a-f]{8}$/);
    expect(instanceIdOf('vpn-home')).toBe(instanceIdOf('vpn-home'));
    expect(instanceIdOf('vpn-home')).not.toBe(instanceIdOf('vpn-office'));
  });
});
