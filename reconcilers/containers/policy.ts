/**
 * The security policy of a rendered service: every decision about what a store service's
 * containers may do to the host, in one place a reviewer can read alone. The model reader
 * (compose-model.ts) only says what was written; this module says whether it is allowed; the
 * translator (translate.ts) only accepts a model that passed here.
 *
 * | subject        | rule                                                                                    |
 * |----------------|-----------------------------------------------------------------------------------------|
 * | image          | a valid reference naming a repository below the cell's allowed prefix (a folder)        |
 * | capabilities   | only NET_ADMIN and NET_RAW, and only those the manifest declares in connectivity.cap_add |
 * | privileged     | refused (only `false` is accepted)                                                      |
 * | namespaces     | network_mode only the cell network; pid, ipc, userns_mode never set                     |
 * | networks       | only the cell network, declared external; services join no other network               |
 * | devices        | only /dev/net/tun, and only when the manifest declares it in connectivity.devices       |
 * | sysctls        | only net.ipv4.*, only those connectivity.sysctls declares, with the declared value      |
 * | security_opt   | only no-new-privileges; anything that disables confinement is refused                   |
 * | bind mounts    | never the Docker socket or a parent; strictly inside the cell data directory            |
 * | data directory | absolute, not `/`, and not containing the operator's state directory                    |
 * | tmpfs options  | size, mode, uid, gid, nr_inodes, noexec, nosuid, nodev, exec, ro, rw; never suid or dev  |
 * | container names| only the service's own: the manifest's container_name and its containers list         |
 * | aliases        | only the service's own container names (another name would draw that name's traffic)    |
 * | ipv4_address   | only the service's address (${SERVICE_IP}), on one container                           |
 * | bind mounts    | sources inside the service's own folder, <data directory>/<service id>                  |
 * | volume names   | derived from the service; a `name:` override could mount any volume of the host        |
 * | ports          | an explicit host port the admin consented to (ServiceInstall spec.publish), never the  |
 * |                | core stack's (80, 443, 53, the WireGuard port); without an install (a package check)  |
 * |                | consent is not asked, the core ports still are                                          |
 * | stop grace     | at most 10 minutes: upgrades, removals and backups wait for it                          |
 *
 * Symlinks on a bind source's path are refused too, but that needs the file system: see
 * bind-sources.ts, the adapter step that runs before anything is created. Pure.
 */
import { imageReferenceUnderPrefix, parseImageReference, allowedPrefixFolder } from '../../crds/image-reference.js';
import { CONNECTIVITY_CAPABILITIES, CONNECTIVITY_DEVICES, CONNECTIVITY_SYSCTL_PATTERN } from '../../crds/schemas.js';
import type { Problem } from '../../crds/types.js';
import { asBoolean, normaliseHostPath, Problems, scalarText, type ComposeModel } from './compose-model.js';
import { describeValue as describe } from './units.js';

export interface ComposePolicy {
  /** Images must live under this registry path (`git.pic.ngo/roof/`). */
  allowedImagePrefix: string;
  /** Host directory that every bind mount must stay below. */
  dataDir: string;
  /** The operator's state directory (secrets, allocations): no data directory may hold it. */
  stateDir?: string;
  /** The cell network, the only network pic attaches service containers to. */
  networkName: string;
  /** What the manifest declares in `connectivity.cap_add`; nothing else may be added. */
  grantedCapabilities: readonly string[];
  /** What the manifest declares in `connectivity.devices` (only /dev/net/tun can be); absent: none. */
  grantedDevices?: readonly string[];
  /** What the manifest declares in `connectivity.sysctls` (net.ipv4.* only); absent: none. */
  grantedSysctls?: Readonly<Record<string, string>>;
  /** The service the template belongs to: `<dataDir>/<serviceId>` is the only folder its binds reach. */
  serviceId: string;
  /** The manifest's container_name and containers: the only names its containers and aliases may bear. */
  ownContainerNames: readonly string[];
  /** The service's address on the cell network: the only fixed address a container may ask for. */
  serviceIp: string;
  /**
   * Host ports the admin consented to publish (`ServiceInstall.spec.publish`, e.g. "25/tcp").
   * Absent for a package checked without an install: consent is then the install's question.
   */
  publish?: readonly string[];
  /** Host ports the core stack uses; no service may publish them, consent or not. */
  corePorts: readonly CorePort[];
}

/** A host port of the core stack, and who uses it (for messages). */
export interface CorePort {
  port: number;
  protocol: string;
  what: string;
}

/** The longest `stop_grace_period` a service may ask for: every upgrade, removal and backup waits for it. */
export const MAX_STOP_GRACE_SECONDS = 600;

/** A model that passed the policy: the only input the translator accepts. */
export type CheckedComposeModel = ComposeModel & { readonly __checked: true };

/** The name templates use for the cell network; it means this cell's network, whatever it is called. */
export const CATALOG_CELL_NETWORK = 'cell-network';

/** The Docker socket: binding it, or a directory holding it, hands the container the Docker API (root on the host). */
const DOCKER_SOCKETS = ['/var/run/docker.sock', '/run/docker.sock'];

/** Why a capability outside the allow-list is dangerous, for the ones a template is likely to ask for. */
const CAPABILITY_DANGERS: Readonly<Record<string, string>> = {
  ALL: 'it grants every capability, which amounts to root on the host',
  SYS_ADMIN: 'it amounts to root on the host (mounts, namespaces, most of the kernel)',
  SYS_MODULE: 'it loads kernel modules, which amounts to root on the host',
  SYS_RAWIO: 'it gives raw access to devices and memory, which amounts to root on the host',
  SYS_PTRACE: 'it lets the container trace and inject into other processes',
  DAC_READ_SEARCH: 'it lets the container read any file of the host through open_by_handle_at',
  SYS_TIME: 'it sets the host clock for every container and the host itself',
  BPF: 'it loads BPF programs into the host kernel',
  PERFMON: 'it reads performance data of the whole host, a side channel into other processes',
  SYS_BOOT: 'it reboots the host',
};

/** tmpfs mount options a service may set; `suid` and `dev` would make the tmpfs a way to gain privileges. */
const TMPFS_FLAGS = new Set(['noexec', 'nosuid', 'nodev', 'exec', 'ro', 'rw']);
const TMPFS_VALUES = new Set(['size', 'mode', 'uid', 'gid', 'nr_inodes']);
const TMPFS_REFUSED: Readonly<Record<string, string>> = {
  suid: 'set-user-ID programs on it would run with their owner\'s privileges',
  dev: 'device nodes on it would give access to host devices',
};

/**
 * Check the model against the cell's policy. Returns every problem; when there is none, the
 * model comes back as checked, ready for the translator.
 */
export function checkComposePolicy(model: ComposeModel, policy: ComposePolicy, file: string): { checked?: CheckedComposeModel; problems: Problem[] } {
  const problems = new Problems(file);
  checkDataDir(policy, problems);
  checkNetworks(model, policy, problems);
  checkVolumeNames(model, problems);
  checkFixedAddresses(model, policy, problems);
  for (const s of model.services) {
    if (s.image !== undefined && s.image !== '') checkImage(s.image, s.imagePointer, policy, problems);
    checkNames(s, policy, problems);
    for (const cap of s.capAdd) checkCapability(cap.value, cap.pointer, policy, problems);
    checkConfinement(s.confinement, policy, problems);
    for (const d of s.devices) checkDevice(d, policy, problems);
    for (const sysctl of s.sysctls) checkSysctl(sysctl, policy, problems);
    for (const opt of s.securityOpt) checkSecurityOption(opt.value, opt.pointer, problems);
    for (const mount of s.mounts) if (mount.type === 'bind') checkBindSource(mount.source, mount.pointer, policy, problems);
    for (const t of s.tmpfs) checkTmpfsOptions(t.options, t.pointer, problems);
    for (const p of s.ports) checkPublishedPort(p, policy, problems);
    if (s.stopTimeout !== undefined && s.stopTimeout.value > MAX_STOP_GRACE_SECONDS) {
      problems.add(s.stopTimeout.pointer, `stop_grace_period of ${s.stopTimeout.value} s is refused: at most ${MAX_STOP_GRACE_SECONDS / 60} minutes, since every upgrade, removal and backup of the service waits for it`);
    }
  }
  return problems.list.length === 0 ? { checked: model as CheckedComposeModel, problems: [] } : { problems: problems.list };
}

/** The data directory as the bind check uses it, or undefined when no bind mount can be allowed. */
function usableDataDir(policy: ComposePolicy): string | undefined {
  if (!policy.dataDir.startsWith('/')) return undefined;
  const dataDir = normaliseHostPath(policy.dataDir);
  if (dataDir === '/') return undefined;
  if (policy.stateDir !== undefined && isWithin(normaliseHostPath(policy.stateDir), dataDir)) return undefined;
  return dataDir;
}

function checkDataDir(policy: ComposePolicy, problems: Problems): void {
  const fix = "set the Cell's spec.dataDir to a directory of its own, such as /srv/pic/data";
  if (!policy.dataDir.startsWith('/')) {
    problems.add('', `the cell data directory "${policy.dataDir}" is not an absolute path, so no bind mount can be allowed; ${fix}`);
    return;
  }
  const dataDir = normaliseHostPath(policy.dataDir);
  if (dataDir === '/') {
    problems.add('', `the cell data directory "/" is refused: bind mounts below it could reach any file of the host; ${fix}`);
  } else if (policy.stateDir !== undefined && isWithin(normaliseHostPath(policy.stateDir), dataDir)) {
    problems.add('', `the cell data directory "${dataDir}" is refused: it contains pic's state directory "${normaliseHostPath(policy.stateDir)}" (secrets, allocations), which a bind mount could then expose; ${fix}`);
  }
}

/** The one folder of the data directory a service's binds and backup config paths may reach. */
export function serviceFolder(dataDir: string, serviceId: string): string {
  return `${normaliseHostPath(dataDir)}/${serviceId}`;
}

/** `inner` is `outer` or below it. */
function isWithin(inner: string, outer: string): boolean {
  return outer === '/' || inner === outer || inner.startsWith(`${outer}/`);
}

function checkImage(image: string, pointer: string, policy: ComposePolicy, problems: Problems): void {
  const parsed = parseImageReference(image);
  if (parsed === undefined) {
    problems.add(pointer, `"${image}" is not a valid image reference`);
  } else if (!imageReferenceUnderPrefix(image, policy.allowedImagePrefix)) {
    const folder = policy.allowedImagePrefix === '' ? '' : allowedPrefixFolder(policy.allowedImagePrefix);
    problems.add(pointer, `image "${image}" is not under the allowed prefix "${folder}": it must name a repository below that folder`);
  }
}

function checkCapability(cap: string, pointer: string, policy: ComposePolicy, problems: Problems): void {
  const allowed = (CONNECTIVITY_CAPABILITIES as readonly string[]).includes(cap);
  if (!allowed) {
    const danger = CAPABILITY_DANGERS[cap];
    problems.add(pointer, `capability ${cap} is refused${danger ? `: ${danger}` : ''}; a service may add only ${CONNECTIVITY_CAPABILITIES.join(' or ')}, and only when its manifest declares it (connectivity.cap_add)`);
  } else if (!policy.grantedCapabilities.includes(cap)) {
    problems.add(pointer, `capability ${cap} is refused: the manifest does not declare it; a connectivity service lists the capabilities it needs in connectivity.cap_add`);
  }
}

function checkConfinement(c: ComposeModel['services'][number]['confinement'], policy: ComposePolicy, problems: Problems): void {
  if (c.privileged !== undefined && asBoolean(c.privileged.value) !== false) {
    problems.add(c.privileged.pointer, 'privileged containers are refused: they have full control of the host');
  }
  if (c.networkMode !== undefined) {
    const mode = scalarText(c.networkMode.value) ?? '';
    const at = c.networkMode.pointer;
    if (mode === 'host') {
      problems.add(at, `network_mode "host" is refused: it shares the host's network namespace; pic attaches the container to "${policy.networkName}"`);
    } else if (mode.startsWith('service:') || mode.startsWith('container:')) {
      problems.add(at, `network_mode "${mode}" is refused: it shares another container's network namespace; pic attaches every container to "${policy.networkName}"`);
    } else if (mode !== policy.networkName) {
      problems.add(at, `network_mode ${describe(c.networkMode.value)} is refused: pic attaches every container to the cell network "${policy.networkName}"; leave network_mode out`);
    }
  }
  const namespaces = [[c.pid, 'pid', 'pid'], [c.ipc, 'ipc', 'ipc'], [c.usernsMode, 'userns_mode', 'user']] as const;
  for (const [setting, field, namespace] of namespaces) {
    if (setting === undefined) continue;
    if (setting.value === 'host') problems.add(setting.pointer, `${field} "host" is refused: it shares the host's ${namespace} namespace`);
    else problems.add(setting.pointer, `${field} ${describe(setting.value)} is not supported by pic`);
  }
}

/** A device passes only as the manifest's connectivity grant, at the same path inside. */
function checkDevice(d: { value: string; target: string; pointer: string }, policy: ComposePolicy, problems: Problems): void {
  const granted = policy.grantedDevices ?? [];
  if (!(CONNECTIVITY_DEVICES as readonly string[]).includes(d.value)) {
    problems.add(d.pointer, `device ${d.value} is refused: host devices give access to the host; only a connectivity service may have ${CONNECTIVITY_DEVICES.join(' or ')}, declared in connectivity.devices`);
  } else if (!granted.includes(d.value)) {
    problems.add(d.pointer, `device ${d.value} is refused: the manifest does not declare it; a connectivity service lists it in connectivity.devices`);
  } else if (d.target !== d.value) {
    problems.add(d.pointer, `device ${d.value} must keep its path inside the container, not ${d.target}`);
  }
}

/** A sysctl passes only as the manifest's connectivity grant, with the value it declares. */
function checkSysctl(sysctl: { name: string; value: string; pointer: string }, policy: ComposePolicy, problems: Problems): void {
  const granted = policy.grantedSysctls ?? {};
  if (!new RegExp(CONNECTIVITY_SYSCTL_PATTERN).test(sysctl.name)) {
    problems.add(sysctl.pointer, `sysctl ${sysctl.name} is refused: only a connectivity service may set kernel settings, and only net.ipv4.* ones of its own network namespace`);
  } else if (!Object.hasOwn(granted, sysctl.name)) {
    problems.add(sysctl.pointer, `sysctl ${sysctl.name} is refused: the manifest does not declare it in connectivity.sysctls`);
  } else if (granted[sysctl.name] !== sysctl.value) {
    problems.add(sysctl.pointer, `sysctl ${sysctl.name}=${sysctl.value} differs from the manifest's connectivity.sysctls (${granted[sysctl.name]})`);
  }
}

function checkNetworks(model: ComposeModel, policy: ComposePolicy, problems: Problems): void {
  const cellKeys = new Set<string>();
  for (const n of model.networks) {
    // Catalog templates are written for any cell and call its network "cell-network", whatever
    // name this cell gives it.
    if (n.name !== policy.networkName && n.name !== CATALOG_CELL_NETWORK) {
      const external = n.external ? ' (even an external one)' : '';
      problems.add(n.pointer, `network "${n.name}"${external} is refused: pic attaches service containers only to the cell network "${policy.networkName}"`);
      continue;
    }
    if (!n.external) problems.add(n.pointer, `the cell network "${policy.networkName}" is created by pic; declare it with "external: true"`);
    cellKeys.add(n.key);
  }
  for (const s of model.services) {
    for (const ref of s.networkRefs) {
      if (!cellKeys.has(ref.value)) {
        problems.add(ref.pointer, `network "${ref.value}" is refused: pic attaches service containers only to the cell network "${policy.networkName}" (declared under the top-level "networks" with "external: true")`);
      }
    }
  }
}

function checkSecurityOption(option: string, pointer: string, problems: Problems): void {
  const normalised = option.replace('=', ':');
  if (/^(apparmor|seccomp|systempaths):unconfined$/.test(normalised) || normalised === 'label:disable') {
    problems.add(pointer, `security option "${option}" is refused: it disables the container's confinement`);
  } else if (!/^no-new-privileges(:true)?$/.test(normalised)) {
    problems.add(pointer, `security option "${option}" is not supported by pic (supported: no-new-privileges)`);
  }
}

function checkBindSource(source: string, pointer: string, policy: ComposePolicy, problems: Problems): void {
  if (DOCKER_SOCKETS.some((socket) => isWithin(socket, source))) {
    problems.add(pointer, `bind mount of "${source}" is refused: it exposes the Docker socket, which gives the container control of the host`);
    return;
  }
  const dataDir = usableDataDir(policy);
  if (dataDir === undefined) return; // checkDataDir reported why no bind can be allowed
  const own = serviceFolder(dataDir, policy.serviceId);
  const normalised = normaliseHostPath(source);
  if (!isWithin(normalised, own)) {
    const where = isWithin(normalised, dataDir) ? `it is in the cell data directory "${dataDir}" but not in this service's own folder` : `it is outside the cell data directory "${dataDir}"`;
    problems.add(pointer, `bind mount of "${source}" is refused: ${where}; a service's bind sources stay inside "${own}" (use \${PIC_DATA_DIR}/\${PIC_SERVICE_ID}/…)`);
  }
}

/** Every container bears one of the service's own names; its aliases too. */
function checkNames(s: ComposeModel['services'][number], policy: ComposePolicy, problems: Problems): void {
  const own = policy.ownContainerNames;
  const listed = own.map((n) => `"${n}"`).join(', ');
  if (s.containerName !== undefined && !own.includes(s.containerName)) {
    problems.add(`${s.pointer}/container_name`, `container_name "${s.containerName}" is not one of this service's containers (${listed}): a container may bear only a name its manifest declares, as container_name or in "containers"`);
  }
  for (const alias of s.aliases) {
    if (!own.includes(alias.value)) {
      problems.add(alias.pointer, `alias "${alias.value}" is refused: Docker's DNS would answer that name with this container, drawing traffic meant for another; an alias may only be one of this service's own container names (${listed})`);
    }
  }
}

function checkVolumeNames(model: ComposeModel, problems: Problems): void {
  for (const v of model.volumes) {
    if (v.name !== undefined) {
      problems.add(`${v.pointer}/name`, `volume name "${v.name}" is refused: pic names a service's volumes after the service, so that no template can mount another service's, the core's or another application's volume; leave "name" out`);
    }
  }
}

/** Only the service's own address, and on one container: the others take what Docker gives them. */
function checkFixedAddresses(model: ComposeModel, policy: ComposePolicy, problems: Problems): void {
  let holder: string | undefined;
  for (const s of model.services) {
    const fixed = s.ipv4Address;
    if (fixed === undefined) continue;
    if (fixed.value !== policy.serviceIp) {
      problems.add(fixed.pointer, `ipv4_address "${fixed.value}" is refused: it is not this service's address; write "\${SERVICE_IP}", and leave the address out on the service's other containers`);
    } else if (holder !== undefined) {
      problems.add(fixed.pointer, `ipv4_address "\${SERVICE_IP}" is already given to service "${holder}": one container holds the service's address, the others take what Docker gives them`);
    } else {
      holder = s.key;
    }
  }
}

function checkPublishedPort(p: ComposeModel['services'][number]['ports'][number], policy: ComposePolicy, problems: Problems): void {
  const spelled = `${p.hostPort}/${p.protocol}`;
  if (p.hostPort === '') {
    problems.add(p.pointer, `publishing container port ${p.containerPort}/${p.protocol} on a host port Docker picks is refused: name the host port ("HOST:${p.containerPort}"), which the admin then consents to in the ServiceInstall's spec.publish`);
    return;
  }
  const verdict = hostPortVerdict(p.hostPort, p.protocol, policy);
  if (verdict.kind === 'core') {
    problems.add(p.pointer, `host port ${spelled} is refused: the core stack uses it (${verdict.core.what}); a service may not answer on it`);
  } else if (verdict.kind === 'needs-consent' && policy.publish !== undefined) {
    problems.add(p.pointer, `host port ${spelled} is published only with the admin's consent: add "${spelled}" to spec.publish of ServiceInstall/${policy.serviceId}`);
  }
}

/** What the policy says of one host port a service publishes, spelt as spec.publish spells it ("25/tcp"). */
export type HostPortVerdict = { kind: 'core'; spelled: string; core: CorePort } | { kind: 'consented'; spelled: string } | { kind: 'needs-consent'; spelled: string };

/**
 * The rule for a published host port: never one of the core stack's, otherwise only with the
 * admin's consent in `publish` (none given: not consented). The one definition, used by the
 * policy check and by previews such as `pic catalog show`.
 */
export function hostPortVerdict(hostPort: string, protocol: string, policy: { publish?: readonly string[] | undefined; corePorts: readonly CorePort[] }): HostPortVerdict {
  const spelled = `${hostPort}/${protocol}`;
  const core = policy.corePorts.find((c) => String(c.port) === hostPort && c.protocol === protocol);
  if (core) return { kind: 'core', spelled, core };
  return (policy.publish ?? []).includes(spelled) ? { kind: 'consented', spelled } : { kind: 'needs-consent', spelled };
}

function checkTmpfsOptions(options: string, pointer: string, problems: Problems): void {
  if (options === '') return;
  for (const option of options.split(',')) {
    const [name = '', value] = option.split('=', 2);
    const refused = TMPFS_REFUSED[name];
    if (refused) problems.add(pointer, `tmpfs option "${name}" is refused: ${refused}`);
    else if (value === undefined ? !TMPFS_FLAGS.has(name) : !TMPFS_VALUES.has(name) || !/^[0-9]+[kmg%]?$/i.test(value)) {
      problems.add(pointer, `tmpfs option "${option}" is not supported by pic (supported: ${[...TMPFS_VALUES].map((v) => `${v}=…`).join(', ')}, ${[...TMPFS_FLAGS].join(', ')})`);
    }
  }
}

/** The services' declared policy inputs, for callers that only have the manifest. */
export function grantedCapabilitiesOf(manifest: { connectivity?: { cap_add?: readonly string[] } }): readonly string[] {
  return manifest.connectivity?.cap_add ?? [];
}

/** What a manifest's connectivity section grants its template beyond capabilities: devices and sysctls. */
export function connectivityGrantsOf(manifest: { connectivity?: { devices?: readonly string[]; sysctls?: Readonly<Record<string, string>> } }): {
  grantedDevices: readonly string[];
  grantedSysctls: Readonly<Record<string, string>>;
} {
  return { grantedDevices: manifest.connectivity?.devices ?? [], grantedSysctls: manifest.connectivity?.sysctls ?? {} };
}
