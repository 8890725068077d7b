import type { ConfigValue } from '../../crds/config.js';
import path from 'node:path';
import { parsePinnedReference } from '../../crds/image-reference.js';
import { DEFAULT_CONNECTION_CONFIG_PATH, DEFAULT_VPN } from '../../crds/schemas.js';
import type { CellDocument, ImageVerificationMode, Manifest, Problem } from '../../crds/types.js';
import type { ComposeTemplate } from '../../state/compose-template.js';
import { planRenderedCompose } from './compose.js';
import type { ComposeModel } from './compose-model.js';
import { LABEL } from './labels.js';
import { connectivityGrantsOf, grantedCapabilitiesOf, type CorePort } from './policy.js';
import { renderComposeTemplate } from './render.js';
import type { ServicePlan } from './types.js';
import { boundProblems } from '../../crds/problem-limit.js';

export interface CellContext {
  name: string;
  /** Host ports the core stack uses (policy.ts): no service publishes them. */
  corePorts: readonly CorePort[];
  domain: string;
  dataDir: string;
  /** The operator's state directory, which no data directory may contain. */
  stateDir?: string;
  networkName: string;
  allowedImagePrefix: string;
  imageVerification: ImageVerificationMode;
}

/** The cell's values a service render needs; `defaultDataDir` when the Cell names none. */
export function cellContextOf(cell: CellDocument, defaultDataDir: string, stateDir?: string): CellContext {
  return {
    name: cell.metadata.name,
    corePorts: corePortsOf(cell),
    domain: cell.spec.domain,
    dataDir: cell.spec.dataDir ? path.posix.normalize(cell.spec.dataDir) : defaultDataDir,
    ...(stateDir !== undefined ? { stateDir } : {}),
    networkName: cell.spec.network.name,
    allowedImagePrefix: cell.spec.allowedImagePrefix,
    imageVerification: cell.spec.imageVerification.mode,
  };
}

/**
 * The host ports of the core stack: the well-known ones whoever runs the core, and those the Cell
 * publishes its own containers on.
 */
export function corePortsOf(cell: CellDocument | undefined): CorePort[] {
  const ports: CorePort[] = [
    { port: 80, protocol: 'tcp', what: 'HTTP, Caddy' },
    { port: 443, protocol: 'tcp', what: 'HTTPS, Caddy' },
    { port: 443, protocol: 'udp', what: 'HTTP/3, Caddy' },
    { port: 53, protocol: 'tcp', what: 'DNS' },
    { port: 53, protocol: 'udp', what: 'DNS' },
    { port: DEFAULT_VPN.listenPort, protocol: 'udp', what: 'WireGuard' },
  ];
  const add = (port: number | undefined, protocol: string, what: string): void => {
    if (port !== undefined && !ports.some((p) => p.port === port && p.protocol === protocol)) ports.push({ port, protocol, what });
  };
  const caddy = cell?.spec.caddy?.run?.publish;
  add(caddy?.http, 'tcp', "Caddy's HTTP port (spec.caddy.run.publish.http)");
  add(caddy?.https, 'tcp', "Caddy's HTTPS port (spec.caddy.run.publish.https)");
  const wg = cell?.spec.wireguard?.run;
  add(wg?.publish?.port ?? wg?.listenPort, 'udp', "WireGuard's port (spec.wireguard.run)");
  return ports;
}

export interface ServiceInputs {
  manifest: Manifest;
  /** The package's compose-template.yml as its reader read it (CatalogService.template). */
  template: ComposeTemplate;
  templateFile: string;
  manifestFile: string;
  config: Record<string, ConfigValue>;
  secrets: Record<string, string>;
  serviceIp: string;
  /** The admin's consent to host ports (ServiceInstall spec.publish); absent for a package checked without an install. */
  publish?: readonly string[];
  cell: CellContext;
  /** Set for one instance of a connectivity service (a Connection's exit). */
  instance?: ServiceInstance;
}

/** One instance of a connectivity service: the exit of a Connection. */
export interface ServiceInstance {
  /** `${INSTANCE_ID}`: short and stable, derived from the Connection's name. */
  id: string;
  /** `Connection/<name>`: the owner label of what the instance creates. */
  owner: string;
  /** The Connection's configFile as pic keeps it, mounted read-only at the manifest's config_path. */
  configFile?: { source: string; digest: string };
}

/** Where an instance's names and folder derive from: `<service id>-<instance id>`, or the service id. */
export function instanceServiceId(manifest: Pick<Manifest, 'id'>, instance: ServiceInstance | undefined): string {
  return instance ? `${manifest.id}-${instance.id}` : manifest.id;
}

/** The manifest's container_name and containers: the names the service's containers may bear. */
export function ownContainerNames(manifest: Pick<Manifest, 'container_name' | 'containers'>, instanceId?: string): string[] {
  const named = (name: string): string => (instanceId === undefined ? name : name.split('${INSTANCE_ID}').join(instanceId));
  return [...new Set([manifest.container_name, ...(manifest.containers ?? [])].map(named))].sort();
}

/**
 * Checks that tie the manifest to what its template renders: the manifest's container exists and
 * runs the manifest's image, backends and backup volumes name containers of the service, and under
 * `enforce` every image is pinned by digest.
 */
export function checkManifestAgainstModel(model: ComposeModel, inputs: ServiceInputs): Problem[] {
  const { manifest, templateFile, manifestFile } = inputs;
  const problems: Problem[] = [];
  // Caddy reaches a backend by container name: a compose key is no name on the cell network.
  const containerNames = new Set(model.services.flatMap((s) => (s.containerName !== undefined ? [s.containerName] : [])));
  const names = containerNames;
  const primaryName = ownContainerNames({ container_name: manifest.container_name }, inputs.instance?.id)[0];
  const primary = model.services.find((s) => s.containerName === primaryName);
  if (!primary) {
    problems.push({ file: templateFile, pointer: '/services', message: `no service has container_name "${primaryName}", the manifest's container_name` });
  } else if (primary.image !== undefined && primary.image !== manifest.image) {
    problems.push({ file: templateFile, pointer: primary.imagePointer, message: `image "${primary.image}" differs from the manifest's image "${manifest.image}"; the template must run the image the manifest declares` });
  }
  const backends = [manifest.backend, ...Object.values(manifest.extra_backends ?? {})].filter((b): b is string => typeof b === 'string');
  for (const backend of backends) {
    const host = backend.slice(0, backend.lastIndexOf(':'));
    if (!names.has(host)) {
      problems.push({ file: manifestFile, pointer: manifest.backend === backend ? '/backend' : '/extra_backends', message: `backend "${backend}" names "${host}", which is not a container of this service's template` });
    }
  }
  (manifest.backup?.volumes ?? []).forEach((v, i) => {
    if (!containerNames.has(v.container)) {
      problems.push({ file: manifestFile, pointer: `/backup/volumes/${i}/container`, message: `"${v.container}" is not a container of this service's template` });
    }
  });
  if (inputs.cell.imageVerification === 'enforce') {
    for (const s of model.services) {
      if (s.image !== undefined && s.image !== '' && !parsePinnedReference(s.image)) {
        problems.push({ file: templateFile, pointer: s.imagePointer, message: `image "${s.image}" is not pinned by digest (@sha256:<64 hex>), which image verification "enforce" requires` });
      }
    }
  }
  return problems;
}

/**
 * From a catalog package and this cell's values to the containers and volumes the service should
 * have: render the template, read it once, check it against the manifest and the cell's policy,
 * translate it to Docker create options carrying the cell's labels. Pure.
 */
export function desiredServicePlan(inputs: ServiceInputs): { plan?: ServicePlan; problems: Problem[] } {
  const { manifest, cell, templateFile } = inputs;
  const rendered = renderComposeTemplate(
    inputs.template,
    {
      domain: cell.domain,
      cellName: cell.name,
      dataDir: cell.dataDir,
      serviceId: manifest.id,
      config: inputs.config,
      secrets: inputs.secrets,
      serviceIp: inputs.serviceIp,
      ...(inputs.instance ? { instanceId: inputs.instance.id } : {}),
    },
    templateFile,
  );
  const serviceId = instanceServiceId(manifest, inputs.instance);
  const primaryName = ownContainerNames({ container_name: manifest.container_name }, inputs.instance?.id)[0] as string;
  const configFile = inputs.instance?.configFile;
  if (!rendered.compose) return { problems: boundProblems(withoutSecrets(rendered.problems, inputs.secrets), templateFile) };
  const planned = planRenderedCompose(
    rendered.compose,
    {
      allowedImagePrefix: cell.allowedImagePrefix,
      dataDir: cell.dataDir,
      ...(cell.stateDir !== undefined ? { stateDir: cell.stateDir } : {}),
      networkName: cell.networkName,
      grantedCapabilities: grantedCapabilitiesOf(manifest),
      ...connectivityGrantsOf(manifest),
      serviceId,
      ownContainerNames: ownContainerNames(manifest, inputs.instance?.id),
      serviceIp: inputs.serviceIp,
      ...(inputs.publish !== undefined ? { publish: inputs.publish } : {}),
      corePorts: cell.corePorts,
    },
    {
      serviceId,
      ...(inputs.instance ? { owner: inputs.instance.owner } : {}),
      ...(configFile
        ? { ownMounts: [{ container: primaryName, source: configFile.source, target: manifest.connectivity?.config_path ?? DEFAULT_CONNECTION_CONFIG_PATH, digest: configFile.digest }] }
        : {}),
      networkName: cell.networkName,
      // Scoped by cell, so a second cell (or a test) on the same engine never shares a volume.
      volumePrefix: `pic-${cell.name}`,
      file: templateFile,
      extraLabels: { [LABEL.cell]: cell.name, [LABEL.version]: manifest.version },
    },
    (model) => checkManifestAgainstModel(model, inputs),
  );
  // A template is third-party input: however many problems it has, a status carries a bounded list.
  const problems = boundProblems(withoutSecrets([...rendered.problems, ...planned.problems], inputs.secrets), templateFile);
  return problems.length > 0 || !planned.plan ? { problems } : { plan: planned.plan, problems: [] };
}

/**
 * Problems quote what was rendered; a rendered secret is quoted as the template wrote it
 * (`${PIC_SECRET_NAME}`), never as its value, since messages reach statuses, events and logs.
 */
export function withoutSecrets(problems: Problem[], secrets: Record<string, string>): Problem[] {
  const values = Object.entries(secrets).filter(([, v]) => v !== '').sort((a, b) => b[1].length - a[1].length);
  if (values.length === 0) return problems;
  const hide = (text: string): string => values.reduce((t, [name, value]) => t.split(value).join(`\${PIC_SECRET_${name}}`), text);
  return problems.map((p) => ({ ...p, message: hide(p.message), pointer: hide(p.pointer) }));
}
