import fc from 'fast-check';
import type { Manifest } from '../../crds/types.js';
import { validateManifest } from '../../crds/validate-manifest.js';
import type { ComposeFile } from '../../reconcilers/containers/compose-model.js';
import { readComposeModel } from '../../reconcilers/containers/read-compose.js';
import { corePortsOf, desiredServicePlan, type ServiceInputs } from '../../reconcilers/containers/desired.js';
import { checkComposePolicy, type ComposePolicy } from '../../reconcilers/containers/policy.js';
import { readComposeTemplate } from '../../state/compose-template.js';

const FILE = 'services/app/compose-template.yml';
const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const POLICY: ComposePolicy = {
  allowedImagePrefix: 'git.pic.ngo/roof/',
  dataDir: '/srv/pic/data',
  stateDir: '/var/lib/pic',
  networkName: 'cell-network',
  grantedCapabilities: [],
  serviceId: 'app',
  ownContainerNames: ['cell-app', 'cell-app-worker'],
  serviceIp: '172.20.0.20',
  corePorts: corePortsOf(undefined),
};

function base(): Record<string, any> {
  return {
    services: { app: { image: 'git.pic.ngo/roof/app:1.0', container_name: 'cell-app', networks: ['cell-network'] } },
    networks: { 'cell-network': { external: true } },
  };
}

function edit(change: (app: Record<string, any>, compose: Record<string, any>) => void): ComposeFile {
  const compose = base();
  change(compose.services.app, compose);
  return compose;
}

/** The policy's verdict alone: the document must be well formed, so every problem is a decision. */
function verdict(compose: ComposeFile, policy: Partial<ComposePolicy>) {
  const read = readComposeModel(compose, FILE);
  expect(read.problems).toEqual([]);
  return checkComposePolicy(read.model, { ...POLICY, ...policy }, FILE);
}

type Row = [rule: string, compose: ComposeFile, policy: Partial<ComposePolicy>, refused: null | { pointer: string; message: RegExp }];

const allowed = (rule: string, compose: ComposeFile, policy: Partial<ComposePolicy> = {}): Row => [rule, compose, policy, null];
const refused = (rule: string, compose: ComposeFile, pointer: string, message: RegExp, policy: Partial<ComposePolicy> = {}): Row => [rule, compose, policy, { pointer, message }];

const ROWS: Row[] = [
  // images: one parser, the prefix is a folder
  allowed('image: a tag under the prefix', base()),
  allowed('image: pinned by digest under the prefix', edit((s) => { s.image = `git.pic.ngo/roof/app@${DIGEST}`; })),
  allowed('image: a prefix given without its slash', base(), { allowedImagePrefix: 'git.pic.ngo/roof' }),
  allowed('image: a registry with a port as prefix', edit((s) => { s.image = 'localhost:5000/test/app:1'; }), { allowedImagePrefix: 'localhost:5000/test/' }),
  refused('image: outside the prefix', edit((s) => { s.image = 'docker.io/library/nginx:1'; }), '/services/app/image', /not under the allowed prefix "git.pic.ngo\/roof\/"/),
  refused('image: a look-alike folder', edit((s) => { s.image = 'git.pic.ngo/roofx/app:1'; }), '/services/app/image', /not under the allowed prefix/, { allowedImagePrefix: 'git.pic.ngo/roof' }),
  refused('image: the prefix folder itself, tagged', edit((s) => { s.image = 'git.pic.ngo/roof:1.0'; }), '/services/app/image', /not under the allowed prefix "git.pic.ngo\/roof\/"/, { allowedImagePrefix: 'git.pic.ngo/roof' }),
  refused('image: the prefix folder itself, with its slash', edit((s) => { s.image = 'git.pic.ngo/roof:1.0'; }), '/services/app/image', /not under the allowed prefix/),
  refused('image: an empty prefix allows nothing', base(), '/services/app/image', /not under the allowed prefix/, { allowedImagePrefix: '' }),
  refused('image: not a reference', edit((s) => { s.image = 'git.pic.ngo/roof/App Server'; }), '/services/app/image', /not a valid image reference/),
  refused('image: an upper-case digest', edit((s) => { s.image = `git.pic.ngo/roof/app@${DIGEST.toUpperCase()}`; }), '/services/app/image', /not a valid image reference/),
  // capabilities: by declaration, from an allow-list
  allowed('cap_add: NET_ADMIN declared', edit((s) => { s.cap_add = ['NET_ADMIN']; }), { grantedCapabilities: ['NET_ADMIN'] }),
  allowed('cap_add: NET_RAW and CAP_NET_ADMIN (spelling) declared', edit((s) => { s.cap_add = ['NET_RAW', 'cap_net_admin']; }), { grantedCapabilities: ['NET_ADMIN', 'NET_RAW'] }),
  refused('cap_add: NET_ADMIN not declared', edit((s) => { s.cap_add = ['NET_ADMIN']; }), '/services/app/cap_add/0', /NET_ADMIN is refused: the manifest does not declare it/),
  refused('cap_add: NET_RAW beyond the declared NET_ADMIN', edit((s) => { s.cap_add = ['NET_ADMIN', 'NET_RAW']; }), '/services/app/cap_add/1', /NET_RAW is refused: the manifest does not declare it/, { grantedCapabilities: ['NET_ADMIN'] }),
  refused('cap_add: SYS_TIME, even declared', edit((s) => { s.cap_add = ['SYS_TIME']; }), '/services/app/cap_add/0', /SYS_TIME is refused: it sets the host clock/, { grantedCapabilities: ['SYS_TIME'] }),
  refused('cap_add: BPF', edit((s) => { s.cap_add = ['BPF']; }), '/services/app/cap_add/0', /BPF is refused/, { grantedCapabilities: ['NET_ADMIN'] }),
  refused('cap_add: PERFMON', edit((s) => { s.cap_add = ['PERFMON']; }), '/services/app/cap_add/0', /PERFMON is refused/),
  refused('cap_add: SYS_ADMIN', edit((s) => { s.cap_add = ['SYS_ADMIN']; }), '/services/app/cap_add/0', /SYS_ADMIN is refused: it amounts to root/),
  refused('cap_add: ALL', edit((s) => { s.cap_add = ['ALL']; }), '/services/app/cap_add/0', /ALL is refused/, { grantedCapabilities: ['ALL'] }),
  refused('cap_add: an unknown name', edit((s) => { s.cap_add = ['WAKE_ALARM']; }), '/services/app/cap_add/0', /WAKE_ALARM is refused; a service may add only NET_ADMIN or NET_RAW/),
  // privileged
  allowed('privileged: false', edit((s) => { s.privileged = false; })),
  refused('privileged: true', edit((s) => { s.privileged = true; }), '/services/app/privileged', /privileged containers are refused/),
  refused('privileged: "true" (rendered text)', edit((s) => { s.privileged = 'true'; }), '/services/app/privileged', /privileged/),
  refused('privileged: anything but false', edit((s) => { s.privileged = 'yes'; }), '/services/app/privileged', /privileged/),
  // namespaces
  allowed('network_mode: the cell network', edit((s) => { delete s.networks; s.network_mode = 'cell-network'; })),
  refused('network_mode: host', edit((s) => { s.network_mode = 'host'; }), '/services/app/network_mode', /"host" is refused: it shares the host's network namespace/),
  refused('network_mode: container:', edit((s) => { s.network_mode = 'container:cell-db'; }), '/services/app/network_mode', /another container's network namespace/),
  refused('network_mode: bridge', edit((s) => { s.network_mode = 'bridge'; }), '/services/app/network_mode', /attaches every container to the cell network/),
  refused('pid: host', edit((s) => { s.pid = 'host'; }), '/services/app/pid', /pid "host" is refused/),
  refused('pid: another container', edit((s) => { s.pid = 'container:cell-db'; }), '/services/app/pid', /not supported by pic/),
  refused('ipc: host', edit((s) => { s.ipc = 'host'; }), '/services/app/ipc', /ipc "host" is refused/),
  refused('userns_mode: host', edit((s) => { s.userns_mode = 'host'; }), '/services/app/userns_mode', /host's user namespace/),
  // networks
  allowed('networks: the catalog name for a cell network called otherwise', base(), { networkName: 'pic-net' }),
  allowed('networks: the cell network under another key', edit((s, c) => { c.networks = { cell: { external: true, name: 'cell-network' } }; s.networks = ['cell']; })),
  refused('networks: the cell network not external', edit((_s, c) => { c.networks['cell-network'] = {}; }), '/networks/cell-network', /declare it with "external: true"/),
  refused('networks: another external network', edit((_s, c) => { c.networks.host = { external: true }; }), '/networks/host', /network "host" \(even an external one\) is refused/),
  refused('networks: a service on an undeclared network', edit((s) => { s.networks = ['default']; }), '/services/app/networks/0', /network "default" is refused/),
  // devices
  allowed('devices: an empty list', edit((s) => { s.devices = []; })),
  refused('devices: a host disk', edit((s) => { s.devices = ['/dev/sda']; }), '/services/app/devices/0', /device \/dev\/sda is refused: host devices give access to the host/),
  refused('devices: the TUN device, undeclared', edit((s) => { s.devices = ['/dev/net/tun']; }), '/services/app/devices/0', /the manifest does not declare it/),
  allowed('devices: the TUN device, declared by a connectivity service', edit((s) => { s.devices = ['/dev/net/tun']; }), { grantedDevices: ['/dev/net/tun'] }),
  refused('devices: the TUN device under another path', edit((s) => { s.devices = ['/dev/net/tun:/dev/tun0']; }), '/services/app/devices/0', /must keep its path/, { grantedDevices: ['/dev/net/tun'] }),
  // sysctls
  refused('sysctls: undeclared', edit((s) => { s.sysctls = { 'net.ipv4.ip_forward': '1' }; }), '/services/app/sysctls/net.ipv4.ip_forward', /does not declare it in connectivity.sysctls/),
  allowed('sysctls: declared, same value', edit((s) => { s.sysctls = ['net.ipv4.ip_forward=1']; }), { grantedSysctls: { 'net.ipv4.ip_forward': '1' } }),
  refused('sysctls: declared, another value', edit((s) => { s.sysctls = { 'net.ipv4.ip_forward': 0 }; }), '/services/app/sysctls/net.ipv4.ip_forward', /differs from the manifest/, { grantedSysctls: { 'net.ipv4.ip_forward': '1' } }),
  refused('sysctls: outside net.ipv4', edit((s) => { s.sysctls = { 'kernel.shm_rmid_forced': '1' }; }), '/services/app/sysctls/kernel.shm_rmid_forced', /only net.ipv4/, { grantedSysctls: { 'kernel.shm_rmid_forced': '1' } }),
  // security_opt
  allowed('security_opt: no-new-privileges', edit((s) => { s.security_opt = ['no-new-privileges']; })),
  allowed('security_opt: no-new-privileges=true', edit((s) => { s.security_opt = ['no-new-privileges=true']; })),
  refused('security_opt: seccomp unconfined', edit((s) => { s.security_opt = ['seccomp:unconfined']; }), '/services/app/security_opt/0', /disables the container's confinement/),
  refused('security_opt: apparmor=unconfined', edit((s) => { s.security_opt = ['apparmor=unconfined']; }), '/services/app/security_opt/0', /disables/),
  refused('security_opt: systempaths=unconfined', edit((s) => { s.security_opt = ['systempaths=unconfined']; }), '/services/app/security_opt/0', /disables/),
  refused('security_opt: label:disable', edit((s) => { s.security_opt = ['label:disable']; }), '/services/app/security_opt/0', /disables/),
  refused('security_opt: a custom profile', edit((s) => { s.security_opt = ['seccomp=/etc/p.json']; }), '/services/app/security_opt/0', /not supported by pic/),
  // bind mounts: only the service's own folder, <data directory>/<service id>
  allowed('bind: inside the service\'s own folder', edit((s) => { s.volumes = ['/srv/pic/data/app/cfg:/cfg:ro']; })),
  allowed('bind: the service\'s own folder itself', edit((s) => { s.volumes = ['/srv/pic/data/app:/app-data']; })),
  allowed('bind: a data directory given with a trailing slash', edit((s) => { s.volumes = ['/srv/pic/data/app:/cfg']; }), { dataDir: '/srv/pic/data/' }),
  refused('bind: the data directory itself', edit((s) => { s.volumes = ['/srv/pic/data:/all']; }), '/services/app/volumes/0', /in the cell data directory "\/srv\/pic\/data" but not in this service's own folder; a service's bind sources stay inside "\/srv\/pic\/data\/app"/),
  refused('bind: another service\'s folder', edit((s) => { s.volumes = ['/srv/pic/data/files/accounts:/steal'] ; }), '/services/app/volumes/0', /"\/srv\/pic\/data\/files\/accounts" is refused: it is in the cell data directory .* but not in this service's own folder/),
  refused('bind: a sibling sharing the service\'s prefix', edit((s) => { s.volumes = ['/srv/pic/data/app-old/x:/x']; }), '/services/app/volumes/0', /not in this service's own folder/),
  refused('bind: out of the own folder with ..', edit((s) => { s.volumes = ['/srv/pic/data/app/../files:/x']; }), '/services/app/volumes/0', /"\/srv\/pic\/data\/files" is refused: .*not in this service's own folder/),
  refused('bind: outside', edit((s) => { s.volumes = ['/etc:/etc:ro']; }), '/services/app/volumes/0', /outside the cell data directory "\/srv\/pic\/data"/),
  refused('bind: a sibling of the data directory sharing its prefix', edit((s) => { s.volumes = ['/srv/pic/data-old/x:/x']; }), '/services/app/volumes/0', /outside the cell data directory/),
  refused('bind: climbing out with ..', edit((s) => { s.volumes = ['/srv/pic/data/../secrets:/s']; }), '/services/app/volumes/0', /"\/srv\/pic\/secrets" is refused/),
  refused('bind: the Docker socket', edit((s) => { s.volumes = ['/var/run/docker.sock:/var/run/docker.sock']; }), '/services/app/volumes/0', /Docker socket/),
  refused('bind: a directory holding the socket', edit((s) => { s.volumes = ['/run:/host-run:ro']; }), '/services/app/volumes/0', /Docker socket/),
  refused('bind: the host root', edit((s) => { s.volumes = ['/:/host']; }), '/services/app/volumes/0', /Docker socket/),
  // container names and aliases: only the service's own (manifest container_name and containers)
  allowed('container_name: the manifest\'s container_name', base()),
  allowed('container_name: a second container listed in the manifest\'s containers', edit((_s, c) => { c.services.worker = { image: 'git.pic.ngo/roof/app:1.0', container_name: 'cell-app-worker', networks: ['cell-network'] }; })),
  refused('container_name: a core name', edit((_s, c) => { c.services.dns = { image: 'git.pic.ngo/roof/app:1.0', container_name: 'cell-dns', networks: ['cell-network'] }; }), '/services/dns/container_name', /"cell-dns" is not one of this service's containers \("cell-app", "cell-app-worker"\)/),
  refused('container_name: another service\'s name', edit((s) => { s.container_name = 'cell-files'; }), '/services/app/container_name', /"cell-files" is not one of this service's containers/),
  allowed('aliases: the service\'s own names', edit((s) => { s.networks = { 'cell-network': { aliases: ['cell-app', 'cell-app-worker'] } }; })),
  refused('aliases: another container\'s name', edit((s) => { s.networks = { 'cell-network': { aliases: ['cell-files'] } }; }), '/services/app/networks/cell-network/aliases/0', /alias "cell-files" is refused: Docker's DNS would answer that name with this container/),
  refused('aliases: a core name', edit((s) => { s.networks = { 'cell-network': { aliases: ['cell-app', 'cell-caddy'] } }; }), '/services/app/networks/cell-network/aliases/1', /alias "cell-caddy" is refused/),
  refused('aliases: a plain host name', edit((s) => { s.networks = { 'cell-network': { aliases: ['db'] } }; }), '/services/app/networks/cell-network/aliases/0', /alias "db" is refused/),
  // fixed addresses: only the service's own, on one container
  allowed('ipv4_address: the service\'s address', edit((s) => { s.networks = { 'cell-network': { ipv4_address: '172.20.0.20' } }; })),
  refused('ipv4_address: Caddy\'s address', edit((s) => { s.networks = { 'cell-network': { ipv4_address: '172.20.0.2' } }; }), '/services/app/networks/cell-network/ipv4_address', /"172.20.0.2" is refused: it is not this service's address/),
  refused('ipv4_address: the gateway', edit((s) => { s.networks = { 'cell-network': { ipv4_address: '172.20.0.1' } }; }), '/services/app/networks/cell-network/ipv4_address', /not this service's address/),
  refused('ipv4_address: the service\'s address twice', edit((s, c) => {
    s.networks = { 'cell-network': { ipv4_address: '172.20.0.20' } };
    c.services.worker = { image: 'git.pic.ngo/roof/app:1.0', container_name: 'cell-app-worker', networks: { 'cell-network': { ipv4_address: '172.20.0.20' } } };
  }), '/services/worker/networks/cell-network/ipv4_address', /already given to service "app": one container holds the service's address/),
  // volume names derive from the service
  allowed('volumes: a named volume without a name override', edit((s, c) => { s.volumes = ['data:/data']; c.volumes = { data: null }; })),
  refused('volumes: a name override (the core Caddy\'s data)', edit((s, c) => { s.volumes = ['data:/data']; c.volumes = { data: { name: 'cell-caddy-data' } }; }), '/volumes/data/name', /volume name "cell-caddy-data" is refused: pic names a service's volumes after the service/),
  refused('volumes: a name override (another application\'s)', edit((s, c) => { s.volumes = ['db:/db']; c.volumes = { db: { name: 'nextcloud_db' } }; }), '/volumes/db/name', /refused/),
  // stop_grace_period: at most 10 minutes
  allowed('stop_grace_period: 10 minutes', edit((s) => { s.stop_grace_period = '10m'; })),
  refused('stop_grace_period: 11 minutes', edit((s) => { s.stop_grace_period = '11m'; }), '/services/app/stop_grace_period', /stop_grace_period of 660 s is refused: at most 10 minutes/),
  refused('stop_grace_period: hundreds of hours', edit((s) => { s.stop_grace_period = '300h'; }), '/services/app/stop_grace_period', /1080000 s is refused/),
  // the data directory
  allowed('data directory: below the state directory (the default <state>/data)', edit((s) => { s.volumes = ['/var/lib/pic/data/app:/d']; }), { dataDir: '/var/lib/pic/data' }),
  refused('data directory: relative', base(), '', /not an absolute path/, { dataDir: 'data' }),
  refused('data directory: /', base(), '', /data directory "\/" is refused/, { dataDir: '/' }),
  refused('data directory: holding the state directory', base(), '', /contains pic's state directory "\/var\/lib\/pic"/, { dataDir: '/var' }),
  refused('data directory: the state directory itself', base(), '', /contains pic's state directory/, { dataDir: '/var/lib/pic' }),
  // tmpfs options
  allowed('tmpfs: no options', edit((s) => { s.tmpfs = '/tmp'; })),
  allowed('tmpfs: size, mode and the safe flags', edit((s) => { s.tmpfs = ['/run:size=64m,mode=1777,uid=1000,gid=1000,noexec,nosuid,nodev', '/cache:exec,size=50%']; })),
  allowed('tmpfs: a long-form mount with a size', edit((s) => { s.volumes = [{ type: 'tmpfs', target: '/scratch', tmpfs: { size: '16m' } }]; })),
  refused('tmpfs: suid', edit((s) => { s.tmpfs = ['/run:rw,suid']; }), '/services/app/tmpfs/0', /tmpfs option "suid" is refused/),
  refused('tmpfs: dev', edit((s) => { s.tmpfs = '/run:dev'; }), '/services/app/tmpfs', /tmpfs option "dev" is refused/),
  refused('tmpfs: an unknown option', edit((s) => { s.tmpfs = ['/run:huge=always']; }), '/services/app/tmpfs/0', /"huge=always" is not supported/),
  refused('tmpfs: a size that is not one', edit((s) => { s.tmpfs = ['/run:size=lots']; }), '/services/app/tmpfs/0', /"size=lots" is not supported/),
  // ports: an explicit host port, with the admin's consent, never the core stack's
  allowed('ports: a package checked without an install asks no consent', edit((s) => { s.ports = ['8080:80', '127.0.0.1:5353:53/udp']; })),
  allowed('ports: consented to in spec.publish', edit((s) => { s.ports = ['8080:80', '127.0.0.1:5353:53/udp']; }), { publish: ['8080/tcp', '5353/udp'] }),
  allowed('ports: the long form, consented', edit((s) => { s.ports = [{ target: 25, published: 25 }]; }), { publish: ['25/tcp'] }),
  refused('ports: not consented to', edit((s) => { s.ports = ['25:25']; }), '/services/app/ports/0', /host port 25\/tcp is published only with the admin's consent: add "25\/tcp" to spec.publish of ServiceInstall\/app/, { publish: [] }),
  refused('ports: consent for another protocol', edit((s) => { s.ports = ['5353:53/udp']; }), '/services/app/ports/0', /add "5353\/udp"/, { publish: ['5353/tcp'] }),
  refused('ports: Caddy\'s 443, even consented', edit((s) => { s.ports = ['443:8443']; }), '/services/app/ports/0', /host port 443\/tcp is refused: the core stack uses it \(HTTPS, Caddy\)/, { publish: ['443/tcp'] }),
  refused('ports: 80', edit((s) => { s.ports = ['0.0.0.0:80:8080']; }), '/services/app/ports/0', /80\/tcp is refused: the core stack uses it/),
  refused('ports: DNS over udp', edit((s) => { s.ports = ['53:53/udp']; }), '/services/app/ports/0', /53\/udp is refused: the core stack uses it \(DNS\)/),
  refused('ports: WireGuard', edit((s) => { s.ports = [{ target: 51820, published: 51820, protocol: 'udp' }]; }), '/services/app/ports/0', /51820\/udp is refused: the core stack uses it \(WireGuard\)/),
  refused('ports: the Cell\'s own Caddy port', edit((s) => { s.ports = ['8443:443']; }), '/services/app/ports/0', /8443\/tcp is refused: the core stack uses it \(Caddy's HTTPS port/, { corePorts: [...corePortsOf(undefined), { port: 8443, protocol: 'tcp', what: "Caddy's HTTPS port (spec.caddy.run.publish.https)" }] }),
  refused('ports: a host port Docker picks', edit((s) => { s.ports = ['8080']; }), '/services/app/ports/0', /on a host port Docker picks is refused: name the host port/),
];

describe('the security policy, rule by rule', () => {
  test.each(ROWS)('%s', (_rule, compose, policy, expected) => {
    const { checked, problems } = verdict(compose, policy);
    if (expected === null) {
      expect(problems).toEqual([]);
      expect(checked).toBeDefined();
    } else {
      expect(checked).toBeUndefined();
      expect(problems).toContainEqual({ file: FILE, pointer: expected.pointer, message: expect.stringMatching(expected.message) });
    }
  });

  test('every refused row names a field the template has (or the document for the data directory)', () => {
    for (const [, compose, policy, expected] of ROWS) {
      if (expected === null) continue;
      for (const p of verdict(compose, policy).problems) expect(p.pointer === '' || /^\/(services\/(app|worker|dns)|networks|volumes)\//.test(p.pointer)).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Capabilities come only from the manifest's declaration, never from the template's text.

function manifest(extra: Partial<Manifest> = {}): Manifest {
  return {
    schema_version: 3,
    kind: 'store',
    id: 'vpn',
    name: 'VPN exit',
    description: 'A WireGuard exit.',
    version: '1.0.0',
    author: 'acme',
    capabilities: { has_subdomain: false, has_accounts: false, has_admin_config: false, has_storage: false, has_egress: false, has_api_hooks: false },
    image: `git.pic.ngo/roof/vpn@${DIGEST}`,
    container_name: 'cell-vpn',
    ...extra,
  };
}

function inputs(template: string, m: Manifest): ServiceInputs {
  return {
    manifest: m,
    template: readComposeTemplate(template, 'services/vpn/compose-template.yml'),
    templateFile: 'services/vpn/compose-template.yml',
    manifestFile: 'services/vpn/manifest.json',
    config: {},
    secrets: {},
    serviceIp: '172.20.0.20',
    cell: { name: 'c', corePorts: corePortsOf(undefined), domain: 'c.test', dataDir: '/srv/pic/data', stateDir: '/var/lib/pic', networkName: 'cell-network', allowedImagePrefix: 'git.pic.ngo/roof/', imageVerification: 'warn' },
  };
}

const TEMPLATE_WITH_COMMENT = `# instance \${INSTANCE_ID}
services:
  vpn:
    image: git.pic.ngo/roof/vpn@${DIGEST}
    container_name: cell-vpn
    cap_add: [NET_ADMIN]
`;

describe('capabilities by declaration', () => {
  test('${INSTANCE_ID} in a container name of a service that is no connectivity service is refused', () => {
    const problems = validateManifest({ ...manifest(), container_name: 'cell-x-${INSTANCE_ID}' }, 'services/vpn/manifest.json', { allowedImagePrefix: 'git.pic.ngo/roof/', imageVerification: 'warn' });
    expect(problems).toContainEqual({ file: 'services/vpn/manifest.json', pointer: '/container_name', message: expect.stringMatching(/only for a connectivity service/) });
  });

  test('a comment "# ${INSTANCE_ID}" in the template grants nothing', () => {
    const result = desiredServicePlan(inputs(TEMPLATE_WITH_COMMENT, manifest()));
    expect(result.plan).toBeUndefined();
    expect(result.problems).toContainEqual({ file: 'services/vpn/compose-template.yml', pointer: '/services/vpn/cap_add/0', message: expect.stringMatching(/NET_ADMIN is refused: the manifest does not declare it/) });
  });

  test('a manifest that declares NET_ADMIN gets exactly that', () => {
    const result = desiredServicePlan(inputs(TEMPLATE_WITH_COMMENT, manifest({ connectivity: { provides: 'wireguard_ext', cap_add: ['NET_ADMIN'] } })));
    expect(result.problems).toEqual([]);
    expect(result.plan?.containers[0]?.create.HostConfig?.CapAdd).toEqual(['NET_ADMIN']);
  });

  test('declaring more than the allow-list grants no more', () => {
    const template = TEMPLATE_WITH_COMMENT.replace('[NET_ADMIN]', '[NET_ADMIN, SYS_TIME]');
    const result = desiredServicePlan(inputs(template, manifest({ connectivity: { provides: 'wireguard_ext', cap_add: ['NET_ADMIN', 'SYS_TIME'] } })));
    expect(result.problems.map((p) => p.pointer)).toEqual(['/services/vpn/cap_add/1']);
  });

  const valid = (connectivity: unknown) => ({ ...manifest(), container_name: 'cell-vpn-${INSTANCE_ID}', containers: ['cell-vpn-${INSTANCE_ID}'], connectivity }) as unknown;
  test.each<[string, unknown, null | { pointer: string; message: RegExp }]>([
    ['provides a connection type with NET_ADMIN', { provides: 'wireguard_ext', cap_add: ['NET_ADMIN'] }, null],
    ['provides without capabilities', { provides: 'proxy' }, null],
    ['SYS_TIME is refused, naming the field', { provides: 'tor', cap_add: ['NET_ADMIN', 'SYS_TIME'] }, { pointer: '/connectivity/cap_add/1', message: /"SYS_TIME" is refused: a connectivity service may add only NET_ADMIN or NET_RAW/ }],
    ['a lower-case name', { provides: 'tor', cap_add: ['net_admin'] }, { pointer: '/connectivity/cap_add/0', message: /capability name in capitals/ }],
    ['a capability listed twice', { provides: 'tor', cap_add: ['NET_RAW', 'NET_RAW'] }, { pointer: '/connectivity/cap_add/1', message: /repeats entry 0/ }],
    ['"default" is not something a service provides', { provides: 'default' }, { pointer: '/connectivity/provides', message: /.+/ }],
    ['provides is required', { cap_add: ['NET_ADMIN'] }, { pointer: '/connectivity/provides', message: /is required/ }],
    ['no other keys', { provides: 'tor', privileged: true }, { pointer: '/connectivity/privileged', message: /not a known field/ }],
    ['the TUN device and forwarding', { provides: 'wireguard_ext', cap_add: ['NET_ADMIN'], devices: ['/dev/net/tun'], sysctls: { 'net.ipv4.ip_forward': '1' } }, null],
    ['another device', { provides: 'wireguard_ext', devices: ['/dev/mem'] }, { pointer: '/connectivity/devices/0', message: /.+/ }],
    ['a sysctl outside net.ipv4', { provides: 'wireguard_ext', sysctls: { 'kernel.panic': '1' } }, { pointer: '/connectivity/sysctls/kernel.panic', message: /must match the pattern/ }],
    ['a container name without ${INSTANCE_ID}', { provides: 'tor', name: 'cell-vpn' }, { pointer: '/container_name', message: /must end in \$\{INSTANCE_ID\}/ }],
  ])('manifest connectivity: %s', (name, connectivity, expected) => {
    const fixed = name.includes('without ${INSTANCE_ID}') ? { ...(valid({ provides: 'tor' }) as object), container_name: 'cell-vpn', containers: ['cell-vpn'] } : valid(connectivity);
    const problems = validateManifest(fixed, 'services/vpn/manifest.json', { allowedImagePrefix: 'git.pic.ngo/roof/', imageVerification: 'warn' });
    if (expected === null) expect(problems).toEqual([]);
    else expect(problems).toContainEqual({ file: 'services/vpn/manifest.json', pointer: expected.pointer, message: expect.stringMatching(expected.message) });
  });
});

// ---------------------------------------------------------------------------------------------

describe('reader and policy on any input (property)', () => {
  const scalar = fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.constantFrom('host', '/', '/var/run/docker.sock', 'NET_ADMIN', 'true', 'cell-network', '/srv/pic/data/x:/x', 'a:b:c:d'));
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, scalar, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.constantFrom('image', 'volumes', 'cap_add', 'tmpfs', 'networks', 'privileged', 'network_mode', 'ports', 'devices', 'security_opt', 'x', 'external', 'name'), tie('node'), { maxKeys: 5 })),
  })).node;
  const compose = fc.record({ services: fc.dictionary(fc.string({ maxLength: 6 }), value, { maxKeys: 3 }), networks: value, volumes: value }, { requiredKeys: [] });

  test('never throws; every problem names the file and a JSON pointer', () => {
    fc.assert(
      fc.property(fc.oneof(compose, value), (doc) => {
        const read = readComposeModel(doc, FILE);
        const { problems } = checkComposePolicy(read.model, POLICY, FILE);
        for (const p of [...read.problems, ...problems]) {
          expect(p.file).toBe(FILE);
          expect(p.pointer === '' || p.pointer.startsWith('/')).toBe(true);
          expect(typeof p.message).toBe('string');
        }
      }),
      { numRuns: 500 },
    );
  });
});
