/** Document keys (state/document-keys.ts): one builder per kind, and the name read back from a key. */
import { describe, expect, test } from '@jest/globals';
import { cellKey, claimedKey, connectionKey, documentKey, isServiceKey, nameInKey, peerKey, serviceKey } from '../../state/document-keys.js';

describe('document keys', () => {
  test.each([
    [serviceKey('notes'), 'ServiceInstall/notes'],
    [peerKey('alice'), 'PeerAccount/alice'],
    [cellKey('home'), 'Cell/home'],
    [connectionKey('vpn-home'), 'Connection/vpn-home'],
    [documentKey({ kind: 'Connection', metadata: { name: 'vpn-home' } }), 'Connection/vpn-home'],
  ])('%s', (key, expected) => {
    expect(key).toBe(expected);
  });

  test.each<[string | undefined, Parameters<typeof nameInKey>[1], string | undefined]>([
    ['ServiceInstall/notes', 'ServiceInstall', 'notes'],
    ['PeerAccount/alice', 'PeerAccount', 'alice'],
    ['PeerAccount/alice', 'ServiceInstall', undefined],
    ['ServiceInstallx/notes', 'ServiceInstall', undefined],
    ['Core/caddy', 'ServiceInstall', undefined],
    [undefined, 'ServiceInstall', undefined],
  ])('nameInKey(%j, %s) → %j', (key, kind, name) => {
    expect(nameInKey(key, kind)).toBe(name);
    if (kind === 'ServiceInstall') expect(isServiceKey(key)).toBe(name !== undefined);
  });

  test.each([
    [{ kind: 'PeerAccount', metadata: { name: 'bob' } }, 'PeerAccount/bob'],
    [{ kind: 'PeerAccount', metadata: { name: 7 } }, undefined],
    [{ kind: 'PeerAccount' }, undefined],
    [null, undefined],
    ['PeerAccount/bob', undefined],
  ])('claimedKey(%j) → %j', (value, key) => {
    expect(claimedKey(value)).toBe(key);
  });
});
