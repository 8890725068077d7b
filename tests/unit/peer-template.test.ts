/**
 * Filling peer_config_template: every token form, usernames that need encoding, one-pass
 * substitution, missing values reported (never leaked as "{...}"), and no template at all.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Manifest } from '../../crds/types.js';
import { encodeUsername, fillPeerConfig, PeerConfigError, type PeerConfigInput } from '../../reconcilers/accounts/template.js';

function exampleManifest(id: string): Manifest {
  return JSON.parse(readFileSync(path.join(process.cwd(), 'examples', 'store', 'services', id, 'manifest.json'), 'utf8')) as Manifest;
}

function input(overrides: Partial<PeerConfigInput> = {}): PeerConfigInput {
  return {
    domain: 'demo.pic.test',
    peer: 'alice',
    credentials: { notes: { password: 'pw-notes' }, email: { password: 'pw-mail' }, files: { password: 'pw-files', token: 't0k' } },
    config: { domain: 'mail.example.org', port: 8080, registration: false },
    ...overrides,
  };
}

const tpl = (peer_config_template: Record<string, string> | undefined, id = 'files'): Pick<Manifest, 'id' | 'peer_config_template'> =>
  peer_config_template === undefined ? { id } : { id, peer_config_template };

describe('encodeUsername', () => {
  test.each([
    ['alice', 'alice'],
    ['a.b_c-d~e', 'a.b_c-d~e'],
    ['alice@example.org', 'alice%40example.org'],
    ['a/b', 'a%2Fb'],
    ['a b', 'a%20b'],
    ['josé', 'jos%C3%A9'],
    ['日本', '%E6%97%A5%E6%9C%AC'],
    ["it's(me)!*", 'it%27s%28me%29%21%2A'],
    ['a+b=c&d?e#f%', 'a%2Bb%3Dc%26d%3Fe%23f%25'],
  ])('%s → %s', (name, encoded) => {
    expect(encodeUsername(name)).toBe(encoded);
  });
});

describe('fillPeerConfig', () => {
  test('the example notes template', () => {
    expect(fillPeerConfig(exampleManifest('notes'), input())).toEqual({
      url: 'https://notes.demo.pic.test/',
      username: 'alice',
      password: 'pw-notes',
    });
  });

  test('the example email template uses {config.domain}', () => {
    const filled = fillPeerConfig(exampleManifest('email'), input());
    expect(filled.email).toBe('alice@mail.example.org');
    expect(filled.username).toBe('alice@mail.example.org');
    expect(filled.smtp_host).toBe('mail.demo.pic.test');
    expect(filled.password).toBe('pw-mail');
    expect(Object.keys(filled)).toEqual(Object.keys(exampleManifest('email').peer_config_template ?? {}));
  });

  test.each([
    ['alice@home', 'https://webdav.demo.pic.test/dav/alice%40home/'],
    ['a/b', 'https://webdav.demo.pic.test/dav/a%2Fb/'],
    ['a b', 'https://webdav.demo.pic.test/dav/a%20b/'],
    ['Zoë', 'https://webdav.demo.pic.test/dav/Zo%C3%AB/'],
  ])('the username %s is percent-encoded with nothing left safe', (peer, url) => {
    expect(fillPeerConfig(exampleManifest('files'), input({ peer })).webdav_url).toBe(url);
  });

  test('config values of every type become text', () => {
    expect(fillPeerConfig(tpl({ port: '{config.port}', open: '{config.registration}', d: '{config.domain}' }), input())).toEqual({
      port: '8080',
      open: 'false',
      d: 'mail.example.org',
    });
  });

  test('credentials of another service and other fields can be named', () => {
    expect(fillPeerConfig(tpl({ a: '{peer.service_credentials.notes.password}', b: '{peer.service_credentials.files.token}' }), input())).toEqual({
      a: 'pw-notes',
      b: 't0k',
    });
  });

  test('substitution is one pass: a value holding a token is not expanded again', () => {
    const filled = fillPeerConfig(tpl({ p: '{peer.service_credentials.files.password}' }), input({ credentials: { files: { password: '{domain}' } } }));
    expect(filled).toEqual({ p: '{domain}' });
  });

  test('braces that are not a token stay as they are', () => {
    expect(fillPeerConfig(tpl({ json: '{"a": 1} { } {domain}' }), input())).toEqual({ json: '{"a": 1} { } demo.pic.test' });
  });

  test('missing values are reported together, naming tokens and never values', () => {
    let error: unknown;
    try {
      fillPeerConfig(
        tpl({
          a: '{config.nope}',
          b: '{peer.service_credentials.calendar.password}',
          c: '{peer.service_credentials.files.pin}',
          d: '{peer.name}',
          e: '{peer.service_credentials.files.password}',
        }),
        input(),
      );
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PeerConfigError);
    const e = error as PeerConfigError;
    expect(e.service).toBe('files');
    expect(e.problems).toEqual([
      'a: {config.nope}: no such setting in the service config',
      'b: {peer.service_credentials.calendar.password}: no credentials of alice on calendar',
      'c: {peer.service_credentials.files.pin}: no credential field "pin" of alice on files',
      'd: {peer.name}: not a known token (use {domain}, {peer.username}, {peer.service_credentials.<id>.<field>} or {config.<key>})',
    ]);
    expect(e.message).not.toContain('pw-files');
  });

  test('a property of Object.prototype is not a value', () => {
    expect(() => fillPeerConfig(tpl({ a: '{config.constructor}' }), input())).toThrow(PeerConfigError);
  });

  test('no template: the raw credentials of the peer on the service', () => {
    expect(fillPeerConfig(tpl(undefined, 'files'), input())).toEqual({ password: 'pw-files', token: 't0k' });
    expect(() => fillPeerConfig(tpl(undefined, 'calendar'), input())).toThrow(PeerConfigError);
  });
});
