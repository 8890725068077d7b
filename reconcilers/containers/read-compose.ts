/**
 * Read a rendered compose document into the model (compose-model.ts). Shape only: whether a
 * setting is *allowed* is the policy's decision (policy.ts), and what pic creates from the model
 * is the translator's (translate.ts).
 *
 * Anything outside the subset is reported as "not supported by pic" rather than ignored, so a
 * template never means more than what pic actually creates. Every problem is collected; none
 * stops the walk. Pure: no I/O, no clock.
 */
import type { Problem } from '../../crds/types.js';
import { compareText, isRecord } from '../../crds/values.js';
import {
  asBoolean,
  asNumber,
  COMPOSE_KEY_PATTERN,
  CONTAINER_NAME_PATTERN,
  DOCKER_VOLUME_NAME_PATTERN,
  normaliseHostPath,
  Problems,
  ptr,
  scalarText,
  type ComposeModel,
  type NetworkModel,
  type ServiceModel,
  type VolumeModel,
} from './compose-model.js';
import {
  durationField,
  readCapabilities,
  readCommand,
  readDevices,
  readSysctls,
  readDependsOn,
  readHealthcheck,
  readMounts,
  readPorts,
  readRestart,
  readSecurityOpt,
  readServiceNetworks,
  readTmpfs,
} from './read-compose-fields.js';
import { RESERVED_LABEL_PREFIXES } from './labels.js';
import { describeValue as describe, parseByteSize } from './units.js';

const TOP_LEVEL_KEYS = new Set(['services', 'volumes', 'networks', 'version']);

/** Read the rendered document into the model, reporting every shape problem with its pointer. */
export function readComposeModel(compose: unknown, file: string): { model: ComposeModel; problems: Problem[] } {
  const problems = new Problems(file);
  const model: ComposeModel = { services: [], volumes: [], networks: [] };
  if (!isRecord(compose)) {
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
    if (!isRecord(compose.volumes)) {
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
  if (!isRecord(services) || Object.keys(services).length === 0) {
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
  if (!isRecord(value)) {
    problems.add('/networks', `"networks" must be a mapping, not ${describe(value)}`);
    return networks;
  }
  for (const [key, def] of Object.entries(value)) {
    const pointer = ptr('/networks', key);
    if (def !== null && def !== undefined && !isRecord(def)) {
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
  if (!isRecord(value)) {
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
  } else if (isRecord(value)) {
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
  'stop_signal', 'tmpfs', 'read_only', 'mem_limit', 'cpus', 'security_opt', 'sysctls',
  // Settings the policy decides on (see readConfinement).
  'privileged', 'network_mode', 'pid', 'ipc', 'userns_mode', 'devices',
]);

function readService(key: string, value: unknown, volumeKeys: Set<string>, problems: Problems): ServiceModel | undefined {
  const pointer = ptr('/services', key);
  if (!COMPOSE_KEY_PATTERN.test(key)) {
    problems.add(pointer, `service name "${key}" must match ${COMPOSE_KEY_PATTERN.source}`);
    return undefined;
  }
  if (!isRecord(value)) {
    problems.add(pointer, `service "${key}" must be a mapping, not ${describe(value)}`);
    return undefined;
  }
  const s: ServiceModel = {
    key, pointer, imagePointer: ptr(pointer, 'image'), environment: new Map(), mounts: [], aliases: [], labels: new Map(), dependsOn: [], ports: [],
    capAdd: [], devices: [], sysctls: [], securityOpt: [], networkRefs: [], confinement: {}, tmpfs: [],
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
  s.devices = readDevices(value.devices, at('devices'), problems);
  s.sysctls = readSysctls(value.sysctls, at('sysctls'), problems);
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
    if (grace !== undefined) s.stopTimeout = { value: Math.ceil(grace / 1e9), pointer: at('stop_grace_period') };
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
  const fields = [['privileged', 'privileged'], ['networkMode', 'network_mode'], ['pid', 'pid'], ['ipc', 'ipc'], ['usernsMode', 'userns_mode']] as const;
  for (const [name, field] of fields) {
    const v = value[field];
    if (v !== undefined && v !== null) confinement[name] = { value: v, pointer: ptr(pointer, field) };
  }
  return confinement;
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
    for (const dep of [...(deps.get(key) ?? [])].sort(compareText)) {
      if (!deps.has(dep)) continue;
      const found = visit(dep);
      if (found) return found;
    }
    stack.pop();
    state.set(key, 'done');
    return undefined;
  };
  for (const key of [...deps.keys()].sort(compareText)) {
    const found = visit(key);
    if (found) return found;
  }
  return undefined;
}
