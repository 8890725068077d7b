/**
 * Readers of the single fields of a compose service (command, volumes, networks, restart,
 * depends_on, healthcheck, ports, cap_add, security_opt, tmpfs): each turns what was written into
 * the model's shape and reports what it cannot read, with the pointer of the field. Pure.
 */
import type Dockerode from 'dockerode';
import { isIpv4, isIpv6 } from '../../crds/ipv4.js';
import { compareText, isRecord } from '../../crds/values.js';
import { splitCommand } from './command.js';
import {
  asBoolean,
  asInteger,
  normaliseHostPath,
  ptr,
  scalarText,
  type DependencyModel,
  type MountModel,
  type PortModel,
  type Problems,
  type ServiceModel,
  type Setting,
} from './compose-model.js';
import type { DependsOnCondition } from './types.js';
import { describeValue as describe, parseByteSize, parseDuration } from './units.js';

export function readCommand(value: unknown, pointer: string, problems: Problems): string[] | undefined {
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

export function readMounts(value: unknown, pointer: string, volumeKeys: Set<string>, problems: Problems): MountModel[] {
  const mounts: MountModel[] = [];
  if (value === undefined || value === null) return mounts;
  if (!Array.isArray(value)) {
    problems.add(pointer, `"volumes" must be a list, not ${describe(value)}`);
    return mounts;
  }
  const targets = new Set<string>();
  value.forEach((item, index) => {
    const at = ptr(pointer, index);
    const mount = typeof item === 'string' ? readShortMount(item, at, problems) : isRecord(item) ? readLongMount(item, at, problems) : undefined;
    if (typeof item !== 'string' && !isRecord(item)) {
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
      if (!isRecord(spec.tmpfs)) {
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

export function readServiceNetworks(value: unknown, pointer: string, s: ServiceModel, problems: Problems): void {
  if (value === undefined || value === null) return;
  let entries: [string, unknown, string][];
  if (Array.isArray(value)) {
    entries = [];
    value.forEach((item, index) => {
      if (typeof item !== 'string') problems.add(ptr(pointer, index), `a network must be named by a string, not ${describe(item)}`);
      else entries.push([item, null, ptr(pointer, index)]);
    });
  } else if (isRecord(value)) {
    entries = Object.entries(value).map(([k, v]) => [k, v, ptr(pointer, k)]);
  } else {
    problems.add(pointer, `"networks" must be a list or a mapping, not ${describe(value)}`);
    return;
  }
  for (const [name, settings, at] of entries) {
    s.networkRefs.push({ value: name, pointer: at });
    if (settings === null || settings === undefined) continue;
    if (!isRecord(settings)) {
      problems.add(at, `network settings must be a mapping, not ${describe(settings)}`);
      continue;
    }
    for (const [k, v] of Object.entries(settings)) {
      if (k === 'ipv4_address') {
        if (typeof v !== 'string' || !isIpv4(v)) problems.add(ptr(at, k), `ipv4_address ${describe(v)} is not an IPv4 address`);
        else if (s.ipv4Address !== undefined && s.ipv4Address.value !== v) problems.add(ptr(at, k), 'the service is given two different IPv4 addresses');
        else s.ipv4Address = { value: v, pointer: ptr(at, k) };
      } else if (k === 'aliases') {
        if (!Array.isArray(v)) {
          problems.add(ptr(at, k), `"aliases" must be a list, not ${describe(v)}`);
          continue;
        }
        v.forEach((alias, index) => {
          if (typeof alias !== 'string' || !/^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,62})$/.test(alias)) {
            problems.add(ptr(at, k, index), `alias ${describe(alias)} is not a valid host name`);
          } else if (!s.aliases.some((a) => a.value === alias)) {
            s.aliases.push({ value: alias, pointer: ptr(at, k, index) });
          }
        });
      } else if (!k.startsWith('x-')) {
        problems.add(ptr(at, k), `network setting "${k}" is not supported by pic (supported: ipv4_address, aliases)`);
      }
    }
  }
}

export function readRestart(value: unknown, pointer: string, problems: Problems): ServiceModel['restart'] {
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

export function readDependsOn(value: unknown, pointer: string, problems: Problems): DependencyModel[] {
  const deps: DependencyModel[] = [];
  if (value === undefined || value === null) return deps;
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      if (typeof item !== 'string') problems.add(ptr(pointer, index), `depends_on entries must name a service, not ${describe(item)}`);
      else deps.push({ service: item, condition: 'service_started', pointer: ptr(pointer, index) });
    });
    return deps;
  }
  if (!isRecord(value)) {
    problems.add(pointer, `"depends_on" must be a list or a mapping, not ${describe(value)}`);
    return deps;
  }
  for (const [service, settings] of Object.entries(value)) {
    const at = ptr(pointer, service);
    let condition: DependsOnCondition = 'service_started';
    if (settings !== null && settings !== undefined) {
      if (!isRecord(settings)) {
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

export function durationField(value: unknown, pointer: string, problems: Problems): number | undefined {
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

export function readHealthcheck(value: unknown, pointer: string, problems: Problems): Dockerode.HealthConfig | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) {
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
    const [kind] = test;
    if (kind !== 'CMD' && kind !== 'CMD-SHELL' && kind !== 'NONE') {
      problems.add(ptr(pointer, 'test'), `a healthcheck test list starts with CMD, CMD-SHELL or NONE, not ${JSON.stringify(kind)}`);
    } else {
      health.Test = [...test];
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
  return { containerPort, protocol, hostIp, hostPort, pointer: at };
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
  return { containerPort, protocol: protocol as string, hostIp, hostPort, pointer: at };
}

export function readPorts(value: unknown, pointer: string, problems: Problems): PortModel[] {
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
    else if (isRecord(item)) port = readLongPort(item, at, problems);
    else problems.add(at, `a port must be "host:container[/proto]" or a mapping, not ${describe(item)}`);
    if (port) ports.push(port);
  });
  return ports;
}

export function readCapabilities(value: unknown, pointer: string, problems: Problems): Setting<string>[] {
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
  return caps.sort((a, b) => compareText(a.value, b.value));
}

/**
 * `devices:` as Compose writes them: "/dev/x", "/dev/x:/dev/y" or "/dev/x:/dev/y:rwm". Only the
 * policy decides which may pass (a connectivity service's grant); this reads what was written.
 */
export function readDevices(value: unknown, pointer: string, problems: Problems): (Setting<string> & { target: string })[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    problems.add(pointer, `"devices" must be a list, not ${describe(value)}`);
    return [];
  }
  const devices: (Setting<string> & { target: string })[] = [];
  value.forEach((item, index) => {
    const parts = typeof item === 'string' ? item.split(':') : [];
    const [source, target = source, permissions = 'rwm'] = parts;
    if (parts.length < 1 || parts.length > 3 || !source?.startsWith('/dev/') || !target?.startsWith('/dev/') || !/^[rwm]{1,3}$/.test(permissions)) {
      problems.add(ptr(pointer, index), `${describe(item)} is not a device such as "/dev/net/tun"`);
    } else if (!devices.some((d) => d.value === source)) {
      devices.push({ value: source, target, pointer: ptr(pointer, index) });
    }
  });
  return devices.sort((a, b) => compareText(a.value, b.value));
}

/** `sysctls:` as a mapping or a list of "name=value"; only the policy decides which may pass. */
export function readSysctls(value: unknown, pointer: string, problems: Problems): (Setting<string> & { name: string })[] {
  if (value === undefined || value === null) return [];
  const entries: [string, unknown, string][] = [];
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      const text = typeof item === 'string' ? item : '';
      const eq = text.indexOf('=');
      if (eq <= 0) problems.add(ptr(pointer, index), `${describe(item)} is not "name=value"`);
      else entries.push([text.slice(0, eq), text.slice(eq + 1), ptr(pointer, index)]);
    });
  } else if (isRecord(value)) {
    for (const [name, v] of Object.entries(value)) entries.push([name, v, ptr(pointer, name)]);
  } else {
    problems.add(pointer, `"sysctls" must be a mapping or a list, not ${describe(value)}`);
    return [];
  }
  const sysctls: (Setting<string> & { name: string })[] = [];
  for (const [name, raw, at] of entries) {
    const text = scalarText(raw);
    if (!/^[a-z0-9_.-]{1,128}$/.test(name) || text === undefined) problems.add(at, `sysctl ${JSON.stringify(name)} must be a name with a scalar value`);
    else if (!sysctls.some((s) => s.name === name)) sysctls.push({ name, value: text, pointer: at });
  }
  return sysctls.sort((a, b) => compareText(a.name, b.name));
}

export function readSecurityOpt(value: unknown, pointer: string, problems: Problems): Setting<string>[] {
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

export function readTmpfs(value: unknown, pointer: string, problems: Problems): ServiceModel['tmpfs'] {
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
