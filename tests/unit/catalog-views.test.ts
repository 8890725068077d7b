import type { Manifest } from '../../crds/types.js';
import { catalogRows, renderCatalogTable, renderExposureText, serviceExposure, type ExposureInputs, type ServiceExposure } from '../../controllers/cli/catalog-views.js';
import { corePortsOf } from '../../reconcilers/containers/desired.js';
import type { ServicePlan } from '../../reconcilers/containers/types.js';
import { catalogService, type CatalogService } from '../../state/catalog.js';

const MANIFEST: Manifest = {
  schema_version: 3,
  kind: 'store',
  id: 'mail',
  name: 'Mail',
  description: 'Mailboxes',
  version: '1.2.0',
  author: 'someone',
  capabilities: { has_subdomain: true, has_accounts: true, has_admin_config: false, has_storage: true, has_egress: true, has_api_hooks: false },
  subdomain: 'mail',
  backend: 'cell-mail:8080',
  accounts: { manager: 'email_manager', credentials: ['password', 'imap_password'] },
  peer_config_template: { imap: 'mail.{domain}', password: '{peer.service_credentials.mail.password}' },
  backup: { volumes: [{ container: 'cell-mail', path: '/var/mail', name: 'mail' }], config_paths: [] },
  storage: { primary_path: 'mail', quota_mb: null },
  egress: { default: 'default', allowed: ['default', 'tor'] },
  image: 'git.pic.ngo/roof/mail:1',
  container_name: 'cell-mail',
  volumes: [{ name: 'mail-data', mount: '/var/mail' }],
  iptables_rules: [
    { type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: 993 },
    { type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: 587, proto: 'tcp' },
  ],
};

/** A rendered plan: one container publishing the given host ports ("25/tcp" → container port 2525). */
function planWith(ports: string[], extra: Partial<ServicePlan> = {}): ServicePlan {
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of ports) {
    const [host, proto] = p.split('/');
    bindings[`8${host}/${proto}`] = [{ HostIp: '', HostPort: host! }];
  }
  return {
    containers: [{ name: 'cell-mail', create: { Image: 'git.pic.ngo/roof/mail:1', HostConfig: { PortBindings: bindings } }, dependsOn: [], specHash: 'x' }],
    volumes: [{ name: 'pic-demo-mail-maildir', labels: { 'ngo.pic.volume': 'maildir' } }],
    ...extra,
  };
}

const BASE: ExposureInputs = {
  manifest: MANIFEST,
  installScript: false,
  plan: planWith([]),
  problems: [],
  catalogDir: '/store',
  cell: { domain: 'home.test' },
  corePorts: corePortsOf(undefined),
};

describe('serviceExposure: what installing a package opens', () => {
  test.each<[string, Partial<ExposureInputs>, Partial<ServiceExposure>]>([
    [
      'a web service on a cell: its host name, peer ports, accounts, volumes; nothing published',
      {},
      {
        installed: false,
        subdomains: [{ subdomain: 'mail', role: 'primary', backend: 'cell-mail:8080', host: 'mail.home.test' }],
        hostPorts: [],
        peerPorts: ['993/tcp', '587/tcp'],
        egress: { default: 'default', allowed: ['default', 'tor'] },
        accounts: { manager: 'email_manager', credentials: ['password', 'imap_password'], peerConfig: ['imap', 'password'] },
        capabilities: [],
        volumes: { template: [{ key: 'maildir', dockerName: 'pic-demo-mail-maildir' }], manifest: [{ name: 'mail-data', mount: '/var/mail' }], backup: [{ container: 'cell-mail', path: '/var/mail', name: 'mail' }] },
        containers: ['cell-mail'],
        images: ['git.pic.ngo/roof/mail:1'],
      },
    ],
    ['without a cell: no host names, installed unknown', { cell: undefined }, { installed: null, subdomains: [{ subdomain: 'mail', role: 'primary', backend: 'cell-mail:8080' }] }],
    [
      'a published port without an install: it needs consent',
      { plan: planWith(['25/tcp']) },
      { hostPorts: [{ port: '25/tcp', hostIp: '', container: 'cell-mail', containerPort: '825', verdict: 'needs-consent', note: 'needs spec.publish: ["25/tcp"] in ServiceInstall/mail' }] },
    ],
    [
      'installed without consent to it: still needs it',
      { plan: planWith(['25/tcp']), install: { publish: ['26/tcp', '25/udp'] } },
      { installed: true, hostPorts: [{ port: '25/tcp', hostIp: '', container: 'cell-mail', containerPort: '825', verdict: 'needs-consent', note: 'needs spec.publish: ["25/tcp"] in ServiceInstall/mail' }] },
    ],
    [
      'installed with consent: consented',
      { plan: planWith(['25/tcp']), install: { publish: ['25/tcp'] } },
      { installed: true, hostPorts: [{ port: '25/tcp', hostIp: '', container: 'cell-mail', containerPort: '825', verdict: 'consented', note: 'consented' }] },
    ],
    [
      'a core port is refused, consent or not',
      { plan: planWith(['53/udp']), install: { publish: ['53/udp'] } },
      { hostPorts: [{ port: '53/udp', hostIp: '', container: 'cell-mail', containerPort: '853', verdict: 'core', note: 'refused: a core port (DNS)' }] },
    ],
    [
      'a template that does not render: ports unknown, the manifest\'s container and image, problems relative to the catalog',
      { plan: undefined, problems: [{ file: '/store/services/mail/compose-template.yml', pointer: '/services', message: 'bad' }] },
      { hostPorts: null, containers: ['cell-mail'], images: ['git.pic.ngo/roof/mail:1'], volumes: { template: [], manifest: [{ name: 'mail-data', mount: '/var/mail' }], backup: [{ container: 'cell-mail', path: '/var/mail', name: 'mail' }] }, problems: ['services/mail/compose-template.yml: /services: bad'] },
    ],
    [
      'aliases, own backends and the web route each with their role',
      { manifest: { ...MANIFEST, extra_subdomains: ['webmail'], extra_backends: { smtp: 'cell-smtp:25' }, caddy_route: { subdomain: 'inbox' } } },
      {
        subdomains: [
          { subdomain: 'mail', role: 'primary', backend: 'cell-mail:8080', host: 'mail.home.test' },
          { subdomain: 'webmail', role: 'extra', backend: 'cell-mail:8080', host: 'webmail.home.test' },
          { subdomain: 'smtp', role: 'extra backend', backend: 'cell-smtp:25', host: 'smtp.home.test' },
          { subdomain: 'inbox', role: 'web route', backend: 'cell-mail:8080', host: 'inbox.home.test' },
        ],
      },
    ],
    [
      'a connectivity service: its capabilities; no subdomain, accounts or egress declared',
      { manifest: { ...MANIFEST, capabilities: { ...MANIFEST.capabilities, has_subdomain: false, has_accounts: false, has_egress: false }, connectivity: { provides: 'wireguard_ext', cap_add: ['NET_ADMIN'] } } },
      { subdomains: [], accounts: null, egress: null, capabilities: ['NET_ADMIN'] },
    ],
    ['install.sh shipped', { installScript: true }, { installScript: true }],
  ])('%s', (_name, change, expected) => {
    expect(serviceExposure({ ...BASE, ...change })).toMatchObject(expected);
  });

  test('the text escapes what the package wrote', () => {
    const text = renderExposureText(serviceExposure({ ...BASE, manifest: { ...MANIFEST, description: 'evil\u001b[2J\rReady\u202e' } }));
    expect(text).toContain('Description:        evil\\e[2J\\rReady\\u{202e}');
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u202e]/);
  });
});

function pkg(manifest: Manifest): CatalogService {
  return catalogService({ id: manifest.id, dir: `/store/services/${manifest.id}`, manifestFile: '', templateFile: '', manifest, template: '' });
}

describe('catalogRows', () => {
  const catalog = {
    dir: '/store',
    services: new Map([
      ['mail', pkg(MANIFEST)],
      ['notes', pkg({ ...MANIFEST, id: 'notes', name: 'Notes', version: '1.0.0' })],
    ]),
    invalid: new Map([['broken', [{ file: '/store/services/broken/manifest.json', pointer: '/version', message: 'not semver' }, { file: 'x', pointer: '', message: 'second' }]]]),
  };

  test.each<[string, Parameters<typeof catalogRows>[1], object[]]>([
    [
      'without cell or state: installed, admitted and update unknown; a broken package with its first problem',
      {},
      [
        { id: 'broken', name: null, catalogVersion: null, installed: null, admitted: null, update: null, problem: 'services/broken/manifest.json: /version: not semver' },
        { id: 'mail', name: 'Mail', catalogVersion: '1.2.0', installed: null, admitted: null, update: null },
        { id: 'notes', name: 'Notes', catalogVersion: '1.0.0', installed: null, admitted: null, update: null },
      ],
    ],
    [
      'with a cell and its admitted versions: an older admitted version is an update, the same is none',
      { installed: new Set(['mail', 'notes']), admitted: new Map([['mail', '1.1.9'], ['notes', '1.0.0']]) },
      [
        { id: 'broken', installed: false, admitted: null, update: null },
        { id: 'mail', installed: true, admitted: '1.1.9', update: true },
        { id: 'notes', installed: true, admitted: '1.0.0', update: false },
      ],
    ],
    ['installed but not yet admitted: no update to speak of', { installed: new Set(['mail']), admitted: new Map() }, [{ id: 'broken' }, { id: 'mail', installed: true, admitted: null, update: null }, { id: 'notes', installed: false }]],
  ])('%s', (_name, facts, expected) => {
    expect(catalogRows(catalog, facts)).toMatchObject(expected);
  });

  test('the table: one row each, "-" for what is not known', () => {
    expect(renderCatalogTable(catalogRows(catalog, {})).split('\n')).toEqual([
      'ID       NAME    CATALOG VERSION   INSTALLED   ADMITTED   UPDATE   PROBLEM',
      'broken   -       -                 -           -          -        services/broken/manifest.json: /version: not semver',
      'mail     Mail    1.2.0             -           -          -',
      'notes    Notes   1.0.0             -           -          -',
    ]);
  });
});
