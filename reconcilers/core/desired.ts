/**
 * The containers and volumes of one core component, as the containers pipeline plans them: the
 * same labels (owner `Core/<name>`, cell, service, spec hash) and the same create options shape
 * as a rendered service, so planning, recreating on a spec change and healing are shared.
 *
 * Pure: the Cell and the few paths of the state directory in, a ServicePlan out.
 */
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { CellDocument } from '../../crds/types.js';
import { byText, compareText } from '../../crds/values.js';
import { LABEL } from '../containers/labels.js';
import { specHashOf } from '../containers/spec-hash.js';
import type { DesiredVolume, ServicePlan } from '../containers/types.js';
import { CORE_PRIVILEGES } from './policy.js';
import { CADDY_ADMIN_LISTEN, CADDY_ADMIN_MOUNT, vpnNetworkOf, WIREGUARD_INTERFACE, type CoreComponent } from './spec.js';

export interface CorePaths {
  /** The zone file pic writes (the DNS server reads its folder, read-only). */
  zoneFile: string;
  /** The owner-only folder of the state directory holding Caddy's admin socket (caddyAdminDir). */
  caddyAdminDir: string;
}

/** Mount point of the zone's folder inside the DNS container. */
export const DNS_ZONE_DIR = '/zones';
/** Caddy's data (certificates, its internal CA) inside the container: a named volume. */
export const CADDY_DATA_DIR = '/data';
/** Where Caddy keeps the root of its internal CA, under its data directory. */
export const CADDY_ROOT_CERT = `${CADDY_DATA_DIR}/caddy/pki/authorities/local/root.crt`;
/** The boot config pic writes into the admin folder, and the container's command that starts from it. */
export const CADDY_BOOT_FILE = 'boot.Caddyfile';
export const CADDY_COMMAND = ['caddy', 'run', '--resume', '--config', `${CADDY_ADMIN_MOUNT}/${CADDY_BOOT_FILE}`, '--adapter', 'caddyfile'];

/**
 * What a Caddy with no saved config starts from: only its admin API, on the socket. pic then
 * loads the routes through it. Caddy saves each config it loads (autosave, under
 * XDG_CONFIG_HOME: the admin folder too), and `--resume` starts from that save when there is one,
 * so a restarted or recreated Caddy serves the last routes at once, before pic has looked.
 * The image's own boot file is not used: it may put the admin API on a network address.
 */
export const CADDY_BOOT_CADDYFILE = [
  '# Boot config of the cell\'s Caddy, written by pic. The admin API listens only on a Unix socket in',
  '# a folder of pic\'s state directory that no other container mounts; pic loads the routes through it.',
  '{',
  `\tadmin ${CADDY_ADMIN_LISTEN}`,
  '}',
  '',
].join('\n');

export function desiredCorePlan(component: CoreComponent, cell: CellDocument, paths: CorePaths): ServicePlan {
  const cellName = cell.metadata.name;
  const network = cell.spec.network.name;
  const owner = component.key;
  const baseLabels = { [LABEL.cell]: cellName, [LABEL.owner]: owner, [LABEL.service]: component.name };
  const volume = (key: string): DesiredVolume => ({ name: `${cellName}-${component.name}-${key}`, labels: { [LABEL.cell]: cellName, [LABEL.owner]: owner, [LABEL.volume]: key } });
  const privileges = CORE_PRIVILEGES[component.name];

  const create: Dockerode.ContainerCreateOptions = { name: component.container, Image: component.run.image };
  const host: Dockerode.HostConfig = { NetworkMode: network, RestartPolicy: { Name: 'unless-stopped' } };
  const volumes: DesiredVolume[] = [];
  const mounts: Dockerode.MountSettings[] = [];
  const ports: { key: string; hostIp: string; hostPort: number }[] = [];

  switch (component.name) {
    case 'caddy': {
      const data = volume('data');
      volumes.push(data);
      mounts.push({ Type: 'volume', Source: data.name, Target: CADDY_DATA_DIR, ReadOnly: false }, { Type: 'bind', Source: paths.caddyAdminDir, Target: CADDY_ADMIN_MOUNT, ReadOnly: false });
      create.Cmd = [...CADDY_COMMAND];
      create.Env = [`HOME=/tmp`, `XDG_CONFIG_HOME=${CADDY_ADMIN_MOUNT}`, `XDG_DATA_HOME=${CADDY_DATA_DIR}`];
      const publish = cell.spec.caddy?.run?.publish;
      const hostIp = publish?.hostIp ?? '0.0.0.0';
      if (publish?.http !== undefined) ports.push({ key: '80/tcp', hostIp, hostPort: publish.http });
      if (publish?.https !== undefined) ports.push({ key: '443/tcp', hostIp, hostPort: publish.https });
      break;
    }
    case 'dns': {
      const upstreams = cell.spec.dns?.run?.upstreams ?? [];
      create.Env = [`DNS_DOMAIN=${cell.spec.domain}`, `DNS_UPSTREAMS=${upstreams.join(' ')}`, `DNS_ZONE_FILE=${DNS_ZONE_DIR}/${path.basename(paths.zoneFile)}`];
      mounts.push({ Type: 'bind', Source: path.dirname(paths.zoneFile), Target: DNS_ZONE_DIR, ReadOnly: true });
      break;
    }
    case 'wireguard': {
      const vpn = vpnNetworkOf(cell);
      create.Env = [`WG_ADDRESS=${vpn.serverAddress}/${vpn.prefixLength}`, `WG_INTERFACE=${WIREGUARD_INTERFACE}`];
      const publish = cell.spec.wireguard?.run?.publish;
      ports.push({ key: `${vpn.listenPort}/udp`, hostIp: publish?.hostIp ?? '0.0.0.0', hostPort: publish?.port ?? vpn.listenPort });
      break;
    }
  }
  if (mounts.length > 0) host.Mounts = mounts;
  if (ports.length > 0) {
    create.ExposedPorts = Object.fromEntries(ports.map((p) => [p.key, {}]));
    host.PortBindings = Object.fromEntries(ports.map((p) => [p.key, [{ HostIp: p.hostIp, HostPort: String(p.hostPort) }]]));
  }
  if (privileges.capAdd.length > 0) host.CapAdd = [...privileges.capAdd];
  if (privileges.devices.length > 0) host.Devices = privileges.devices.map((d) => ({ PathOnHost: d.host, PathInContainer: d.container, CgroupPermissions: 'rwm' }));
  if (Object.keys(privileges.sysctls).length > 0) host.Sysctls = { ...privileges.sysctls };
  create.HostConfig = host;
  create.NetworkingConfig = { EndpointsConfig: { [network]: { IPAMConfig: { IPv4Address: component.run.address }, Aliases: [component.container] } } };
  create.Labels = sortedLabels(baseLabels);
  const specHash = specHashOf(create);
  create.Labels = sortedLabels({ ...baseLabels, [LABEL.specHash]: specHash });
  return { containers: [{ name: component.container, service: component.name, create, dependsOn: [], specHash }], volumes: volumes.sort(byText((v) => v.name)) };
}

function sortedLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => compareText(a, b)));
}
