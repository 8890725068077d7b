/**
 * The pure half of the certificates resource: which direct subdomains a cell has, and which
 * certificate pairs go from Caddy's storage into the services' containers.
 */
import { directHosts, planCertificates, type DirectHost, type HostObservation } from '../../reconcilers/certificates/index.js';
import { testRouting } from '../support/caddy.js';

const target: DirectHost = { service: 'email', subdomain: 'mail', host: 'mail.alice.pic.ngo', container: 'cell-mail' };
const pair = (n: number) => ({ cert: `-----BEGIN CERTIFICATE-----\n${n}\n`, key: `-----BEGIN PRIVATE KEY-----\n${n}\n` });

describe('directHosts', () => {
  test('each direct subdomain of each installed service, with its container, sorted by host', () => {
    const input = testRouting({ domain: 'alice.pic.ngo', dns: { address: '10.0.0.1' } }, {
      email: { subdomain: 'mail', backend: 'cell-mail:8080', extra_backends: { autoconfig: 'cell-mail:8080' }, direct_subdomains: ['mail'], container_name: 'cell-mail' },
      chat: { subdomain: 'xmpp', backend: 'cell-chat:8080', direct_subdomains: ['xmpp', 'xmpp'], container_name: 'cell-chat' },
      notes: { subdomain: 'notes', backend: 'cell-notes:8080', container_name: 'cell-notes' },
    });
    expect(directHosts(input)).toEqual([
      { service: 'email', subdomain: 'mail', host: 'mail.alice.pic.ngo', container: 'cell-mail' },
      { service: 'chat', subdomain: 'xmpp', host: 'xmpp.alice.pic.ngo', container: 'cell-chat' },
    ]);
  });

  test('a service without a subdomain has none', () => {
    const input = testRouting({ domain: 'alice.pic.ngo' }, { email: { direct_subdomains: ['mail'], container_name: 'cell-mail' } });
    expect(directHosts(input)).toEqual([]);
  });
});

describe('planCertificates', () => {
  test.each<[string, HostObservation[], string[]]>([
    ['Caddy has not issued it yet: wait', [{ target }], ['wait mail.alice.pic.ngo']],
    ['the container has none: place', [{ target, caddy: pair(1) }], ['copy mail.alice.pic.ngo first']],
    ['the container has the same pair: nothing', [{ target, caddy: pair(1), service: pair(1) }], []],
    ['Caddy renewed it: copy again', [{ target, caddy: pair(2), service: pair(1) }], ['copy mail.alice.pic.ngo']],
    ['the container has a stand-in of its own: replace it', [{ target, caddy: pair(1), service: { cert: pair(1).cert, key: pair(9).key } }], ['copy mail.alice.pic.ngo']],
  ])('%s', (_name, observed, expected) => {
    expect(planCertificates(observed).map((s) => (s.kind === 'copy' ? `copy ${s.target.host}${s.first ? ' first' : ''}` : `wait ${s.target.host}`))).toEqual(expected);
  });

  test('the pair copied is Caddy\'s', () => {
    const [step] = planCertificates([{ target, caddy: pair(3), service: pair(1) }]);
    expect(step).toEqual({ kind: 'copy', target, pair: pair(3), first: false });
  });
});
