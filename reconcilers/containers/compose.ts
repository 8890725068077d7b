/**
 * The rendered compose document of a store service: read it into a small model of the Compose
 * subset pic supports, check it against the cell's policy, and translate it into the create
 * options pic passes to the Docker API.
 *
 * Anything outside the subset is reported as "not supported by pic" rather than ignored, so a
 * template never means more than what pic actually creates. Pure: no I/O, no clock.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { Problem } from '../../crds/types.js';

/** A rendered compose document, not yet checked: any shape may come out of a template. */
export type ComposeFile = Record<string, unknown>;

export interface ComposePolicy {
  /** Images must live under this registry path (`git.pic.ngo/roof/`). */
  allowedImagePrefix: string;
  /** Host directory that every bind mount must stay below. */
  dataDir: string;
  /** The cell network, the only network pic attaches service containers to. */
  networkName: string;
  /** Only connectivity services may add capabilities. */
  allowCapAdd: boolean;
}

export interface TranslateContext {
  /** Start of named volumes' Docker names (`<prefix>-<service>-<volume>`); default `pic`. */
  volumePrefix?: string;
  serviceId: string;
  networkName: string;
  /** When set, containers also carry Compose's project/service labels so `docker compose -p` lists them. */
  projectLabel?: string;
  /**
   * Labels pic itself puts on every container and volume of the service (the cell's name, the
   * catalog version…). pic's owner, service and spec-hash labels win over these.
   */
  extraLabels?: Record<string, string>;
  /** Named in the problems this translation reports. */
  file?: string;
}

export type DependsOnCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

export interface DesiredContainer {
  /** Docker container name (the compose container_name). */
  name: string;
  /** The compose service key this container comes from. */
  service: string;
  create: Dockerode.ContainerCreateOptions;
  /** Container names this one waits for, sorted. */
  dependsOn: string[];
  /** For each name in dependsOn, what "ready" means. */
  dependsOnConditions: Record<string, DependsOnCondition>;
  specHash: string;
}

export interface DesiredVolume {
  /** Docker volume name. */
  name: string;
  labels: Record<string, string>;
}

export interface ServicePlan {
  /** Dependencies before dependents; ties broken by compose service key. */
  containers: DesiredContainer[];
  /** Sorted by name. */
  volumes: DesiredVolume[];
  /** Host directories bind-mounted into containers (sorted): the applier creates missing ones. */
  bindSources: string[];
  /** Non-empty means nothing may be created from this plan; containers and volumes are then empty. */
  problems: Problem[];
}

export const LABEL_OWNER = 'ngo.pic.owner';
export const LABEL_SERVICE = 'ngo.pic.service';
export const LABEL_SPEC_HASH = 'ngo.pic.spec-hash';
export const LABEL_VOLUME = 'ngo.pic.volume';
export const LABEL_COMPOSE_PROJECT = 'com.docker.compose.project';
export const LABEL_COMPOSE_SERVICE = 'com.docker.compose.service';
const RESERVED_LABEL_PREFIXES = ['ngo.pic.', 'com.docker.compose.'];

export const CONTAINER_NAME_PATTERN = /^cell-[a-z0-9][a-z0-9-]{0,30}$/;
/** Docker's own rule for volume names. */
export const DOCKER_VOLUME_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** Compose's rule for service, volume and network keys. */
const COMPOSE_KEY_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const SPEC_HASH_LENGTH = 16;

/**
 * The Docker socket, and the directories that hold it: binding any of them hands the container the
 * Docker API, which is root on the host.
 */
const DOCKER_SOCKETS = ['/var/run/docker.sock', '/run/docker.sock'];

/** Capabilities refused even to connectivity services: each is as good as root on the host. */
const HOST_ROOT_CAPABILITIES = new Set(['ALL', 'SYS_ADMIN', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_PTRACE', 'DAC_READ_SEARCH']);

// ---------------------------------------------------------------------------------------------
// Small helpers

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function seg(segment: string | number): string {
  return String(segment).replace(/~/g, '~0').replace(/\//g, '~1');
}

function ptr(base: string, ...segments: (string | number)[]): string {
  return segments.reduce<string>((acc, s) => `${acc}/${seg(s)}`, base);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

function sortedRecord<V>(entries: Iterable<[string, V]>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const [k, v] of [...entries].sort((a, b) => compareStrings(a[0], b[0]))) setOwn(out, k, v);
  return out;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

class Problems {
  readonly list: Problem[] = [];
  constructor(private readonly file: string) {}
  add(pointer: string, message: string): void {
    this.list.push({ file: this.file, pointer, message });
  }
}

/** A scalar Compose would accept as text (numbers and booleans are written out). */
function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return undefined;
}

/** Rendered values are text, so numeric and boolean fields accept their textual form too. */
function asBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return undefined;
}

function asNumber(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^\s*-?(\d+(\.\d*)?|\.\d+)\s*$/.test(value)) return Number(value);
  return undefined;
}

function asInteger(value: unknown): number | undefined {
  const n = asNumber(value);
  return n !== undefined && Number.isSafeInteger(n) ? n : undefined;
}

function isIpv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

function isIpv6(text: string): boolean {
  return /^[0-9a-fA-F:.]+$/.test(text) && text.includes(':');
}

// ---------------------------------------------------------------------------------------------
// Shell words

export class ShellWordsError extends Error {}

/**
 * Split a command string into words the way a POSIX shell would, without running one: blanks
 * separate words, single quotes keep everything literally, double quotes keep everything except
 * that a backslash escapes `$ \` " \` and a newline, and a backslash outside quotes escapes the
 * next character. `$VAR` and globs stay literal, as Compose leaves them. Syntax that only a shell
 * can honour (pipes, `;`, `&&`, redirections, subshells, command substitution, comments) is
 * refused rather than silently passed to the program as arguments.
 */
export function splitShellWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const needsShell = (what: string): ShellWordsError =>
    new ShellWordsError(`${what} needs a shell, and pic runs the command without one; write the list form, e.g. ["sh", "-c", "…"]`);
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i += 1;
    } else if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined) throw new ShellWordsError('the command ends with a lone backslash');
      if (next !== '\n') {
        word += next;
        inWord = true;
      }
      i += 2;
    } else if (c === "'") {
      const close = text.indexOf("'", i + 1);
      if (close < 0) throw new ShellWordsError('a single quote is never closed');
      word += text.slice(i + 1, close);
      inWord = true;
      i = close + 1;
    } else if (c === '"') {
      inWord = true;
      i += 1;
      for (;;) {
        const d = text[i];
        if (d === undefined) throw new ShellWordsError('a double quote is never closed');
        if (d === '"') {
          i += 1;
          break;
        }
        if (d === '\\') {
          const next = text[i + 1];
          if (next !== undefined && '$`"\\\n'.includes(next)) {
            if (next !== '\n') word += next;
            i += 2;
          } else {
            word += '\\';
            i += 1;
          }
        } else if (d === '`' || (d === '$' && text[i + 1] === '(')) {
          throw needsShell('command substitution');
        } else {
          word += d;
          i += 1;
        }
      }
    } else if ('|&;<>()`'.includes(c)) {
      throw needsShell(`the unquoted "${c}"`);
    } else if (c === '#' && !inWord) {
      throw needsShell('a comment ("#" starting a word)');
    } else {
      word += c;
      inWord = true;
      i += 1;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** Quote words so that `splitShellWords` gives them back unchanged. */
export function quoteShellWords(words: readonly string[]): string {
  return words.map((w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Durations and sizes

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** A Compose (Go) duration such as `30s`, `1m30s`, `1.5s`, `500ms`, in nanoseconds. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let total = 0;
  let at = 0;
  while (at < trimmed.length) {
    part.lastIndex = at;
    const m = part.exec(trimmed);
    if (!m) break;
    total += Math.round(Number(m[1]) * (DURATION_UNITS[m[2] as string] as number));
    at = part.lastIndex;
  }
  if (trimmed === '' || at !== trimmed.length) {
    throw new Error(`"${text}" is not a duration; write a number with a unit, e.g. 30s, 1m30s, 500ms`);
  }
  if (!Number.isSafeInteger(total)) throw new Error(`"${text}" is too long a duration`);
  return total;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** A Compose memory size (`512m`, `1g`, `1073741824`, `1.5GB`) in bytes; units are binary. */
export function parseByteSize(value: unknown): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?|(b))?$/.exec(text);
  if (!m) throw new Error(`${describe(value)} is not a size; write bytes or a number with b, k, m or g (e.g. 512m)`);
  const unit = m[2] ?? m[3] ?? '';
  const bytes = Math.floor(Number(m[1]) * (SIZE_UNITS[unit] as number));
  if (!Number.isSafeInteger(bytes)) throw new Error(`${describe(value)} is too large a size`);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// The model of the supported subset

type MountModel =
  | { type: 'volume'; volume: string; target: string; readOnly: boolean; pointer: string }
  | { type: 'bind'; source: string; target: string; readOnly: boolean; pointer: string }
  | { type: 'tmpfs'; target: string; readOnly: boolean; sizeBytes?: number; pointer: string };

interface PortModel {
  containerPort: number;
  protocol: string;
  hostIp: string;
  hostPort: string;
}

interface DependencyModel {
  service: string;
  condition: DependsOnCondition;
  pointer: string;
}

interface ServiceModel {
  key: string;
  pointer: string;
  image?: string;
  containerName?: string;
  command?: string[];
  entrypoint?: string[];
  environment: Map<string, string>;
  mounts: MountModel[];
  ipv4Address?: string;
  aliases: string[];
  restart?: { Name: string; MaximumRetryCount?: number };
  labels: Map<string, string>;
  dependsOn: DependencyModel[];
  healthcheck?: Dockerode.HealthConfig;
  ports: PortModel[];
  capAdd: string[];
  securityOpt: string[];
  workingDir?: string;
  user?: string;
  hostname?: string;
  stopTimeout?: number;
  stopSignal?: string;
  tmpfs: Map<string, string>;
  readOnly?: boolean;
  memory?: number;
  nanoCpus?: number;
}

interface VolumeModel {
  key: string;
  name?: string;
  labels: Map<string, string>;
  pointer: string;
}

interface ComposeModel {
  services: ServiceModel[];
  volumes: VolumeModel[];
}

const TOP_LEVEL_KEYS = new Set(['services', 'volumes', 'networks', 'version']);

/**
 * Read the rendered document into the model, reporting every shape problem and every setting
 * that pic refuses whatever the policy (privileged mode, host namespaces, the Docker socket…).
 */
function readCompose(compose: unknown, file: string, networkName: string): { model: ComposeModel; problems: Problem[] } {
  const problems = new Problems(file);
  const model: ComposeModel = { services: [], volumes: [] };
  if (!isMapping(compose)) {
    problems.add('', `a compose document must be a mapping with a "services" key, not ${describe(compose)}`);
    return { model, problems: problems.list };
  }
  for (const key of Object.keys(compose)) {
    if (!TOP_LEVEL_KEYS.has(key) && !key.startsWith('x-')) {
      problems.add(ptr('', key), `top-level key "${key}" is not supported by pic (supported: services, volumes, networks)`);
    }
  }
  const cellNetworkKeys = readNetworks(compose.networks, networkName, problems);
  const volumeKeys = new Set<string>();
  if (compose.volumes !== undefined && compose.volumes !== null) {
    if (!isMapping(compose.volumes)) {
      problems.add('/volumes', `"volumes" must be a mapping of volume names, not ${describe(compose.volumes)}`);
    } else {
      for (const [key, value] of Object.entries(compose.volumes)) {
        const volume = readVolume(key, value, problems);
        if (volume) {
          model.volumes.push(volume);
          volumeKeys.add(key);
        }
      }
    }
  }
  const services = compose.services;
  if (!isMapping(services) || Object.keys(services).length === 0) {
    problems.add('/services', `"services" must be a mapping with at least one service, not ${describe(services)}`);
  } else {
    for (const [key, value] of Object.entries(services)) {
      const service = readService(key, value, { networkName, cellNetworkKeys, volumeKeys }, problems);
      if (service) model.services.push(service);
    }
  }
  checkServiceGraph(model, problems);
  return { model, problems: problems.list };
}

/** The name templates use for the cell network; it means this cell's network, whatever it is called. */
export const CATALOG_CELL_NETWORK = 'cell-network';

function readNetworks(value: unknown, networkName: string, problems: Problems): Set<string> {
  const cellKeys = new Set<string>();
  if (value === undefined || value === null) return cellKeys;
  if (!isMapping(value)) {
    problems.add('/networks', `"networks" must be a mapping, not ${describe(value)}`);
    return cellKeys;
  }
  for (const [key, def] of Object.entries(value)) {
    const pointer = ptr('/networks', key);
    const declared = isMapping(def) ? def : {};
    const name = typeof declared.name === 'string' ? declared.name : key;
    // Catalog templates are written for any cell and call its network "cell-network", whatever
    // name this cell gives it.
    if (name !== networkName && name !== CATALOG_CELL_NETWORK) {
      const external = declared.external === true ? ' (even an external one)' : '';
      problems.add(pointer, `network "${name}"${external} is refused: pic attaches service containers only to the cell network "${networkName}"`);
      continue;
    }
    if (declared.external !== true) {
      problems.add(pointer, `the cell network "${networkName}" is created by pic; declare it with "external: true"`);
    }
    for (const k of Object.keys(declared)) {
      if (k !== 'external' && k !== 'name' && !k.startsWith('x-')) problems.add(ptr(pointer, k), `network key "${k}" is not supported by pic`);
    }
    cellKeys.add(key);
  }
  return cellKeys;
}

function readVolume(key: string, value: unknown, problems: Problems): VolumeModel | undefined {
  const pointer = ptr('/volumes', key);
  if (!COMPOSE_KEY_PATTERN.test(key)) {
    problems.add(pointer, `volume name "${key}" must match ${COMPOSE_KEY_PATTERN.source}`);
    return undefined;
  }
  const volume: VolumeModel = { key, labels: new Map(), pointer };
  if (value === null || value === undefined) return volume;
  if (!isMapping(value)) {
    problems.add(pointer, `volume "${key}" must be empty or a mapping, not ${describe(value)}`);
    return undefined;
  }
  for (const [k, v] of Object.entries(value)) {
    if (k === 'name') {
      if (typeof v !== 'string' || !DOCKER_VOLUME_NAME_PATTERN.test(v)) {
        problems.add(ptr(pointer, k), `volume name ${describe(v)} is not a valid Docker volume name (${DOCKER_VOLUME_NAME_PATTERN.source})`);
      } else {
        volume.name = v;
      }
    } else if (k === 'labels') {
      volume.labels = readLabels(v, ptr(pointer, k), problems);
    } else if (k.startsWith('x-')) {
      continue;
    } else if (k === 'external' || k === 'driver' || k === 'driver_opts') {
      problems.add(ptr(pointer, k), `volume key "${k}" is not supported by pic: service volumes are local volumes that pic creates and labels itself`);
    } else {
      problems.add(ptr(pointer, k), `volume key "${k}" is not supported by pic`);
    }
  }
  return volume;
}

function readKeyValueList(
  value: unknown,
  pointer: string,
  problems: Problems,
  what: 'environment variable' | 'label',
): Map<string, string> {
  const out = new Map<string, string>();
  if (value === undefined || value === null) return out;
  const put = (key: string, val: string, at: string): void => {
    if (key === '' || /[=\s]/.test(key)) {
      problems.add(at, `${what} name "${key}" must be non-empty and contain no "=" or blank`);
    } else if (out.has(key)) {
      problems.add(at, `${what} "${key}" is set twice`);
    } else {
      out.set(key, val);
    }
  };
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      const at = ptr(pointer, index);
      if (typeof item !== 'string') {
        problems.add(at, `each ${what} entry must be a "KEY=value" string, not ${describe(item)}`);
        return;
      }
      const eq = item.indexOf('=');
      if (eq < 0) {
        if (what === 'environment variable') {
          problems.add(at, `"${item}" has no value, so Compose would copy it from the host environment; give it one ("${item}=…")`);
        } else {
          put(item, '', at);
        }
        return;
      }
      put(item.slice(0, eq), item.slice(eq + 1), at);
    });
  } else if (isMapping(value)) {
    for (const [key, item] of Object.entries(value)) {
      const at = ptr(pointer, key);
      const text = scalarText(item);
      if (item === null && what === 'environment variable') {
        problems.add(at, `"${key}" has no value, so Compose would copy it from the host environment; give it one`);
      } else if (item === null) {
        put(key, '', at);
      } else if (text === undefined) {
        problems.add(at, `${what} "${key}" must be a string, number or boolean, not ${describe(item)}`);
      } else {
        put(key, text, at);
      }
    }
  } else {
    problems.add(pointer, `must be a list of "KEY=value" strings or a mapping, not ${describe(value)}`);
  }
  return out;
}

function readLabels(value: unknown, pointer: string, problems: Problems): Map<string, string> {
  const labels = readKeyValueList(value, pointer, problems, 'label');
  for (const key of labels.keys()) {
    const reserved = RESERVED_LABEL_PREFIXES.find((p) => key.startsWith(p));
    if (reserved) problems.add(pointer, `label "${key}" is reserved: pic sets the "${reserved}" labels itself`);
  }
  return labels;
}

interface ServiceReadContext {
  networkName: string;
  cellNetworkKeys: Set<string>;
  volumeKeys: Set<string>;
}

const SERVICE_KEYS = new Set([
  'image', 'container_name', 'command', 'entrypoint', 'environment', 'volumes', 'networks', 'restart', 'labels',
  'depends_on', 'healthcheck', 'ports', 'cap_add', 'working_dir', 'user', 'hostname', 'stop_grace_period',
  'stop_signal', 'tmpfs', 'read_only', 'mem_limit', 'cpus', 'security_opt',
  // Settings pic refuses with a reason of their own (see readService).
  'privileged', 'network_mode', 'pid', 'ipc', 'userns_mode', 'devices',
]);

function readService(key: string, value: unknown, rc: ServiceReadContext, problems: Problems): ServiceModel | undefined {
  const pointer = ptr('/services', key);
  if (!COMPOSE_KEY_PATTERN.test(key)) {
    problems.add(pointer, `service name "${key}" must match ${COMPOSE_KEY_PATTERN.source}`);
    return undefined;
  }
  if (!isMapping(value)) {
    problems.add(pointer, `service "${key}" must be a mapping, not ${describe(value)}`);
    return undefined;
  }
  const s: ServiceModel = {
    key, pointer, environment: new Map(), mounts: [], aliases: [], labels: new Map(), dependsOn: [], ports: [],
    capAdd: [], securityOpt: [], tmpfs: new Map(),
  };
  for (const field of Object.keys(value)) {
    if (!SERVICE_KEYS.has(field) && !field.startsWith('x-')) {
      problems.add(ptr(pointer, field), `service key "${field}" is not supported by pic`);
    }
  }
  const at = (field: string, ...rest: (string | number)[]): string => ptr(pointer, field, ...rest);
  const text = (field: string): string | undefined => {
    const v = value[field];
    if (v === undefined || v === null) return undefined;
    const t = scalarText(v);
    if (t === undefined) problems.add(at(field), `"${field}" must be a string, not ${describe(v)}`);
    return t;
  };

  s.image = text('image');
  if (s.image === undefined || s.image === '') problems.add(at('image'), `service "${key}" has no image; every service needs one`);

  s.containerName = text('container_name');
  if (s.containerName === undefined) {
    problems.add(at('container_name'), `service "${key}" has no container_name; pic names every container, e.g. "cell-${key.toLowerCase()}"`);
  } else if (!CONTAINER_NAME_PATTERN.test(s.containerName)) {
    problems.add(at('container_name'), `container_name "${s.containerName}" must match ${CONTAINER_NAME_PATTERN.source}`);
  }

  s.command = readCommand(value.command, at('command'), problems);
  s.entrypoint = readCommand(value.entrypoint, at('entrypoint'), problems);
  s.environment = readKeyValueList(value.environment, at('environment'), problems, 'environment variable');
  s.labels = readLabels(value.labels, at('labels'), problems);
  s.mounts = readMounts(value.volumes, at('volumes'), rc.volumeKeys, problems);
  readServiceNetworks(value.networks, at('networks'), rc, s, problems);
  s.restart = readRestart(value.restart, at('restart'), problems);
  s.dependsOn = readDependsOn(value.depends_on, at('depends_on'), problems);
  s.healthcheck = readHealthcheck(value.healthcheck, at('healthcheck'), problems);
  s.ports = readPorts(value.ports, at('ports'), problems);
  s.capAdd = readCapabilities(value.cap_add, at('cap_add'), problems);
  s.securityOpt = readSecurityOpt(value.security_opt, at('security_opt'), problems);
  s.tmpfs = readTmpfs(value.tmpfs, at('tmpfs'), problems);
  for (const target of s.tmpfs.keys()) {
    if (s.mounts.some((m) => m.target === normaliseHostPath(target))) problems.add(at('tmpfs'), `tmpfs "${target}" is also the target of a volume`);
  }

  s.workingDir = text('working_dir');
  if (s.workingDir !== undefined && !s.workingDir.startsWith('/')) problems.add(at('working_dir'), `working_dir "${s.workingDir}" must be an absolute path`);
  s.user = text('user');
  s.hostname = text('hostname');
  if (s.hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(s.hostname)) problems.add(at('hostname'), `hostname "${s.hostname}" is not a valid host name`);
  s.stopSignal = text('stop_signal');
  if (s.stopSignal !== undefined && !/^(SIG[A-Z0-9+-]+|\d{1,2})$/.test(s.stopSignal)) problems.add(at('stop_signal'), `stop_signal "${s.stopSignal}" is not a signal name such as SIGTERM`);
  if (value.stop_grace_period !== undefined && value.stop_grace_period !== null) {
    const grace = durationField(value.stop_grace_period, at('stop_grace_period'), problems);
    if (grace !== undefined) s.stopTimeout = Math.ceil(grace / 1e9);
  }
  if (value.read_only !== undefined && value.read_only !== null) {
    s.readOnly = asBoolean(value.read_only);
    if (s.readOnly === undefined) problems.add(at('read_only'), `"read_only" must be true or false, not ${describe(value.read_only)}`);
  }
  if (value.mem_limit !== undefined && value.mem_limit !== null) {
    try {
      s.memory = parseByteSize(value.mem_limit);
    } catch (err) {
      problems.add(at('mem_limit'), (err as Error).message);
    }
  }
  if (value.cpus !== undefined && value.cpus !== null) {
    const cpus = asNumber(value.cpus);
    if (cpus === undefined || cpus <= 0) problems.add(at('cpus'), `"cpus" must be a positive number, not ${describe(value.cpus)}`);
    else s.nanoCpus = Math.round(cpus * 1e9);
  }

  readRefusedSettings(value, pointer, rc.networkName, problems);
  return s;
}

/** Settings that break the container out of its confinement: refused whatever the policy. */
function readRefusedSettings(value: Record<string, unknown>, pointer: string, networkName: string, problems: Problems): void {
  const at = (field: string): string => ptr(pointer, field);
  if (value.privileged !== undefined && value.privileged !== null) {
    const privileged = asBoolean(value.privileged);
    if (privileged !== false) problems.add(at('privileged'), 'privileged containers are refused: they have full control of the host');
  }
  if (value.network_mode !== undefined && value.network_mode !== null) {
    const mode = scalarText(value.network_mode) ?? '';
    if (mode === 'host') {
      problems.add(at('network_mode'), `network_mode "host" is refused: it shares the host's network namespace; pic attaches the container to "${networkName}"`);
    } else if (mode.startsWith('service:') || mode.startsWith('container:')) {
      problems.add(at('network_mode'), `network_mode "${mode}" is refused: it shares another container's network namespace; pic attaches every container to "${networkName}"`);
    } else if (mode !== networkName) {
      problems.add(at('network_mode'), `network_mode ${describe(value.network_mode)} is refused: pic attaches every container to the cell network "${networkName}"; leave network_mode out`);
    }
  }
  for (const field of ['pid', 'ipc', 'userns_mode'] as const) {
    const v = value[field];
    if (v === undefined || v === null) continue;
    if (v === 'host') problems.add(at(field), `${field} "host" is refused: it shares the host's ${field === 'userns_mode' ? 'user' : field} namespace`);
    else problems.add(at(field), `${field} ${describe(v)} is not supported by pic`);
  }
  const devices = value.devices;
  if (devices !== undefined && devices !== null && !(Array.isArray(devices) && devices.length === 0)) {
    problems.add(at('devices'), 'host devices are refused: pic does not pass host devices to service containers');
  }
}

function readCommand(value: unknown, pointer: string, problems: Problems): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') {
    try {
      return splitShellWords(value);
    } catch (err) {
      problems.add(pointer, `cannot split ${JSON.stringify(value)} into words: ${(err as Error).message}`);
      return undefined;
    }
  }
  if (Array.isArray(value)) {
    const words: string[] = [];
    value.forEach((item, index) => {
      const t = scalarText(item);
      if (t === undefined) problems.add(ptr(pointer, index), `each word must be a string, not ${describe(item)}`);
      else words.push(t);
    });
    return words;
  }
  problems.add(pointer, `must be a string or a list of strings, not ${describe(value)}`);
  return undefined;
}

function normaliseHostPath(source: string): string {
  return path.posix.normalize(source).replace(/(.)\/+$/, '$1');
}

function holdsDockerSocket(source: string): boolean {
  return DOCKER_SOCKETS.some((socket) => socket === source || socket.startsWith(source === '/' ? '/' : `${source}/`));
}

function readMounts(value: unknown, pointer: string, volumeKeys: Set<string>, problems: Problems): MountModel[] {
  const mounts: MountModel[] = [];
  if (value === undefined || value === null) return mounts;
  if (!Array.isArray(value)) {
    problems.add(pointer, `"volumes" must be a list, not ${describe(value)}`);
    return mounts;
  }
  const targets = new Set<string>();
  value.forEach((item, index) => {
    const at = ptr(pointer, index);
    const mount = typeof item === 'string' ? readShortMount(item, at, problems) : isMapping(item) ? readLongMount(item, at, problems) : undefined;
    if (typeof item !== 'string' && !isMapping(item)) {
      problems.add(at, `a volume must be "source:target[:ro]" or a mapping, not ${describe(item)}`);
    }
    if (!mount) return;
    if (!mount.target.startsWith('/')) {
      problems.add(at, `mount target "${mount.target}" must be an absolute path in the container`);
      return;
    }
    const target = normaliseHostPath(mount.target);
    if (targets.has(target)) {
      problems.add(at, `two mounts target "${target}"`);
      return;
    }
    targets.add(target);
    mount.target = target;
    if (mount.type === 'volume' && !volumeKeys.has(mount.volume)) {
      problems.add(at, `named volume "${mount.volume}" is not declared under the top-level "volumes"`);
      return;
    }
    if (mount.type === 'bind') {
      if (!mount.source.startsWith('/')) {
        problems.add(at, `bind source "${mount.source}" is relative or home-based, which pic cannot resolve; use an absolute path under \${PIC_DATA_DIR}`);
        return;
      }
      mount.source = normaliseHostPath(mount.source);
      if (holdsDockerSocket(mount.source)) {
        problems.add(at, `bind mount of "${mount.source}" is refused: it exposes the Docker socket, which gives the container control of the host`);
        return;
      }
    }
    mounts.push(mount);
  });
  return mounts;
}

function readMountMode(mode: string, at: string, problems: Problems): boolean | undefined {
  let readOnly = false;
  for (const option of mode.split(',')) {
    if (option === 'ro') readOnly = true;
    else if (option === 'rw') readOnly = false;
    else {
      problems.add(at, `volume option "${option}" is not supported by pic (supported: ro, rw)`);
      return undefined;
    }
  }
  return readOnly;
}

function readShortMount(spec: string, at: string, problems: Problems): MountModel | undefined {
  const parts = spec.split(':');
  if (parts.length === 1) {
    problems.add(at, `"${spec}" is an anonymous volume, which would be lost whenever pic recreates the container; name it ("name:${spec}") and declare it under "volumes"`);
    return undefined;
  }
  if (parts.length > 3) {
    problems.add(at, `"${spec}" is not "source:target[:mode]"`);
    return undefined;
  }
  const [source = '', target = '', mode] = parts;
  const readOnly = mode === undefined ? false : readMountMode(mode, at, problems);
  if (readOnly === undefined) return undefined;
  if (source === '') {
    problems.add(at, `"${spec}" has an empty source`);
    return undefined;
  }
  if (source.startsWith('/') || source.startsWith('.') || source.startsWith('~')) {
    return { type: 'bind', source, target, readOnly, pointer: at };
  }
  return { type: 'volume', volume: source, target, readOnly, pointer: at };
}

function readLongMount(spec: Record<string, unknown>, at: string, problems: Problems): MountModel | undefined {
  let ok = true;
  for (const k of Object.keys(spec)) {
    if (!['type', 'source', 'target', 'read_only', 'tmpfs'].includes(k) && !k.startsWith('x-')) {
      problems.add(ptr(at, k), `volume key "${k}" is not supported by pic`);
      ok = false;
    }
  }
  const type = spec.type;
  const target = typeof spec.target === 'string' ? spec.target : undefined;
  const source = typeof spec.source === 'string' && spec.source !== '' ? spec.source : undefined;
  if (target === undefined) {
    problems.add(ptr(at, 'target'), `a mount needs a "target" path, not ${describe(spec.target)}`);
    ok = false;
  }
  let readOnly = false;
  if (spec.read_only !== undefined && spec.read_only !== null) {
    const ro = asBoolean(spec.read_only);
    if (ro === undefined) {
      problems.add(ptr(at, 'read_only'), `"read_only" must be true or false, not ${describe(spec.read_only)}`);
      ok = false;
    } else {
      readOnly = ro;
    }
  }
  if (type !== 'tmpfs' && spec.tmpfs !== undefined) {
    problems.add(ptr(at, 'tmpfs'), '"tmpfs" options only apply to a mount of type tmpfs');
    ok = false;
  }
  if (type === 'volume' || type === 'bind') {
    if (source === undefined) {
      const why = type === 'volume' ? 'an anonymous volume would be lost whenever pic recreates the container' : 'a bind mount needs a host path';
      problems.add(ptr(at, 'source'), `a ${type} mount needs a "source": ${why}`);
      return undefined;
    }
    if (!ok || target === undefined) return undefined;
    return type === 'volume'
      ? { type, volume: source, target, readOnly, pointer: at }
      : { type, source, target, readOnly, pointer: at };
  }
  if (type === 'tmpfs') {
    let sizeBytes: number | undefined;
    if (spec.tmpfs !== undefined && spec.tmpfs !== null) {
      if (!isMapping(spec.tmpfs)) {
        problems.add(ptr(at, 'tmpfs'), `"tmpfs" must be a mapping, not ${describe(spec.tmpfs)}`);
        ok = false;
      } else {
        for (const [k, v] of Object.entries(spec.tmpfs)) {
          if (k !== 'size') {
            problems.add(ptr(at, 'tmpfs', k), `tmpfs option "${k}" is not supported by pic (supported: size)`);
            ok = false;
            continue;
          }
          try {
            sizeBytes = parseByteSize(v);
          } catch (err) {
            problems.add(ptr(at, 'tmpfs', k), (err as Error).message);
            ok = false;
          }
        }
      }
    }
    if (source !== undefined) {
      problems.add(ptr(at, 'source'), 'a tmpfs mount has no source');
      ok = false;
    }
    if (!ok || target === undefined) return undefined;
    return sizeBytes === undefined ? { type, target, readOnly, pointer: at } : { type, target, readOnly, sizeBytes, pointer: at };
  }
  problems.add(ptr(at, 'type'), `mount type ${describe(type)} is not supported by pic (supported: volume, bind, tmpfs)`);
  return undefined;
}

function readServiceNetworks(value: unknown, pointer: string, rc: ServiceReadContext, s: ServiceModel, problems: Problems): void {
  if (value === undefined || value === null) return;
  let entries: [string, unknown, string][];
  if (Array.isArray(value)) {
    entries = [];
    value.forEach((item, index) => {
      if (typeof item !== 'string') problems.add(ptr(pointer, index), `a network must be named by a string, not ${describe(item)}`);
      else entries.push([item, null, ptr(pointer, index)]);
    });
  } else if (isMapping(value)) {
    entries = Object.entries(value).map(([k, v]) => [k, v, ptr(pointer, k)]);
  } else {
    problems.add(pointer, `"networks" must be a list or a mapping, not ${describe(value)}`);
    return;
  }
  for (const [name, settings, at] of entries) {
    if (!rc.cellNetworkKeys.has(name)) {
      problems.add(at, `network "${name}" is refused: pic attaches service containers only to the cell network "${rc.networkName}" (declared under the top-level "networks" with "external: true")`);
      continue;
    }
    if (settings === null || settings === undefined) continue;
    if (!isMapping(settings)) {
      problems.add(at, `network settings must be a mapping, not ${describe(settings)}`);
      continue;
    }
    for (const [k, v] of Object.entries(settings)) {
      if (k === 'ipv4_address') {
        if (typeof v !== 'string' || !isIpv4(v)) problems.add(ptr(at, k), `ipv4_address ${describe(v)} is not an IPv4 address`);
        else if (s.ipv4Address !== undefined && s.ipv4Address !== v) problems.add(ptr(at, k), 'the service is given two different IPv4 addresses');
        else s.ipv4Address = v;
      } else if (k === 'aliases') {
        if (!Array.isArray(v)) {
          problems.add(ptr(at, k), `"aliases" must be a list, not ${describe(v)}`);
          continue;
        }
        v.forEach((alias, index) => {
          if (typeof alias !== 'string' || !/^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,62})$/.test(alias)) {
            problems.add(ptr(at, k, index), `alias ${describe(alias)} is not a valid host name`);
          } else if (!s.aliases.includes(alias)) {
            s.aliases.push(alias);
          }
        });
      } else if (!k.startsWith('x-')) {
        problems.add(ptr(at, k), `network setting "${k}" is not supported by pic (supported: ipv4_address, aliases)`);
      }
    }
  }
}

function readRestart(value: unknown, pointer: string, problems: Problems): ServiceModel['restart'] {
  if (value === undefined || value === null) return undefined;
  if (value === false || value === 'no') return { Name: 'no' };
  if (value === 'always' || value === 'unless-stopped') return { Name: value };
  if (typeof value === 'string') {
    const m = /^on-failure(?::(\d{1,6}))?$/.exec(value);
    if (m) return m[1] === undefined ? { Name: 'on-failure' } : { Name: 'on-failure', MaximumRetryCount: Number(m[1]) };
  }
  problems.add(pointer, `restart ${describe(value)} is not one of no, always, unless-stopped, on-failure[:N]`);
  return undefined;
}

const DEPENDS_ON_CONDITIONS: readonly DependsOnCondition[] = ['service_started', 'service_healthy', 'service_completed_successfully'];

function readDependsOn(value: unknown, pointer: string, problems: Problems): DependencyModel[] {
  const deps: DependencyModel[] = [];
  if (value === undefined || value === null) return deps;
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      if (typeof item !== 'string') problems.add(ptr(pointer, index), `depends_on entries must name a service, not ${describe(item)}`);
      else deps.push({ service: item, condition: 'service_started', pointer: ptr(pointer, index) });
    });
    return deps;
  }
  if (!isMapping(value)) {
    problems.add(pointer, `"depends_on" must be a list or a mapping, not ${describe(value)}`);
    return deps;
  }
  for (const [service, settings] of Object.entries(value)) {
    const at = ptr(pointer, service);
    let condition: DependsOnCondition = 'service_started';
    if (settings !== null && settings !== undefined) {
      if (!isMapping(settings)) {
        problems.add(at, `must be a mapping with "condition", not ${describe(settings)}`);
        continue;
      }
      for (const [k, v] of Object.entries(settings)) {
        if (k === 'condition') {
          if (typeof v === 'string' && (DEPENDS_ON_CONDITIONS as readonly string[]).includes(v)) condition = v as DependsOnCondition;
          else problems.add(ptr(at, k), `condition ${describe(v)} is not one of ${DEPENDS_ON_CONDITIONS.join(', ')}`);
        } else if (!k.startsWith('x-')) {
          problems.add(ptr(at, k), `depends_on setting "${k}" is not supported by pic (supported: condition)`);
        }
      }
    }
    deps.push({ service, condition, pointer: at });
  }
  return deps;
}

function durationField(value: unknown, pointer: string, problems: Problems): number | undefined {
  if (typeof value !== 'string') {
    problems.add(pointer, `${describe(value)} is not a duration; write a number with a unit, e.g. 30s`);
    return undefined;
  }
  try {
    return parseDuration(value);
  } catch (err) {
    problems.add(pointer, (err as Error).message);
    return undefined;
  }
}

function readHealthcheck(value: unknown, pointer: string, problems: Problems): Dockerode.HealthConfig | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isMapping(value)) {
    problems.add(pointer, `"healthcheck" must be a mapping, not ${describe(value)}`);
    return undefined;
  }
  const health: Dockerode.HealthConfig = {};
  for (const k of Object.keys(value)) {
    if (!['test', 'interval', 'timeout', 'retries', 'start_period', 'disable'].includes(k) && !k.startsWith('x-')) {
      problems.add(ptr(pointer, k), `healthcheck key "${k}" is not supported by pic`);
    }
  }
  const disable = value.disable === undefined || value.disable === null ? false : asBoolean(value.disable);
  if (disable === undefined) problems.add(ptr(pointer, 'disable'), `"disable" must be true or false, not ${describe(value.disable)}`);
  if (disable === true) {
    if (value.test !== undefined) problems.add(ptr(pointer, 'test'), '"test" and "disable: true" contradict each other');
    return { Test: ['NONE'] };
  }
  const test = value.test;
  if (typeof test === 'string') {
    health.Test = ['CMD-SHELL', test];
  } else if (Array.isArray(test) && test.length > 0 && test.every((t) => typeof t === 'string')) {
    const [kind] = test as string[];
    if (kind !== 'CMD' && kind !== 'CMD-SHELL' && kind !== 'NONE') {
      problems.add(ptr(pointer, 'test'), `a healthcheck test list starts with CMD, CMD-SHELL or NONE, not ${JSON.stringify(kind)}`);
    } else {
      health.Test = [...(test as string[])];
    }
  } else if (test !== undefined) {
    problems.add(ptr(pointer, 'test'), `"test" must be a string or a list of strings, not ${describe(test)}`);
  }
  const durations: [string, 'Interval' | 'Timeout' | 'StartPeriod'][] = [['interval', 'Interval'], ['timeout', 'Timeout'], ['start_period', 'StartPeriod']];
  for (const [field, option] of durations) {
    if (value[field] === undefined || value[field] === null) continue;
    const ns = durationField(value[field], ptr(pointer, field), problems);
    if (ns !== undefined) health[option] = ns;
  }
  if (value.retries !== undefined && value.retries !== null) {
    const retries = asInteger(value.retries);
    if (retries === undefined || retries < 0) problems.add(ptr(pointer, 'retries'), `"retries" must be a whole number ≥ 0, not ${describe(value.retries)}`);
    else health.Retries = retries;
  }
  return health;
}

function readPortNumber(text: string, what: string, at: string, problems: Problems): number | undefined {
  if (/^\d+-\d+$/.test(text)) {
    problems.add(at, `${what} port range "${text}" is not supported by pic; list each port`);
    return undefined;
  }
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    problems.add(at, `${what} port "${text}" is not a number from 1 to 65535`);
    return undefined;
  }
  return Number(text);
}

function readShortPort(spec: string, at: string, problems: Problems): PortModel | undefined {
  let rest = spec;
  let protocol = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    protocol = rest.slice(slash + 1);
    rest = rest.slice(0, slash);
  }
  if (!['tcp', 'udp', 'sctp'].includes(protocol)) {
    problems.add(at, `port protocol "${protocol}" is not tcp, udp or sctp`);
    return undefined;
  }
  const colon = rest.lastIndexOf(':');
  const containerText = colon < 0 ? rest : rest.slice(colon + 1);
  const before = colon < 0 ? undefined : rest.slice(0, colon);
  let hostIp = '';
  let hostPort = '';
  if (before !== undefined) {
    const hostColon = before.lastIndexOf(':');
    hostPort = hostColon < 0 ? before : before.slice(hostColon + 1);
    if (hostColon >= 0) {
      hostIp = before.slice(0, hostColon).replace(/^\[(.*)\]$/, '$1');
      if (!isIpv4(hostIp) && !isIpv6(hostIp)) {
        problems.add(at, `"${hostIp}" in "${spec}" is not an IP address`);
        return undefined;
      }
    }
  }
  const containerPort = readPortNumber(containerText, 'container', at, problems);
  if (containerPort === undefined) return undefined;
  if (hostPort !== '' && readPortNumber(hostPort, 'host', at, problems) === undefined) return undefined;
  return { containerPort, protocol, hostIp, hostPort };
}

function readLongPort(spec: Record<string, unknown>, at: string, problems: Problems): PortModel | undefined {
  let ok = true;
  for (const k of Object.keys(spec)) {
    if (!['target', 'published', 'host_ip', 'protocol', 'mode'].includes(k) && !k.startsWith('x-')) {
      problems.add(ptr(at, k), `port key "${k}" is not supported by pic`);
      ok = false;
    }
  }
  const targetText = scalarText(spec.target);
  const containerPort = targetText === undefined ? undefined : readPortNumber(targetText, 'container', ptr(at, 'target'), problems);
  if (targetText === undefined) problems.add(ptr(at, 'target'), `a port needs a "target", not ${describe(spec.target)}`);
  const protocol = spec.protocol === undefined ? 'tcp' : spec.protocol;
  if (typeof protocol !== 'string' || !['tcp', 'udp', 'sctp'].includes(protocol)) {
    problems.add(ptr(at, 'protocol'), `protocol ${describe(protocol)} is not tcp, udp or sctp`);
    ok = false;
  }
  let hostPort = '';
  if (spec.published !== undefined && spec.published !== null) {
    const published = scalarText(spec.published);
    if (published === undefined || readPortNumber(published, 'published', ptr(at, 'published'), problems) === undefined) ok = false;
    else hostPort = published;
  }
  let hostIp = '';
  if (spec.host_ip !== undefined && spec.host_ip !== null) {
    if (typeof spec.host_ip !== 'string' || (!isIpv4(spec.host_ip) && !isIpv6(spec.host_ip))) {
      problems.add(ptr(at, 'host_ip'), `host_ip ${describe(spec.host_ip)} is not an IP address`);
      ok = false;
    } else {
      hostIp = spec.host_ip;
    }
  }
  if (spec.mode !== undefined && spec.mode !== 'host' && spec.mode !== 'ingress') {
    problems.add(ptr(at, 'mode'), `port mode ${describe(spec.mode)} is not host or ingress`);
    ok = false;
  }
  if (!ok || containerPort === undefined) return undefined;
  return { containerPort, protocol: protocol as string, hostIp, hostPort };
}

function readPorts(value: unknown, pointer: string, problems: Problems): PortModel[] {
  const ports: PortModel[] = [];
  if (value === undefined || value === null) return ports;
  if (!Array.isArray(value)) {
    problems.add(pointer, `"ports" must be a list, not ${describe(value)}`);
    return ports;
  }
  value.forEach((item, index) => {
    const at = ptr(pointer, index);
    let port: PortModel | undefined;
    if (typeof item === 'number' && Number.isInteger(item)) port = readShortPort(String(item), at, problems);
    else if (typeof item === 'string') port = readShortPort(item, at, problems);
    else if (isMapping(item)) port = readLongPort(item, at, problems);
    else problems.add(at, `a port must be "host:container[/proto]" or a mapping, not ${describe(item)}`);
    if (port) ports.push(port);
  });
  return ports;
}

function readCapabilities(value: unknown, pointer: string, problems: Problems): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add(pointer, `"cap_add" must be a list, not ${describe(value)}`);
    return [];
  }
  const caps: string[] = [];
  value.forEach((item, index) => {
    const name = typeof item === 'string' ? item.toUpperCase().replace(/^CAP_/, '') : '';
    if (!/^[A-Z_]+$/.test(name)) problems.add(ptr(pointer, index), `${describe(item)} is not a capability name`);
    else if (!caps.includes(name)) caps.push(name);
  });
  return caps.sort(compareStrings);
}

function readSecurityOpt(value: unknown, pointer: string, problems: Problems): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add(pointer, `"security_opt" must be a list, not ${describe(value)}`);
    return [];
  }
  const options: string[] = [];
  value.forEach((item, index) => {
    const at = ptr(pointer, index);
    if (typeof item !== 'string') {
      problems.add(at, `${describe(item)} is not a security option`);
      return;
    }
    const normalised = item.replace('=', ':');
    if (/^(apparmor|seccomp|systempaths):unconfined$/.test(normalised) || normalised === 'label:disable') {
      problems.add(at, `security option "${item}" is refused: it disables the container's confinement`);
    } else if (/^no-new-privileges(:true)?$/.test(normalised)) {
      options.push('no-new-privileges:true');
    } else {
      problems.add(at, `security option "${item}" is not supported by pic (supported: no-new-privileges)`);
    }
  });
  return [...new Set(options)];
}

function readTmpfs(value: unknown, pointer: string, problems: Problems): Map<string, string> {
  const out = new Map<string, string>();
  if (value === undefined || value === null) return out;
  const items = typeof value === 'string' ? [value] : Array.isArray(value) ? value : undefined;
  if (!items) {
    problems.add(pointer, `"tmpfs" must be a path or a list of paths, not ${describe(value)}`);
    return out;
  }
  items.forEach((item, index) => {
    const at = Array.isArray(value) ? ptr(pointer, index) : pointer;
    if (typeof item !== 'string' || !item.startsWith('/')) {
      problems.add(at, `tmpfs ${describe(item)} must be an absolute path, optionally followed by ":options"`);
      return;
    }
    const colon = item.indexOf(':');
    const target = colon < 0 ? item : item.slice(0, colon);
    const options = colon < 0 ? '' : item.slice(colon + 1);
    if (out.has(target)) problems.add(at, `tmpfs "${target}" is listed twice`);
    else out.set(target, options);
  });
  return out;
}

/** depends_on names existing services, and the dependencies form no cycle. */
function checkServiceGraph(model: ComposeModel, problems: Problems): void {
  const keys = new Set(model.services.map((s) => s.key));
  const names = new Map<string, string>();
  for (const s of model.services) {
    for (const dep of s.dependsOn) {
      if (dep.service === s.key) problems.add(dep.pointer, `service "${s.key}" depends on itself`);
      else if (!keys.has(dep.service)) problems.add(dep.pointer, `depends_on names "${dep.service}", which is not a service of this file`);
    }
    if (s.containerName !== undefined) {
      const other = names.get(s.containerName);
      if (other !== undefined) problems.add(ptr(s.pointer, 'container_name'), `container_name "${s.containerName}" is also used by service "${other}"`);
      else names.set(s.containerName, s.key);
    }
  }
  const cycle = findCycle(model.services);
  if (cycle) problems.add('/services', `depends_on forms a cycle: ${cycle.join(' → ')}`);
}

function findCycle(services: ServiceModel[]): string[] | undefined {
  const deps = new Map(services.map((s) => [s.key, s.dependsOn.map((d) => d.service).filter((d) => d !== s.key)]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (key: string): string[] | undefined => {
    const st = state.get(key);
    if (st === 'done') return undefined;
    if (st === 'visiting') return [...stack.slice(stack.indexOf(key)), key];
    state.set(key, 'visiting');
    stack.push(key);
    for (const dep of [...(deps.get(key) ?? [])].sort(compareStrings)) {
      if (!deps.has(dep)) continue;
      const found = visit(dep);
      if (found) return found;
    }
    stack.pop();
    state.set(key, 'done');
    return undefined;
  };
  for (const key of [...deps.keys()].sort(compareStrings)) {
    const found = visit(key);
    if (found) return found;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Policy checks

/** Does `image` live under `prefix`, matching whole path segments? */
export function imageUnderPrefix(image: string, prefix: string): boolean {
  const base = prefix.replace(/\/+$/, '');
  if (base === '') return false;
  if (!image.startsWith(base)) return false;
  const boundary = image[base.length];
  // A prefix naming a whole repository may be followed by a tag or digest.
  return boundary === '/' || (!prefix.endsWith('/') && (boundary === ':' || boundary === '@'));
}

/** Docker's reference grammar, slightly simplified: [host[:port]/]path[:tag][@digest]. */
const IMAGE_REFERENCE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::\d{1,5})?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,})?$/;

/**
 * Check a rendered compose document against the cell's policy. Returns every problem; an empty
 * list means pic may create what `composeToContainerSpecs` makes of it.
 */
export function checkRenderedCompose(compose: ComposeFile, policy: ComposePolicy, file: string): Problem[] {
  const { model, problems: found } = readCompose(compose, file, policy.networkName);
  const problems = new Problems(file);
  problems.list.push(...found);
  const dataDir = policy.dataDir.startsWith('/') ? normaliseHostPath(policy.dataDir) : undefined;
  if (dataDir === undefined) problems.add('', `the cell data directory "${policy.dataDir}" is not an absolute path, so no bind mount can be allowed`);
  for (const s of model.services) {
    if (s.image) {
      if (!IMAGE_REFERENCE.test(s.image)) {
        problems.add(ptr(s.pointer, 'image'), `"${s.image}" is not a valid image reference`);
      } else if (!imageUnderPrefix(s.image, policy.allowedImagePrefix)) {
        problems.add(ptr(s.pointer, 'image'), `image "${s.image}" is not under the allowed prefix "${policy.allowedImagePrefix}"`);
      }
    }
    if (s.capAdd.length > 0 && !policy.allowCapAdd) {
      problems.add(ptr(s.pointer, 'cap_add'), 'cap_add is refused: only connectivity services may add capabilities');
    } else {
      for (const cap of s.capAdd.filter((c) => HOST_ROOT_CAPABILITIES.has(c))) {
        problems.add(ptr(s.pointer, 'cap_add'), `capability ${cap} is refused even to connectivity services: it amounts to root on the host`);
      }
    }
    for (const mount of s.mounts) {
      if (mount.type !== 'bind' || dataDir === undefined) continue;
      const inside = dataDir === '/' ? mount.source !== '/' : mount.source.startsWith(`${dataDir}/`);
      if (!inside) {
        problems.add(mount.pointer, `bind mount of "${mount.source}" is refused: bind sources must be inside the cell data directory "${dataDir}" (use \${PIC_DATA_DIR}/…)`);
      }
    }
  }
  return problems.list;
}

// ---------------------------------------------------------------------------------------------
// Translation

/** JSON with object keys sorted at every level, so equal values always give equal text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    return text === undefined ? 'null' : text;
  }
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort(compareStrings);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** The spec hash of create options: everything pic would create, minus the hash label itself. */
export function specHashOf(create: Dockerode.ContainerCreateOptions): string {
  const labels = { ...(create.Labels ?? {}) };
  delete labels[LABEL_SPEC_HASH];
  const hashed = { ...create, Labels: labels };
  return createHash('sha256').update(canonicalJson(hashed)).digest('hex').slice(0, SPEC_HASH_LENGTH);
}

function dockerVolumeName(ctx: TranslateContext, volume: VolumeModel): string {
  return volume.name ?? `${ctx.volumePrefix ?? 'pic'}-${ctx.serviceId}-${volume.key}`;
}

function ownerLabel(serviceId: string): string {
  return `ServiceInstall/${serviceId}`;
}

/** Dependencies first; among services that are ready at the same time, by service key. */
function topologicalOrder(services: ServiceModel[]): ServiceModel[] | undefined {
  const byKey = new Map(services.map((s) => [s.key, s]));
  const remaining = new Map(services.map((s) => [s.key, new Set(s.dependsOn.map((d) => d.service).filter((d) => byKey.has(d)))]));
  const ordered: ServiceModel[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining.entries()].filter(([, deps]) => deps.size === 0).map(([key]) => key).sort(compareStrings);
    const next = ready[0];
    if (next === undefined) return undefined;
    remaining.delete(next);
    for (const deps of remaining.values()) deps.delete(next);
    ordered.push(byKey.get(next) as ServiceModel);
  }
  return ordered;
}

function buildCreateOptions(s: ServiceModel, ctx: TranslateContext, volumeNames: Map<string, string>): Dockerode.ContainerCreateOptions {
  const name = s.containerName as string;
  const create: Dockerode.ContainerCreateOptions = { name, Image: s.image as string };
  if (s.hostname !== undefined) create.Hostname = s.hostname;
  if (s.user !== undefined) create.User = s.user;
  if (s.environment.size > 0) {
    create.Env = [...s.environment.entries()].sort((a, b) => compareStrings(a[0], b[0])).map(([k, v]) => `${k}=${v}`);
  }
  if (s.command !== undefined) create.Cmd = s.command;
  if (s.entrypoint !== undefined) create.Entrypoint = s.entrypoint;
  if (s.workingDir !== undefined) create.WorkingDir = s.workingDir;

  const labels = new Map([...s.labels, ...Object.entries(ctx.extraLabels ?? {})]);
  labels.set(LABEL_OWNER, ownerLabel(ctx.serviceId));
  labels.set(LABEL_SERVICE, s.key);
  if (ctx.projectLabel !== undefined) {
    labels.set(LABEL_COMPOSE_PROJECT, ctx.projectLabel);
    labels.set(LABEL_COMPOSE_SERVICE, s.key);
  }
  create.Labels = sortedRecord(labels);

  const portKey = (p: PortModel): string => `${p.containerPort}/${p.protocol}`;
  const sortedPorts = [...s.ports].sort(
    (a, b) => a.containerPort - b.containerPort || compareStrings(a.protocol, b.protocol) || compareStrings(a.hostIp, b.hostIp) || compareStrings(a.hostPort, b.hostPort),
  );
  if (sortedPorts.length > 0) {
    const exposed: Record<string, object> = {};
    for (const p of sortedPorts) exposed[portKey(p)] = {};
    create.ExposedPorts = exposed;
  }
  if (s.stopSignal !== undefined) create.StopSignal = s.stopSignal;
  if (s.stopTimeout !== undefined) create.StopTimeout = s.stopTimeout;
  if (s.healthcheck !== undefined) create.Healthcheck = s.healthcheck;

  const host: Dockerode.HostConfig = { NetworkMode: ctx.networkName };
  if (s.mounts.length > 0) {
    host.Mounts = s.mounts.map((m): Dockerode.MountSettings => {
      if (m.type === 'volume') return { Type: 'volume', Source: volumeNames.get(m.volume) as string, Target: m.target, ReadOnly: m.readOnly };
      if (m.type === 'bind') return { Type: 'bind', Source: m.source, Target: m.target, ReadOnly: m.readOnly };
      const tmpfs: Dockerode.MountSettings = { Type: 'tmpfs', Source: '', Target: m.target, ReadOnly: m.readOnly };
      // Mode 0 lets Docker apply its default (1777); the typings insist on the field.
      if (m.sizeBytes !== undefined) tmpfs.TmpfsOptions = { SizeBytes: m.sizeBytes, Mode: 0 };
      return tmpfs;
    });
  }
  if (sortedPorts.length > 0) {
    const bindings: Record<string, Dockerode.PortBinding[]> = {};
    for (const p of sortedPorts) (bindings[portKey(p)] ??= []).push({ HostIp: p.hostIp, HostPort: p.hostPort });
    host.PortBindings = bindings;
  }
  if (s.restart !== undefined) host.RestartPolicy = { ...s.restart };
  if (s.capAdd.length > 0) host.CapAdd = [...s.capAdd];
  if (s.securityOpt.length > 0) host.SecurityOpt = [...s.securityOpt];
  if (s.tmpfs.size > 0) host.Tmpfs = sortedRecord(s.tmpfs);
  if (s.readOnly !== undefined) host.ReadonlyRootfs = s.readOnly;
  if (s.memory !== undefined) host.Memory = s.memory;
  if (s.nanoCpus !== undefined) host.NanoCpus = s.nanoCpus;
  create.HostConfig = host;

  const aliases: string[] = [];
  for (const alias of [s.key, name, ...s.aliases]) if (!aliases.includes(alias)) aliases.push(alias);
  const endpoint: Dockerode.EndpointSettings = {};
  if (s.ipv4Address !== undefined) endpoint.IPAMConfig = { IPv4Address: s.ipv4Address };
  endpoint.Aliases = aliases;
  const endpoints: Dockerode.EndpointsConfig = {};
  setOwn(endpoints as Record<string, unknown>, ctx.networkName, endpoint);
  create.NetworkingConfig = { EndpointsConfig: endpoints };
  return create;
}

/**
 * Translate a rendered compose document into what pic creates: containers (ordered so that each
 * comes after what it depends on) and named volumes. Call `checkRenderedCompose` first; this
 * refuses the same unsafe settings, but only the check applies the cell's policy.
 */
export function composeToContainerSpecs(compose: ComposeFile, ctx: TranslateContext): ServicePlan {
  const file = ctx.file ?? 'compose';
  const { model, problems } = readCompose(compose, file, ctx.networkName);
  const empty: ServicePlan = { containers: [], volumes: [], bindSources: [], problems };
  const ordered = topologicalOrder(model.services);
  if (!ordered && !problems.some((p) => p.message.includes('cycle'))) {
    problems.push({ file, pointer: '/services', message: 'depends_on forms a cycle' });
  }
  if (problems.length > 0 || !ordered) return empty;

  const volumeNames = new Map(model.volumes.map((v) => [v.key, dockerVolumeName(ctx, v)]));
  const volumes: DesiredVolume[] = model.volumes
    .map((v) => {
      const labels = new Map([...v.labels, ...Object.entries(ctx.extraLabels ?? {})]);
      labels.set(LABEL_OWNER, ownerLabel(ctx.serviceId));
      labels.set(LABEL_VOLUME, v.key);
      return { name: volumeNames.get(v.key) as string, labels: sortedRecord(labels) };
    })
    .sort((a, b) => compareStrings(a.name, b.name));
  const seenVolumeNames = new Set<string>();
  for (const v of volumes) {
    if (seenVolumeNames.has(v.name)) problems.push({ file, pointer: '/volumes', message: `two volumes have the Docker name "${v.name}"` });
    else if (!DOCKER_VOLUME_NAME_PATTERN.test(v.name)) problems.push({ file, pointer: '/volumes', message: `"${v.name}" is not a valid Docker volume name` });
    seenVolumeNames.add(v.name);
  }
  if (problems.length > 0) return empty;

  const containerNames = new Map(model.services.map((s) => [s.key, s.containerName as string]));
  const containers = ordered.map((s): DesiredContainer => {
    const create = buildCreateOptions(s, ctx, volumeNames);
    const specHash = specHashOf(create);
    create.Labels = sortedRecord([...Object.entries(create.Labels ?? {}), [LABEL_SPEC_HASH, specHash]]);
    const dependsOnConditions: Record<string, DependsOnCondition> = {};
    for (const dep of [...s.dependsOn].sort((a, b) => compareStrings(containerNames.get(a.service) ?? '', containerNames.get(b.service) ?? ''))) {
      setOwn(dependsOnConditions, containerNames.get(dep.service) as string, dep.condition);
    }
    return { name: create.name as string, service: s.key, create, dependsOn: Object.keys(dependsOnConditions), dependsOnConditions, specHash };
  });
  const bindSources = [...new Set(model.services.flatMap((s) => s.mounts.flatMap((m) => (m.type === 'bind' ? [m.source] : []))))].sort(compareStrings);
  return { containers, volumes, bindSources, problems };
}
