import type { CellObject, Manifest, Sourced } from '../../crds/types.js';
import { allProblems, checkDesiredState, type CatalogView } from '../../state/check-desired.js';
import type { DesiredDocuments } from '../../state/desired.js';

function manifest(id: string, over: Partial<Manifest> = {}): Manifest {
  return {
    schema_version: 3,
    kind: 'store',
    id,
    name: id,
    description: `${id} service`,
    version: '1.0.0',
    author: 'test',
    capabilities: { has_subdomain: true, has_accounts: true, has_admin_config: true, has_storage: false, has_egress: true, has_api_hooks: false },
    subdomain: id,
    backend: `cell-${id}:80`,
    accounts: { manager: 'http', credentials: ['password'] },
    peer_config_template: { username: '{peer.username}' },
    config_schema: { port: { type: 'integer', label: 'Port', default: 80, min: 1, max: 65535 } },
    egress: { default: 'default', allowed: ['default', 'tor'] },
    image: `git.pic.ngo/roof/pic-${id}@sha256:${'a'.repeat(64)}`,
    container_name: `cell-${id}`,
    ...over,
  };
}

const catalog: CatalogView = {
  location: 'store',
  manifests: new Map([
    ['notes', manifest('notes')],
    ['wiki', manifest('wiki', { subdomain: 'notes' })],
    ['homepage', manifest('homepage', { capabilities: { has_subdomain: true, has_accounts: false, has_admin_config: false, has_storage: false, has_egress: false, has_api_hooks: false } })],
    ['newer', manifest('newer', { version: '2.0.0', subdomain: 'newer' })],
    ['exit-tor', manifest('exit-tor', { container_name: 'cell-tor-${INSTANCE_ID}', connectivity: { provides: 'tor' }, capabilities: { has_subdomain: false, has_accounts: false, has_admin_config: false, has_storage: false, has_egress: false, has_api_hooks: false } })],
  ]),
  invalid: new Map([['broken', [{ file: 'store/services/broken/manifest.json', pointer: '/image', message: 'bad image' }]]]),
};

let fileNo = 0;
function src<T extends CellObject>(doc: T): Sourced<T> {
  fileNo += 1;
  return { file: `f${fileNo}.yaml`, index: 0, doc };
}
const cellDoc = () => src({ apiVersion: 'pic.ngo/v1alpha1', kind: 'Cell', metadata: { name: 'c' }, spec: { domain: 'c.test', store: { path: 'store' }, network: { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' }, imageVerification: { mode: 'warn' }, allowedImagePrefix: 'git.pic.ngo/roof/' } } as const);
const svc = (name: string, spec: Record<string, unknown> = {}) => src({ apiVersion: 'pic.ngo/v1alpha1', kind: 'ServiceInstall', metadata: { name }, spec: { version: '1.0.0', ...spec } });
const peer = (name: string, services: string[]) => src({ apiVersion: 'pic.ngo/v1alpha1', kind: 'PeerAccount', metadata: { name }, spec: { services } });
const conn = (name: string, type: string) => src({ apiVersion: 'pic.ngo/v1alpha1', kind: 'Connection', metadata: { name }, spec: { type } } as CellObject);

function docs(...items: Sourced<CellObject>[]): DesiredDocuments {
  const d: DesiredDocuments = { dir: 'cell', cells: [], services: [], peers: [], connections: [], rejected: [], problems: [], notices: [], unreadable: [], files: [] };
  for (const i of items) {
    if (i.doc.kind === 'Cell') d.cells.push(i as never);
    if (i.doc.kind === 'ServiceInstall') d.services.push(i as never);
    if (i.doc.kind === 'PeerAccount') d.peers.push(i as never);
    if (i.doc.kind === 'Connection') d.connections.push(i as never);
  }
  return d;
}

describe('checkDesiredState', () => {
  test('a consistent cell has no problems and merged configs', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('notes', { config: { port: 8080 }, egress: { connection: 'anon' } }), svc('homepage'), peer('alice', ['notes']), conn('anon', 'tor')), catalog);
    expect(allProblems(r)).toEqual([]);
    expect(r.configs.get('notes')).toEqual({ port: 8080 });
    expect(r.configs.get('homepage')).toEqual({});
  });

  test.each([
    ['no Cell', () => docs(svc('notes')), undefined, '', 'no Cell document'],
    ['two Cells', () => docs(cellDoc(), cellDoc()), 'Cell/c', '/kind', 'a second Cell'],
    ['unknown service', () => docs(cellDoc(), svc('nope')), 'ServiceInstall/nope', '/metadata/name', 'no service "nope" in the catalog at store; it offers: homepage, newer, notes, wiki'],
    ['broken catalog package', () => docs(cellDoc(), svc('broken')), 'ServiceInstall/broken', '/metadata/name', 'catalog package of "broken" is invalid (1 problem; first: store/services/broken/manifest.json: /image: bad image)'],
    ['version newer than catalog', () => docs(cellDoc(), svc('notes', { version: '1.2.0' })), 'ServiceInstall/notes', '/spec/version', 'not in the catalog, which offers 1.0.0'],
    ['config out of range', () => docs(cellDoc(), svc('notes', { config: { port: 0 } })), 'ServiceInstall/notes', '/spec/config/port', 'at least 1'],
    ['subdomain claimed twice', () => docs(cellDoc(), svc('notes'), svc('wiki')), 'ServiceInstall/wiki', '/metadata/name', 'subdomain "notes" is already claimed by ServiceInstall/notes'],
    ['egress to a missing connection', () => docs(cellDoc(), svc('notes', { egress: { connection: 'vpn' } })), 'ServiceInstall/notes', '/spec/egress/connection', 'no Connection named "vpn"'],
    ['egress type not allowed', () => docs(cellDoc(), svc('notes', { egress: { connection: 'vpn' } }), conn('vpn', 'openvpn')), 'ServiceInstall/notes', '/spec/egress/connection', 'type openvpn, which "notes" does not allow (allowed: default, tor)'],
    ['egress on a service without has_egress', () => docs(cellDoc(), svc('homepage', { egress: { connection: 'vpn' } }), conn('vpn', 'tor')), 'ServiceInstall/homepage', '/spec/egress/connection', 'has_egress is false'],
    ['peer lists a service not installed', () => docs(cellDoc(), svc('notes'), peer('bob', ['notes', 'files'])), 'PeerAccount/bob', '/spec/services/1', '"files" is not installed'],
    ['peer lists a service without accounts', () => docs(cellDoc(), svc('homepage'), peer('bob', ['homepage'])), 'PeerAccount/bob', '/spec/services/0', 'has no per-peer accounts'],
    ['duplicate names', () => docs(cellDoc(), svc('notes'), svc('notes')), 'ServiceInstall/notes', '/metadata/name', 'defined twice'],
  ])('%s', (_name, build, key, pointer, fragment) => {
    const r = checkDesiredState(build(), catalog);
    const list = key ? r.byDocument.get(key) ?? [] : r.general;
    expect(list).toEqual(expect.arrayContaining([expect.objectContaining({ pointer, message: expect.stringContaining(fragment) })]));
  });

  test('a connectivity service is no ServiceInstall: it runs as a Connection\'s exit', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('exit-tor')), catalog);
    expect(r.byDocument.get('ServiceInstall/exit-tor')).toEqual([expect.objectContaining({ pointer: '/metadata/name', message: expect.stringMatching(/runs as the exit of a Connection.*type: tor/) })]);
  });

  test('a version lower than the catalog offers is refused, pointing at the one it offers', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('newer', { version: '1.0.0' })), { ...catalog, admitted: new Map() });
    expect(allProblems(r)).toEqual([
      expect.objectContaining({ pointer: '/spec/version', message: expect.stringContaining('not in the catalog, which offers 2.0.0; nothing of this service was admitted before, so only 2.0.0 can be installed') }),
    ]);
  });

  test('a service with a problem gets no merged config; the others still do', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('notes', { config: { port: 'x' } }), svc('homepage')), catalog);
    expect(r.configs.has('notes')).toBe(false);
    expect(r.configs.has('homepage')).toBe(true);
  });

  test('without a catalog only catalog-free checks run', () => {
    const r = checkDesiredState(docs(svc('nope'), peer('a', ['zzz'])));
    expect(r.byDocument.size).toBe(0);
  });
});

describe('checkDesiredState with admitted versions', () => {
  test('without the operator state (pic validate), an older version is a notice, not a problem', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('newer', { version: '1.0.0' })), catalog);
    expect(allProblems(r)).toEqual([]);
    expect(r.versions.get('newer')).toEqual({ kind: 'unchecked', version: '1.0.0', offered: '2.0.0' });
    expect(r.notices.get('ServiceInstall/newer')).toEqual([expect.stringContaining('right only if 1.0.0 is the version admitted before')]);
  });

  // "newer": the catalog offers 2.0.0; 1.0.0 was admitted, with another config schema and subdomain.
  const admittedNotes = manifest('newer', { version: '1.0.0', subdomain: 'older', config_schema: { legacy: { type: 'string', label: 'Legacy', default: 'x' } } });
  const withAdmitted: CatalogView = { ...catalog, admitted: new Map([['newer', { version: '1.0.0', manifest: admittedNotes }]]), picVersion: '0.1.0' };

  test('the admitted version is fine while the catalog moved on: a notice, and the admitted manifest is checked', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('newer', { version: '1.0.0' })), withAdmitted);
    expect(allProblems(r)).toEqual([]);
    expect(r.versions.get('newer')).toEqual({ kind: 'admitted', version: '1.0.0', update: '2.0.0' });
    expect(r.notices.get('ServiceInstall/newer')).toEqual([expect.stringContaining('version 2.0.0 is in the catalog (admitted: 1.0.0)')]);
    expect(r.configs.get('newer')).toEqual({ legacy: 'x' });
  });

  test('the newer catalog version is an upgrade, checked against the new manifest', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('newer', { version: '2.0.0' })), withAdmitted);
    expect(allProblems(r)).toEqual([]);
    expect(r.versions.get('newer')).toEqual({ kind: 'upgrade', from: '1.0.0', to: '2.0.0' });
    expect(r.configs.get('newer')).toEqual({ port: 80 });
  });

  test('another version is refused at /spec/version, naming both', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('newer', { version: '1.5.0' })), withAdmitted);
    expect(allProblems(r)).toEqual([expect.objectContaining({ pointer: '/spec/version', message: expect.stringMatching(/admitted version 1\.0\.0.*offers 2\.0\.0/) })]);
  });

  test('an admitted service the catalog dropped keeps running', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('gone')), { ...catalog, admitted: new Map([['gone', { version: '1.0.0', manifest: manifest('gone') }]]) });
    expect(allProblems(r)).toEqual([]);
    expect(r.versions.get('gone')).toEqual({ kind: 'admitted', version: '1.0.0' });
  });

  test('a kept package that cannot be trusted is a problem of the document', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('notes')), { ...catalog, admitted: new Map(), admittedProblems: new Map([['notes', 'packages/notes/1.0.0/manifest.json does not match the sha256 recorded']]) });
    expect(allProblems(r)).toEqual([expect.objectContaining({ pointer: '/metadata/name', message: expect.stringContaining('does not match the sha256') })]);
  });

  test('a package needing a newer pic is refused at admission, naming min_pic_version', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('notes')), { ...catalog, manifests: new Map([['notes', manifest('notes', { min_pic_version: '5.0' })]]), manifestFiles: new Map([['notes', 'store/services/notes/manifest.json']]), picVersion: '0.1.0' });
    expect(allProblems(r)).toEqual([expect.objectContaining({ pointer: '/spec/version', message: expect.stringContaining('store/services/notes/manifest.json: /min_pic_version') })]);
  });
});
