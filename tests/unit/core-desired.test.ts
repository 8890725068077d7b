/**
 * The core stack from the Cell, pure: which containers pic runs, what each is created with (the
 * privileges only WireGuard gets, ports only where asked), and the defaults the resources built
 * on them derive.
 */
import type { CellDocument, CellSpec } from '../../crds/types.js';
import { desiredCorePlan } from '../../reconcilers/core/desired.js';
import { CADDY_BOOT_CADDYFILE, CADDY_COMMAND } from '../../reconcilers/core/desired.js';
import { caddyAdminAddressOf, coreComponents, withCoreDefaults } from '../../reconcilers/core/spec.js';
import { validateDocument } from '../../crds/validate-documents.js';
import { testCell } from '../support/cell-document.js';

const cell = testCell;
const FULL = cell({
  caddy: { run: { image: 'img/caddy:1', address: '172.20.0.10' } },
  dns: { run: { image: 'img/dns:1', address: '172.20.0.11', upstreams: ['9.9.9.9'] } },
  wireguard: { container: 'cell-wireguard', run: { image: 'img/wg:1', address: '172.20.0.12' } },
});
const paths = { zoneFile: '/var/lib/pic/dns/alice.pic.ngo.zone', caddyAdminDir: '/var/lib/pic/caddy-admin' };

describe('coreComponents', () => {
  test('a Cell with no core sections runs no core container', () => {
    expect(coreComponents(cell({ dns: { address: '192.0.2.1' }, wireguard: { container: 'cell-wireguard' } }))).toEqual([]);
  });
  test('each run section is one component with its default name', () => {
    expect(coreComponents(FULL).map((c) => [c.key, c.container])).toEqual([
      ['Core/caddy', 'cell-caddy'],
      ['Core/dns', 'cell-dns'],
      ['Core/wireguard', 'cell-wireguard'],
    ]);
  });
});

describe('desiredCorePlan', () => {
  const plans = Object.fromEntries(coreComponents(FULL).map((c) => [c.name, desiredCorePlan(c, FULL, paths)]));
  const host = (name: string) => plans[name]!.containers[0]!.create.HostConfig!;

  test('only WireGuard gets NET_ADMIN, /dev/net/tun and forwarding', () => {
    expect(host('wireguard').CapAdd).toEqual(['NET_ADMIN']);
    expect(host('wireguard').Devices).toEqual([{ PathOnHost: '/dev/net/tun', PathInContainer: '/dev/net/tun', CgroupPermissions: 'rwm' }]);
    expect(host('wireguard').Sysctls).toEqual({ 'net.ipv4.ip_forward': '1' });
    for (const name of ['caddy', 'dns']) {
      expect(host(name).CapAdd).toBeUndefined();
      expect(host(name).Devices).toBeUndefined();
      expect(host(name).Privileged).toBeUndefined();
    }
  });
  test('ports: WireGuard\'s UDP port by default, Caddy\'s only when asked, never its admin API', () => {
    expect(host('wireguard').PortBindings).toEqual({ '51820/udp': [{ HostIp: '0.0.0.0', HostPort: '51820' }] });
    expect(host('caddy').PortBindings).toBeUndefined();
    const published = cell({ caddy: { run: { image: 'c', address: '172.20.0.10', publish: { hostIp: '127.0.0.1', https: 8443 } } } });
    const plan = desiredCorePlan(coreComponents(published)[0]!, published, paths);
    expect(plan.containers[0]!.create.HostConfig!.PortBindings).toEqual({ '443/tcp': [{ HostIp: '127.0.0.1', HostPort: '8443' }] });
  });
  test('state in named volumes of the cell (Caddy) and the zone folder read-only (DNS)', () => {
    expect(plans.caddy!.volumes.map((v) => v.name)).toEqual(['alice-caddy-data']);
    expect(host('dns').Mounts).toEqual([{ Type: 'bind', Source: '/var/lib/pic/dns', Target: '/zones', ReadOnly: true }]);
    expect(plans.dns!.containers[0]!.create.Env).toContain('DNS_UPSTREAMS=9.9.9.9');
  });
  test("Caddy's admin API: a socket in the state directory's admin folder, which only Caddy mounts; booted from pic's file", () => {
    expect(host('caddy').Mounts).toEqual([
      { Type: 'volume', Source: 'alice-caddy-data', Target: '/data', ReadOnly: false },
      { Type: 'bind', Source: '/var/lib/pic/caddy-admin', Target: '/run/caddy-admin', ReadOnly: false },
    ]);
    const caddy = plans.caddy!.containers[0]!.create;
    expect(caddy.Cmd).toEqual(CADDY_COMMAND);
    expect(CADDY_COMMAND).toEqual(['caddy', 'run', '--resume', '--config', '/run/caddy-admin/boot.Caddyfile', '--adapter', 'caddyfile']);
    expect(caddy.Env).toContain('XDG_CONFIG_HOME=/run/caddy-admin');
    expect(CADDY_BOOT_CADDYFILE).toMatch(/^\{\n\tadmin unix\/\/run\/caddy-admin\/admin\.sock\n\}$/m);
    expect(caddy.ExposedPorts).toBeUndefined();
    for (const name of ['dns', 'wireguard']) expect((host(name).Mounts ?? []).some((m) => m.Source === '/var/lib/pic/caddy-admin')).toBe(false);
  });
  test('the fixed address, the owner labels and a spec hash that follows the spec', () => {
    const c = plans.caddy!.containers[0]!;
    expect(c.create.NetworkingConfig!.EndpointsConfig!['cell-network']!.IPAMConfig).toEqual({ IPv4Address: '172.20.0.10' });
    expect(c.create.Labels).toMatchObject({ 'ngo.pic.owner': 'Core/caddy', 'ngo.pic.cell': 'alice', 'ngo.pic.spec-hash': c.specHash });
    const again = desiredCorePlan(coreComponents(FULL)[0]!, FULL, paths);
    expect(again.containers[0]!.specHash).toBe(c.specHash);
    const moved = cell({ ...FULL.spec, caddy: { run: { image: 'img/caddy:2', address: '172.20.0.10' } } });
    expect(desiredCorePlan(coreComponents(moved)[0]!, moved, paths).containers[0]!.specHash).not.toBe(c.specHash);
  });
});

describe('withCoreDefaults', () => {
  const cases: [string, CellDocument, Partial<CellSpec>][] = [
    ['nothing run by pic: unchanged', cell({ dns: { address: '192.0.2.1' } }), { dns: { address: '192.0.2.1' } }],
    ['pic runs Caddy: TLS internal and the A records\' address', cell({ caddy: { run: { image: 'c', address: '172.20.0.10' } } }), { caddy: { run: { image: 'c', address: '172.20.0.10' }, tls: { mode: 'internal' } }, dns: { address: '172.20.0.10' } }],
    ['what the admin wrote stays', cell({ caddy: { adminAddress: 'x:1', tls: { mode: 'off' }, run: { image: 'c', address: '172.20.0.10' } }, dns: { address: '192.0.2.9' } }), { caddy: { adminAddress: 'x:1', tls: { mode: 'off' }, run: { image: 'c', address: '172.20.0.10' } }, dns: { address: '192.0.2.9' } }],
    ['the VPN container takes the run section\'s name', cell({ wireguard: { container: 'cell-wireguard', run: { image: 'w', address: '172.20.0.12', container: 'my-wg' } } }), { wireguard: { container: 'my-wg', run: { image: 'w', address: '172.20.0.12', container: 'my-wg' } } }],
  ];
  test.each(cases)('%s', (_name, doc, expected) => {
    expect(withCoreDefaults(doc).spec).toMatchObject(expected);
  });
  test('pic runs Caddy: no network admin address is derived', () => {
    expect(withCoreDefaults(cell({ caddy: { run: { image: 'c', address: '172.20.0.10' } } })).spec.caddy?.adminAddress).toBeUndefined();
  });
});

describe('caddyAdminAddressOf', () => {
  test.each([
    ['pic runs Caddy: its socket in the state directory', cell({ caddy: { run: { image: 'c', address: '172.20.0.10' } } }), 'unix//var/lib/pic/caddy-admin/admin.sock'],
    ["pic runs Caddy: an adminAddress beside run does not move pic off the socket", cell({ caddy: { adminAddress: '172.20.0.10:2019', run: { image: 'c', address: '172.20.0.10' } } }), 'unix//var/lib/pic/caddy-admin/admin.sock'],
    ["the admin's Caddy: spec.caddy.adminAddress", cell({ caddy: { adminAddress: 'localhost:2019' } }), 'localhost:2019'],
    ['no Caddy to reach', cell({}), undefined],
  ])('%s', (_name, doc, expected) => {
    expect(caddyAdminAddressOf(doc, '/var/lib/pic/')).toBe(expected);
  });
});

describe('validation of the core addresses', () => {
  const doc = (spec: Record<string, unknown>) => ({ apiVersion: 'pic.ngo/v1alpha1', kind: 'Cell', metadata: { name: 'alice' }, spec: { domain: 'alice.pic.ngo', store: { path: './store' }, ...spec } });
  test.each([
    ['inside the service pool', { caddy: { run: { image: 'git.pic.ngo/roof/c:1', address: '172.20.0.30' } } }, '/spec/caddy/run/address', /inside the service pool/],
    ['the gateway', { dns: { run: { image: 'git.pic.ngo/roof/d:1', address: '172.20.0.1' } } }, '/spec/dns/run/address', /not a usable address/],
    ['shared by two', { caddy: { run: { image: 'git.pic.ngo/roof/c:1', address: '172.20.0.10' } }, dns: { run: { image: 'git.pic.ngo/roof/d:1', address: '172.20.0.10' } } }, '/spec/dns/run/address', /also the address of spec\.caddy\.run/],
    ['a VPN endpoint as host:port is accepted', { wireguard: { endpoint: 'vpn.alice.pic.ngo:51820' } }, '', /^$/],
  ])('%s', (_name, spec, pointer, message) => {
    const problems = validateDocument(doc(spec), 'cell.yaml');
    if (pointer === '') expect(problems).toEqual([]);
    else expect(problems).toEqual([expect.objectContaining({ pointer, message: expect.stringMatching(message) })]);
  });
  test('a PeerAccount public key must look like a WireGuard key', () => {
    const peer = (publicKey: string) => ({ apiVersion: 'pic.ngo/v1alpha1', kind: 'PeerAccount', metadata: { name: 'bob' }, spec: { services: [], wireguard: { publicKey } } });
    expect(validateDocument(peer(`${'A'.repeat(43)}=`), 'bob.yaml')).toEqual([]);
    expect(validateDocument(peer('not a key'), 'bob.yaml')).toEqual([expect.objectContaining({ pointer: '/spec/wireguard/publicKey' })]);
  });
});
