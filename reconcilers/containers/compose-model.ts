/**
 * Read a rendered compose document into the model of the Compose subset pic supports: typed
 * services, mounts, ports, networks and volumes, each carrying the JSON pointer of where it was
 * written. Shape only: whether a setting is *allowed* is the policy's decision (policy.ts), and
 * what pic creates from the model is the translator's (translate.ts).
 *
 * Anything outside the subset is reported as "not supported by pic" rather than ignored, so a
 * template never means more than what pic actually creates. Every problem is collected; none
 * stops the walk. Pure: no I/O, no clock.
 */
import path from 'node:path';
import type Dockerode from 'dockerode';
import { CONTAINER_NAME_PATTERN as CONTAINER_NAME_SOURCE } from '../../crds/schemas.js';
import type { Problem } from '../../crds/types.js';
import { splitCommand } from './command.js';
import { RESERVED_LABEL_PREFIXES } from './labels.js';
import type { DependsOnCondition } from './types.js';
import { describeValue as describe, parseByteSize, parseDuration } from './units.js';

/** A rendered compose document, not yet checked: any shape may come out of a template. */
export type ComposeFile = Record<string, unknown>;


export const CONTAINER_NAME_PATTERN = new RegExp(CONTAINER_NAME_SOURCE);
/** Docker's own rule for volume names. */
export const DOCKER_VOLUME_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
/** Compose's rule for service, volume and network keys. */
const COMPOSE_KEY_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

// ---------------------------------------------------------------------------------------------
// Small helpers

export function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function seg(segment: string | number): string {
  return String(segment).replace(/~/g, '~0').replace(/\//g, '~1');
}

export function ptr(base: string, ...segments: (string | number)[]): string {
  return segments.reduce<string>((acc, s) => `${acc}/${seg(s)}`, base);
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

export function sortedRecord<V>(entries: Iterable<[string, V]>): Record<string, V> {
  const out: Record<string, V> = {};
  for (const [k, v] of [...entries].sort((a, b) => compareStrings(a[0], b[0]))) setOwn(out, k, v);
  return out;
}


export class Problems {
  readonly list: Problem[] = [];
  constructor(private readonly file: string) {}
  add(pointer: string, message: string): void {
    this.list.push({ file: this.file, pointer, message });
  }
}

/** A scalar Compose would accept as text (numbers and booleans are written out). */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return undefined;
}

/** Rendered values are text, so numeric and boolean fields accept their textual form too. */
export function asBoolean(value: unknown): boolean | undefined {
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

export function isIpv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}

function isIpv6(text: string): boolean {
  return /^[0-9a-fA-F:.]+$/.test(text) && text.includes(':');
}

// ---------------------------------------------------------------------------------------------
// The model of the supported subset

export type MountModel =
  | { type: 'volume'; volume: string; target: string; readOnly: boolean; pointer: string }
  | { type: 'bind'; source: string; target: string; readOnly: boolean; pointer: string }
  | { type: 'tmpfs'; target: string; readOnly: boolean; sizeBytes?: number; pointer: string };

export interface PortModel {
  containerPort: number;
  protocol: string;
  hostIp: string;
  hostPort: string;
}

export interface DependencyModel {
  service: string;
  condition: DependsOnCondition;
  pointer: string;
}

export interface ServiceModel {
  key: string;
  pointer: string;
  imagePointer: string;
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
  /** Capability names, upper case without CAP_, each with its pointer. */
  capAdd: Setting<string>[];
  securityOpt: Setting<string>[];
  /** The networks the service names (list or mapping keys). */
  networkRefs: Setting<string>[];
  /** Settings that only the policy may allow, as written (absent when not written or null). */
  confinement: {
    privileged?: Setting;
    networkMode?: Setting;
    pid?: Setting;
    ipc?: Setting;
    usernsMode?: Setting;
    devices?: Setting;
  };
  workingDir?: string;
  user?: string;
  hostname?: string;
  stopTimeout?: number;
  stopSignal?: string;
  /** `tmpfs:` entries: a target and its mount options as written ("" for none). */
  tmpfs: { target: string; options: string; pointer: string }[];
  readOnly?: boolean;
  memory?: number;
  nanoCpus?: number;
}

export interface VolumeModel {
  key: string;
  name?: string;
  labels: Map<string, string>;
  pointer: string;
}

/** A top-level network declaration. */
export interface NetworkModel {
  key: string;
  /** `name:` when given, else the key. */
  name: string;
  external: boolean;
  pointer: string;
}

/** A raw setting the policy decides on, with where it was written. */
export interface Setting<T = unknown> {
  value: T;
  pointer: string;
}

export interface ComposeModel {
  services: ServiceModel[];
  volumes: VolumeModel[];
  networks: NetworkModel[];
}

const TOP_LEVEL_KEYS = new Set(['services', 'volumes', 'networks', 'version']);

/** Read the rendered document into the model, reporting every shape problem with its pointer. */
export function readComposeModel(compose: unknown, file: string): { model: ComposeModel; problems: Problem[] } {
  const problems = new Problems(file);
  const model: ComposeModel = { services: [], volumes: [], networks: [] };
  if (!isMapping(compose)) {
    problems.add('', `a compose document must be a mapping with a "services" key, not ${describe(compose)}`);
    return { model, problems: problems.list };
  }
  for (const key of Object.keys(compose)) {
    if (!TOP_LEVEL_KEYS.has(key) && !key.startsWith('x-')) {
      problems.add(ptr('', key), `top-level key "${key}" is not supported by pic (supported: services, volumes, networks)`);
    }
  }
  model.networks = readNetworks(compose.networks, problems);
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
      const service = readService(key, value, volumeKeys, problems);
      if (service) model.services.push(service);
    }
  }
  checkServiceGraph(model, problems);
  return { model, problems: problems.list };
}

function readNetworks(value: unknown, problems: Problems): NetworkModel[] {
  const networks: NetworkModel[] = [];
  if (value === undefined || value === null) return networks;
  if (!isMapping(value)) {
    problems.add('/networks', `"networks" must be a mapping, not ${describe(value)}`);
    return networks;
  }
  for (const [key, def] of Object.entries(value)) {
    const pointer = ptr('/networks', key);
    if (def !== null && def !== undefined && !isMapping(def)) {
      problems.add(pointer, `network "${key}" must be empty or a mapping, not ${describe(def)}`);
      continue;
    }
    const declared = def ?? {};
    for (const k of Object.keys(declared)) {
      if (k !== 'external' && k !== 'name' && !k.startsWith('x-')) problems.add(ptr(pointer, k), `network key "${k}" is not supported by pic`);
    }
    const name = typeof declared.name === 'string' ? declared.name : key;
    networks.push({ key, name, external: declared.external === true, pointer });
  }
  return networks;
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

const SERVICE_KEYS = new Set([
  'image', 'container_name', 'command', 'entrypoint', 'environment', 'volumes', 'networks', 'restart', 'labels',
  'depends_on', 'healthcheck', 'ports', 'cap_add', 'working_dir', 'user', 'hostname', 'stop_grace_period',
  'stop_signal', 'tmpfs', 'read_only', 'mem_limit', 'cpus', 'security_opt',
  // Settings the policy decides on (see readConfinement).
  'privileged', 'network_mode', 'pid', 'ipc', 'userns_mode', 'devices',
]);

function readService(key: string, value: unknown, volumeKeys: Set<string>, problems: Problems): ServiceModel | undefined {
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
    key, pointer, imagePointer: ptr(pointer, 'image'), environment: new Map(), mounts: [], aliases: [], labels: new Map(), dependsOn: [], ports: [],
    capAdd: [], securityOpt: [], networkRefs: [], confinement: {}, tmpfs: [],
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
  s.mounts = readMounts(value.volumes, at('volumes'), volumeKeys, problems);
  readServiceNetworks(value.networks, at('networks'), s, problems);
  s.restart = readRestart(value.restart, at('restart'), problems);
  s.dependsOn = readDependsOn(value.depends_on, at('depends_on'), problems);
  s.healthcheck = readHealthcheck(value.healthcheck, at('healthcheck'), problems);
  s.ports = readPorts(value.ports, at('ports'), problems);
  s.capAdd = readCapabilities(value.cap_add, at('cap_add'), problems);
  s.securityOpt = readSecurityOpt(value.security_opt, at('security_opt'), problems);
  s.tmpfs = readTmpfs(value.tmpfs, at('tmpfs'), problems);
  for (const { target } of s.tmpfs) {
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

  s.confinement = readConfinement(value, pointer);
  return s;
}

/** Privilege and namespace settings, kept as written: only the policy decides what they may say. */
function readConfinement(value: Record<string, unknown>, pointer: string): ServiceModel['confinement'] {
  const confinement: ServiceModel['confinement'] = {};
  const fields = [['privileged', 'privileged'], ['networkMode', 'network_mode'], ['pid', 'pid'], ['ipc', 'ipc'], ['usernsMode', 'userns_mode'], ['devices', 'devices']] as const;
  for (const [name, field] of fields) {
    const v = value[field];
    if (v !== undefined && v !== null) confinement[name] = { value: v, pointer: ptr(pointer, field) };
  }
  return confinement;
}

function readCommand(value: unknown, pointer: string, problems: Problems): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') {
    try {
      return splitCommand(value);
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

export function normaliseHostPath(source: string): string {
  return path.posix.normalize(source).replace(/(.)\/+$/, '$1');
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

function readServiceNetworks(value: unknown, pointer: string, s: ServiceModel, problems: Problems): void {
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
    s.networkRefs.push({ value: name, pointer: at });
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

function readCapabilities(value: unknown, pointer: string, problems: Problems): Setting<string>[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add(pointer, `"cap_add" must be a list, not ${describe(value)}`);
    return [];
  }
  const caps: Setting<string>[] = [];
  value.forEach((item, index) => {
    const name = typeof item === 'string' ? item.toUpperCase().replace(/^CAP_/, '') : '';
    if (!/^[A-Z_]+$/.test(name)) problems.add(ptr(pointer, index), `${describe(item)} is not a capability name`);
    else if (!caps.some((c) => c.value === name)) caps.push({ value: name, pointer: ptr(pointer, index) });
  });
  return caps.sort((a, b) => compareStrings(a.value, b.value));
}

function readSecurityOpt(value: unknown, pointer: string, problems: Problems): Setting<string>[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add(pointer, `"security_opt" must be a list, not ${describe(value)}`);
    return [];
  }
  const options: Setting<string>[] = [];
  value.forEach((item, index) => {
    const at = ptr(pointer, index);
    if (typeof item !== 'string') problems.add(at, `${describe(item)} is not a security option`);
    else options.push({ value: item, pointer: at });
  });
  return options;
}

function readTmpfs(value: unknown, pointer: string, problems: Problems): ServiceModel['tmpfs'] {
  const out: ServiceModel['tmpfs'] = [];
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
    if (out.some((t) => t.target === target)) problems.add(at, `tmpfs "${target}" is listed twice`);
    else out.push({ target, options, pointer: at });
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
