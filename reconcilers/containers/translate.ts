/**
 * Translate a checked compose model into what pic creates through the Docker API: create options
 * for each container (ordered so that each comes after what it depends on, and carrying pic's
 * labels and its spec hash) and the named volumes. Only a model that passed the policy
 * (policy.ts) is accepted. Pure.
 */
import type Dockerode from 'dockerode';
import type { Problem } from '../../crds/types.js';
import { compareText } from '../../crds/values.js';
import { DOCKER_VOLUME_NAME_PATTERN, setOwn, sortedRecord, type PortModel, type ServiceModel, type VolumeModel } from './compose-model.js';
import { serviceKey } from '../../state/document-keys.js';
import { LABEL } from './labels.js';
import type { CheckedComposeModel } from './policy.js';
import { specHashOf } from './spec-hash.js';
import type { DependsOnCondition, DesiredContainer, DesiredVolume, ServicePlan } from './types.js';

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
  /** The owner label of what is created; default `ServiceInstall/<serviceId>`. */
  owner?: string;
  /**
   * Files pic itself mounts read-only into one container of the service (a Connection's
   * configFile into its exit), with a digest of their content so a change recreates it.
   */
  ownMounts?: { container: string; source: string; target: string; digest: string }[];
}

/** Dependencies first; among services that are ready at the same time, by service key. */
function topologicalOrder(services: ServiceModel[]): ServiceModel[] | undefined {
  const byKey = new Map(services.map((s) => [s.key, s]));
  const remaining = new Map(services.map((s) => [s.key, new Set(s.dependsOn.map((d) => d.service).filter((d) => byKey.has(d)))]));
  const ordered: ServiceModel[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining.entries()].filter(([, deps]) => deps.size === 0).map(([key]) => key).sort(compareText);
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
  const create: Dockerode.ContainerCreateOptions = { name, Image: s.image };
  if (s.hostname !== undefined) create.Hostname = s.hostname;
  if (s.user !== undefined) create.User = s.user;
  if (s.environment.size > 0) {
    create.Env = [...s.environment.entries()].sort((a, b) => compareText(a[0], b[0])).map(([k, v]) => `${k}=${v}`);
  }
  if (s.command !== undefined) create.Cmd = s.command;
  if (s.entrypoint !== undefined) create.Entrypoint = s.entrypoint;
  if (s.workingDir !== undefined) create.WorkingDir = s.workingDir;

  const labels = new Map([...s.labels, ...Object.entries(ctx.extraLabels ?? {})]);
  labels.set(LABEL.owner, ctx.owner ?? serviceKey(ctx.serviceId));
  labels.set(LABEL.service, s.key);
  for (const [i, m] of ownMountsOf(ctx, name).entries()) labels.set(`${LABEL.ownMount}${i}`, `${m.target} sha256:${m.digest}`);
  if (ctx.projectLabel !== undefined) {
    labels.set(LABEL.composeProject, ctx.projectLabel);
    labels.set(LABEL.composeService, s.key);
  }
  create.Labels = sortedRecord(labels);

  const portKey = (p: PortModel): string => `${p.containerPort}/${p.protocol}`;
  const sortedPorts = [...s.ports].sort(
    (a, b) => a.containerPort - b.containerPort || compareText(a.protocol, b.protocol) || compareText(a.hostIp, b.hostIp) || compareText(a.hostPort, b.hostPort),
  );
  if (sortedPorts.length > 0) {
    const exposed: Record<string, object> = {};
    for (const p of sortedPorts) exposed[portKey(p)] = {};
    create.ExposedPorts = exposed;
  }
  if (s.stopSignal !== undefined) create.StopSignal = s.stopSignal;
  if (s.stopTimeout !== undefined) create.StopTimeout = s.stopTimeout.value;
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
  const own = ownMountsOf(ctx, name).map((m): Dockerode.MountSettings => ({ Type: 'bind', Source: m.source, Target: m.target, ReadOnly: true }));
  if (own.length > 0) host.Mounts = [...(host.Mounts ?? []), ...own];
  if (s.capAdd.length > 0) host.CapAdd = s.capAdd.map((c) => c.value);
  if (s.devices.length > 0) host.Devices = s.devices.map((d) => ({ PathOnHost: d.value, PathInContainer: d.target, CgroupPermissions: 'rwm' }));
  if (s.sysctls.length > 0) host.Sysctls = sortedRecord(s.sysctls.map((x): [string, string] => [x.name, x.value]));
  // The policy admits only no-new-privileges, in any of its spellings.
  if (s.securityOpt.length > 0) host.SecurityOpt = ['no-new-privileges:true'];
  if (s.tmpfs.length > 0) host.Tmpfs = sortedRecord(s.tmpfs.map((t): [string, string] => [t.target, t.options]));
  if (s.readOnly !== undefined) host.ReadonlyRootfs = s.readOnly;
  if (s.memory !== undefined) host.Memory = s.memory;
  if (s.nanoCpus !== undefined) host.NanoCpus = s.nanoCpus;
  create.HostConfig = host;

  // Docker's DNS answers for the container name and these aliases only: never the compose key,
  // which another service's container could bear as its name (policy.ts allows as aliases only the
  // service's own container names).
  const aliases: string[] = [];
  for (const alias of [name, ...s.aliases.map((a) => a.value)]) if (!aliases.includes(alias)) aliases.push(alias);
  const endpoint: Dockerode.EndpointSettings = {};
  if (s.ipv4Address !== undefined) endpoint.IPAMConfig = { IPv4Address: s.ipv4Address.value };
  endpoint.Aliases = aliases;
  const endpoints: Dockerode.EndpointsConfig = {};
  setOwn(endpoints, ctx.networkName, endpoint);
  create.NetworkingConfig = { EndpointsConfig: endpoints };
  return create;
}

function ownMountsOf(ctx: TranslateContext, container: string): { source: string; target: string; digest: string }[] {
  return (ctx.ownMounts ?? []).filter((m) => m.container === container);
}

/** Always derived from the service: the policy refuses a `name:` override (policy.ts). */
function dockerVolumeName(ctx: TranslateContext, volume: VolumeModel): string {
  return `${ctx.volumePrefix ?? 'pic'}-${ctx.serviceId}-${volume.key}`;
}

/**
 * What pic creates for a checked model: containers in dependency order and named volumes, or the
 * problems that only show once Docker names are known (two volumes with one Docker name).
 */
export function translateCompose(model: CheckedComposeModel, ctx: TranslateContext): { plan?: ServicePlan; problems: Problem[] } {
  const file = ctx.file ?? 'compose';
  const ordered = topologicalOrder(model.services);
  if (!ordered) return { problems: [{ file, pointer: '/services', message: 'depends_on forms a cycle' }] };

  const problems: Problem[] = [];
  const volumeNames = new Map(model.volumes.map((v) => [v.key, dockerVolumeName(ctx, v)]));
  const volumes: DesiredVolume[] = model.volumes
    .map((v) => {
      const labels = new Map([...v.labels, ...Object.entries(ctx.extraLabels ?? {})]);
      labels.set(LABEL.owner, ctx.owner ?? serviceKey(ctx.serviceId));
      labels.set(LABEL.volume, v.key);
      return { name: volumeNames.get(v.key) as string, labels: sortedRecord(labels) };
    })
    .sort((a, b) => compareText(a.name, b.name));
  const seenVolumeNames = new Set<string>();
  for (const v of volumes) {
    if (seenVolumeNames.has(v.name)) problems.push({ file, pointer: '/volumes', message: `two volumes have the Docker name "${v.name}"` });
    else if (!DOCKER_VOLUME_NAME_PATTERN.test(v.name)) problems.push({ file, pointer: '/volumes', message: `"${v.name}" is not a valid Docker volume name` });
    seenVolumeNames.add(v.name);
  }
  if (problems.length > 0) return { problems };

  const containerNames = new Map(model.services.map((s) => [s.key, s.containerName as string]));
  const containers = ordered.map((s): DesiredContainer => {
    const create = buildCreateOptions(s, ctx, volumeNames);
    const specHash = specHashOf(create);
    create.Labels = sortedRecord([...Object.entries(create.Labels ?? {}), [LABEL.specHash, specHash]]);
    const dependsOnConditions: Record<string, DependsOnCondition> = {};
    for (const dep of [...s.dependsOn].sort((a, b) => compareText(containerNames.get(a.service) ?? '', containerNames.get(b.service) ?? ''))) {
      setOwn(dependsOnConditions, containerNames.get(dep.service) as string, dep.condition);
    }
    return { name: create.name as string, service: s.key, create, dependsOn: Object.keys(dependsOnConditions), dependsOnConditions, specHash };
  });
  const bindSources = [...new Set(model.services.flatMap((s) => s.mounts.flatMap((m) => (m.type === 'bind' ? [m.source] : []))))].sort(compareText);
  return { plan: { containers, volumes, bindSources }, problems: [] };
}

/**
 * The host ports a plan publishes, as a person reads them: `25/tcp on 0.0.0.0 → cell-mail:25`.
 * Every one was consented to in the ServiceInstall's spec.publish (policy.ts); sorted.
 */
export function publishedPortsOf(plan: ServicePlan): string[] {
  const out: string[] = [];
  for (const c of plan.containers) {
    for (const [key, bindings] of Object.entries((c.create.HostConfig?.PortBindings ?? {}) as Record<string, Dockerode.PortBinding[]>)) {
      const [containerPort, protocol] = key.split('/');
      for (const b of bindings) out.push(`${b.HostPort ?? ''}/${protocol ?? 'tcp'} on ${b.HostIp || '0.0.0.0'} → ${c.name}:${containerPort ?? ''}`);
    }
  }
  return out.sort(compareText);
}
