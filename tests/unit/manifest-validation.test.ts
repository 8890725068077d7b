import {
  DEFAULT_MANIFEST_POLICY,
  FORBIDDEN_MOUNTS,
  manifestSubdomains,
  validateManifest,
  type ManifestPolicy,
} from '../../crds/validate-manifest.js';
import { ACCOUNT_MANAGERS, type Manifest, type Problem } from '../../crds/types.js';

type Json = Record<string, any>;

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const FILE = 'catalog/services/notes/manifest.json';

/** A manifest that uses every capability and passes every rule. */
function validManifest(): Json {
  return {
    schema_version: 3,
    id: 'notes',
    name: 'Notes',
    description: 'Markdown notes with full-text search.',
    version: '1.0.0',
    author: 'acme',
    kind: 'store',
    min_pic_version: '1.0',
    capabilities: { has_subdomain: true, has_accounts: true, has_admin_config: true, has_storage: true, has_egress: true, has_api_hooks: false },
    subdomain: 'notes',
    extra_subdomains: ['memo'],
    backend: 'cell-notes:8080',
    extra_backends: { 'notes-dav': 'cell-notes-dav:8081' },
    containers: ['cell-notes', 'cell-notes-dav'],
    config_schema: {
      port: { type: 'integer', label: 'Internal HTTP port', default: 8080, min: 1, max: 65535 },
      title: { type: 'string', label: 'Site title', default: 'My notes' },
      public: { type: 'boolean', label: 'Public', required: false, default: false },
    },
    peer_config_template: {
      url: 'https://notes.{domain}/',
      username: '{peer.username}',
      password: '{peer.service_credentials.notes.password}',
      port: '{config.port}',
    },
    accounts: { manager: 'http', credentials: ['password'] },
    compose: null,
    backup: { volumes: [{ container: 'cell-notes', path: '/data/notes', name: 'notes_data' }], config_paths: ['notes/config'] },
    storage: { primary_path: 'data/notes', quota_mb: null },
    egress: { default: 'default', allowed: ['default', 'wireguard_ext', 'tor'] },
    image: `git.pic.ngo/roof/pic-notes@${DIGEST}`,
    container_name: 'cell-notes',
    volumes: [{ name: 'notes-data', mount: '/data/notes' }],
    env: [
      { key: 'NOTES_SECRET', value: '${PIC_SECRET_NOTES_SECRET}' },
      { key: 'NOTES_URL', value: 'https://notes.${PIC_DOMAIN}:${PIC_CFG_PORT}/' },
    ],
    iptables_rules: [{ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: 8080, proto: 'tcp' }],
    caddy_route: { subdomain: 'notes' },
  };
}

/** The quick-start shape: a subdomain and nothing else. */
function minimalManifest(): Json {
  return {
    schema_version: 3,
    id: 'homepage',
    name: 'Homepage',
    description: 'A static homepage.',
    version: '1.0.0',
    author: 'acme',
    kind: 'store',
    capabilities: { has_subdomain: false, has_accounts: false, has_admin_config: false, has_storage: false, has_egress: false, has_api_hooks: false },
    image: `git.pic.ngo/roof/pic-homepage@${DIGEST}`,
    container_name: 'cell-homepage',
  };
}

const WARN: ManifestPolicy = { allowedImagePrefix: 'git.pic.ngo/roof/', imageVerification: 'warn' };
const OFF: ManifestPolicy = { allowedImagePrefix: 'git.pic.ngo/roof/', imageVerification: 'off' };

interface Case {
  name: string;
  edit: (m: Json) => void;
  base?: () => Json;
  policy?: ManifestPolicy;
}
interface FailCase extends Case {
  pointer: string;
  message: string;
}

function run(c: Case): Problem[] {
  const m = (c.base ?? validManifest)();
  c.edit(m);
  return validateManifest(m, FILE, c.policy ?? DEFAULT_MANIFEST_POLICY);
}

function show(problems: Problem[]): string {
  return problems.map((p) => `${p.pointer}: ${p.message}`).join('\n');
}

const passing: Case[] = [
  { name: 'the full manifest', edit: () => {} },
  { name: 'the minimal manifest', base: minimalManifest, edit: () => {} },
  { name: 'the quick-start manifest with a subdomain', base: minimalManifest, edit: (m) => Object.assign(m, { subdomain: 'home', extra_subdomains: [], backend: 'cell-homepage:80', caddy_route: { subdomain: 'home' } }) },
  { name: 'direct subdomains among its own', edit: (m) => (m.direct_subdomains = ['notes', 'memo']) },
  { name: 'a prerelease version', edit: (m) => (m.version = '1.2.3-beta.1+build.5') },
  { name: 'no min_pic_version', edit: (m) => delete m.min_pic_version },
  { name: 'min_pic_version as full semver', edit: (m) => (m.min_pic_version = '1.4.2') },
  { name: 'an id with digits and hyphens', edit: (m) => {
    m.id = 'my-notes2';
    m.peer_config_template.password = '{peer.service_credentials.my-notes2.password}';
    m.backup.config_paths = ['my-notes2/config'];
  } },
  { name: 'has_subdomain false without subdomain or backend', edit: (m) => {
    m.capabilities.has_subdomain = false;
    for (const k of ['subdomain', 'extra_subdomains', 'backend', 'extra_backends', 'caddy_route']) delete m[k];
  } },
  { name: 'caddy_route repeating the primary subdomain', edit: (m) => (m.caddy_route = { subdomain: 'notes' }) },
  { name: 'backend port 1', edit: (m) => (m.backend = 'cell-notes:1') },
  { name: 'backend port 65535', edit: (m) => (m.backend = 'cell-notes:65535') },
  ...ACCOUNT_MANAGERS.map((manager) => ({ name: `account manager ${manager}`, edit: (m: Json) => (m.accounts.manager = manager) })),
  { name: 'several credentials used in the template', edit: (m) => {
    m.accounts.credentials = ['password', 'api_token'];
    m.peer_config_template.token = 'Bearer {peer.service_credentials.notes.api_token}';
  } },
  { name: 'a template with several tokens in one value', edit: (m) => (m.peer_config_template.url = 'https://{peer.username}@notes.{domain}:{config.port}/') },
  { name: 'has_admin_config false without config_schema', edit: (m) => {
    m.capabilities.has_admin_config = false;
    delete m.config_schema;
    delete m.peer_config_template.port;
    m.env = [{ key: 'NOTES_SECRET', value: '${PIC_SECRET_NOTES_SECRET}' }];
  } },
  { name: 'an integer default equal to min and max', edit: (m) => (m.config_schema.port = { type: 'integer', label: 'Port', default: 5, min: 5, max: 5 }) },
  { name: 'a config field without default', edit: (m) => (m.config_schema.title = { type: 'string', label: 'Title', required: true }) },
  { name: 'a config_paths entry with a harmless ..', edit: (m) => (m.backup.config_paths = ['notes/x/../config', 'config/../notes/data/']) },
  { name: 'a config path that is the service\'s whole folder', edit: (m) => (m.backup.config_paths = ['notes']) },
  { name: 'an empty backup', edit: (m) => (m.backup = { volumes: [], config_paths: [] }) },
  { name: 'a numeric quota', edit: (m) => (m.storage.quota_mb = 0) },
  { name: 'egress allowing only default', edit: (m) => (m.egress = { default: 'default', allowed: ['default'] }) },
  { name: 'egress defaulting to a non-default allowed type', edit: (m) => (m.egress = { default: 'tor', allowed: ['default', 'tor'] }) },
  { name: 'every egress type', edit: (m) => (m.egress.allowed = ['default', 'wireguard_ext', 'openvpn', 'tor', 'sshuttle', 'proxy']) },
  { name: 'a tag and a digest under enforce', edit: (m) => (m.image = `git.pic.ngo/roof/pic-notes:1.0@${DIGEST}`) },
  { name: 'a nested repository under the prefix', edit: (m) => (m.image = `git.pic.ngo/roof/apps/pic-notes@${DIGEST}`) },
  { name: 'a tag under warn', policy: WARN, edit: (m) => (m.image = 'git.pic.ngo/roof/pic-notes:1.0.0') },
  { name: 'no tag at all under off', policy: OFF, edit: (m) => (m.image = 'git.pic.ngo/roof/pic-notes') },
  { name: 'a digest under off', policy: OFF, edit: () => {} },
  { name: 'a prefix without trailing slash, on a segment boundary', policy: { allowedImagePrefix: 'git.pic.ngo/roof', imageVerification: 'enforce' }, edit: () => {} },
  { name: 'a registry with a port as prefix', policy: { allowedImagePrefix: 'localhost:5000/test/', imageVerification: 'warn' }, edit: (m) => (m.image = 'localhost:5000/test/busybox:1') },
  { name: 'container_name cell-0a', edit: (m) => (m.container_name = 'cell-0a') },
  { name: 'mounts below system directories', edit: (m) => (m.volumes = [{ name: 'db', mount: '/var/lib/mysql' }, { name: 'conf', mount: '/etc/nginx/conf.d' }]) },
  { name: 'a mount inside the project root', edit: (m) => (m.volumes = [{ name: 'x', mount: '/opt/pic/data' }]) },
  { name: 'a mount sharing only a string prefix with the project root', edit: (m) => (m.volumes = [{ name: 'x', mount: '/op' }, { name: 'y', mount: '/opt/pi' }]) },
  { name: 'a mount on /opt with another project root', policy: { ...DEFAULT_MANIFEST_POLICY, projectRoot: '/srv/cell' }, edit: (m) => (m.volumes = [{ name: 'x', mount: '/opt' }]) },
  { name: 'env values of the safe characters', edit: (m) => (m.env = [{ key: 'A_1', value: 'user@example.org:/x+y-z=1 2.3_' }, { key: '_B', value: '' }]) },
  { name: 'every known placeholder', edit: (m) => (m.env = ['PIC_DOMAIN', 'PIC_CELL_NAME', 'PIC_DATA_DIR', 'PIC_SERVICE_ID', 'PIC_CFG_PORT', 'PIC_CFG_PUBLIC', 'PIC_SECRET_DB_PASSWORD', 'SERVICE_IP', 'INSTANCE_ID'].map((v, i) => ({ key: `V${i}`, value: `\${${v}}` }))) },
  { name: 'an iptables rule without proto', edit: (m) => (m.iptables_rules = [{ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: 53 }]) },
  { name: 'an udp iptables rule on port 65535', edit: (m) => (m.iptables_rules = [{ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: 65535, proto: 'udp' }]) },
  { name: 'compose absent', edit: (m) => delete m.compose },
  { name: 'a $schema field for editors', edit: (m) => (m.$schema = '../../crds/schemas/manifest-v3.schema.json') },
];

const failing: FailCase[] = [
  // identity
  { name: 'schema_version 2', edit: (m) => (m.schema_version = 2), pointer: '/schema_version', message: 'must be 3' },
  { name: 'kind builtin', edit: (m) => (m.kind = 'builtin'), pointer: '/kind', message: 'must be "store"' },
  ...['schema_version', 'kind', 'id', 'name', 'description', 'version', 'author', 'capabilities', 'image', 'container_name'].map((field) => ({
    name: `no ${field}`,
    edit: (m: Json) => delete m[field],
    pointer: `/${field}`,
    message: 'is required',
  })),
  { name: 'an empty name', edit: (m) => (m.name = ''), pointer: '/name', message: 'must not be empty' },
  { name: 'a version that is not semver', edit: (m) => (m.version = '1.0'), pointer: '/version', message: 'semantic version' },
  { name: 'a version with a v', edit: (m) => (m.version = 'v1.0.0'), pointer: '/version', message: 'semantic version' },
  { name: 'a numeric version', edit: (m) => (m.version = 1), pointer: '/version', message: 'must be a string' },
  { name: 'a min_pic_version that is no version', edit: (m) => (m.min_pic_version = 'soon'), pointer: '/min_pic_version', message: 'must be a version' },
  { name: 'an id with capitals', edit: (m) => (m.id = 'Notes'), pointer: '/id', message: 'lowercase letter' },
  { name: 'an id starting with a digit', edit: (m) => (m.id = '9notes'), pointer: '/id', message: 'lowercase letter' },
  { name: 'an id of 32 characters', edit: (m) => (m.id = 'a'.repeat(32)), pointer: '/id', message: 'lowercase letter' },
  { name: 'an unknown top-level field', edit: (m) => (m.sub_domain = 'x'), pointer: '/sub_domain', message: 'did you mean "subdomain"' },
  // capabilities
  { name: 'a missing capability flag', edit: (m) => delete m.capabilities.has_egress, pointer: '/capabilities/has_egress', message: 'is required' },
  { name: 'a capability that is not boolean', edit: (m) => (m.capabilities.has_storage = 'yes'), pointer: '/capabilities/has_storage', message: 'must be a boolean' },
  { name: 'has_api_hooks true', edit: (m) => (m.capabilities.has_api_hooks = true), pointer: '/capabilities/has_api_hooks', message: 'must be false' },
  { name: 'an unknown capability', edit: (m) => (m.capabilities.has_magic = true), pointer: '/capabilities/has_magic', message: 'not a known field' },
  { name: 'capabilities as a list', edit: (m) => (m.capabilities = []), pointer: '/capabilities', message: 'must be a mapping' },
  // subdomains and backends
  { name: 'has_subdomain without subdomain', edit: (m) => delete m.subdomain, pointer: '/subdomain', message: 'required because capabilities.has_subdomain is true' },
  { name: 'has_subdomain without backend', edit: (m) => delete m.backend, pointer: '/backend', message: 'required because capabilities.has_subdomain is true' },
  { name: 'a subdomain with capitals', edit: (m) => (m.subdomain = 'Notes'), pointer: '/subdomain', message: 'lowercase letter followed by at most 30' },
  { name: 'a subdomain of 32 characters', edit: (m) => (m.subdomain = `n${'o'.repeat(31)}`), pointer: '/subdomain', message: 'lowercase letter followed by at most 30' },
  { name: 'an extra subdomain starting with a hyphen', edit: (m) => (m.extra_subdomains = ['-x']), pointer: '/extra_subdomains/0', message: 'lowercase letter' },
  { name: 'an extra backend key with an underscore', edit: (m) => (m.extra_backends = { bad_key: 'cell-x:80' }), pointer: '/extra_backends/bad_key', message: 'the key "bad_key" is not valid' },
  { name: 'a caddy_route subdomain with a dot', edit: (m) => (m.caddy_route = { subdomain: 'notes.x' }), pointer: '/caddy_route/subdomain', message: 'lowercase letter' },
  { name: 'a reserved subdomain', edit: (m) => (m.subdomain = 'api'), pointer: '/subdomain', message: 'reserved subdomain' },
  { name: 'a reserved extra subdomain', edit: (m) => (m.extra_subdomains = ['www']), pointer: '/extra_subdomains/0', message: 'reserved subdomain' },
  { name: 'a reserved extra backend key', edit: (m) => (m.extra_backends = { admin: 'cell-x:80' }), pointer: '/extra_backends/admin', message: 'reserved subdomain' },
  { name: 'a reserved caddy_route subdomain', edit: (m) => (m.caddy_route = { subdomain: 'install' }), pointer: '/caddy_route/subdomain', message: 'reserved subdomain' },
  { name: 'the primary subdomain again among the extras', edit: (m) => (m.extra_subdomains = ['memo', 'notes']), pointer: '/extra_subdomains/1', message: 'already claimed at /subdomain' },
  { name: 'a direct subdomain the manifest does not claim', edit: (m) => (m.direct_subdomains = ['memo', 'mail']), pointer: '/direct_subdomains/1', message: 'not a subdomain this manifest claims' },
  { name: 'a direct subdomain that is no subdomain', edit: (m) => (m.direct_subdomains = ['Mail']), pointer: '/direct_subdomains/0', message: 'lowercase letter' },
  { name: 'an extra subdomain twice', edit: (m) => (m.extra_subdomains = ['memo', 'memo']), pointer: '/extra_subdomains/1', message: 'already claimed at /extra_subdomains/0' },
  { name: 'an extra backend for an extra subdomain', edit: (m) => (m.extra_backends = { memo: 'cell-x:80' }), pointer: '/extra_backends/memo', message: 'already claimed at /extra_subdomains/0' },
  { name: 'a backend without port', edit: (m) => (m.backend = 'cell-notes'), pointer: '/backend', message: 'host:port' },
  { name: 'a backend with a scheme', edit: (m) => (m.backend = 'http://cell-notes:80'), pointer: '/backend', message: 'host:port' },
  { name: 'an extra backend with a named port', edit: (m) => (m.extra_backends = { dav: 'cell-x:http' }), pointer: '/extra_backends/dav', message: 'host:port' },
  { name: 'backend port 0', edit: (m) => (m.backend = 'cell-notes:0'), pointer: '/backend', message: 'outside 1-65535' },
  { name: 'backend port 65536', edit: (m) => (m.backend = 'cell-notes:65536'), pointer: '/backend', message: 'outside 1-65535' },
  { name: 'an extra backend port 70000', edit: (m) => (m.extra_backends = { dav: 'cell-x:70000' }), pointer: '/extra_backends/dav', message: 'outside 1-65535' },
  // accounts
  { name: 'has_accounts without accounts', edit: (m) => delete m.accounts, pointer: '/accounts', message: 'required because capabilities.has_accounts is true' },
  { name: 'has_accounts without peer_config_template', edit: (m) => delete m.peer_config_template, pointer: '/peer_config_template', message: 'required because capabilities.has_accounts is true' },
  { name: 'an unknown account manager', edit: (m) => (m.accounts.manager = 'ldap'), pointer: '/accounts/manager', message: 'must be one of "http", "email_manager"' },
  { name: 'no credentials', edit: (m) => (m.accounts.credentials = []), pointer: '/accounts/credentials', message: 'at least one' },
  { name: 'a credential that is not an identifier', edit: (m) => (m.accounts.credentials = ['pass word']), pointer: '/accounts/credentials/0', message: 'identifier' },
  { name: 'a credential listed twice', edit: (m) => (m.accounts.credentials = ['password', 'password']), pointer: '/accounts/credentials/1', message: 'each entry may appear once' },
  { name: 'accounts without manager', edit: (m) => delete m.accounts.manager, pointer: '/accounts/manager', message: 'is required' },
  { name: 'a template value that is a number', edit: (m) => (m.peer_config_template.port = 8080), pointer: '/peer_config_template/port', message: 'must be a string' },
  { name: 'an unknown template token', edit: (m) => (m.peer_config_template.x = '{peer.name}'), pointer: '/peer_config_template/x', message: 'unknown token {peer.name}' },
  { name: 'credentials of another service', edit: (m) => (m.peer_config_template.password = '{peer.service_credentials.mail.password}'), pointer: '/peer_config_template/password', message: 'names service "mail"' },
  { name: 'a credential the service does not issue', edit: (m) => (m.peer_config_template.password = '{peer.service_credentials.notes.token}'), pointer: '/peer_config_template/password', message: 'names credential "token"' },
  { name: 'a config key the schema lacks', edit: (m) => (m.peer_config_template.port = '{config.portt}'), pointer: '/peer_config_template/port', message: 'names config key "portt"' },
  { name: 'an unclosed token', edit: (m) => (m.peer_config_template.url = 'https://notes.{domain/'), pointer: '/peer_config_template/url', message: 'unmatched' },
  { name: 'a stray closing brace', edit: (m) => (m.peer_config_template.url = 'https://notes.domain}/'), pointer: '/peer_config_template/url', message: 'unmatched' },
  // admin config
  { name: 'has_admin_config without config_schema', edit: (m) => delete m.config_schema, pointer: '/config_schema', message: 'required because capabilities.has_admin_config is true' },
  { name: 'a config field of type float', edit: (m) => (m.config_schema.port.type = 'float'), pointer: '/config_schema/port/type', message: 'must be one of "string", "integer", "boolean"' },
  { name: 'a config field without label', edit: (m) => delete m.config_schema.port.label, pointer: '/config_schema/port/label', message: 'is required' },
  { name: 'a config field with an empty label', edit: (m) => (m.config_schema.port.label = ''), pointer: '/config_schema/port/label', message: 'must not be empty' },
  { name: 'a config field without type', edit: (m) => delete m.config_schema.port.type, pointer: '/config_schema/port/type', message: 'is required' },
  { name: 'required that is not boolean', edit: (m) => (m.config_schema.port.required = 'yes'), pointer: '/config_schema/port/required', message: 'must be a boolean' },
  { name: 'a string field with a numeric default', edit: (m) => (m.config_schema.title.default = 5), pointer: '/config_schema/title/default', message: 'must be a string, the type of the field' },
  { name: 'an integer field with a string default', edit: (m) => (m.config_schema.port.default = '8080'), pointer: '/config_schema/port/default', message: 'must be an integer, the type of the field' },
  { name: 'a boolean field with a string default', edit: (m) => (m.config_schema.public.default = 'false'), pointer: '/config_schema/public/default', message: 'must be a boolean, the type of the field' },
  { name: 'a fractional default', edit: (m) => (m.config_schema.port.default = 1.5), pointer: '/config_schema/port/default', message: 'must be a string, an integer or a boolean' },
  { name: 'min on a string field', edit: (m) => (m.config_schema.title.min = 1), pointer: '/config_schema/title/min', message: 'only to integer fields' },
  { name: 'max on a boolean field', edit: (m) => (m.config_schema.public.max = 1), pointer: '/config_schema/public/max', message: 'only to integer fields' },
  { name: 'a fractional min', edit: (m) => (m.config_schema.port.min = 0.5), pointer: '/config_schema/port/min', message: 'must be an integer' },
  { name: 'min above max', edit: (m) => Object.assign(m.config_schema.port, { min: 10, max: 5, default: 7 }), pointer: '/config_schema/port/max', message: 'max 5 is below min 10' },
  { name: 'a default above max', edit: (m) => (m.config_schema.port.default = 70000), pointer: '/config_schema/port/default', message: 'above max 65535' },
  { name: 'a default below min', edit: (m) => (m.config_schema.port.default = 0), pointer: '/config_schema/port/default', message: 'below min 1' },
  { name: 'a config key with capitals', edit: (m) => (m.config_schema.Port = { type: 'integer', label: 'Port' }), pointer: '/config_schema/Port', message: 'the key "Port" is not valid' },
  { name: 'a config key with a hyphen', edit: (m) => (m.config_schema['max-size'] = { type: 'integer', label: 'Size' }), pointer: '/config_schema/max-size', message: 'PIC_CFG_<KEY>' },
  { name: 'an unknown key in a config field', edit: (m) => (m.config_schema.port.placeholder = 'x'), pointer: '/config_schema/port/placeholder', message: 'not a known field' },
  // storage and backup
  { name: 'has_storage without backup', edit: (m) => delete m.backup, pointer: '/backup', message: 'required because capabilities.has_storage is true' },
  { name: 'has_storage without storage', edit: (m) => delete m.storage, pointer: '/storage', message: 'required because capabilities.has_storage is true' },
  { name: 'backup without config_paths', edit: (m) => delete m.backup.config_paths, pointer: '/backup/config_paths', message: 'is required' },
  { name: 'a backup volume without name', edit: (m) => delete m.backup.volumes[0].name, pointer: '/backup/volumes/0/name', message: 'is required' },
  { name: 'a backup container starting with a dot', edit: (m) => (m.backup.volumes[0].container = '.notes'), pointer: '/backup/volumes/0/container', message: 'Docker name' },
  { name: 'a backup container that is an option', edit: (m) => (m.backup.volumes[0].container = '--privileged'), pointer: '/backup/volumes/0/container', message: 'Docker name' },
  { name: 'a relative backup path', edit: (m) => (m.backup.volumes[0].path = 'data/notes'), pointer: '/backup/volumes/0/path', message: 'absolute path' },
  { name: 'a backup path with ..', edit: (m) => (m.backup.volumes[0].path = '/data/../etc'), pointer: '/backup/volumes/0/path', message: '".." segments' },
  { name: 'a backup name with a slash', edit: (m) => (m.backup.volumes[0].name = 'a/b'), pointer: '/backup/volumes/0/name', message: 'plain file name stem' },
  { name: 'a backup name with ..', edit: (m) => (m.backup.volumes[0].name = 'a..b'), pointer: '/backup/volumes/0/name', message: 'without ".."' },
  { name: 'a config path climbing out', edit: (m) => (m.backup.config_paths = ['a/../../b']), pointer: '/backup/config_paths/0', message: 'climbs out' },
  { name: 'a config path of ..', edit: (m) => (m.backup.config_paths = ['notes/config', '..']), pointer: '/backup/config_paths/1', message: 'climbs out' },
  { name: 'an absolute config path', edit: (m) => (m.backup.config_paths = ['/abs']), pointer: '/backup/config_paths/0', message: 'relative to the cell data directory' },
  { name: 'a config path that is the root itself', edit: (m) => (m.backup.config_paths = ['a/..']), pointer: '/backup/config_paths/0', message: 'not the data directory itself' },
  { name: 'another service\'s config folder', edit: (m) => (m.backup.config_paths = ['files/config']), pointer: '/backup/config_paths/0', message: 'not in the service\'s own folder "notes/"' },
  { name: 'the shared config folder of the old layout', edit: (m) => (m.backup.config_paths = ['config/files']), pointer: '/backup/config_paths/0', message: 'not in the service\'s own folder' },
  { name: 'a folder sharing the id as a prefix', edit: (m) => (m.backup.config_paths = ['notes-old/config']), pointer: '/backup/config_paths/0', message: 'not in the service\'s own folder' },
  { name: 'a negative quota', edit: (m) => (m.storage.quota_mb = -1), pointer: '/storage/quota_mb', message: 'at least 0' },
  { name: 'a fractional quota', edit: (m) => (m.storage.quota_mb = 1.5), pointer: '/storage/quota_mb', message: 'must be an integer or null' },
  { name: 'storage without quota_mb', edit: (m) => delete m.storage.quota_mb, pointer: '/storage/quota_mb', message: 'is required' },
  // egress
  { name: 'has_egress without egress', edit: (m) => delete m.egress, pointer: '/egress', message: 'required because capabilities.has_egress is true' },
  { name: 'an unknown egress type in allowed', edit: (m) => (m.egress.allowed = ['default', 'wireguard']), pointer: '/egress/allowed/1', message: 'must be one of "default", "wireguard_ext"' },
  { name: 'an unknown default egress', edit: (m) => (m.egress.default = 'vpn'), pointer: '/egress/default', message: 'must be one of' },
  { name: 'allowed without default', edit: (m) => (m.egress = { default: 'tor', allowed: ['tor'] }), pointer: '/egress/allowed', message: 'must include "default"' },
  { name: 'a default outside allowed', edit: (m) => (m.egress = { default: 'tor', allowed: ['default'] }), pointer: '/egress/default', message: 'must be one of egress.allowed' },
  { name: 'an egress type allowed twice', edit: (m) => (m.egress.allowed = ['default', 'tor', 'tor']), pointer: '/egress/allowed/2', message: 'each entry may appear once' },
  // image
  { name: 'an image from another registry', edit: (m) => (m.image = `docker.io/library/nginx@${DIGEST}`), pointer: '/image', message: 'allowed registry path "git.pic.ngo/roof/"' },
  { name: 'an image under a look-alike folder', edit: (m) => (m.image = `git.pic.ngo/roofx/a@${DIGEST}`), pointer: '/image', message: 'allowed registry path' },
  { name: 'a look-alike folder when the prefix has no slash', policy: { allowedImagePrefix: 'git.pic.ngo/roof', imageVerification: 'enforce' }, edit: (m) => (m.image = `git.pic.ngo/roofx/a@${DIGEST}`), pointer: '/image', message: 'allowed registry path "git.pic.ngo/roof/"' },
  { name: 'the prefix itself as image', edit: (m) => (m.image = `git.pic.ngo/roof@${DIGEST}`), pointer: '/image', message: 'not the prefix itself' },
  { name: 'the prefix with a trailing slash as image', edit: (m) => (m.image = 'git.pic.ngo/roof/'), policy: OFF, pointer: '/image', message: 'empty path component' },
  { name: 'a tag only under enforce', edit: (m) => (m.image = 'git.pic.ngo/roof/pic-notes:1.0.0'), pointer: '/image', message: 'pinned by digest' },
  { name: 'no tag and no digest under enforce', edit: (m) => (m.image = 'git.pic.ngo/roof/pic-notes'), pointer: '/image', message: 'pinned by digest' },
  { name: 'a short digest under warn', policy: WARN, edit: (m) => (m.image = 'git.pic.ngo/roof/pic-notes@sha256:abc'), pointer: '/image', message: 'malformed digest' },
  { name: 'an uppercase digest under off', policy: OFF, edit: (m) => (m.image = `git.pic.ngo/roof/pic-notes@${DIGEST.toUpperCase()}`), pointer: '/image', message: 'malformed digest' },
  { name: 'a digest of 65 hex under enforce', edit: (m) => (m.image = `git.pic.ngo/roof/pic-notes@${DIGEST}0`), pointer: '/image', message: 'exactly 64 lowercase hex' },
  { name: 'a sha512 digest', edit: (m) => (m.image = `git.pic.ngo/roof/pic-notes@sha512:${'ab'.repeat(64)}`), pointer: '/image', message: 'sha256 digest' },
  { name: 'an image with capitals in its path', policy: OFF, edit: (m) => (m.image = 'git.pic.ngo/roof/Pic-Notes:1'), pointer: '/image', message: 'invalid path component "Pic-Notes"' },
  { name: 'an image with a bad tag', policy: OFF, edit: (m) => (m.image = 'git.pic.ngo/roof/pic-notes:-x'), pointer: '/image', message: 'invalid tag "-x"' },
  { name: 'an image with a space', policy: OFF, edit: (m) => (m.image = 'git.pic.ngo/roof/pic notes'), pointer: '/image', message: 'whitespace' },
  { name: 'an empty image', edit: (m) => (m.image = ''), pointer: '/image', message: 'must not be empty' },
  { name: 'an image that is not a string', edit: (m) => (m.image = ['git.pic.ngo/roof/x']), pointer: '/image', message: 'must be a string' },
  // container names
  { name: 'a container_name without cell-', edit: (m) => (m.container_name = 'notes'), pointer: '/container_name', message: '"cell-" followed by' },
  { name: 'a container_name of cell- alone', edit: (m) => (m.container_name = 'cell-'), pointer: '/container_name', message: '"cell-" followed by' },
  { name: 'a container_name with capitals', edit: (m) => (m.container_name = 'cell-Notes'), pointer: '/container_name', message: '"cell-" followed by' },
  { name: 'an informational container with a bad name', edit: (m) => (m.containers = ['cell-notes', 'notes']), pointer: '/containers/1', message: '"cell-" followed by' },
  // volumes
  { name: 'a volume without mount', edit: (m) => (m.volumes = [{ name: 'x' }]), pointer: '/volumes/0/mount', message: 'is required' },
  { name: 'a volume name with a slash', edit: (m) => (m.volumes = [{ name: 'a/b', mount: '/data' }]), pointer: '/volumes/0/name', message: 'Docker name' },
  { name: 'a relative mount', edit: (m) => (m.volumes = [{ name: 'x', mount: 'data' }]), pointer: '/volumes/0/mount', message: 'absolute path' },
  { name: 'a mount with a colon', edit: (m) => (m.volumes = [{ name: 'x', mount: '/data:/etc' }]), pointer: '/volumes/0/mount', message: 'must not contain ":"' },
  ...FORBIDDEN_MOUNTS.map((mount) => ({ name: `a mount on ${mount}`, edit: (m: Json) => (m.volumes = [{ name: 'x', mount }]), pointer: '/volumes/0/mount', message: 'system directory' })),
  ...['/etc/', '/var/../etc', '//etc', '/etc/.', '/data/../../etc', '/./boot//'].map((mount) => ({
    name: `a mount on ${mount}, a system directory once normalised`,
    edit: (m: Json) => (m.volumes = [{ name: 'ok', mount: '/data' }, { name: 'x', mount }]),
    pointer: '/volumes/1/mount',
    message: 'system directory',
  })),
  { name: 'a mount on the project root', edit: (m) => (m.volumes = [{ name: 'x', mount: '/opt/pic' }]), pointer: '/volumes/0/mount', message: 'project root /opt/pic' },
  { name: 'a mount on the project root with a slash', edit: (m) => (m.volumes = [{ name: 'x', mount: '/opt/pic/' }]), pointer: '/volumes/0/mount', message: 'project root' },
  { name: 'a mount above the project root', edit: (m) => (m.volumes = [{ name: 'x', mount: '/opt' }]), pointer: '/volumes/0/mount', message: 'or a directory above it' },
  { name: 'a mount above a configured project root', policy: { ...DEFAULT_MANIFEST_POLICY, projectRoot: '/srv/cell' }, edit: (m) => (m.volumes = [{ name: 'x', mount: '/srv' }]), pointer: '/volumes/0/mount', message: 'project root /srv/cell' },
  // env
  { name: 'an env key starting with a digit', edit: (m) => (m.env = [{ key: '1X', value: 'a' }]), pointer: '/env/0/key', message: 'environment variable name' },
  { name: 'an env value with a semicolon', edit: (m) => (m.env = [{ key: 'X', value: 'a;b' }]), pointer: '/env/0/value', message: 'only letters, digits, spaces' },
  { name: 'an env value with a quote', edit: (m) => (m.env = [{ key: 'X', value: 'a"b' }]), pointer: '/env/0/value', message: 'only letters, digits, spaces' },
  { name: 'an env value with a bare $', edit: (m) => (m.env = [{ key: 'X', value: '$HOME' }]), pointer: '/env/0/value', message: 'only letters, digits, spaces' },
  { name: 'an env value with command substitution', edit: (m) => (m.env = [{ key: 'X', value: '$(id)' }]), pointer: '/env/0/value', message: 'only letters, digits, spaces' },
  { name: 'an env value with an unknown variable', edit: (m) => (m.env = [{ key: 'X', value: '${HOME}' }]), pointer: '/env/0/value', message: '${HOME} is not a variable pic provides' },
  { name: 'an env value with an undefined config key', edit: (m) => (m.env = [{ key: 'X', value: '${PIC_CFG_NOPE}' }]), pointer: '/env/0/value', message: '${PIC_CFG_NOPE} is not a variable' },
  { name: 'an env value with a nameless secret', edit: (m) => (m.env = [{ key: 'X', value: '${PIC_SECRET_}' }]), pointer: '/env/0/value', message: 'is not a variable' },
  { name: 'an env value that is a number', edit: (m) => (m.env = [{ key: 'X', value: 5 }]), pointer: '/env/0/value', message: 'must be a string' },
  { name: 'an env key twice', edit: (m) => (m.env = [{ key: 'X', value: 'a' }, { key: 'X', value: 'b' }]), pointer: '/env/1/key', message: 'already set by env entry 0' },
  // iptables
  { name: 'a DROP rule', edit: (m) => (m.iptables_rules[0].type = 'DROP'), pointer: '/iptables_rules/0/type', message: 'must be "ACCEPT"' },
  { name: 'a literal destination address', edit: (m) => (m.iptables_rules[0].dest_ip = '10.0.0.1'), pointer: '/iptables_rules/0/dest_ip', message: 'must be "${SERVICE_IP}"' },
  { name: 'port 0', edit: (m) => (m.iptables_rules[0].dest_port = 0), pointer: '/iptables_rules/0/dest_port', message: 'at least 1' },
  { name: 'port 65536', edit: (m) => (m.iptables_rules[0].dest_port = 65536), pointer: '/iptables_rules/0/dest_port', message: 'at most 65535' },
  { name: 'a port as a string', edit: (m) => (m.iptables_rules[0].dest_port = '80'), pointer: '/iptables_rules/0/dest_port', message: 'must be an integer' },
  { name: 'a fractional port', edit: (m) => (m.iptables_rules[0].dest_port = 80.5), pointer: '/iptables_rules/0/dest_port', message: 'must be an integer' },
  { name: 'proto icmp', edit: (m) => (m.iptables_rules[0].proto = 'icmp'), pointer: '/iptables_rules/0/proto', message: 'must be one of "tcp", "udp"' },
  { name: 'a rule with an extra key', edit: (m) => (m.iptables_rules[0].chain = 'INPUT'), pointer: '/iptables_rules/0/chain', message: 'not a known field' },
  { name: 'a rule without port', edit: (m) => delete m.iptables_rules[0].dest_port, pointer: '/iptables_rules/0/dest_port', message: 'is required' },
  // compose
  { name: 'an inline compose', edit: (m) => (m.compose = { services: {} }), pointer: '/compose', message: 'must be null' },
];

describe('validateManifest accepts', () => {
  test.each(passing.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const problems = run(c);
    expect(show(problems)).toBe('');
  });
});

describe('validateManifest refuses', () => {
  test.each(failing.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const problems = run(c);
    const hit = problems.find((p) => p.pointer === c.pointer && p.message.includes(c.message));
    if (!hit) throw new Error(`expected ${c.pointer}: …${c.message}… among:\n${show(problems)}`);
    expect(hit.file).toBe(FILE);
  });
});

describe('validateManifest as a whole', () => {
  test('reports every problem at once, schema and semantic together', () => {
    const m = validManifest();
    delete m.id;
    m.subdomain = 'api';
    m.volumes = [{ name: 'x', mount: '/etc' }];
    m.image = 'git.pic.ngo/roof/pic-notes:latest';
    m.iptables_rules[0].type = 'DROP';
    const pointers = validateManifest(m, FILE, DEFAULT_MANIFEST_POLICY).map((p) => p.pointer);
    expect(pointers).toEqual(expect.arrayContaining(['/id', '/subdomain', '/volumes/0/mount', '/image', '/iptables_rules/0/type']));
  });

  test('a value that is not a mapping is one problem at the root', () => {
    for (const value of [null, 3, 'manifest', [], true]) {
      expect(validateManifest(value, FILE, DEFAULT_MANIFEST_POLICY)).toEqual([{ file: FILE, pointer: '', message: expect.stringContaining('must be a mapping') }]);
    }
  });

  test('the default policy is enforce under git.pic.ngo/roof/', () => {
    expect(DEFAULT_MANIFEST_POLICY).toEqual({ allowedImagePrefix: 'git.pic.ngo/roof/', imageVerification: 'enforce' });
    const m = validManifest();
    m.image = 'git.pic.ngo/roof/pic-notes:1';
    expect(validateManifest(m, FILE, DEFAULT_MANIFEST_POLICY).map((p) => p.pointer)).toEqual(['/image']);
  });

  test('does not change the manifest it checks', () => {
    const m = validManifest();
    m.iptables_rules = [{ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: 80 }];
    const before = JSON.stringify(m);
    validateManifest(m, FILE, DEFAULT_MANIFEST_POLICY);
    expect(JSON.stringify(m)).toBe(before);
  });

  test('a key with a slash is escaped in the pointer', () => {
    const m = validManifest();
    m.extra_backends = { 'a/b': 'cell-x:80' };
    expect(validateManifest(m, FILE, DEFAULT_MANIFEST_POLICY).map((p) => p.pointer)).toContain('/extra_backends/a~1b');
  });
});

describe('manifestSubdomains', () => {
  test('lists the primary first, then the others, each once', () => {
    const m = validManifest() as unknown as Manifest;
    m.extra_subdomains = ['memo', 'notes'];
    m.extra_backends = { dav: 'cell-x:80', memo: 'cell-y:80' };
    m.caddy_route = { subdomain: 'web' };
    expect(manifestSubdomains(m)).toEqual(['notes', 'memo', 'dav', 'web']);
  });

  test('is empty for a manifest without subdomains', () => {
    expect(manifestSubdomains(minimalManifest() as unknown as Manifest)).toEqual([]);
  });
});
