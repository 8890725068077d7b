/**
 * Where pic sends a request for an admin address: a host:port or URL on the network, or a Unix
 * socket written as Caddy writes it (with the empty Host Caddy's admin API wants there).
 */
import { adminTarget } from '../../reconcilers/caddy/observe.js';
import { TerminalError } from '../../reconcilers/errors.js';

describe('adminTarget', () => {
  test.each([
    ['host:port', '127.0.0.1:2019', { base: 'http://127.0.0.1:2019', headers: {} }],
    ['a URL, trailing slashes dropped', 'https://caddy.lan:2019//', { base: 'https://caddy.lan:2019', headers: {} }],
    ['a socket', 'unix//var/lib/pic/caddy-admin/admin.sock', { base: 'http://caddy-admin', socketPath: '/var/lib/pic/caddy-admin/admin.sock', headers: { Host: '' } }],
  ])('%s', (_name, address, expected) => {
    expect(adminTarget(address)).toEqual(expected);
  });
  test.each(['unix/admin.sock', 'unix/', 'unix/./x.sock'])('a socket without an absolute path (%s) is the admin\'s to fix', (address) => {
    expect(() => adminTarget(address)).toThrow(TerminalError);
    expect(() => adminTarget(address)).toThrow(/absolute path/);
  });
});
