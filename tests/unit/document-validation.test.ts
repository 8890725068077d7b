import { applyDocumentDefaults, documentKindOf, validateDocument } from '../../crds/validate-documents.js';
import type { Problem } from '../../crds/types.js';

type Json = Record<string, any>;

const FILE = 'cell/services/notes.yaml';

function doc(kind: string, spec: unknown, name = 'alice'): Json {
  return { apiVersion: 'pic.ngo/v1alpha1', kind, metadata: { name }, spec };
}

const cell = (): Json => doc('Cell', { domain: 'alice.pic.ngo', store: { path: './store' } });
const fullCell = (): Json =>
  doc('Cell', {
    domain: 'alice.pic.ngo',
    store: { path: './store' },
    network: { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' },
    imageVerification: { mode: 'enforce', publicKey: './cosign.pub' },
    allowedImagePrefix: 'git.pic.ngo/roof/',
    dataDir: '/var/lib/pic/data',
    caddy: { adminAddress: 'localhost:2019', tls: { mode: 'acme', email: 'admin@alice.pic.ngo' } },
    dns: { address: '10.0.0.1', nameservers: ['ns1.alice.pic.ngo', '9.9.9.9'] },
  });
const service = (): Json => doc('ServiceInstall', { version: '1.0.0', config: { port: 8080, title: 'Notes', public: false }, egress: { connection: 'default' } }, 'notes');
const peer = (): Json => doc('PeerAccount', { services: ['notes', 'files'] });
const connection = (): Json => doc('Connection', { type: 'wireguard_ext', configFile: 'vpn-home.conf', failOpen: false }, 'vpn-home');

interface Case {
  name: string;
  base: () => Json;
  edit: (d: Json) => void;
}
interface FailCase extends Case {
  pointer: string;
  message: string;
}

function show(problems: Problem[]): string {
  return problems.map((p) => `${p.pointer}: ${p.message}`).join('\n');
}

function run(c: Case): Problem[] {
  const d = c.base();
  c.edit(d);
  return validateDocument(d, FILE);
}

const passing: Case[] = [
  { name: 'a ServiceInstall without version (the catalog version is admitted at the first install)', base: service, edit: (d) => delete d.spec.version },
  { name: 'a minimal Cell', base: cell, edit: () => {} },
  { name: 'a Cell with every field', base: fullCell, edit: () => {} },
  { name: 'a Cell with labels, annotations and a namespace', base: cell, edit: (d) => Object.assign(d.metadata, { namespace: 'pic', labels: { a: 'b' }, annotations: { 'pic.ngo/note': 'x' } }) },
  { name: 'a Cell with a partial network', base: cell, edit: (d) => (d.spec.network = { name: 'other' }) },
  { name: 'a Cell with another subnet and pool', base: cell, edit: (d) => (d.spec.network = { subnet: '10.1.0.0/24', servicePool: '10.1.0.10-10.1.0.200' }) },
  { name: 'a Cell with imageVerification off', base: cell, edit: (d) => (d.spec.imageVerification = { mode: 'off' }) },
  { name: 'a Cell with TLS internal and no DNS nameservers', base: cell, edit: (d) => Object.assign(d.spec, { caddy: { tls: { mode: 'internal' } }, dns: { address: '192.168.1.10' } }) },
  { name: 'a ServiceInstall with only a version', base: service, edit: (d) => (d.spec = { version: '2.1.0-rc.1' }) },
  { name: 'a ServiceInstall with every field', base: service, edit: () => {} },
  { name: 'a ServiceInstall egressing through a Connection', base: service, edit: (d) => (d.spec.egress.connection = 'vpn-home') },
  { name: 'a PeerAccount', base: peer, edit: () => {} },
  { name: 'a PeerAccount without services', base: peer, edit: (d) => (d.spec.services = []) },
  { name: 'a Connection', base: connection, edit: () => {} },
  ...['wireguard_ext', 'openvpn', 'tor', 'sshuttle', 'proxy'].map((type) => ({ name: `a Connection of type ${type}`, base: connection, edit: (d: Json) => (d.spec = { type }) })),
];

const failing: FailCase[] = [
  // every kind
  { name: 'a missing kind', base: cell, edit: (d) => delete d.kind, pointer: '/kind', message: 'one of Cell, ServiceInstall, PeerAccount, Connection' },
  { name: 'an unknown kind', base: cell, edit: (d) => (d.kind = 'Service'), pointer: '/kind', message: 'accepted kinds: Cell, ServiceInstall, PeerAccount, Connection' },
  { name: 'a kind in the wrong case', base: cell, edit: (d) => (d.kind = 'cell'), pointer: '/kind', message: 'not a kind pic knows' },
  { name: 'a kind that is not a string', base: cell, edit: (d) => (d.kind = 3), pointer: '/kind', message: 'not a kind pic knows' },
  { name: 'a missing apiVersion', base: cell, edit: (d) => delete d.apiVersion, pointer: '/apiVersion', message: 'apiVersion: pic.ngo/v1alpha1' },
  { name: 'another apiVersion', base: service, edit: (d) => (d.apiVersion = 'pic.ngo/v1'), pointer: '/apiVersion', message: 'the only accepted apiVersion is pic.ngo/v1alpha1' },
  { name: 'a wrong apiVersion on an unknown kind', base: cell, edit: (d) => Object.assign(d, { kind: 'Pod', apiVersion: 'v1' }), pointer: '/apiVersion', message: 'pic.ngo/v1alpha1' },
  { name: 'no metadata', base: peer, edit: (d) => delete d.metadata, pointer: '/metadata', message: 'is required' },
  { name: 'no name', base: peer, edit: (d) => (d.metadata = {}), pointer: '/metadata/name', message: 'is required' },
  { name: 'a name with capitals', base: peer, edit: (d) => (d.metadata.name = 'Alice'), pointer: '/metadata/name', message: 'DNS label' },
  { name: 'a name ending with a hyphen', base: peer, edit: (d) => (d.metadata.name = 'alice-'), pointer: '/metadata/name', message: 'DNS label' },
  { name: 'a name of 64 characters', base: peer, edit: (d) => (d.metadata.name = 'a'.repeat(64)), pointer: '/metadata/name', message: 'at most 63' },
  { name: 'an unknown metadata field', base: peer, edit: (d) => (d.metadata.nmae = 'x'), pointer: '/metadata/nmae', message: 'did you mean "name"' },
  { name: 'a label that is not a string', base: peer, edit: (d) => (d.metadata.labels = { a: 1 }), pointer: '/metadata/labels/a', message: 'must be a string' },
  { name: 'no spec', base: connection, edit: (d) => delete d.spec, pointer: '/spec', message: 'is required' },
  { name: 'a spec that is a list', base: connection, edit: (d) => (d.spec = []), pointer: '/spec', message: 'must be a mapping' },
  { name: 'a status in the document', base: connection, edit: (d) => (d.status = {}), pointer: '/status', message: 'not a known field' },
  { name: 'a spec of an unknown kind that is no mapping', base: cell, edit: (d) => Object.assign(d, { kind: 'Other', spec: 3 }), pointer: '/spec', message: 'must be a mapping' },
  // Cell
  { name: 'a Cell without domain', base: cell, edit: (d) => delete d.spec.domain, pointer: '/spec/domain', message: 'is required' },
  { name: 'a Cell domain with capitals', base: cell, edit: (d) => (d.spec.domain = 'Alice.pic.ngo'), pointer: '/spec/domain', message: 'lowercase DNS name' },
  { name: 'a Cell domain of one label', base: cell, edit: (d) => (d.spec.domain = 'localhost'), pointer: '/spec/domain', message: 'two labels or more' },
  { name: 'a Cell domain with a scheme', base: cell, edit: (d) => (d.spec.domain = 'https://alice.pic.ngo'), pointer: '/spec/domain', message: 'DNS name' },
  { name: 'a Cell without store', base: cell, edit: (d) => delete d.spec.store, pointer: '/spec/store', message: 'is required' },
  { name: 'a Cell with an empty store path', base: cell, edit: (d) => (d.spec.store.path = ''), pointer: '/spec/store/path', message: 'must not be empty' },
  { name: 'a Cell store with path and url', base: cell, edit: (d) => (d.spec.store.url = 'https://git.pic.ngo/roof/store/'), pointer: '/spec/store', message: 'gives both path and url' },
  { name: 'a Cell store with neither path nor url', base: cell, edit: (d) => (d.spec.store = {}), pointer: '/spec/store', message: 'needs path (a catalog folder) or url' },
  { name: 'a Cell store over plain http to a LAN host', base: cell, edit: (d) => (d.spec.store = { url: 'http://192.168.1.5/store/' }), pointer: '/spec/store/url', message: 'plain http is allowed only to a loopback address' },
  { name: 'a Cell store url with a password', base: cell, edit: (d) => (d.spec.store = { url: 'https://u:p@git.pic.ngo/store/' }), pointer: '/spec/store/url', message: 'user name or password' },
  { name: 'a folder store with a refresh interval', base: cell, edit: (d) => (d.spec.store.refreshSeconds = 600), pointer: '/spec/store/refreshSeconds', message: 'applies to a url store only' },
  { name: 'a url store refreshed every second', base: cell, edit: (d) => (d.spec.store = { url: 'http://127.0.0.1:8080/', refreshSeconds: 1 }), pointer: '/spec/store/refreshSeconds', message: '60' },
  { name: 'a Cell with a typo in spec', base: cell, edit: (d) => (d.spec.domian = 'x'), pointer: '/spec/domian', message: 'did you mean "domain"' },
  { name: 'a network name with a slash', base: cell, edit: (d) => (d.spec.network = { name: 'a/b' }), pointer: '/spec/network/name', message: 'Docker name' },
  { name: 'a subnet with prefix 33', base: cell, edit: (d) => (d.spec.network = { subnet: '172.20.0.0/33' }), pointer: '/spec/network/subnet', message: 'CIDR notation' },
  { name: 'a subnet without prefix', base: cell, edit: (d) => (d.spec.network = { subnet: '172.20.0.0' }), pointer: '/spec/network/subnet', message: 'CIDR notation' },
  { name: 'a subnet with host bits', base: cell, edit: (d) => (d.spec.network = { subnet: '172.20.0.1/16' }), pointer: '/spec/network/subnet', message: 'network of 172.20.0.1/16 is 172.20.0.0/16' },
  { name: 'a pool that is one address', base: cell, edit: (d) => (d.spec.network = { servicePool: '172.20.0.20' }), pointer: '/spec/network/servicePool', message: 'first-last' },
  { name: 'a pool with an octet of 256', base: cell, edit: (d) => (d.spec.network = { servicePool: '172.20.0.20-172.20.0.256' }), pointer: '/spec/network/servicePool', message: 'IPv4 range' },
  { name: 'a pool running backwards', base: cell, edit: (d) => (d.spec.network = { servicePool: '172.20.0.200-172.20.0.20' }), pointer: '/spec/network/servicePool', message: 'starts after it ends' },
  { name: 'a pool outside the subnet', base: cell, edit: (d) => (d.spec.network = { subnet: '10.0.0.0/24', servicePool: '10.0.1.10-10.0.1.20' }), pointer: '/spec/network/servicePool', message: 'not inside subnet 10.0.0.0/24' },
  { name: 'the default pool outside a custom subnet', base: cell, edit: (d) => (d.spec.network = { subnet: '10.0.0.0/24' }), pointer: '/spec/network/servicePool', message: 'the default service pool' },
  { name: 'a pool holding the gateway', base: cell, edit: (d) => (d.spec.network = { servicePool: '172.20.0.1-172.20.0.20' }), pointer: '/spec/network/servicePool', message: 'gateway 172.20.0.1' },
  { name: 'a pool holding the broadcast address', base: cell, edit: (d) => (d.spec.network = { subnet: '10.0.0.0/24', servicePool: '10.0.0.10-10.0.0.255' }), pointer: '/spec/network/servicePool', message: 'broadcast' },
  { name: 'an unknown network field', base: cell, edit: (d) => (d.spec.network = { gateway: '172.20.0.1' }), pointer: '/spec/network/gateway', message: 'not a known field' },
  { name: 'an unknown verification mode', base: cell, edit: (d) => (d.spec.imageVerification = { mode: 'strict' }), pointer: '/spec/imageVerification/mode', message: 'must be one of "off", "warn", "enforce"' },
  { name: 'an empty public key path', base: cell, edit: (d) => (d.spec.imageVerification = { publicKey: '' }), pointer: '/spec/imageVerification/publicKey', message: 'must not be empty' },
  { name: 'an empty allowed image prefix', base: cell, edit: (d) => (d.spec.allowedImagePrefix = ''), pointer: '/spec/allowedImagePrefix', message: 'registry path' },
  { name: 'a relative dataDir', base: cell, edit: (d) => (d.spec.dataDir = 'data'), pointer: '/spec/dataDir', message: 'absolute path' },
  { name: 'an unknown TLS mode', base: cell, edit: (d) => (d.spec.caddy = { tls: { mode: 'letsencrypt' } }), pointer: '/spec/caddy/tls/mode', message: 'must be one of "internal", "acme", "off"' },
  { name: 'an ACME e-mail without domain', base: cell, edit: (d) => (d.spec.caddy = { tls: { mode: 'acme', email: 'admin' } }), pointer: '/spec/caddy/tls/email', message: 'e-mail address' },
  { name: 'an empty Caddy admin address', base: cell, edit: (d) => (d.spec.caddy = { adminAddress: '' }), pointer: '/spec/caddy/adminAddress', message: 'must not be empty' },
  { name: 'a DNS address that is a name', base: cell, edit: (d) => (d.spec.dns = { address: 'alice.pic.ngo' }), pointer: '/spec/dns/address', message: 'IPv4 address' },
  { name: 'a name server listed twice', base: cell, edit: (d) => (d.spec.dns = { nameservers: ['ns1.a.b', 'ns1.a.b'] }), pointer: '/spec/dns/nameservers/1', message: 'may appear once' },
  { name: 'a name server with a space', base: cell, edit: (d) => (d.spec.dns = { nameservers: ['ns1 a'] }), pointer: '/spec/dns/nameservers/0', message: 'host name or an IPv4 address' },
  // ServiceInstall
  { name: 'a ServiceInstall version of two parts', base: service, edit: (d) => (d.spec.version = '1.0'), pointer: '/spec/version', message: 'semantic version' },
  { name: 'a ServiceInstall version with a v', base: service, edit: (d) => (d.spec.version = 'v1.0.0'), pointer: '/spec/version', message: 'semantic version' },
  { name: 'a ServiceInstall version that is a number', base: service, edit: (d) => (d.spec.version = 1), pointer: '/spec/version', message: 'must be a string' },
  { name: 'a config value that is a mapping', base: service, edit: (d) => (d.spec.config.port = { value: 1 }), pointer: '/spec/config/port', message: 'must be a string, an integer or a boolean' },
  { name: 'a config value that is a list', base: service, edit: (d) => (d.spec.config.port = [1]), pointer: '/spec/config/port', message: 'must be a string, an integer or a boolean' },
  { name: 'a fractional config value', base: service, edit: (d) => (d.spec.config.port = 1.5), pointer: '/spec/config/port', message: 'must be a string, an integer or a boolean' },
  { name: 'a config that is a list', base: service, edit: (d) => (d.spec.config = []), pointer: '/spec/config', message: 'must be a mapping' },
  { name: 'an egress without connection', base: service, edit: (d) => (d.spec.egress = {}), pointer: '/spec/egress/connection', message: 'is required' },
  { name: 'an egress connection with a space', base: service, edit: (d) => (d.spec.egress.connection = 'vpn home'), pointer: '/spec/egress/connection', message: 'DNS label' },
  { name: 'an unknown ServiceInstall field', base: service, edit: (d) => (d.spec.versoin = '1.0.0'), pointer: '/spec/versoin', message: 'did you mean "version"' },
  // PeerAccount
  { name: 'a PeerAccount without services', base: peer, edit: (d) => (d.spec = {}), pointer: '/spec/services', message: 'is required' },
  { name: 'services as a string', base: peer, edit: (d) => (d.spec.services = 'notes'), pointer: '/spec/services', message: 'must be a list' },
  { name: 'a service listed twice', base: peer, edit: (d) => (d.spec.services = ['notes', 'files', 'notes']), pointer: '/spec/services/2', message: 'repeats entry 0' },
  { name: 'a service id with capitals', base: peer, edit: (d) => (d.spec.services = ['Notes']), pointer: '/spec/services/0', message: 'lowercase letter' },
  { name: 'an unknown PeerAccount field', base: peer, edit: (d) => (d.spec.password = 'x'), pointer: '/spec/password', message: 'not a known field' },
  // Connection
  { name: 'a Connection without type', base: connection, edit: (d) => delete d.spec.type, pointer: '/spec/type', message: 'is required' },
  { name: 'a Connection of type default', base: connection, edit: (d) => (d.spec.type = 'default'), pointer: '/spec/type', message: 'must be one of "wireguard_ext", "openvpn", "tor", "sshuttle", "proxy"' },
  { name: 'a Connection of type wireguard', base: connection, edit: (d) => (d.spec.type = 'wireguard'), pointer: '/spec/type', message: 'must be one of' },
  { name: 'the interface of the old in-container egress', base: connection, edit: (d) => (d.spec.interface = 'wg_ext0'), pointer: '/spec/interface', message: 'not a known field' },
  { name: 'an empty configFile', base: connection, edit: (d) => (d.spec.configFile = ''), pointer: '/spec/configFile', message: 'must not be empty' },
  { name: 'a service id that is not one', base: connection, edit: (d) => (d.spec.service = 'Exit_WG'), pointer: '/spec/service', message: 'must be a lowercase letter' },
  { name: 'failOpen as a string', base: connection, edit: (d) => (d.spec.failOpen = 'no'), pointer: '/spec/failOpen', message: 'must be a boolean' },
  { name: 'an unknown Connection field', base: connection, edit: (d) => (d.spec.failopen = true), pointer: '/spec/failopen', message: 'did you mean "failOpen"' },
];

describe('validateDocument accepts', () => {
  test.each(passing.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(show(run(c))).toBe('');
  });
});

describe('validateDocument refuses', () => {
  test.each(failing.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const problems = run(c);
    const hit = problems.find((p) => p.pointer === c.pointer && p.message.includes(c.message));
    if (!hit) throw new Error(`expected ${c.pointer}: …${c.message}… among:\n${show(problems)}`);
    expect(hit.file).toBe(FILE);
  });
});

describe('validateDocument as a whole', () => {
  test.each([null, undefined, 'Cell', 42, ['a'], true])('refuses %j as a document', (value) => {
    expect(validateDocument(value, FILE)).toEqual([{ file: FILE, pointer: '', message: expect.stringContaining('must be a mapping with apiVersion, kind, metadata and spec') }]);
  });

  test('an unknown kind is one problem, not a schema dump', () => {
    const problems = validateDocument(doc('Service', { version: '1.0.0' }), FILE);
    expect(problems).toEqual([{ file: FILE, pointer: '/kind', message: expect.stringContaining('Cell, ServiceInstall, PeerAccount, Connection') }]);
  });

  test('a wrong apiVersion is said once', () => {
    const d = service();
    d.apiVersion = 'v1';
    expect(validateDocument(d, FILE).filter((p) => p.pointer === '/apiVersion')).toHaveLength(1);
  });

  test('reports every problem at once', () => {
    const d = cell();
    d.metadata.name = 'Bad';
    delete d.spec.store;
    d.spec.network = { subnet: 'x' };
    expect(validateDocument(d, FILE).map((p) => p.pointer).sort()).toEqual(['/metadata/name', '/spec/network/subnet', '/spec/store']);
  });

  test('puts the pointer prefix in front of every pointer', () => {
    const d = connection();
    d.spec.type = 'nope';
    d.metadata.name = 'X';
    const problems = validateDocument(d, FILE, '/3');
    expect(problems.map((p) => p.pointer).sort()).toEqual(['/3/metadata/name', '/3/spec/type']);
    expect(validateDocument(null, FILE, '/3')[0]!.pointer).toBe('/3');
  });

  test('does not change the document it checks', () => {
    const d = cell();
    const before = JSON.stringify(d);
    validateDocument(d, FILE);
    expect(JSON.stringify(d)).toBe(before);
  });

  test('documentKindOf names only known kinds', () => {
    expect(documentKindOf(cell())).toBe('Cell');
    expect(documentKindOf({ kind: 'Pod' })).toBeUndefined();
    expect(documentKindOf(null)).toBeUndefined();
  });
});

describe('applyDocumentDefaults', () => {
  test('fills the Cell network, verification mode and image prefix', () => {
    const d = cell();
    const before = JSON.stringify(d);
    const filled = applyDocumentDefaults(d);
    expect(filled.spec).toEqual({
      domain: 'alice.pic.ngo',
      store: { path: './store' },
      network: { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' },
      imageVerification: { mode: 'enforce' },
      allowedImagePrefix: 'git.pic.ngo/roof/',
    });
    expect(JSON.stringify(d)).toBe(before);
  });

  test('completes a partial network and keeps what is given', () => {
    const d = cell();
    d.spec.network = { subnet: '10.1.0.0/24' };
    d.spec.imageVerification = { publicKey: './k.pub' };
    const filled = applyDocumentDefaults(d);
    expect(filled.spec.network).toEqual({ name: 'cell-network', subnet: '10.1.0.0/24', servicePool: '172.20.0.20-172.20.0.254' });
    expect(filled.spec.imageVerification).toEqual({ publicKey: './k.pub', mode: 'enforce' });
  });

  test('sets failOpen false on a Connection', () => {
    expect(applyDocumentDefaults(doc('Connection', { type: 'tor' })).spec).toEqual({ type: 'tor', failOpen: false });
    expect(applyDocumentDefaults(doc('Connection', { type: 'tor', failOpen: true })).spec.failOpen).toBe(true);
  });

  test('a filled document still validates', () => {
    for (const d of [cell(), fullCell(), service(), peer(), connection()]) expect(validateDocument(applyDocumentDefaults(d), FILE)).toEqual([]);
  });

  test('leaves documents of unknown kinds and non-documents as copies', () => {
    const d = { kind: 'Pod', spec: { a: [1] } };
    const filled = applyDocumentDefaults(d);
    expect(filled).toEqual(d);
    expect(filled).not.toBe(d);
    expect(filled.spec).not.toBe(d.spec);
    expect(applyDocumentDefaults(null)).toBeNull();
    expect(applyDocumentDefaults('x')).toBe('x');
  });
});
