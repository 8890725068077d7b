/**
 * The one source of every JSON Schema pic knows: the store manifest (schema_version 3) and the
 * four desired-state document kinds. `crds/generate.ts` writes them out as JSON Schema files for
 * editors and as Kubernetes CustomResourceDefinitions; the validators compile them with ajv.
 *
 * Patterns are written so that both ECMAScript (ajv, editors) and RE2 (the Kubernetes API server)
 * read them the same way: no look-around, no back-references.
 */
import { ACCOUNT_MANAGERS, API_VERSION, CAPABILITY_FLAGS, DOCUMENT_KINDS, EGRESS_TYPES, type DocumentKind } from './types.js';

/** A JSON Schema (draft-07) as plain data. */
export type JsonSchema = { [keyword: string]: unknown };

export const JSON_SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';

// ---------------------------------------------------------------------------------------------
// Patterns shared by the schemas and the semantic checks.

export const DNS_LABEL_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
export const SERVICE_ID_PATTERN = '^[a-z][a-z0-9-]{0,30}$';
export const SUBDOMAIN_PATTERN = '^[a-z][a-z0-9-]{0,30}$';
export const BACKEND_PATTERN = '^[A-Za-z0-9._-]+:\\d{1,5}$';
export const CONTAINER_NAME_PATTERN = '^cell-[a-z0-9][a-z0-9-]{0,30}$';
/**
 * A manifest's container names: as above, or (a connectivity service, one instance per
 * Connection) with `${INSTANCE_ID}` in place of its end, which renders to at most 8 characters.
 */
export const MANIFEST_CONTAINER_NAME_PATTERN = '^cell-([a-z0-9][a-z0-9-]{0,30}|[a-z0-9-]{0,21}\\$\\{INSTANCE_ID\\})$';
export const PUBLISHED_PORT_PATTERN = '^([1-9]\\d{0,3}|[1-5]\\d{4}|6[0-4]\\d{3}|65[0-4]\\d{2}|655[0-2]\\d|6553[0-5])/(tcp|udp|sctp)$';
/** Docker's rule for container and volume names, also used for backup containers. */
export const DOCKER_NAME_PATTERN = '^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$';
export const FILE_STEM_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$';
export const CONFIG_KEY_PATTERN = '^[a-z][a-z0-9_]{0,62}$';
export const CREDENTIAL_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,62}$';
export const ENV_KEY_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';
/**
 * The seeds allow `^[A-Za-z0-9._@:/+\-= ]*$` in env values, yet their own example passes a
 * secret as `"${PIC_SECRET_NOTES_SECRET}"`. We accept both: the safe characters, plus whole
 * `${NAME}` placeholders. Which NAMEs are known is a semantic check (validate-manifest.ts),
 * because it depends on the manifest's config_schema.
 */
export const ENV_VALUE_PATTERN = '^(?:[A-Za-z0-9._@:/+\\-= ]|\\$\\{[A-Za-z0-9_]+\\})*$';
export const SEMVER_PATTERN =
  '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)' +
  '(-((0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)(\\.(0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?' +
  '(\\+([0-9a-zA-Z-]+(\\.[0-9a-zA-Z-]+)*))?$';
const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = `${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}`;
export const IPV4_PATTERN = `^${IPV4}$`;
export const IPV4_CIDR_PATTERN = `^${IPV4}/(3[0-2]|[12]?\\d)$`;
export const IPV4_RANGE_PATTERN = `^${IPV4}-${IPV4}$`;
const LABEL = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
/** A lowercase DNS name of at least two labels, such as `alice.pic.ngo`. */
export const DNS_NAME_PATTERN = `^(${LABEL}\\.)+${LABEL}$`;
/** A host name (one label or more, optional trailing dot) or a dotted IPv4 address. */
export const HOST_PATTERN = `^(${LABEL}\\.)*${LABEL}\\.?$`;
/** A registry as image references name it: host name or IPv4 address, optional port. */
const REGISTRY_HOST_PATTERN = '^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?(:\\d{1,5})?$';
/** Linux limits interface names to 15 bytes. */
export const INTERFACE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$';
export const IMAGE_PREFIX_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/-]*$';
export const ABSOLUTE_PATH_PATTERN = '^/';
/** HH:MM, 24-hour. */
export const BACKUP_TIME_PATTERN = '^([01]\\d|2[0-3]):[0-5]\\d$';
/**
 * The only Linux capabilities a service may add to its containers, and only a connectivity
 * service that declares them (`connectivity.cap_add`): what a tunnel or proxy needs to set up
 * interfaces, routes and raw sockets in its own network namespace. Every other capability is
 * refused (many amount to root on the host).
 */
export const CONNECTIVITY_CAPABILITIES = ['NET_ADMIN', 'NET_RAW'] as const;
/** The only host device a connectivity service may have: the TUN device of a userspace tunnel. */
export const CONNECTIVITY_DEVICES = ['/dev/net/tun'] as const;
/** Sysctls of the exit's own network namespace: IPv4 forwarding and its per-interface settings. */
export const CONNECTIVITY_SYSCTL_PATTERN = '^net\\.ipv4\\.[a-z0-9_.]{1,64}$';
/** Where an exit finds its Connection's configFile unless its manifest says otherwise. */
export const DEFAULT_CONNECTION_CONFIG_PATH = '/run/pic/connection/config';
export const CAPABILITY_NAME_PATTERN = '^[A-Z][A-Z_]*$';
export const EMAIL_PATTERN = '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$';
/** A Curve25519 key as `wg` prints it: 32 bytes in base64. */
export const WIREGUARD_KEY_PATTERN = '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$';
export const ENDPOINT_PATTERN = `^(${LABEL}\\.)*${LABEL}:\\d{1,5}$`;

/** How each pattern reads to a person, for messages. Keyed by the pattern source. */
export const PATTERN_HINTS: Readonly<Record<string, string>> = {
  [DNS_LABEL_PATTERN]: 'a DNS label: lowercase letters, digits and hyphens, at most 63, starting and ending with a letter or digit',
  [SUBDOMAIN_PATTERN]: 'a lowercase letter followed by at most 30 lowercase letters, digits or hyphens',
  [BACKEND_PATTERN]: 'host:port, such as cell-notes:8080 (host of letters, digits, ".", "_", "-"; port of 1 to 5 digits)',
  [PUBLISHED_PORT_PATTERN]: 'a port from 1 to 65535, a slash and tcp, udp or sctp, such as 25/tcp',
  [CONTAINER_NAME_PATTERN]: '"cell-" followed by a lowercase letter or digit and at most 30 lowercase letters, digits or hyphens',
  [MANIFEST_CONTAINER_NAME_PATTERN]:
    '"cell-" followed by a lowercase letter or digit and at most 30 lowercase letters, digits or hyphens (a connectivity service: ending in ${INSTANCE_ID}, such as cell-exit-${INSTANCE_ID})',
  [BACKUP_TIME_PATTERN]: 'a time of day as HH:MM, such as 03:30',
  [DOCKER_NAME_PATTERN]: 'a Docker name: a letter or digit, then at most 63 letters, digits, "_", "." or "-"',
  [FILE_STEM_PATTERN]: 'a plain file name stem: a letter or digit, then at most 63 letters, digits, "_", "." or "-" (no slash)',
  [CONFIG_KEY_PATTERN]: 'a lowercase letter, then at most 62 lowercase letters, digits or "_" (it becomes PIC_CFG_<KEY>)',
  [CREDENTIAL_NAME_PATTERN]: 'an identifier: a letter or "_", then letters, digits or "_"',
  [ENV_KEY_PATTERN]: 'an environment variable name: a letter or "_", then letters, digits or "_"',
  [ENV_VALUE_PATTERN]: 'only letters, digits, spaces, the characters . _ @ : / + - = and ${NAME} placeholders',
  [SEMVER_PATTERN]: 'a semantic version such as 1.2.0',
  [IPV4_PATTERN]: 'a dotted IPv4 address such as 172.20.0.2',
  [IPV4_CIDR_PATTERN]: 'an IPv4 network in CIDR notation such as 172.20.0.0/16',
  [IPV4_RANGE_PATTERN]: 'an IPv4 range "first-last" such as 172.20.0.20-172.20.0.254',
  [DNS_NAME_PATTERN]: 'a lowercase DNS name of two labels or more, such as alice.pic.ngo',
  [HOST_PATTERN]: 'a host name or an IPv4 address',
  [INTERFACE_NAME_PATTERN]: 'a network interface name: a letter or digit, then at most 14 letters, digits, "_", "." or "-"',
  [IMAGE_PREFIX_PATTERN]: 'a registry path such as git.pic.ngo/roof/',
  [ABSOLUTE_PATH_PATTERN]: 'an absolute path (starting with /)',
  [EMAIL_PATTERN]: 'an e-mail address',
  [CAPABILITY_NAME_PATTERN]: 'a capability name in capitals without CAP_, such as NET_ADMIN',
  [WIREGUARD_KEY_PATTERN]: 'a WireGuard key: 44 characters of base64 ending in "=", as wg pubkey prints it',
  [ENDPOINT_PATTERN]: 'host:port, such as vpn.alice.pic.ngo:51820',
};

export const RESERVED_SUBDOMAINS = ['api', 'webui', 'admin', 'www', 'ns1', 'ns2', 'git', 'registry', 'install'] as const;

/** Which top-level manifest fields each capability flag makes mandatory. */
export const CAPABILITY_REQUIREMENTS = {
  has_subdomain: ['subdomain', 'backend'],
  has_accounts: ['accounts', 'peer_config_template'],
  has_admin_config: ['config_schema'],
  has_storage: ['backup', 'storage'],
  has_egress: ['egress'],
} as const;

export const DEFAULT_NETWORK = { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' } as const;
export const DEFAULT_ALLOWED_IMAGE_PREFIX = 'git.pic.ngo/roof/';
/** The container holding the cell's VPN, firewall and egress routing, unless the Cell names another. */
export const DEFAULT_WIREGUARD_CONTAINER = 'cell-wireguard';

// ---------------------------------------------------------------------------------------------
// Small builders: they keep the schemas below readable.

function str(title: string, description: string, extra: JsonSchema = {}): JsonSchema {
  return { type: 'string', title, description, ...extra };
}

function patterned(title: string, description: string, pattern: string, extra: JsonSchema = {}): JsonSchema {
  return str(title, description, { pattern, ...extra });
}

function bool(title: string, description: string, extra: JsonSchema = {}): JsonSchema {
  return { type: 'boolean', title, description, ...extra };
}

function obj(title: string, description: string, properties: Record<string, JsonSchema>, required: string[] = [], extra: JsonSchema = {}): JsonSchema {
  return {
    type: 'object',
    title,
    description,
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
    properties,
    ...extra,
  };
}

function arr(title: string, description: string, items: JsonSchema, extra: JsonSchema = {}): JsonSchema {
  return { type: 'array', title, description, items, ...extra };
}

// ---------------------------------------------------------------------------------------------
// The store manifest, schema_version 3.

const subdomain = (title: string, description: string): JsonSchema =>
  patterned(title, `${description} Reserved names are refused: ${RESERVED_SUBDOMAINS.join(', ')}.`, SUBDOMAIN_PATTERN);

const backend = (title: string, description: string): JsonSchema =>
  patterned(title, `${description} The port must be between 1 and 65535.`, BACKEND_PATTERN);

const capabilities = obj(
  'Capabilities',
  'Which integrations the cell turns on for this service. All six flags must be present.',
  {
    has_subdomain: bool('Has subdomain', 'Route <subdomain>.<cell domain> to the service through Caddy and publish a DNS record. Needs subdomain and backend.'),
    has_accounts: bool('Has accounts', 'Provision an account per peer on the service. Needs accounts and peer_config_template.'),
    has_admin_config: bool('Has admin config', 'The admin can set the fields of config_schema in the ServiceInstall document.'),
    has_storage: bool('Has storage', 'The service holds data worth backing up. Needs backup and storage.'),
    has_egress: bool('Has egress', 'The admin may route the outbound traffic of the service through a Connection. Needs egress.'),
    has_api_hooks: { type: 'boolean', const: false, title: 'Has API hooks', description: 'Reserved for a later version; must be false.' },
  },
  [...CAPABILITY_FLAGS],
);

const configField: JsonSchema = obj(
  'Config field',
  'One admin-settable value. It reaches the compose template as ${PIC_CFG_<KEY>} (key in upper case).',
  {
    type: { type: 'string', enum: ['string', 'integer', 'boolean'], title: 'Type', description: 'The type of the value.' },
    label: str('Label', 'What the admin sees next to the field; plain English, sentence case.', { minLength: 1 }),
    required: bool('Required', 'The service cannot start until this field has a value.'),
    default: { type: ['string', 'integer', 'boolean'], title: 'Default', description: 'Used when the admin sets nothing. Must have the field type (and lie within min/max).' },
    min: { type: 'integer', title: 'Minimum', description: 'Smallest allowed value, inclusive. Integer fields only.' },
    max: { type: 'integer', title: 'Maximum', description: 'Largest allowed value, inclusive. Integer fields only.' },
  },
  ['type', 'label'],
);

const egressType = (title: string, description: string): JsonSchema => ({ type: 'string', enum: [...EGRESS_TYPES], title, description });

export const MANIFEST_SCHEMA: JsonSchema = {
  $schema: JSON_SCHEMA_DRAFT,
  title: 'pic store service manifest (schema_version 3)',
  description: 'Describes one catalog service: its identity, the integrations it needs and how its container runs.',
  type: 'object',
  required: ['schema_version', 'kind', 'id', 'name', 'description', 'version', 'author', 'capabilities', 'image', 'container_name'],
  additionalProperties: false,
  properties: {
    $schema: str('JSON Schema', 'Lets an editor find this schema; ignored by pic.'),
    schema_version: { type: 'integer', const: 3, title: 'Schema version', description: 'Always 3 for this format.' },
    kind: { type: 'string', const: 'store', title: 'Kind', description: 'Always "store".' },
    id: patterned('Service id', 'Lowercase identifier; equals the catalog index entry and the folder services/<id>/.', SERVICE_ID_PATTERN),
    name: str('Name', 'Display name, such as "Notes".', { minLength: 1 }),
    description: str('Description', 'One plain sentence saying what the service does.', { minLength: 1 }),
    version: str('Version', 'Semantic version of this package, such as 1.0.0. Raise it with every change.', { minLength: 1 }),
    author: str('Author', 'Person or organisation that maintains the package.', { minLength: 1 }),
    min_pic_version: str('Minimum pic version', 'Oldest pic release able to run the package, such as 1.0.', { minLength: 1 }),
    capabilities,
    subdomain: subdomain('Subdomain', 'Primary name: the service answers at <subdomain>.<cell domain>.'),
    extra_subdomains: arr('Extra subdomains', 'More names served by the same backend.', subdomain('Extra subdomain', 'Another name for the same backend.')),
    direct_subdomains: arr(
      'Direct subdomains',
      "Subdomains the manifest claims whose DNS record is the service's own address instead of Caddy's, so that clients reach the ports its iptables_rules open (IMAP, SMTP) at that name. Caddy still holds a site for each, so the cell's internal CA keeps a certificate of that name.",
      subdomain('Direct subdomain', 'A subdomain of this manifest that resolves to the service itself.'),
    ),
    backend: backend('Backend', 'container:port that Caddy forwards the subdomain to, resolved on cell-network.'),
    extra_backends: {
      type: 'object',
      title: 'Extra backends',
      description: 'Subdomains that go to a different container:port than the primary backend.',
      propertyNames: { pattern: SUBDOMAIN_PATTERN },
      additionalProperties: backend('Extra backend', 'container:port for this subdomain.'),
    },
    containers: arr('Containers', 'Names of the containers that make up the service; informational.', patterned('Container', 'Container name.', MANIFEST_CONTAINER_NAME_PATTERN)),
    config_schema: {
      type: 'object',
      title: 'Config schema',
      description: 'Fields the admin can set in ServiceInstall.spec.config. Keys are lowercase identifiers.',
      propertyNames: { pattern: CONFIG_KEY_PATTERN },
      additionalProperties: configField,
    },
    peer_config_template: {
      type: 'object',
      title: 'Peer config template',
      description:
        'What a peer receives to set up a client, filled in per peer. Tokens: {domain}, {peer.username}, ' +
        '{peer.service_credentials.<id>.<credential>}, {config.<key>}.',
      additionalProperties: str('Template value', 'Text with tokens in braces.'),
    },
    accounts: obj(
      'Accounts',
      'How peer accounts are provisioned on the service.',
      {
        manager: { type: 'string', enum: [...ACCOUNT_MANAGERS], title: 'Manager', description: '"http" calls the service at /service-api/accounts; the others are the reference services\' managers.' },
        credentials: arr('Credentials', 'Names of the credentials issued per peer, such as ["password"].', patterned('Credential', 'Credential name.', CREDENTIAL_NAME_PATTERN), {
          minItems: 1,
          uniqueItems: true,
        }),
      },
      ['manager', 'credentials'],
    ),
    compose: { type: 'null', title: 'Compose', description: 'Unused: the compose definition lives in compose-template.yml. Leave out or set to null.' },
    backup: obj(
      'Backup',
      'What a backup of the cell takes from this service.',
      {
        volumes: arr(
          'Volumes',
          'Directories streamed out of running containers, one archive <name>.tar.gz each.',
          obj(
            'Backup volume',
            'One directory inside one container.',
            {
              container: patterned('Container', 'Container to read from.', DOCKER_NAME_PATTERN),
              path: str('Path', 'Absolute directory inside the container.', { minLength: 1 }),
              name: patterned('Archive name', 'File name stem of the archive.', FILE_STEM_PATTERN),
            },
            ['container', 'path', 'name'],
          ),
        ),
        config_paths: arr('Config paths', 'Host paths relative to the pic project root copied into the backup; they may not leave it.', str('Config path', 'Relative path.', { minLength: 1 })),
      },
      ['volumes', 'config_paths'],
    ),
    storage: obj(
      'Storage',
      'Where the bulk of the data lives, for the storage display.',
      {
        primary_path: str('Primary path', 'Path (relative to the project root) holding most user data.', { minLength: 1 }),
        quota_mb: { type: ['integer', 'null'], minimum: 0, title: 'Quota (MB)', description: 'Storage quota in megabytes; null for none.' },
      },
      ['primary_path', 'quota_mb'],
    ),
    egress: obj(
      'Egress',
      'Which kinds of outbound connection the admin may choose for the service.',
      {
        default: egressType('Default', 'Used until the admin chooses; must be one of allowed.'),
        allowed: arr('Allowed', 'Every connection type the admin may choose; must include "default".', egressType('Egress type', 'A connection type.'), {
          minItems: 1,
          uniqueItems: true,
        }),
      },
      ['default', 'allowed'],
    ),
    image: str('Image', 'Image reference under the allowed prefix, pinned as @sha256:<64 hex> for installation under enforce.', { minLength: 1 }),
    container_name: patterned('Container name', 'Name of the main container.', MANIFEST_CONTAINER_NAME_PATTERN),
    volumes: arr(
      'Volumes',
      'Named volumes mounted into the container.',
      obj(
        'Volume',
        'A named volume and where it is mounted.',
        {
          name: patterned('Name', 'Docker volume name.', DOCKER_NAME_PATTERN),
          mount: str('Mount', 'Absolute path in the container; system directories and the pic project root are refused.', { minLength: 1 }),
        },
        ['name', 'mount'],
      ),
    ),
    env: arr(
      'Environment',
      'Environment variables of the container.',
      obj(
        'Variable',
        'One environment variable.',
        {
          key: patterned('Key', 'Variable name.', ENV_KEY_PATTERN),
          value: patterned('Value', 'Safe characters and ${PIC_...}, ${SERVICE_IP}, ${INSTANCE_ID} placeholders.', ENV_VALUE_PATTERN),
        },
        ['key', 'value'],
      ),
    ),
    iptables_rules: arr(
      'iptables rules',
      'Ports of the service that VPN peers may reach.',
      obj(
        'Rule',
        'Accept forwarded traffic to one port of the service.',
        {
          type: { type: 'string', const: 'ACCEPT', title: 'Type', description: 'Only ACCEPT rules exist.' },
          dest_ip: { type: 'string', const: '${SERVICE_IP}', title: 'Destination IP', description: 'Always the literal ${SERVICE_IP}; pic fills in the service address.' },
          dest_port: { type: 'integer', minimum: 1, maximum: 65535, title: 'Destination port', description: 'Port of the service, 1 to 65535.' },
          proto: { type: 'string', enum: ['tcp', 'udp'], default: 'tcp', title: 'Protocol', description: 'tcp (default) or udp.' },
        },
        ['type', 'dest_ip', 'dest_port'],
      ),
    ),
    connectivity: obj(
      'Connectivity',
      'Declares the service as a connectivity exit (a Connection type): pic runs one instance of it per Connection, named by ${INSTANCE_ID}, with what it declares here.',
      {
        provides: { type: 'string', enum: EGRESS_TYPES.filter((t) => t !== 'default'), title: 'Provides', description: 'The connection type this service implements.' },
        cap_add: arr(
          'Capabilities',
          `Linux capabilities the template's cap_add may use; only ${CONNECTIVITY_CAPABILITIES.join(' and ')} are ever granted.`,
          patterned('Capability', 'A capability name without CAP_, such as NET_ADMIN.', CAPABILITY_NAME_PATTERN),
          { uniqueItems: true },
        ),
        devices: arr(
          'Devices',
          `Host devices the template's devices may use; only ${CONNECTIVITY_DEVICES.join(' and ')} is ever granted.`,
          { type: 'string', enum: [...CONNECTIVITY_DEVICES], title: 'Device', description: 'A device path.' },
          { uniqueItems: true },
        ),
        sysctls: {
          type: 'object',
          title: 'Sysctls',
          description: "Kernel settings of the exit's own network namespace the template's sysctls may set (net.ipv4.* only).",
          propertyNames: { pattern: CONNECTIVITY_SYSCTL_PATTERN },
          additionalProperties: { type: 'string', pattern: '^[0-9]{1,10}$' },
        },
        config_path: patterned(
          'Config path',
          "Where in the exit's container the Connection's configFile is mounted, read-only (default /run/pic/connection/config).",
          ABSOLUTE_PATH_PATTERN,
        ),
      },
      ['provides'],
    ),
    caddy_route: obj('Caddy route', 'The web interface of the service.', { subdomain: subdomain('Subdomain', 'Name the web interface answers at.') }, ['subdomain']),
  },
  allOf: Object.entries(CAPABILITY_REQUIREMENTS).map(([flag, fields]) => ({
    if: {
      type: 'object',
      required: ['capabilities'],
      properties: { capabilities: { type: 'object', required: [flag], properties: { [flag]: { const: true } } } },
    },
    then: { required: [...fields] },
  })),
};

// ---------------------------------------------------------------------------------------------
// The desired-state documents, apiVersion pic.ngo/v1alpha1.

const metadata = obj(
  'Metadata',
  'Who the document is.',
  {
    name: patterned('Name', 'Unique per kind; a DNS label.', DNS_LABEL_PATTERN, { maxLength: 63 }),
    namespace: patterned('Namespace', 'Only meaningful in a Kubernetes cluster.', DNS_LABEL_PATTERN, { maxLength: 63 }),
    labels: { type: 'object', title: 'Labels', description: 'Free-form string labels.', additionalProperties: { type: 'string' } },
    annotations: { type: 'object', title: 'Annotations', description: 'Free-form string annotations.', additionalProperties: { type: 'string' } },
  },
  ['name'],
);

function documentSchema(kind: DocumentKind, title: string, description: string, spec: JsonSchema): JsonSchema {
  return {
    $schema: JSON_SCHEMA_DRAFT,
    title,
    description,
    type: 'object',
    required: ['apiVersion', 'kind', 'metadata', 'spec'],
    additionalProperties: false,
    properties: {
      apiVersion: { type: 'string', const: API_VERSION, title: 'API version', description: `Always ${API_VERSION}.` },
      kind: { type: 'string', const: kind, title: 'Kind', description: `Always ${kind}.` },
      metadata,
      spec,
    },
  };
}

/** Container names and VPN defaults of the core stack pic runs when the Cell asks it to. */
export const DEFAULT_CORE_CONTAINERS = { caddy: 'cell-caddy', dns: 'cell-dns', wireguard: 'cell-wireguard' } as const;
export const DEFAULT_VPN = { subnet: '10.8.0.0/24', listenPort: 51820 } as const;

function port(title: string, description: string): JsonSchema {
  return { type: 'integer', minimum: 1, maximum: 65535, title, description };
}

/** "pic runs this core container": its image and fixed address on the cell network, plus its own fields. */
function coreRun(what: string, defaultName: string, extra: Record<string, JsonSchema>): JsonSchema {
  return obj(
    `${what} run by pic`,
    `pic creates and heals the ${what} container on the cell network. Without this section the admin runs ${what} and the fields beside it say where.`,
    {
      // Checked by the one image-reference parser (crds/image-reference.ts, validate-documents.ts):
      // name[:tag][@sha256:<64 hex>], under allowedImagePrefix. No pattern can state both.
      image: str('Image', 'Image of the container, under allowedImagePrefix, as name:tag, name@sha256:<64 hex> or name:tag@sha256:<64 hex>. Under imageVerification enforce it must be pinned by digest and signed by a trusted key, like a service image.', { minLength: 1, maxLength: 1024 }),
      address: patterned('Address', 'Fixed IPv4 address on the cell network, inside the subnet and outside the service pool.', IPV4_PATTERN),
      container: patterned('Container', `Container name; default ${defaultName}.`, DOCKER_NAME_PATTERN),
      ...extra,
    },
    ['image', 'address'],
  );
}

export const CELL_SPEC_SCHEMA = obj(
  'Cell spec',
  'The cell as a whole: its domain, catalog, network and image policy.',
  {
    domain: patterned('Domain', 'Public domain of the cell; services answer at <subdomain>.<domain>.', DNS_NAME_PATTERN, { maxLength: 253 }),
    store: obj('Store', 'The service catalog: a folder (path) or a published store (url), exactly one of the two.', {
      path: str('Path', 'Folder holding index.json and services/<id>/, relative to the cell folder or absolute.', { minLength: 1 }),
      url: str('URL', 'Base URL of a published store (index.json and services/<id>/ below it): https, or plain http to a loopback address only. Fetched into a cache in the state directory.', { minLength: 1, maxLength: 2048 }),
      refreshSeconds: { type: 'integer', minimum: 60, maximum: 604800, title: 'Refresh interval (seconds)', description: 'How often the operator asks a url store for a newer index (conditional requests). Default 3600.' },
      requireSignature: bool('Require a signature', 'Refuse an index from a url store that is not signed (index.json.sig or index.json.sigstore.json) by one of the image keys. Default false.'),
    }),
    network: obj(
      'Network',
      'The Docker network of the cell and the addresses handed to services.',
      {
        name: patterned('Name', 'Docker network name.', DOCKER_NAME_PATTERN, { default: DEFAULT_NETWORK.name }),
        subnet: patterned('Subnet', 'IPv4 subnet of the network.', IPV4_CIDR_PATTERN, { default: DEFAULT_NETWORK.subnet }),
        servicePool: patterned('Service pool', 'Range inside the subnet from which each service gets a stable address.', IPV4_RANGE_PATTERN, {
          default: DEFAULT_NETWORK.servicePool,
        }),
      },
      [],
      { default: { ...DEFAULT_NETWORK } },
    ),
    imageVerification: obj(
      'Image verification',
      'Whether service images must carry a valid cosign signature.',
      {
        mode: { type: 'string', enum: ['off', 'warn', 'enforce'], default: 'enforce', title: 'Mode', description: 'enforce refuses unsigned or unpinned images, warn only reports, off skips the check.' },
        publicKey: str('Public key', 'cosign public key file (PEM), relative to the cell folder or absolute.', { minLength: 1 }),
        publicKeys: arr(
          'Public keys',
          'Several cosign public key files; a signature by any one of them (or by publicKey) verifies. Rotate by adding the new key, re-signing, then removing the old one.',
          str('Public key', 'cosign public key file (PEM), relative to the cell folder or absolute.', { minLength: 1 }),
          { uniqueItems: true },
        ),
      },
      [],
      { default: { mode: 'enforce' } },
    ),
    registries: obj('Registries', 'How image registries are reached, for pulls and signature look-ups alike.', {
      mirrors: {
        type: 'object',
        title: 'Mirrors',
        description: 'Registry host → mirror host[:port] serving the same repositories, e.g. git.pic.ngo: 127.0.0.1:5000 (an air-gapped cell, the demo). Signatures must still name the original registry or the mirror.',
        additionalProperties: patterned('Mirror', 'host[:port] of the mirror.', REGISTRY_HOST_PATTERN),
      },
      insecure: arr('Insecure registries', 'Registries (or mirrors) reached over plain HTTP; loopback ones always are. Give dockerd the same list (insecure-registries) for its pulls.', patterned('Registry', 'host[:port].', REGISTRY_HOST_PATTERN), { uniqueItems: true }),
    }),
    allowedImagePrefix: patterned('Allowed image prefix', 'Registry path every service image, and every core image pic runs (spec.{caddy,dns,wireguard}.run.image), must live under.', IMAGE_PREFIX_PATTERN, { default: DEFAULT_ALLOWED_IMAGE_PREFIX }),
    dataDir: patterned('Data directory', 'Host directory under which all bind mounts of services must stay.', ABSOLUTE_PATH_PATTERN),
    caddy: obj('Caddy', 'The reverse proxy in front of the services.', {
      adminAddress: str('Admin address', 'Where the Caddy admin API listens, such as localhost:2019.', { minLength: 1 }),
      caddyfile: str('Caddyfile', 'Where pic writes the Caddyfile it renders; relative to the cell folder or absolute. Default: caddy/Caddyfile in the state directory.', { minLength: 1 }),
      sites: arr(
        'Core sites',
        'Routes of the cell\'s own containers (API, web UI), rendered before the services\' routes.',
        obj('Site', 'One subdomain served by a core container.', {
          subdomain: patterned('Subdomain', 'The name under the cell domain; reserved names such as api and webui are allowed here.', SUBDOMAIN_PATTERN),
          backend: patterned('Backend', 'container:port Caddy proxies to.', BACKEND_PATTERN),
        }, ['subdomain', 'backend']),
      ),
      tls: obj('TLS', 'How Caddy gets certificates.', {
        mode: { type: 'string', enum: ['internal', 'acme', 'off'], title: 'Mode', description: 'internal: a local CA; acme: a public CA such as Let\'s Encrypt; off: plain HTTP.' },
        email: patterned('E-mail', 'Contact address given to the ACME CA.', EMAIL_PATTERN),
      }),
          run: coreRun('Caddy', DEFAULT_CORE_CONTAINERS.caddy, {
        publish: obj('Published ports', 'Host ports Caddy is published on; none unless given here. Its admin API is never published.', {
          hostIp: patterned('Host IP', 'Host address the ports are bound to; default 0.0.0.0 (every address).', IPV4_PATTERN),
          http: port('HTTP port', 'Host port forwarded to Caddy\'s port 80.'),
          https: port('HTTPS port', 'Host port forwarded to Caddy\'s port 443.'),
        }),
      }),
    }),
    dns: obj('DNS', 'The zone the cell serves for its domain.', {
      address: patterned('Address', 'IPv4 address the A records of the services point at.', IPV4_PATTERN),
      nameservers: arr('Name servers', 'Name servers of the zone.', patterned('Name server', 'Host name or IPv4 address.', HOST_PATTERN), { uniqueItems: true }),
      zoneFile: str('Zone file', 'Where pic writes the zone; relative to the cell folder or absolute. Default: dns/<domain>.zone in the state directory.', { minLength: 1 }),
          run: coreRun('DNS server', DEFAULT_CORE_CONTAINERS.dns, {
        upstreams: arr('Upstream resolvers', 'Resolvers that names outside the cell domain are forwarded to. Without any, such queries are refused.', patterned('Upstream', 'IPv4 address of a resolver.', IPV4_PATTERN), { uniqueItems: true }),
      }),
    }),
    wireguard: obj('WireGuard', 'The container holding the cell\'s VPN, firewall and egress routing.', {
      container: patterned('Container', 'Name of the container whose iptables and routing rules pic manages.', DOCKER_NAME_PATTERN, { default: DEFAULT_WIREGUARD_CONTAINER }),
      subnet: patterned('VPN subnet', `The tunnel's IPv4 network; the server takes its first address. Default ${DEFAULT_VPN.subnet}.`, IPV4_CIDR_PATTERN),
      peerPool: patterned('Peer pool', 'Range inside the VPN subnet from which each PeerAccount gets a stable address. Default: the subnet after the server address.', IPV4_RANGE_PATTERN),
      endpoint: patterned('Endpoint', 'host:port peers connect to (the cell\'s public name or address and the published UDP port).', ENDPOINT_PATTERN),
      run: coreRun('WireGuard', DEFAULT_CORE_CONTAINERS.wireguard, {
        listenPort: port('Listen port', `UDP port WireGuard listens on inside the container. Default ${DEFAULT_VPN.listenPort}.`),
        publish: obj('Published port', 'Where the UDP listen port is published on the host.', {
          hostIp: patterned('Host IP', 'Host address the port is bound to; default 0.0.0.0.', IPV4_PATTERN),
          port: port('Port', 'Host UDP port; default the listen port.'),
        }),
      }),
    }),
    backup: obj('Backup', 'Where snapshots of the services\' data are kept, when the operator takes them and how many it keeps.', {
      path: str('Path', 'Folder holding the snapshots; relative to the cell folder or absolute. Default: backups/ in the state directory.', { minLength: 1 }),
      schedule: obj('Schedule', 'When the operator takes a verified snapshot of every installed service that declares data and is Ready (UTC). A slot missed while the operator was down is taken when it starts.', {
        every: { type: 'string', enum: ['hourly', 'daily', 'weekly'], title: 'Every', description: 'How often a snapshot is due.' },
        at: patterned('At', 'HH:MM (UTC) of a daily or weekly snapshot; of an hourly one only the minutes count. Default 03:00.', BACKUP_TIME_PATTERN),
        weekday: { type: 'string', enum: ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'], title: 'Weekday', description: 'Day of a weekly snapshot; default sunday.' },
      }, ['every']),
      retention: obj('Retention', 'Which verified snapshots are kept: the newest `last`, and the newest of each of the latest `daily` days, `weekly` ISO weeks and `monthly` months. The rest are deleted, by the operator after each scheduled snapshot and by pic backup prune.', {
        last: { type: 'integer', minimum: 0, maximum: 1000, title: 'Last', description: 'The newest snapshots kept whatever their age.' },
        daily: { type: 'integer', minimum: 0, maximum: 1000, title: 'Daily', description: 'Days with a kept snapshot.' },
        weekly: { type: 'integer', minimum: 0, maximum: 1000, title: 'Weekly', description: 'ISO weeks with a kept snapshot.' },
        monthly: { type: 'integer', minimum: 0, maximum: 1000, title: 'Monthly', description: 'Months with a kept snapshot.' },
      }),
    }),
  },
  ['domain', 'store'],
);

export const SERVICE_INSTALL_SPEC_SCHEMA = obj(
  'ServiceInstall spec',
  'Install the catalog service named by metadata.name.',
  {
    version: patterned('Version', 'The version admitted. Omitted: the catalog\'s version at the first install, kept afterwards. A newer catalog version is reported, not applied, until this names it; then pic upgrades (snapshot first) and rolls back on failure.', SEMVER_PATTERN),
    config: {
      type: 'object',
      title: 'Config',
      description: 'Values for the fields of the manifest\'s config_schema; defaults fill the rest.',
      additionalProperties: { type: ['string', 'integer', 'boolean'], title: 'Value', description: 'A string, an integer or a boolean.' },
    },
    egress: obj('Egress', 'Where the outbound traffic of the service goes.', {
      connection: patterned('Connection', '"default", or the name of a Connection whose type the manifest allows.', DNS_LABEL_PATTERN),
    }, ['connection']),
    publish: arr(
      'Published ports',
      'Host ports the admin consents to the service publishing on the cell\'s own addresses, outside the VPN, as PORT/PROTOCOL (e.g. "25/tcp"). The service\'s template must name each; a port it publishes that is not listed here is refused, and the core stack\'s ports (80, 443, 53, the WireGuard port) never are allowed.',
      patterned('Port', 'PORT/tcp or PORT/udp, PORT from 1 to 65535.', PUBLISHED_PORT_PATTERN),
      { uniqueItems: true },
    ),
    minReadySeconds: { type: 'integer', minimum: 0, maximum: 600, title: 'Minimum ready seconds', description: 'How long every container of the service must stay running (and healthy, where it has a health check) before an upgrade or a restore counts the service Ready; a container that exits or restarts within it fails the upgrade at once. The loop\'s own Ready waits for the smaller of this and 2 seconds. Default 10.' },
    backup: obj('Backup', 'How the service is held still while its snapshot is taken.', {
      consistency: { type: 'string', enum: ['pause', 'stop'], default: 'pause', title: 'Consistency', description: 'pause freezes the containers for the moment of the snapshot; stop stops them (for databases that must flush), then starts them again.' },
    }),
    upgrade: obj('Upgrade', 'How an upgrade to the catalog\'s newer version is judged.', {
      deadlineSeconds: { type: 'integer', minimum: 5, maximum: 86400, default: 300, title: 'Deadline (seconds)', description: 'How long the new version has to become Ready (health checks included) before pic rolls back to the previous version and restores the snapshot taken before the upgrade. Default 300.' },
    }),
  },
  [],
);

export const PEER_ACCOUNT_SPEC_SCHEMA = obj(
  'PeerAccount spec',
  'The services on which the peer named by metadata.name has an account.',
  {
    services: arr('Services', 'Ids of installed services; removing one deprovisions the account there.', patterned('Service', 'Service id.', SERVICE_ID_PATTERN), {
      uniqueItems: true,
    }),
     wireguard: obj('WireGuard', 'The peer\'s VPN key.', {
      publicKey: patterned('Public key', 'The peer\'s own WireGuard public key (base64); the person keeps the private key. Without it pic generates a pair.', WIREGUARD_KEY_PATTERN),
    }),
  },
  ['services'],
);

export const CONNECTION_SPEC_SCHEMA = obj(
  'Connection spec',
  'A named exit for the outbound traffic of services: pic runs one instance of a connectivity service for it and steers the traffic of the services that name it through that instance.',
  {
    type: { type: 'string', enum: EGRESS_TYPES.filter((t) => t !== 'default'), title: 'Type', description: 'What kind of exit this is.' },
    service: patterned(
      'Service',
      'The catalog service that implements the type; default: the one catalog service whose manifest says connectivity.provides: <type>.',
      SERVICE_ID_PATTERN,
    ),
    configFile: str(
      'Config file',
      'A file the exit reads (a wg-quick file, an .ovpn file, an SSH key…), relative to this document or an absolute path on the cell host; mounted read-only into the exit, never logged or copied into status.',
      { minLength: 1, maxLength: 4096 },
    ),
    config: {
      type: 'object',
      title: 'Config',
      description: "Values for the connectivity service's config_schema.",
      additionalProperties: { type: ['string', 'integer', 'boolean'] },
    },
    failOpen: bool('Fail open', 'When the exit is down, let traffic take the normal route instead of dropping it (no kill switch).', { default: false }),
  },
  ['type'],
);

export const CELL_SCHEMA = documentSchema('Cell', 'pic Cell', 'The one Cell document of a cell folder (cell.yaml).', CELL_SPEC_SCHEMA);
export const SERVICE_INSTALL_SCHEMA = documentSchema('ServiceInstall', 'pic ServiceInstall', 'A store service the cell runs (services/<name>.yaml).', SERVICE_INSTALL_SPEC_SCHEMA);
export const PEER_ACCOUNT_SCHEMA = documentSchema('PeerAccount', 'pic PeerAccount', 'The service accounts of one peer (peers/<name>.yaml).', PEER_ACCOUNT_SPEC_SCHEMA);
export const CONNECTION_SCHEMA = documentSchema('Connection', 'pic Connection', 'A named egress exit (connections/<name>.yaml).', CONNECTION_SPEC_SCHEMA);

export const DOCUMENT_SCHEMAS: Readonly<Record<DocumentKind, JsonSchema>> = {
  Cell: CELL_SCHEMA,
  ServiceInstall: SERVICE_INSTALL_SCHEMA,
  PeerAccount: PEER_ACCOUNT_SCHEMA,
  Connection: CONNECTION_SCHEMA,
};

/** What any document must look like before its kind is known. */
export const DOCUMENT_ENVELOPE_SCHEMA: JsonSchema = {
  $schema: JSON_SCHEMA_DRAFT,
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { type: 'string', const: API_VERSION },
    kind: { type: 'string', enum: [...DOCUMENT_KINDS] },
    metadata,
    spec: { type: 'object' },
  },
};

function withoutDraft(schema: JsonSchema): JsonSchema {
  const { $schema: _drop, ...rest } = schema;
  return rest;
}

/**
 * Any of the four kinds, chosen by `kind`: the schema to name in an editor modeline, e.g.
 * `# yaml-language-server: $schema=../crds/schemas/document.schema.json`.
 */
export const DOCUMENT_SCHEMA: JsonSchema = {
  $schema: JSON_SCHEMA_DRAFT,
  title: 'pic document',
  description: `A desired-state document of a pic cell (apiVersion ${API_VERSION}): ${DOCUMENT_KINDS.join(', ')}.`,
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  properties: {
    apiVersion: { type: 'string', const: API_VERSION, title: 'API version', description: `Always ${API_VERSION}.` },
    kind: { type: 'string', enum: [...DOCUMENT_KINDS], title: 'Kind', description: 'Which kind of document this is.' },
  },
  definitions: Object.fromEntries(DOCUMENT_KINDS.map((kind) => [kind, withoutDraft(DOCUMENT_SCHEMAS[kind])])),
  allOf: DOCUMENT_KINDS.map((kind) => ({
    if: { type: 'object', required: ['kind'], properties: { kind: { const: kind } } },
    then: { $ref: `#/definitions/${kind}` },
  })),
};
