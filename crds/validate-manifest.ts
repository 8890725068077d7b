/**
 * The store manifest contract (schema_version 3): the JSON Schema of crds/schemas.ts, then the
 * rules a schema cannot say (reserved and duplicate subdomains, port ranges, template tokens,
 * paths after normalisation, the image policy). Pure: no I/O, never throws on bad input.
 */
import path from 'node:path';
import { pointerOf } from './json-pointer.js';
import { serviceConfigPath } from './service-folder.js';
import semver from 'semver';
import { compiledSchema, schemaProblems } from './schema-problems.js';
import {
  BACKEND_PATTERN,
  CAPABILITY_REQUIREMENTS,
  CONFIG_KEY_PATTERN,
  CONNECTIVITY_CAPABILITIES,
  DEFAULT_ALLOWED_IMAGE_PREFIX,
  MANIFEST_SCHEMA,
  RESERVED_SUBDOMAINS,
} from './schemas.js';
import { boundProblems, quoted } from './problem-limit.js';
import { EGRESS_TYPES, type ImageVerificationMode, type Manifest, type Problem } from './types.js';
import { readImageReference, SHA256_DIGEST_RE, allowedPrefixFolder, isUnderImagePrefix } from './image-reference.js';
import { isRecord } from './values.js';

export interface ManifestPolicy {
  /** Registry path every image must live under, matched on whole path segments. */
  allowedImagePrefix: string;
  /** Under enforce an image must be pinned by digest; a malformed digest is refused in every mode. */
  imageVerification: ImageVerificationMode;
  /** The pic project root on the host; no volume may be mounted on it or on a directory above it. */
  projectRoot?: string;
}

export const DEFAULT_PROJECT_ROOT = '/opt/pic';

export const DEFAULT_MANIFEST_POLICY: Readonly<ManifestPolicy> = Object.freeze({
  allowedImagePrefix: DEFAULT_ALLOWED_IMAGE_PREFIX,
  imageVerification: 'enforce',
});

/** Container directories no service volume may be mounted on (compared after normalising). */
export const FORBIDDEN_MOUNTS = ['/', '/etc', '/var', '/proc', '/sys', '/dev', '/app', '/run', '/boot'] as const;

// ---------------------------------------------------------------------------------------------
// Paths.

/** posix-normalise an absolute path: `//` collapsed, `.` and `..` resolved, no trailing slash. */
export function normaliseAbsolutePath(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.replace(/\/+$/, '') || '/' : n;
}

/** Whether `ancestor` is `p` itself or a directory above it, segment-wise (`/op` is not above `/opt`). */
function isSameOrAbove(ancestor: string, p: string): boolean {
  return ancestor === '/' || ancestor === p || p.startsWith(`${ancestor}/`);
}

// ---------------------------------------------------------------------------------------------
// Template variables of env values and compose templates.

const FIXED_TEMPLATE_VARIABLES = ['PIC_DOMAIN', 'PIC_CELL_NAME', 'PIC_DATA_DIR', 'PIC_SERVICE_ID', 'SERVICE_IP', 'INSTANCE_ID'] as const;
const SECRET_VARIABLE_RE = /^PIC_SECRET_[A-Z0-9][A-Z0-9_]*$/;

/** The variable a config_schema key becomes in templates: `port` → `PIC_CFG_PORT`. */
export function configVariableName(key: string): string {
  return `PIC_CFG_${key.toUpperCase()}`;
}

/** Whether `${name}` is a variable pic fills in for a service with these config_schema keys. */
export function isKnownTemplateVariable(name: string, configKeys: readonly string[]): boolean {
  if ((FIXED_TEMPLATE_VARIABLES as readonly string[]).includes(name)) return true;
  if (SECRET_VARIABLE_RE.test(name)) return true;
  return configKeys.some((k) => configVariableName(k) === name);
}

// ---------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** Every subdomain a manifest names, primary first, each once: for collision checks across services. */
export function manifestSubdomains(m: Manifest): string[] {
  const names: unknown[] = [m.subdomain, ...(Array.isArray(m.extra_subdomains) ? m.extra_subdomains : [])];
  if (isRecord(m.extra_backends)) names.push(...Object.keys(m.extra_backends));
  if (isRecord(m.caddy_route)) names.push(m.caddy_route.subdomain);
  return [...new Set(names.filter((n): n is string => typeof n === 'string'))];
}

type Report = (pointer: string, message: string) => void;

const BACKEND_RE = new RegExp(BACKEND_PATTERN);
const CONFIG_KEY_RE = new RegExp(CONFIG_KEY_PATTERN);

/** A semantic version as written in package metadata: no "v" or "=" in front, no spaces. */
function isPlainSemver(v: string): boolean {
  return /^\d[^\s]*$/.test(v) && semver.valid(v) !== null;
}

function checkVersions(m: Json, report: Report): void {
  if (typeof m.version === 'string' && m.version !== '' && !isPlainSemver(m.version)) {
    report('/version', `must be a semantic version such as 1.0.0 (major.minor.patch), not ${quoted(m.version)}`);
  }
  const min = m.min_pic_version;
  if (typeof min === 'string' && min !== '' && !isPlainSemver(min) && !/^(0|[1-9]\d*)(\.(0|[1-9]\d*)){0,2}$/.test(min)) {
    report('/min_pic_version', `must be a version such as 1.0 or 1.2.3, not ${quoted(min)}`);
  }
}

function checkSubdomains(m: Json, report: Report): void {
  const claims: { name: string; pointer: string }[] = [];
  if (typeof m.subdomain === 'string') claims.push({ name: m.subdomain, pointer: '/subdomain' });
  if (Array.isArray(m.extra_subdomains)) {
    m.extra_subdomains.forEach((s, i) => {
      if (typeof s === 'string') claims.push({ name: s, pointer: pointerOf('extra_subdomains', i) });
    });
  }
  if (isRecord(m.extra_backends)) for (const key of Object.keys(m.extra_backends)) claims.push({ name: key, pointer: pointerOf('extra_backends', key) });
  const route = isRecord(m.caddy_route) && typeof m.caddy_route.subdomain === 'string' ? { name: m.caddy_route.subdomain, pointer: '/caddy_route/subdomain' } : undefined;

  for (const claim of route ? [...claims, route] : claims) {
    if ((RESERVED_SUBDOMAINS as readonly string[]).includes(claim.name)) {
      report(claim.pointer, `${quoted(claim.name)} is a reserved subdomain of the cell; reserved: ${RESERVED_SUBDOMAINS.join(', ')}`);
    }
  }
  if (Array.isArray(m.direct_subdomains)) {
    const claimed = new Set([...claims, ...(route ? [route] : [])].map((c) => c.name));
    m.direct_subdomains.forEach((s, i) => {
      if (typeof s === 'string' && !claimed.has(s)) {
        report(pointerOf('direct_subdomains', i), `${quoted(s)} is not a subdomain this manifest claims (subdomain, extra_subdomains, extra_backends or caddy_route); only the service's own names can resolve to it`);
      }
    });
  }
  // caddy_route names the web interface, usually the primary subdomain again; it may repeat one.
  const firstClaim = new Map<string, string>();
  for (const claim of claims) {
    const earlier = firstClaim.get(claim.name);
    if (earlier) report(claim.pointer, `subdomain ${quoted(claim.name)} is already claimed at ${earlier}; name each subdomain once`);
    else firstClaim.set(claim.name, claim.pointer);
  }
}

function checkBackends(m: Json, report: Report): void {
  const check = (value: unknown, pointer: string): void => {
    if (typeof value !== 'string' || !BACKEND_RE.test(value)) return;
    const port = Number(value.slice(value.lastIndexOf(':') + 1));
    if (port < 1 || port > 65535) report(pointer, `port ${port} of backend ${quoted(value)} is outside 1-65535`);
  };
  check(m.backend, '/backend');
  if (isRecord(m.extra_backends)) for (const [key, value] of Object.entries(m.extra_backends)) check(value, pointerOf('extra_backends', key));
}

function configKeys(m: Json): string[] {
  return isRecord(m.config_schema) ? Object.keys(m.config_schema).filter((k) => CONFIG_KEY_RE.test(k)) : [];
}

function checkConfigSchema(m: Json, report: Report): void {
  if (!isRecord(m.config_schema)) return;
  for (const [key, field] of Object.entries(m.config_schema)) {
    if (!isRecord(field)) continue;
    const at = (name: string): string => pointerOf('config_schema', key, name);
    const type = field.type;
    const { default: def, min, max } = field;
    const scalar = typeof def === 'string' || typeof def === 'boolean' || Number.isInteger(def);
    if (def !== undefined && scalar) {
      const fits = type === 'string' ? typeof def === 'string' : type === 'integer' ? Number.isInteger(def) : type === 'boolean' ? typeof def === 'boolean' : true;
      if (!fits) report(at('default'), `must be ${type === 'integer' ? 'an integer' : `a ${String(type)}`}, the type of the field`);
    }
    if (type === 'string' || type === 'boolean') {
      if (min !== undefined) report(at('min'), `min applies only to integer fields; this field is ${type}`);
      if (max !== undefined) report(at('max'), `max applies only to integer fields; this field is ${type}`);
      continue;
    }
    if (type !== 'integer') continue;
    const lo = Number.isInteger(min) ? (min as number) : undefined;
    const hi = Number.isInteger(max) ? (max as number) : undefined;
    if (lo !== undefined && hi !== undefined && lo > hi) report(at('max'), `max ${hi} is below min ${lo}`);
    if (Number.isInteger(def)) {
      const d = def as number;
      if (lo !== undefined && d < lo) report(at('default'), `default ${d} is below min ${lo}`);
      if (hi !== undefined && d > hi) report(at('default'), `default ${d} is above max ${hi}`);
    }
  }
}

const TEMPLATE_TOKENS_HELP = 'known tokens: {domain}, {peer.username}, {peer.service_credentials.<id>.<credential>}, {config.<key>}';

function checkPeerConfigTemplate(m: Json, report: Report): void {
  if (!isRecord(m.peer_config_template)) return;
  const id = typeof m.id === 'string' ? m.id : undefined;
  const credentials = isRecord(m.accounts) ? stringList(m.accounts.credentials) : [];
  const keys = configKeys(m);
  for (const [field, template] of Object.entries(m.peer_config_template)) {
    if (typeof template !== 'string') continue;
    const pointer = pointerOf('peer_config_template', field);
    const leftover = template.replace(/\{([^{}]*)\}/g, (_whole, token: string) => {
      if (token === 'domain' || token === 'peer.username') return '';
      const credential = /^peer\.service_credentials\.([^.]*)\.([^.]*)$/.exec(token);
      if (credential) {
        const service = credential[1] ?? '';
        const name = credential[2] ?? '';
        if (id !== undefined && service !== id) report(pointer, `token {${token}} names service ${quoted(service)}; a manifest can only use its own credentials: {peer.service_credentials.${id}.${name}}`);
        else if (!credentials.includes(name)) {
          report(pointer, `token {${token}} names credential ${quoted(name)}, which accounts.credentials does not list${credentials.length ? ` (it lists: ${credentials.join(', ')})` : ''}`);
        }
        return '';
      }
      const config = /^config\.(.*)$/.exec(token);
      if (config) {
        const key = config[1] ?? '';
        if (!keys.includes(key)) report(pointer, `token {${token}} names config key ${quoted(key)}, which config_schema does not define${keys.length ? ` (it defines: ${keys.join(', ')})` : ''}`);
        return '';
      }
      report(pointer, `unknown token {${token}}; ${TEMPLATE_TOKENS_HELP}`);
      return '';
    });
    if (/[{}]/.test(leftover)) report(pointer, `has an unmatched "{" or "}"; write tokens as {domain} (${TEMPLATE_TOKENS_HELP})`);
  }
}

function checkBackup(m: Json, report: Report): void {
  if (!isRecord(m.backup)) return;
  const { volumes, config_paths: configPaths } = m.backup;
  if (Array.isArray(volumes)) {
    volumes.forEach((v, i) => {
      if (!isRecord(v)) return;
      if (typeof v.path === 'string' && v.path !== '') {
        if (!v.path.startsWith('/')) report(pointerOf('backup', 'volumes', i, 'path'), `must be an absolute path inside the container (starting with /), not ${quoted(v.path)}`);
        else if (v.path.split('/').includes('..')) report(pointerOf('backup', 'volumes', i, 'path'), `must not contain ".." segments; write the directory plainly (it normalises to ${normaliseAbsolutePath(v.path)})`);
      }
      if (typeof v.name === 'string' && v.name.includes('..')) report(pointerOf('backup', 'volumes', i, 'name'), `must be a plain file name stem without ".."; ${quoted(v.name)} is not`);
    });
  }
  if (Array.isArray(configPaths)) {
    const id = typeof m.id === 'string' ? m.id : '';
    configPaths.forEach((p, i) => {
      if (typeof p !== 'string' || p === '') return;
      const checked = serviceConfigPath(id, p);
      if ('refused' in checked) report(pointerOf('backup', 'config_paths', i), checked.refused);
    });
  }
}

function checkEgress(m: Json, report: Report): void {
  if (!isRecord(m.egress)) return;
  const allowed = Array.isArray(m.egress.allowed) ? m.egress.allowed : undefined;
  if (!allowed) return;
  if (!allowed.includes('default')) report('/egress/allowed', 'must include "default", so the admin can always return the service to the normal route');
  const def = m.egress.default;
  if (typeof def === 'string' && (EGRESS_TYPES as readonly string[]).includes(def) && !allowed.includes(def)) {
    report('/egress/default', `${quoted(def)} must be one of egress.allowed (${stringList(allowed).join(', ')})`);
  }
}

/**
 * `connectivity.cap_add` may name only the capabilities a connectivity exit needs; the schema
 * checks the spelling, this the allow-list, so the message can say what is allowed.
 */
function checkConnectivity(m: Json, report: Report): void {
  const instanced = (name: unknown): boolean => typeof name === 'string' && name.includes('${INSTANCE_ID}');
  const names: [string, unknown][] = [['/container_name', m.container_name], ...(Array.isArray(m.containers) ? m.containers.map((c, i): [string, unknown] => [pointerOf('containers', i), c]) : [])];
  if (!isRecord(m.connectivity)) {
    for (const [pointer, name] of names) {
      if (instanced(name)) report(pointer, '${INSTANCE_ID} is set only for a connectivity service (one instance per Connection); declare connectivity or name the container without it');
    }
    return;
  }
  // Two Connections of one type run side by side: every container name of an exit is per instance.
  for (const [pointer, name] of names) {
    if (typeof name === 'string' && !instanced(name)) report(pointer, `"${name}" must end in \${INSTANCE_ID} (such as cell-exit-\${INSTANCE_ID}): pic runs one instance of a connectivity service per Connection`);
  }
  if (!Array.isArray(m.connectivity.cap_add)) return;
  m.connectivity.cap_add.forEach((cap, i) => {
    if (typeof cap !== 'string' || (CONNECTIVITY_CAPABILITIES as readonly string[]).includes(cap)) return;
    report(
      pointerOf('connectivity', 'cap_add', i),
      `capability "${cap}" is refused: a connectivity service may add only ${CONNECTIVITY_CAPABILITIES.join(' or ')}; the others weaken the host's isolation`,
    );
  });
}

function checkImage(m: Json, policy: ManifestPolicy, report: Report): void {
  if (typeof m.image !== 'string' || m.image === '') return;
  const read = readImageReference(m.image);
  for (const error of read.errors) report('/image', `image reference ${error}`);
  if (read.name !== undefined) {
    const prefix = allowedPrefixFolder(policy.allowedImagePrefix);
    if (policy.allowedImagePrefix === '') report('/image', 'no image is allowed: the allowed image prefix is empty');
    else if (read.name === prefix.slice(0, -1)) report('/image', `must name a repository under the allowed prefix ${quoted(prefix)}, not the prefix itself`);
    else if (!isUnderImagePrefix(read.name, policy.allowedImagePrefix)) report('/image', `must come from the allowed registry path ${quoted(prefix)}; ${quoted(read.name)} does not`);
  }
  if (read.digest !== undefined && !SHA256_DIGEST_RE.test(read.digest)) {
    report('/image', `must be pinned with a sha256 digest; ${quoted(read.digest.split(':')[0])} digests are not verified`);
  }
  if (policy.imageVerification === 'enforce' && read.digest === undefined && !read.errors.some((e) => e.includes('digest'))) {
    report('/image', 'must be pinned by digest (name@sha256:<64 hex>) because image verification is enforce; a tag can be moved after review');
  }
}

function checkVolumes(m: Json, policy: ManifestPolicy, report: Report): void {
  if (!Array.isArray(m.volumes)) return;
  const root = normaliseAbsolutePath(policy.projectRoot ?? DEFAULT_PROJECT_ROOT);
  m.volumes.forEach((v, i) => {
    if (!isRecord(v) || typeof v.mount !== 'string' || v.mount === '') return;
    const pointer = pointerOf('volumes', i, 'mount');
    const mount = v.mount;
    // eslint-disable-next-line no-control-regex
    if (/[:\u0000-\u001f]/.test(mount)) report(pointer, 'must not contain ":" or control characters, which Docker would read as mount options');
    if (!mount.startsWith('/')) {
      report(pointer, `must be an absolute path inside the container (starting with /), not ${quoted(mount)}`);
      return;
    }
    const n = normaliseAbsolutePath(mount);
    const shown = n === mount ? `${quoted(mount)}` : `${quoted(mount)} (which is ${n})`;
    if ((FORBIDDEN_MOUNTS as readonly string[]).includes(n)) {
      report(pointer, `must not mount over a system directory: ${shown} is forbidden (forbidden: ${FORBIDDEN_MOUNTS.join(' ')})`);
    } else if (isSameOrAbove(n, root)) {
      report(pointer, `must not mount over the pic project root ${root} or a directory above it: ${shown}`);
    }
  });
}

/**
 * The names inside each `${...}` of a value, found in one pass: the regular expression
 * /\$\{([^}]*)\}/g rescans to the end of the text from every `${` that is never closed, which
 * makes a value of a million `${` quadratic.
 */
function templateVariableNames(value: string): string[] {
  const names: string[] = [];
  let from = 0;
  for (;;) {
    const open = value.indexOf('${', from);
    if (open === -1) return names;
    const close = value.indexOf('}', open + 2);
    if (close === -1) return names;
    names.push(value.slice(open + 2, close));
    from = close + 1;
  }
}

function checkEnv(m: Json, report: Report): void {
  if (!Array.isArray(m.env)) return;
  const keys = configKeys(m);
  const seenKeys = new Map<string, number>();
  m.env.forEach((entry, i) => {
    if (!isRecord(entry)) return;
    if (typeof entry.key === 'string') {
      const earlier = seenKeys.get(entry.key);
      if (earlier !== undefined) report(pointerOf('env', i, 'key'), `${quoted(entry.key)} is already set by env entry ${earlier}; set each variable once`);
      else seenKeys.set(entry.key, i);
    }
    if (typeof entry.value !== 'string') return;
    for (const name of templateVariableNames(entry.value)) {
      if (!isKnownTemplateVariable(name, keys)) {
        report(
          pointerOf('env', i, 'value'),
          `\${${name}} is not a variable pic provides; use \${PIC_DOMAIN}, \${PIC_CELL_NAME}, \${PIC_DATA_DIR}, \${PIC_SERVICE_ID}, ` +
            `\${PIC_CFG_<KEY>} of a config_schema key, \${PIC_SECRET_<NAME>}, \${SERVICE_IP} or \${INSTANCE_ID}`,
        );
      }
    }
  });
}

/**
 * Every problem of a manifest at once: its schema, then the rules no schema can state. The
 * semantic rules look only at fields of the right shape, so they run even when the schema fails.
 */
export function validateManifest(value: unknown, file: string, policy: ManifestPolicy = DEFAULT_MANIFEST_POLICY): Problem[] {
  const validate = compiledSchema(MANIFEST_SCHEMA);
  validate(value);
  const requirementFlags = Object.keys(CAPABILITY_REQUIREMENTS);
  const problems = schemaProblems(validate.errors, file, '', {
    describeRequired: (error) => {
      const flag = /^#\/allOf\/(\d+)\/then\/required$/.exec(error.schemaPath);
      return flag ? `is required because capabilities.${requirementFlags[Number(flag[1])]} is true` : undefined;
    },
  });
  if (!isRecord(value)) return problems;
  const seen = new Set(problems.map((p) => `${p.pointer}\u0000${p.message}`));
  const report: Report = (pointer, message) => {
    const key = `${pointer}\u0000${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    problems.push({ file, pointer, message });
  };
  const safePolicy: ManifestPolicy = isRecord(policy) ? policy : DEFAULT_MANIFEST_POLICY;
  checkVersions(value, report);
  checkSubdomains(value, report);
  checkBackends(value, report);
  checkConfigSchema(value, report);
  checkPeerConfigTemplate(value, report);
  checkBackup(value, report);
  checkEgress(value, report);
  checkImage(value, safePolicy, report);
  checkVolumes(value, safePolicy, report);
  checkEnv(value, report);
  checkConnectivity(value, report);
  return boundProblems(problems, file);
}
