/**
 * Shapes of the store manifest (schema_version 3) and of the cell's desired-state documents.
 * The JSON Schemas in crds/schemas.ts are the authority on what is accepted; these types describe
 * what the rest of the code may rely on once a document has passed validation.
 */

/** One problem found in an input: which file, where in it (JSON pointer), and what is wrong. */
export interface Problem {
  file: string;
  pointer: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.file}: ${p.pointer || '/'}: ${p.message}`;
}

export const EGRESS_TYPES = ['default', 'wireguard_ext', 'openvpn', 'tor', 'sshuttle', 'proxy'] as const;
export type EgressType = (typeof EGRESS_TYPES)[number];

export const CAPABILITY_FLAGS = [
  'has_subdomain',
  'has_accounts',
  'has_admin_config',
  'has_storage',
  'has_egress',
  'has_api_hooks',
] as const;
export type CapabilityFlag = (typeof CAPABILITY_FLAGS)[number];

export const ACCOUNT_MANAGERS = ['http', 'email_manager', 'calendar_manager', 'file_manager'] as const;
export type AccountManagerName = (typeof ACCOUNT_MANAGERS)[number];

export interface ConfigField {
  type: 'string' | 'integer' | 'boolean';
  label: string;
  required?: boolean;
  default?: string | number | boolean;
  min?: number;
  max?: number;
}

export interface IptablesRule {
  type: 'ACCEPT';
  dest_ip: '${SERVICE_IP}';
  dest_port: number;
  proto?: 'tcp' | 'udp';
}

export interface Manifest {
  schema_version: 3;
  kind: 'store';
  id: string;
  name: string;
  description: string;
  version: string;
  author: string;
  min_pic_version?: string;
  capabilities: Record<CapabilityFlag, boolean>;
  subdomain?: string;
  extra_subdomains?: string[];
  /** Claimed subdomains whose DNS record is the service's address rather than Caddy's. */
  direct_subdomains?: string[];
  backend?: string;
  extra_backends?: Record<string, string>;
  containers?: string[];
  config_schema?: Record<string, ConfigField>;
  peer_config_template?: Record<string, string>;
  accounts?: { manager: AccountManagerName; credentials: string[] };
  compose?: null;
  backup?: {
    volumes: { container: string; path: string; name: string }[];
    config_paths: string[];
  };
  storage?: { primary_path: string; quota_mb: number | null };
  egress?: { default: EgressType; allowed: EgressType[] };
  image: string;
  container_name: string;
  volumes?: { name: string; mount: string }[];
  env?: { key: string; value: string }[];
  iptables_rules?: IptablesRule[];
  caddy_route?: { subdomain: string };
  /** A connectivity exit: the Connection type it provides and the capabilities its containers add. */
  connectivity?: {
    provides: Exclude<EgressType, 'default'>;
    cap_add?: string[];
    devices?: string[];
    sysctls?: Record<string, string>;
    /** Where the Connection's configFile is mounted in the exit (default DEFAULT_CONNECTION_CONFIG_PATH). */
    config_path?: string;
  };
}

export const API_VERSION = 'pic.ngo/v1alpha1';
export const DOCUMENT_KINDS = ['Cell', 'ServiceInstall', 'PeerAccount', 'Connection'] as const;
export type DocumentKind = (typeof DOCUMENT_KINDS)[number];

export interface ObjectMeta {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export type ImageVerificationMode = 'off' | 'warn' | 'enforce';

export interface CellSpec {
  domain: string;
  /** Exactly one of `path` (a catalog folder) and `url` (a published store, cached in the state directory). */
  store: { path?: string; url?: string; refreshSeconds?: number; requireSignature?: boolean };
  network: { name: string; subnet: string; servicePool: string };
  imageVerification: { mode: ImageVerificationMode; publicKey?: string; publicKeys?: string[] };
  /** Registry mirrors (host → mirror host) and registries reached over plain HTTP. */
  registries?: { mirrors?: Record<string, string>; insecure?: string[] };
  allowedImagePrefix: string;
  /** Host directory under which every bind mount of a rendered service must stay. */
  dataDir?: string;
  /** The reverse proxy: where its admin API listens and how it gets certificates. */
  caddy?: {
    adminAddress?: string;
    caddyfile?: string;
    sites?: { subdomain: string; backend: string }[];
    tls?: { mode?: CaddyTlsMode; email?: string };
    /** pic runs Caddy; absent: the admin does, and `adminAddress` says where. */
    run?: CoreRunSpec & { publish?: { hostIp?: string; http?: number; https?: number } };
  };
  /** The zone of the cell: the IPv4 address its A records point at, and its name servers. */
  dns?: { address?: string; nameservers?: string[]; zoneFile?: string; run?: CoreRunSpec & { upstreams?: string[] } };
  wireguard?: {
    container?: string;
    subnet?: string;
    peerPool?: string;
    endpoint?: string;
    run?: CoreRunSpec & { listenPort?: number; publish?: { hostIp?: string; port?: number } };
  };
  backup?: BackupSpec;
}

export type BackupWeekday = 'monday' | 'tuesday' | 'wednesday' | 'thursday' | 'friday' | 'saturday' | 'sunday';

export interface BackupSpec {
  path?: string;
  schedule?: { every: 'hourly' | 'daily' | 'weekly'; at?: string; weekday?: BackupWeekday };
  retention?: { last?: number; daily?: number; weekly?: number; monthly?: number };
}

/** A core container pic runs: its image and fixed address on the cell network. */
export interface CoreRunSpec {
  image: string;
  address: string;
  container?: string;
}

export type CaddyTlsMode = 'internal' | 'acme' | 'off';

export interface ServiceInstallSpec {
  /** The version admitted; omitted: the catalog's at the first install, kept afterwards. */
  version?: string;
  config?: Record<string, string | number | boolean>;
  egress?: { connection: string };
  /** Host ports the admin consents to the service publishing, as "25/tcp". */
  publish?: string[];
  /** How long every container must stay up before an upgrade or restore counts it Ready (seconds). */
  minReadySeconds?: number;
  backup?: { consistency?: 'pause' | 'stop' };
  upgrade?: { deadlineSeconds?: number };
}

export interface PeerAccountSpec {
  services: string[];
  /** The person keeps their own private key; without it pic generates a pair. */
  wireguard?: { publicKey?: string };
}

export type ConnectionType = Exclude<EgressType, 'default'>;

export interface ConnectionSpec {
  type: ConnectionType;
  /** The catalog service implementing the type; default: the one that provides it. */
  service?: string;
  /** Relative to the document, or absolute on the cell host; mounted read-only into the exit. */
  configFile?: string;
  config?: Record<string, string | number | boolean>;
  failOpen?: boolean;
}

interface DocumentBase<K extends DocumentKind, S> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: ObjectMeta;
  spec: S;
}

export type CellDocument = DocumentBase<'Cell', CellSpec>;
export type ServiceInstallDocument = DocumentBase<'ServiceInstall', ServiceInstallSpec>;
export type PeerAccountDocument = DocumentBase<'PeerAccount', PeerAccountSpec>;
export type ConnectionDocument = DocumentBase<'Connection', ConnectionSpec>;
export type CellObject = CellDocument | ServiceInstallDocument | PeerAccountDocument | ConnectionDocument;

/** A document together with where it came from, so every problem can name its file. */
export interface Sourced<T> {
  file: string;
  /** Index of the document inside a multi-document YAML file (0 for the first). */
  index: number;
  doc: T;
}
