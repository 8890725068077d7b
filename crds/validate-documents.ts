/**
 * One desired-state document against the schema of its kind, plus the few Cell rules a schema
 * cannot state (the service pool must fit the subnet). Pure: no I/O, never throws on bad input.
 */
import { allowedPrefixFolder, isUnderImagePrefix, readImageReference, SHA256_DIGEST_RE } from './image-reference.js';
import { formatIpv4, lastAddress, parseCidr, parseIpv4, readCidr, readIpv4Range } from './ipv4.js';
import { boundProblems, quoted } from './problem-limit.js';
import { checkStoreUrl } from './store-url.js';
import { compiledSchema, compiledSchemaWithDefaults, schemaProblems } from './schema-problems.js';
import { DEFAULT_ALLOWED_IMAGE_PREFIX, DEFAULT_NETWORK, DOCUMENT_ENVELOPE_SCHEMA, DOCUMENT_SCHEMAS } from './schemas.js';
import { API_VERSION, DOCUMENT_KINDS, type DocumentKind, type Problem } from './types.js';
import { isRecord } from './values.js';

type Json = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'object') return 'a mapping';
  // Objects, null and strings are described above: what is left is a number, a boolean or undefined.
  const scalar = value as number | boolean | undefined;
  return `the ${typeof value} ${String(scalar)}`;
}

/** The kind a document declares, if it is one pic knows. */
export function documentKindOf(value: unknown): DocumentKind | undefined {
  if (!isRecord(value) || typeof value.kind !== 'string') return undefined;
  return (DOCUMENT_KINDS as readonly string[]).includes(value.kind) ? (value.kind as DocumentKind) : undefined;
}

/** The kinds pic knows, as messages list them. */
const KIND_LIST = DOCUMENT_KINDS.join(', ');

function envelopeProblems(doc: Json, file: string, prefix: string): Problem[] {
  const problems: Problem[] = [];
  if (!('kind' in doc)) problems.push({ file, pointer: `${prefix}/kind`, message: `is required: say which document this is, one of ${KIND_LIST}` });
  else if (documentKindOf(doc) === undefined) {
    problems.push({ file, pointer: `${prefix}/kind`, message: `${describe(doc.kind)} is not a kind pic knows; accepted kinds: ${KIND_LIST}` });
  }
  if (!('apiVersion' in doc)) problems.push({ file, pointer: `${prefix}/apiVersion`, message: `is required: write apiVersion: ${API_VERSION}` });
  else if (doc.apiVersion !== API_VERSION) {
    problems.push({ file, pointer: `${prefix}/apiVersion`, message: `${describe(doc.apiVersion)} is not accepted; the only accepted apiVersion is ${API_VERSION}` });
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The Cell network (IPv4 arithmetic: crds/ipv4.ts).

function cidrRange(text: string): { text: string; first: number; last: number } {
  const net = parseCidr(text);
  return { text, first: net.network, last: lastAddress(net) };
}

/** RFC 1918's private IPv4 ranges: the only ones a cell network may take addresses from. */
const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'].map(cidrRange);
/** The subnet Docker gives its default bridge (docker0); a cell network on it would clash with it. */
const DOCKER_DEFAULT_BRIDGE = cidrRange('172.17.0.0/16');

function checkCellNetwork(spec: Json, file: string, prefix: string): Problem[] {
  const problems: Problem[] = [];
  const network = isRecord(spec.network) ? spec.network : spec.network === undefined ? {} : undefined;
  if (!network) return problems;
  const subnet = network.subnet === undefined ? DEFAULT_NETWORK.subnet : network.subnet;
  const pool = network.servicePool === undefined ? DEFAULT_NETWORK.servicePool : network.servicePool;
  const at = (field: string): string => `${prefix}/spec/network/${field}`;

  let range: { first: number; last: number } | undefined;
  const read = typeof subnet === 'string' ? readCidr(subnet) : undefined;
  if (typeof subnet === 'string' && read) {
    if (read.address !== read.network.network) problems.push({ file, pointer: at('subnet'), message: `has host bits set; the network of ${subnet} is ${read.network.text}` });
    range = { first: read.network.network, last: lastAddress(read.network) };
    const which = network.subnet === undefined ? `the default subnet ${subnet}` : `subnet ${subnet}`;
    const privateRange = PRIVATE_RANGES.find((r) => range!.first >= r.first && range!.last <= r.last);
    if (!privateRange) {
      problems.push({ file, pointer: at('subnet'), message: `${which} is not inside a private range (${PRIVATE_RANGES.map((r) => r.text).join(', ')}); services would take addresses that belong to the Internet` });
    } else if (range.first <= DOCKER_DEFAULT_BRIDGE.last && range.last >= DOCKER_DEFAULT_BRIDGE.first) {
      problems.push({ file, pointer: at('subnet'), message: `${which} overlaps ${DOCKER_DEFAULT_BRIDGE.text}, Docker's default bridge network; choose another, such as 172.20.0.0/16` });
    }
  }
  const poolRange = typeof pool === 'string' ? readIpv4Range(pool) : undefined;
  if (typeof pool === 'string' && poolRange) {
    const { first: lo, last: hi } = poolRange;
    const which = network.servicePool === undefined ? `the default service pool ${pool}` : `service pool ${pool}`;
    if (lo > hi) problems.push({ file, pointer: at('servicePool'), message: `${which} starts after it ends; write first-last` });
    else if (range) {
      if (lo < range.first || hi > range.last) {
        problems.push({ file, pointer: at('servicePool'), message: `${which} is not inside subnet ${subnet as string} (${formatIpv4(range.first)}-${formatIpv4(range.last)})` });
      } else if (lo <= range.first + 1 || hi >= range.last) {
        problems.push({
          file,
          pointer: at('servicePool'),
          message: `${which} must leave out the network address, the gateway ${formatIpv4(range.first + 1)} and the broadcast address of the subnet`,
        });
      }
    }
  }
  problems.push(...checkCoreAddresses(spec, file, prefix, range, poolRange));
  return problems;
}

/**
 * The fixed addresses of the core containers pic runs: inside the cell subnet (not its network,
 * gateway or broadcast address), outside the service pool, and each its own.
 */
function checkCoreAddresses(spec: Json, file: string, prefix: string, range: { first: number; last: number } | undefined, pool: { text: string; first: number; last: number } | undefined): Problem[] {
  const problems: Problem[] = [];
  const seen = new Map<string, string>();
  for (const section of ['caddy', 'dns', 'wireguard'] as const) {
    const part = spec[section];
    const run = isRecord(part) && isRecord(part.run) ? part.run : undefined;
    if (!run || typeof run.address !== 'string') continue;
    const value = parseIpv4(run.address);
    if (value === undefined) continue;
    const pointer = `${prefix}/spec/${section}/run/address`;
    if (range && (value <= range.first + 1 || value >= range.last)) {
      problems.push({ file, pointer, message: `${run.address} is not a usable address of the cell subnet (${formatIpv4(range.first + 2)}-${formatIpv4(range.last - 1)})` });
    } else if (pool && value >= pool.first && value <= pool.last) {
      problems.push({ file, pointer, message: `${run.address} lies inside the service pool ${pool.text}, whose addresses go to services; pick one outside it` });
    }
    const other = seen.get(run.address);
    if (other) problems.push({ file, pointer, message: `${run.address} is also the address of ${other}; each core container needs its own` });
    seen.set(run.address, `spec.${section}.run`);
  }
  return problems;
}

/** `spec.store`: a folder or a published store, exactly one; a URL pic may fetch. */
function checkCellStore(spec: Json, file: string, prefix: string): Problem[] {
  const store = spec.store;
  if (!isRecord(store)) return [];
  const at = `${prefix}/spec/store`;
  const hasPath = store.path !== undefined;
  const hasUrl = store.url !== undefined;
  if (hasPath && hasUrl) return [{ file, pointer: at, message: 'gives both path and url; a cell reads one catalog: a folder (path) or a published store (url)' }];
  if (!hasPath && !hasUrl) return [{ file, pointer: at, message: 'needs path (a catalog folder) or url (a published store)' }];
  const problems: Problem[] = [];
  if (!hasUrl) {
    for (const field of ['refreshSeconds', 'requireSignature']) {
      if (store[field] !== undefined) problems.push({ file, pointer: `${at}/${field}`, message: 'applies to a url store only; a folder is read as it is' });
    }
  }
  if (typeof store.url === 'string') {
    const check = checkStoreUrl(store.url);
    if (check.problem) problems.push({ file, pointer: `${at}/url`, message: check.problem });
  }
  return problems;
}

/**
 * The images of the core containers pic runs, read by the same parser as every service image:
 * `name[:tag][@sha256:<64 hex>]`, under the Cell's allowedImagePrefix. A tag alone is accepted
 * here in every mode; under enforce the image gate refuses it (NotPinned) for that core container
 * only, instead of holding the whole cell.
 */
function checkCoreImages(spec: Json, file: string, prefix: string): Problem[] {
  const problems: Problem[] = [];
  const allowed = typeof spec.allowedImagePrefix === 'string' ? spec.allowedImagePrefix : DEFAULT_ALLOWED_IMAGE_PREFIX;
  for (const section of ['caddy', 'dns', 'wireguard'] as const) {
    const part = spec[section];
    const run = isRecord(part) && isRecord(part.run) ? part.run : undefined;
    if (!run || typeof run.image !== 'string' || run.image === '') continue;
    const pointer = `${prefix}/spec/${section}/run/image`;
    const read = readImageReference(run.image);
    for (const error of read.errors) problems.push({ file, pointer, message: `image reference ${error}` });
    if (read.name !== undefined) {
      const folder = allowedPrefixFolder(allowed);
      if (allowed === '') problems.push({ file, pointer, message: 'no image is allowed: the allowed image prefix (spec.allowedImagePrefix) is empty' });
      else if (read.name === folder.slice(0, -1)) problems.push({ file, pointer, message: `must name a repository under the allowed prefix ${quoted(folder)}, not the prefix itself` });
      else if (!isUnderImagePrefix(read.name, allowed)) problems.push({ file, pointer, message: `must come from the allowed registry path ${quoted(folder)} (spec.allowedImagePrefix), like every service image; ${quoted(read.name)} does not` });
    }
    if (read.digest !== undefined && !SHA256_DIGEST_RE.test(read.digest)) {
      problems.push({ file, pointer, message: `must be pinned with a sha256 digest; ${quoted(read.digest.split(':')[0] ?? '')} digests are not verified` });
    }
  }
  return problems;
}

/**
 * The problems of one parsed YAML document: its kind and apiVersion, then the schema of its
 * kind. `pointerPrefix` locates the document inside a larger structure; usually ''.
 */
export function validateDocument(value: unknown, file: string, pointerPrefix = ''): Problem[] {
  if (!isRecord(value)) {
    return [{ file, pointer: pointerPrefix, message: `a document must be a mapping with apiVersion, kind, metadata and spec, not ${describe(value)}` }];
  }
  const problems = envelopeProblems(value, file, pointerPrefix);
  const kind = documentKindOf(value);
  const validate = compiledSchema(kind ? DOCUMENT_SCHEMAS[kind] : DOCUMENT_ENVELOPE_SCHEMA);
  if (!validate(value)) {
    const own = new Set([`${pointerPrefix}/kind`, `${pointerPrefix}/apiVersion`]);
    problems.push(...schemaProblems(validate.errors, file, pointerPrefix).filter((p) => !own.has(p.pointer)));
  }
  if (kind === 'Cell' && isRecord(value.spec)) problems.push(...checkCellNetwork(value.spec, file, pointerPrefix), ...checkCellStore(value.spec, file, pointerPrefix), ...checkCoreImages(value.spec, file, pointerPrefix));
  return boundProblems(problems, file);
}

/** A deep copy of plain objects and arrays; YAML aliases can make cycles, which the copy keeps. */
function cloneJson<T>(value: T, copies = new Map<unknown, unknown>()): T {
  if (typeof value !== 'object' || value === null) return value;
  if (copies.has(value)) return copies.get(value) as T;
  if (Array.isArray(value)) {
    const out: unknown[] = [];
    copies.set(value, out);
    for (const v of value) out.push(cloneJson(v, copies));
    return out as T;
  }
  // Any object that is a record (also one from another realm, or without prototype) becomes a
  // fresh plain object, so filling defaults can never reach back into the caller's data.
  if (Object.prototype.toString.call(value) === '[object Object]') {
    const out: Json = {};
    copies.set(value, out);
    for (const k of Object.keys(value)) {
      const v = cloneJson((value as Json)[k], copies);
      // defineProperty, so that a "__proto__" key stays a key instead of replacing the prototype.
      if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      else out[k] = v;
    }
    return out as T;
  }
  return value;
}

/**
 * A copy of the document with the defaults of its kind's schema filled in (the Cell network,
 * image verification enforce, the allowed image prefix, Connection failOpen false). The
 * caller's object is left as it was; a document of no known kind comes back as a plain copy.
 */
export function applyDocumentDefaults<T>(value: T): T {
  const copy = cloneJson(value);
  const kind = documentKindOf(copy);
  if (kind) compiledSchemaWithDefaults(DOCUMENT_SCHEMAS[kind])(copy);
  return copy;
}
