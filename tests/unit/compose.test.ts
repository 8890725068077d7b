import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import type { Problem } from '../../crds/types.js';
import { imageReferenceUnderPrefix } from '../../crds/image-reference.js';
import { CommandSyntaxError, quoteCommand, splitCommand } from '../../reconcilers/containers/command.js';
import { checkRenderedCompose, planRenderedCompose, type ComposeFile, type ComposePolicy, type TranslateContext } from '../../reconcilers/containers/compose.js';
import { renderComposeText, type RenderContext } from '../../reconcilers/containers/render.js';
import { canonicalJson, specHashOf } from '../../reconcilers/containers/spec-hash.js';
import type { ServicePlan } from '../../reconcilers/containers/types.js';
import { parseByteSize, parseDuration } from '../../reconcilers/containers/units.js';

const FILE = 'rendered/notes.yml';
const POLICY: ComposePolicy = {
  allowedImagePrefix: 'git.pic.ngo/roof/',
  dataDir: '/srv/pic/data',
  networkName: 'cell-network',
  grantedCapabilities: [],
  serviceId: 'notes',
  ownContainerNames: ['cell-notes', 'cell-notes-aaa', 'cell-notes-cache', 'cell-notes-db'],
  serviceIp: '172.20.0.20',
  corePorts: [],
};
const TRANSLATE: TranslateContext = { serviceId: 'notes', networkName: 'cell-network', file: FILE };

/** Read, check and translate, as the operator does; an empty plan with the problems when refused. */
function composeToContainerSpecs(compose: ComposeFile, ctx: TranslateContext, policy: ComposePolicy = POLICY): Required<ServicePlan> & { problems: Problem[] } {
  const planned = planRenderedCompose(compose, policy, { ...ctx, file: ctx.file ?? FILE });
  return planned.plan
    ? { containers: planned.plan.containers, volumes: planned.plan.volumes, bindSources: planned.plan.bindSources ?? [], problems: [] }
    : { containers: [], volumes: [], bindSources: [], problems: planned.problems };
}

/** A valid rendered compose document that each case changes in one place. */
function baseCompose(): Record<string, any> {
  return {
    services: {
      app: {
        image: 'git.pic.ngo/roof/notes:1.0',
        container_name: 'cell-notes',
        volumes: ['data:/data'],
        networks: { 'cell-network': { ipv4_address: '172.20.0.20' } },
      },
    },
    volumes: { data: null },
    networks: { 'cell-network': { external: true } },
  };
}

function withService(change: (app: Record<string, any>, compose: Record<string, any>) => void): ComposeFile {
  const compose = baseCompose();
  change(compose.services.app, compose);
  return compose;
}

// ---------------------------------------------------------------------------------------------

describe('golden: template + context → rendered compose → checks → container specs', () => {
  const root = path.join(process.cwd(), 'tests/golden/compose');
  const update = process.env.UPDATE_GOLDEN === '1';
  const cases = readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();

  test('there are golden cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(5);
  });

  const compare = (dir: string, name: string, actual: unknown): void => {
    const file = path.join(dir, name);
    const text = `${JSON.stringify(actual, null, 2)}\n`;
    if (update) writeFileSync(file, text);
    expect(existsSync(file)).toBe(true);
    expect(JSON.parse(text)).toEqual(JSON.parse(readFileSync(file, 'utf8')));
  };

  test.each(cases)('%s', (name) => {
    const dir = path.join(root, name);
    const template = readFileSync(path.join(dir, 'template.yml'), 'utf8');
    const context = JSON.parse(readFileSync(path.join(dir, 'context.json'), 'utf8')) as {
      render: RenderContext;
      policy: ComposePolicy;
      translate: TranslateContext;
    };
    const templateFile = `services/${context.render.serviceId}/compose-template.yml`;
    const rendered = renderComposeText(template, context.render, templateFile);
    const problems: Problem[] = [...rendered.problems];
    if (rendered.compose) {
      compare(dir, 'rendered.json', rendered.compose);
      problems.push(...checkRenderedCompose(rendered.compose, context.policy, templateFile));
    }
    compare(dir, 'problems.json', problems);
    if (rendered.compose && problems.length === 0) {
      const plan = composeToContainerSpecs(rendered.compose, { ...context.translate, file: templateFile }, context.policy);
      expect(plan.problems).toEqual([]);
      compare(dir, 'specs.json', plan);
      // The hash in each label is the hash of the options without it.
      for (const c of plan.containers) {
        expect(c.create.Labels?.['ngo.pic.spec-hash']).toBe(c.specHash);
        expect(specHashOf(c.create)).toBe(c.specHash);
      }
    } else {
      expect(problems.length).toBeGreaterThan(0);
      expect(existsSync(path.join(dir, 'specs.json'))).toBe(false);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('checkRenderedCompose', () => {
  test('the base document passes', () => {
    expect(checkRenderedCompose(baseCompose(), POLICY, FILE)).toEqual([]);
  });

  type Case = [name: string, compose: ComposeFile, policy: Partial<ComposePolicy>, expected: null | { pointer: string; message: RegExp }];
  const cases: Case[] = [
    // privileged
    ['privileged: false is the default', withService((s) => { s.privileged = false; }), {}, null],
    ['privileged: true', withService((s) => { s.privileged = true; }), {}, { pointer: '/services/app/privileged', message: /privileged containers are refused/ }],
    ['privileged: "true" (rendered text)', withService((s) => { s.privileged = 'true'; }), {}, { pointer: '/services/app/privileged', message: /privileged/ }],
    // namespaces
    ['network_mode = the cell network', withService((s) => { delete s.networks; s.network_mode = 'cell-network'; }), {}, null],
    ['network_mode: host', withService((s) => { s.network_mode = 'host'; }), {}, { pointer: '/services/app/network_mode', message: /"host" is refused: it shares the host's network namespace/ }],
    ['network_mode: service:x', withService((s) => { s.network_mode = 'service:db'; }), {}, { pointer: '/services/app/network_mode', message: /another container's network namespace/ }],
    ['network_mode: container:x', withService((s) => { s.network_mode = 'container:cell-db'; }), {}, { pointer: '/services/app/network_mode', message: /another container's network namespace/ }],
    ['network_mode: bridge', withService((s) => { s.network_mode = 'bridge'; }), {}, { pointer: '/services/app/network_mode', message: /attaches every container to the cell network/ }],
    ['pid: host', withService((s) => { s.pid = 'host'; }), {}, { pointer: '/services/app/pid', message: /pid "host" is refused/ }],
    ['ipc: host', withService((s) => { s.ipc = 'host'; }), {}, { pointer: '/services/app/ipc', message: /ipc "host" is refused/ }],
    ['userns_mode: host', withService((s) => { s.userns_mode = 'host'; }), {}, { pointer: '/services/app/userns_mode', message: /host's user namespace/ }],
    ['ipc: shareable', withService((s) => { s.ipc = 'shareable'; }), {}, { pointer: '/services/app/ipc', message: /not supported by pic/ }],
    // Docker socket and binds
    ['bind inside the data dir', withService((s) => { s.volumes = ['/srv/pic/data/notes/cfg:/cfg:ro']; }), {}, null],
    ['bind with a trailing slash inside the data dir', withService((s) => { s.volumes = ['/srv/pic/data/notes/:/cfg']; }), {}, null],
    ['data dir given with a trailing slash', withService((s) => { s.volumes = ['/srv/pic/data/notes:/cfg']; }), { dataDir: '/srv/pic/data/' }, null],
    ['docker socket', withService((s) => { s.volumes = ['/var/run/docker.sock:/var/run/docker.sock']; }), {}, { pointer: '/services/app/volumes/0', message: /Docker socket/ }],
    ['docker socket under /run', withService((s) => { s.volumes = ['/run/docker.sock:/sock']; }), {}, { pointer: '/services/app/volumes/0', message: /Docker socket/ }],
    ['parent of the socket: /var/run', withService((s) => { s.volumes = ['/var/run:/host-run:ro']; }), {}, { pointer: '/services/app/volumes/0', message: /Docker socket/ }],
    ['parent of the socket: /run/', withService((s) => { s.volumes = ['/run/:/r'] ; }), {}, { pointer: '/services/app/volumes/0', message: /Docker socket/ }],
    ['parent of the socket: /', withService((s) => { s.volumes = ['/:/host'] ; }), {}, { pointer: '/services/app/volumes/0', message: /Docker socket/ }],
    ['socket reached through ..', withService((s) => { s.volumes = ['/srv/pic/data/../../../var/run/docker.sock:/s']; }), {}, { pointer: '/services/app/volumes/0', message: /Docker socket/ }],
    ['long-form bind of the socket', withService((s) => { s.volumes = [{ type: 'bind', source: '/var/run/docker.sock', target: '/s' }]; }), {}, { pointer: '/services/app/volumes/0', message: /Docker socket/ }],
    ['bind outside the data dir', withService((s) => { s.volumes = ['/etc:/host-etc:ro']; }), {}, { pointer: '/services/app/volumes/0', message: /it is outside the cell data directory "\/srv\/pic\/data"/ }],
    ['bind climbing out of the data dir', withService((s) => { s.volumes = ['/srv/pic/data/../secrets:/s']; }), {}, { pointer: '/services/app/volumes/0', message: /"\/srv\/pic\/secrets" is refused/ }],
    ['bind of a sibling with the same prefix', withService((s) => { s.volumes = ['/srv/pic/data-other/x:/x']; }), {}, { pointer: '/services/app/volumes/0', message: /outside the cell data directory/ }],
    ['bind of the data dir itself', withService((s) => { s.volumes = ['/srv/pic/data:/all']; }), {}, { pointer: '/services/app/volumes/0', message: /not in this service's own folder/ }],
    ['long-form bind outside', withService((s) => { s.volumes = [{ type: 'bind', source: '/home/alice', target: '/h' }]; }), {}, { pointer: '/services/app/volumes/0', message: /outside the cell data directory/ }],
    ['relative bind', withService((s) => { s.volumes = ['./config:/cfg']; }), {}, { pointer: '/services/app/volumes/0', message: /relative or home-based/ }],
    ['home bind', withService((s) => { s.volumes = ['~/config:/cfg']; }), {}, { pointer: '/services/app/volumes/0', message: /relative or home-based/ }],
    ['anonymous volume', withService((s) => { s.volumes = ['/data']; }), {}, { pointer: '/services/app/volumes/0', message: /anonymous volume/ }],
    ['undeclared named volume', withService((s) => { s.volumes = ['other:/data']; }), {}, { pointer: '/services/app/volumes/0', message: /"other" is not declared/ }],
    ['unsupported mount option', withService((s) => { s.volumes = ['data:/data:z']; }), {}, { pointer: '/services/app/volumes/0', message: /option "z" is not supported/ }],
    ['relative mount target', withService((s) => { s.volumes = ['data:data']; }), {}, { pointer: '/services/app/volumes/0', message: /must be an absolute path/ }],
    ['tmpfs on a volume target', withService((s) => { s.tmpfs = ['/data:size=1m']; }), {}, { pointer: '/services/app/tmpfs', message: /also the target of a volume/ }],
    ['two mounts on one target', withService((s) => { s.volumes = ['data:/data', '/srv/pic/data/notes/x:/data/']; }), {}, { pointer: '/services/app/volumes/1', message: /two mounts target "\/data"/ }],
    // devices, capabilities, confinement
    ['devices: []', withService((s) => { s.devices = []; }), {}, null],
    ['devices', withService((s) => { s.devices = ['/dev/sda:/dev/sda']; }), {}, { pointer: '/services/app/devices/0', message: /host devices give access to the host/ }],
    ['cap_add declared by the manifest', withService((s) => { s.cap_add = ['NET_ADMIN']; }), { grantedCapabilities: ['NET_ADMIN'] }, null],
    ['cap_add not declared', withService((s) => { s.cap_add = ['NET_ADMIN']; }), {}, { pointer: '/services/app/cap_add/0', message: /manifest does not declare it/ }],
    ['cap_add ALL refused even when declared', withService((s) => { s.cap_add = ['ALL']; }), { grantedCapabilities: ['ALL'] }, { pointer: '/services/app/cap_add/0', message: /capability ALL is refused/ }],
    ['cap_add CAP_SYS_ADMIN refused even when declared', withService((s) => { s.cap_add = ['cap_sys_admin']; }), { grantedCapabilities: ['SYS_ADMIN'] }, { pointer: '/services/app/cap_add/0', message: /SYS_ADMIN is refused/ }],
    ['security_opt no-new-privileges', withService((s) => { s.security_opt = ['no-new-privileges:true']; }), {}, null],
    ['security_opt seccomp unconfined', withService((s) => { s.security_opt = ['seccomp:unconfined']; }), {}, { pointer: '/services/app/security_opt/0', message: /disables the container's confinement/ }],
    ['security_opt apparmor=unconfined', withService((s) => { s.security_opt = ['apparmor=unconfined']; }), {}, { pointer: '/services/app/security_opt/0', message: /disables the container's confinement/ }],
    ['security_opt label:disable', withService((s) => { s.security_opt = ['label:disable']; }), {}, { pointer: '/services/app/security_opt/0', message: /confinement/ }],
    ['security_opt custom seccomp profile', withService((s) => { s.security_opt = ['seccomp:/etc/profile.json']; }), {}, { pointer: '/services/app/security_opt/0', message: /not supported by pic/ }],
    // images
    ['image under the prefix with a digest', withService((s) => { s.image = `git.pic.ngo/roof/notes@sha256:${'a'.repeat(64)}`; }), {}, null],
    ['image outside the prefix', withService((s) => { s.image = 'docker.io/library/nginx:1'; }), {}, { pointer: '/services/app/image', message: /not under the allowed prefix "git.pic.ngo\/roof\/"/ }],
    ['image under a look-alike prefix', withService((s) => { s.image = 'git.pic.ngo/roofx/notes:1'; }), {}, { pointer: '/services/app/image', message: /not under the allowed prefix/ }],
    ['look-alike prefix without a slash', withService((s) => { s.image = 'git.pic.ngo/roofx/notes:1'; }), { allowedImagePrefix: 'git.pic.ngo/roof' }, { pointer: '/services/app/image', message: /not under the allowed prefix/ }],
    ['the prefix folder itself as a repository', withService((s) => { s.image = 'git.pic.ngo/roof:1.0'; }), { allowedImagePrefix: 'git.pic.ngo/roof' }, { pointer: '/services/app/image', message: /not under the allowed prefix "git.pic.ngo\/roof\/"/ }],
    ['invalid image reference', withService((s) => { s.image = 'git.pic.ngo/roof/Notes App'; }), {}, { pointer: '/services/app/image', message: /not a valid image reference/ }],
    ['missing image', withService((s) => { delete s.image; }), {}, { pointer: '/services/app/image', message: /has no image/ }],
    // container names
    ['container name not cell-*', withService((s) => { s.container_name = 'notes'; }), {}, { pointer: '/services/app/container_name', message: /must match/ }],
    ['container name too long', withService((s) => { s.container_name = `cell-${'a'.repeat(32)}`; }), {}, { pointer: '/services/app/container_name', message: /must match/ }],
    ['container name missing', withService((s) => { delete s.container_name; }), {}, { pointer: '/services/app/container_name', message: /has no container_name/ }],
    ['container name used twice', withService((s, c) => { c.services.db = { image: s.image, container_name: 'cell-notes' }; }), {}, { pointer: '/services/db/container_name', message: /also used by service "app"/ }],
    // unsupported keys
    ['x- extension keys are allowed', withService((s, c) => { s['x-note'] = 1; c['x-common'] = { a: 1 }; }), {}, null],
    ['version is tolerated', withService((_s, c) => { c.version = '3.8'; }), {}, null],
    ['unsupported service key', withService((s) => { s.build = '.'; }), {}, { pointer: '/services/app/build', message: /service key "build" is not supported by pic/ }],
    ['env_file is not supported', withService((s) => { s.env_file = '.env'; }), {}, { pointer: '/services/app/env_file', message: /not supported by pic/ }],
    ['unsupported top-level key', withService((_s, c) => { c.secrets = {}; }), {}, { pointer: '/secrets', message: /top-level key "secrets" is not supported by pic/ }],
    ['unsupported volume key', withService((_s, c) => { c.volumes.data = { driver_opts: { type: 'none', o: 'bind', device: '/var/run' } }; }), {}, { pointer: '/volumes/data/driver_opts', message: /not supported by pic/ }],
    ['unsupported healthcheck key', withService((s) => { s.healthcheck = { test: 'true', start_interval: '1s' }; }), {}, { pointer: '/services/app/healthcheck/start_interval', message: /not supported by pic/ }],
    // networks
    ['no networks at all', withService((s, c) => { delete s.networks; delete c.networks; }), {}, null],
    ['network as a list', withService((s) => { s.networks = ['cell-network']; }), {}, null],
    ['cell network declared under another key', withService((s, c) => { c.networks = { cell: { external: true, name: 'cell-network' } }; s.networks = { cell: { aliases: ['cell-notes'] } }; }), {}, null],
    ['cell network not external', withService((_s, c) => { c.networks['cell-network'] = {}; }), {}, { pointer: '/networks/cell-network', message: /declare it with "external: true"/ }],
    ['another external network', withService((_s, c) => { c.networks.other = { external: true }; }), {}, { pointer: '/networks/other', message: /network "other" \(even an external one\) is refused/ }],
    ['service on another network', withService((s) => { s.networks = ['default']; }), {}, { pointer: '/services/app/networks/0', message: /network "default" is refused/ }],
    ['bad ipv4_address', withService((s) => { s.networks['cell-network'].ipv4_address = '172.20.0.300'; }), {}, { pointer: '/services/app/networks/cell-network/ipv4_address', message: /not an IPv4 address/ }],
    ['ipv6_address is not supported', withService((s) => { s.networks['cell-network'].ipv6_address = 'fd00::1'; }), {}, { pointer: '/services/app/networks/cell-network/ipv6_address', message: /not supported by pic/ }],
    // environment, labels
    ['environment as a list', withService((s) => { s.environment = ['A=1', 'B=x=y']; }), {}, null],
    ['environment without a value (host env)', withService((s) => { s.environment = ['HOME']; }), {}, { pointer: '/services/app/environment/0', message: /copy it from the host environment/ }],
    ['environment null in a map (host env)', withService((s) => { s.environment = { HOME: null }; }), {}, { pointer: '/services/app/environment/HOME', message: /host environment/ }],
    ['environment set twice', withService((s) => { s.environment = ['A=1', 'A=2']; }), {}, { pointer: '/services/app/environment/1', message: /set twice/ }],
    ['reserved label', withService((s) => { s.labels = { 'ngo.pic.owner': 'ServiceInstall/other' }; }), {}, { pointer: '/services/app/labels', message: /label "ngo.pic.owner" is reserved/ }],
    // depends_on
    ['depends_on an unknown service', withService((s) => { s.depends_on = ['db']; }), {}, { pointer: '/services/app/depends_on/0', message: /"db", which is not a service of this file/ }],
    ['depends_on itself', withService((s) => { s.depends_on = ['app']; }), {}, { pointer: '/services/app/depends_on/0', message: /depends on itself/ }],
    ['depends_on with a bad condition', withService((s, c) => { c.services.db = { image: s.image, container_name: 'cell-db' }; s.depends_on = { db: { condition: 'service_ready' } }; }), {}, { pointer: '/services/app/depends_on/db/condition', message: /not one of/ }],
    ['depends_on cycle', withService((s, c) => { s.depends_on = ['db']; c.services.db = { image: s.image, container_name: 'cell-db', depends_on: ['app'] }; }), {}, { pointer: '/services', message: /cycle: app → db → app/ }],
    // other fields
    ['restart on-failure:3', withService((s) => { s.restart = 'on-failure:3'; }), {}, null],
    ['restart nonsense', withService((s) => { s.restart = 'sometimes'; }), {}, { pointer: '/services/app/restart', message: /not one of no, always/ }],
    ['bad duration', withService((s) => { s.healthcheck = { test: ['CMD', 'true'], interval: '30' }; }), {}, { pointer: '/services/app/healthcheck/interval', message: /not a duration/ }],
    ['bad healthcheck test list', withService((s) => { s.healthcheck = { test: ['curl', 'x'] }; }), {}, { pointer: '/services/app/healthcheck/test', message: /starts with CMD, CMD-SHELL or NONE/ }],
    ['port range', withService((s) => { s.ports = ['8000-8010:8000-8010']; }), {}, { pointer: '/services/app/ports/0', message: /port range/ }],
    ['port out of range', withService((s) => { s.ports = ['70000:80']; }), {}, { pointer: '/services/app/ports/0', message: /not a number from 1 to 65535/ }],
    ['port with a bad protocol', withService((s) => { s.ports = ['80/icmp']; }), {}, { pointer: '/services/app/ports/0', message: /not tcp, udp or sctp/ }],
    ['command with shell syntax', withService((s) => { s.command = 'run && rm -rf /'; }), {}, { pointer: '/services/app/command', message: /needs a shell/ }],
    ['tmpfs with allowed options', withService((s) => { s.tmpfs = ['/run:size=64m,mode=1777,noexec,nosuid,nodev']; }), {}, null],
    ['tmpfs with suid', withService((s) => { s.tmpfs = ['/run:suid']; }), {}, { pointer: '/services/app/tmpfs/0', message: /tmpfs option "suid" is refused/ }],
    ['bad mem_limit', withService((s) => { s.mem_limit = 'lots'; }), {}, { pointer: '/services/app/mem_limit', message: /not a size/ }],
    ['bad cpus', withService((s) => { s.cpus = '-1'; }), {}, { pointer: '/services/app/cpus', message: /positive number/ }],
    ['relative working_dir', withService((s) => { s.working_dir = 'app'; }), {}, { pointer: '/services/app/working_dir', message: /absolute path/ }],
    ['no services', { services: {} }, {}, { pointer: '/services', message: /at least one service/ }],
    ['not a mapping', ['services'] as unknown as ComposeFile, {}, { pointer: '', message: /must be a mapping/ }],
  ];

  test.each(cases)('%s', (_name, compose, policy, expected) => {
    const problems = checkRenderedCompose(compose, { ...POLICY, ...policy }, FILE);
    if (expected === null) {
      expect(problems).toEqual([]);
    } else {
      expect(problems).toContainEqual({ file: FILE, pointer: expected.pointer, message: expect.stringMatching(expected.message) });
    }
  });

  test('every problem is reported, not just the first', () => {
    const compose = withService((s) => {
      s.privileged = true;
      s.image = 'evil/x';
      s.volumes = ['/etc:/etc'];
      s.build = '.';
    });
    const pointers = checkRenderedCompose(compose, POLICY, FILE).map((p) => p.pointer).sort();
    expect(pointers).toEqual(['/services/app/build', '/services/app/image', '/services/app/privileged', '/services/app/volumes/0']);
  });

  test.each<[string, Partial<ComposePolicy>, RegExp]>([
    ['not absolute', { dataDir: 'data' }, /not an absolute path/],
    ['the root of the host', { dataDir: '/' }, /data directory "\/" is refused/],
    ['holding the state directory', { dataDir: '/var/lib', stateDir: '/var/lib/pic' }, /contains pic's state directory "\/var\/lib\/pic"/],
    ['the state directory itself', { dataDir: '/var/lib/pic/', stateDir: '/var/lib/pic' }, /contains pic's state directory/],
  ])('a data directory %s allows no bind at all', (_name, policy, message) => {
    const problems = checkRenderedCompose(withService((s) => { s.volumes = ['/srv/pic/data/x:/x']; }), { ...POLICY, ...policy }, FILE);
    expect(problems).toEqual([{ file: FILE, pointer: '', message: expect.stringMatching(message) }]);
  });

  test('a data directory inside the state directory (the default, <state>/data) is fine', () => {
    expect(checkRenderedCompose(withService((s) => { s.volumes = ['/var/lib/pic/data/notes:/x']; }), { ...POLICY, dataDir: '/var/lib/pic/data', stateDir: '/var/lib/pic' }, FILE)).toEqual([]);
  });
});

describe('imageReferenceUnderPrefix: the prefix is a folder', () => {
  test.each<[string, string, boolean]>([
    ['git.pic.ngo/roof/notes:1', 'git.pic.ngo/roof/', true],
    ['git.pic.ngo/roof/sub/notes:1', 'git.pic.ngo/roof/', true],
    ['git.pic.ngo/roof/notes:1', 'git.pic.ngo/roof', true],
    ['git.pic.ngo/roofx/notes:1', 'git.pic.ngo/roof/', false],
    ['git.pic.ngo/roofx/notes:1', 'git.pic.ngo/roof', false],
    ['git.pic.ngo/roof', 'git.pic.ngo/roof/', false],
    ['git.pic.ngo/roof:1.0', 'git.pic.ngo/roof/', false],
    ['git.pic.ngo/roof:1.0', 'git.pic.ngo/roof', false],
    [`git.pic.ngo/roof@sha256:${'a'.repeat(64)}`, 'git.pic.ngo/roof', false],
    ['git.pic.ngo/roof/notes:1', 'git.pic.ngo/roof/notes', false],
    ['git.pic.ngo/roof/notes/web:1', 'git.pic.ngo/roof/notes', true],
    [`git.pic.ngo/roof/notes@sha256:${'a'.repeat(64)}`, 'git.pic.ngo/roof/', true],
    ['git.pic.ngo/roof/notes@sha256:ab', 'git.pic.ngo/roof/', false],
    ['git.pic.ngo/roof/notes-evil:1', 'git.pic.ngo/roof/notes', false],
    ['anything', '', false],
    ['evil.example/git.pic.ngo/roof/x', 'git.pic.ngo/roof/', false],
  ])('%s under %s → %s', (image, prefix, expected) => {
    expect(imageReferenceUnderPrefix(image, prefix)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------

describe('splitCommand (shell-quote, with the refusals of what only a shell honours)', () => {
  test.each<[string, string[]]>([
    ['', []],
    ['   ', []],
    ['serve', ['serve']],
    ['serve --port 80', ['serve', '--port', '80']],
    ['  a \t b\n c  ', ['a', 'b', 'c']],
    [`echo 'hello world'`, ['echo', 'hello world']],
    [`echo "hello world"`, ['echo', 'hello world']],
    [`a'b'"c"d`, ['abcd']],
    [`''`, ['']],
    [`a "" b`, ['a', '', 'b']],
    [`echo 'it'\\''s'`, ['echo', "it's"]],
    [`echo "say \\"hi\\""`, ['echo', 'say "hi"']],
    [`echo "a\\b"`, ['echo', 'a\\b']],
    // shell-quote keeps the backslash before a backtick inside double quotes (a shell would not).
    ['echo "\\$HOME \\\\ \\`"', ['echo', '$HOME \\ \\`']],
    [`echo $'a\\tb'`, ['echo', 'a\tb']],
    [`echo a\\ b`, ['echo', 'a b']],
    [`echo \\'`, ['echo', "'"]],
    [`sh -c 'echo $HOME; ls | wc -l'`, ['sh', '-c', 'echo $HOME; ls | wc -l']],
    ['echo $HOME *.txt', ['echo', '$HOME', '*.txt']],
    ['--title "Files of alice"', ['--title', 'Files of alice']],
  ])('%j', (text, words) => {
    expect(splitCommand(text)).toEqual(words);
  });

  test.each([
    ['unclosed single quote', `echo 'a`, /single quote is never closed/],
    ['unclosed double quote', `echo "a`, /double quote is never closed/],
    ['trailing backslash', 'echo a\\', /lone backslash/],
    ['and-list', 'a && b', /unquoted "&&" needs a shell/],
    ['pipe', 'a | b', /"\|" needs a shell/],
    ['sequence', 'a; b', /";" needs a shell/],
    ['redirection', 'a > /tmp/x', /">" needs a shell/],
    ['subshell', '(a)', /"\(" needs a shell/],
    ['command substitution', 'echo `id`', /needs a shell/],
    ['command substitution in double quotes', 'echo "$(id)"', /command substitution needs a shell/],
    ['comment', 'run # the server', /comment/],
    ['a "#" inside a word (shell-quote reads a comment)', 'a#b', /comment/],
    ['a line continuation', 'line \\\ncontinued', /backslash ends a line/],
    ['a parameter expansion', 'echo ${HOME}', /parameter expansion\) needs a shell/],
    ['a parameter expansion in double quotes', 'echo "${HOME:-x}"', /parameter expansion\) needs a shell/],
  ])('%s is refused', (_name, text, message) => {
    expect(() => splitCommand(text)).toThrow(message);
  });

  test('quoting then splitting gives the words back (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary' })), (words) => {
        expect(splitCommand(quoteCommand(words))).toEqual(words);
      }),
      { numRuns: 1000 },
    );
  });

  test('splitting never throws anything but a CommandSyntaxError (property)', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          const words = splitCommand(text);
          expect(splitCommand(quoteCommand(words))).toEqual(words);
        } catch (err) {
          expect(err).toBeInstanceOf(CommandSyntaxError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('durations and sizes', () => {
  test.each<[string, number]>([
    ['0', 0],
    ['30s', 30e9],
    ['1m30s', 90e9],
    ['500ms', 500e6],
    ['1.5s', 1.5e9],
    ['2h', 7200e9],
    ['1h2m3s4ms', 3723004e6],
    ['10us', 10e3],
    ['7ns', 7],
  ])('duration %s = %d ns', (text, ns) => {
    expect(parseDuration(text)).toBe(ns);
  });

  test.each(['', '30', 's', '1x', '-1s', '1s 2s', '1.2.3s'])('%j is not a duration', (text) => {
    expect(() => parseDuration(text)).toThrow(/not a duration/);
  });

  test.each<[unknown, number]>([
    [1048576, 1048576],
    ['1024', 1024],
    ['100b', 100],
    ['512k', 512 * 1024],
    ['512m', 512 * 1024 ** 2],
    ['512MB', 512 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1.5GiB', 1.5 * 1024 ** 3],
  ])('size %j = %d bytes', (value, bytes) => {
    expect(parseByteSize(value)).toBe(bytes);
  });

  test.each([['lots'], ['-1m'], ['1x'], [null], [1.5]])('%j is not a size', (value) => {
    expect(() => parseByteSize(value)).toThrow(/not a size/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('composeToContainerSpecs', () => {
  test('containers come after what they depend on, ties by service key', () => {
    const compose = withService((s, c) => {
      s.depends_on = { db: { condition: 'service_healthy' }, cache: null };
      c.services.db = { image: s.image, container_name: 'cell-notes-db' };
      c.services.cache = { image: s.image, container_name: 'cell-notes-cache', depends_on: ['db'] };
      c.services.aaa = { image: s.image, container_name: 'cell-notes-aaa' };
    });
    const plan = composeToContainerSpecs(compose, TRANSLATE);
    expect(plan.problems).toEqual([]);
    expect(plan.containers.map((c) => c.service)).toEqual(['aaa', 'db', 'cache', 'app']);
    const app = plan.containers[3];
    expect(app?.dependsOn).toEqual(['cell-notes-cache', 'cell-notes-db']);
    expect(app?.dependsOnConditions).toEqual({ 'cell-notes-cache': 'service_started', 'cell-notes-db': 'service_healthy' });
  });

  test('a cycle is a problem and nothing is planned', () => {
    const compose = withService((s, c) => {
      s.depends_on = ['db'];
      c.services.db = { image: s.image, container_name: 'cell-notes-db', depends_on: ['cache'] };
      c.services.cache = { image: s.image, container_name: 'cell-notes-cache', depends_on: ['app'] };
    });
    const plan = composeToContainerSpecs(compose, TRANSLATE);
    expect(plan.containers).toEqual([]);
    expect(plan.volumes).toEqual([]);
    expect(plan.problems).toEqual([{ file: FILE, pointer: '/services', message: 'depends_on forms a cycle: app → db → cache → app' }]);
  });

  test('a document the policy refuses plans nothing', () => {
    const plan = composeToContainerSpecs(withService((s) => { s.privileged = true; }), TRANSLATE);
    expect(plan.containers).toEqual([]);
    expect(plan.problems.map((p) => p.pointer)).toEqual(['/services/app/privileged']);
  });

  test('named volumes: always pic-<service>-<name>, labelled with their owner; a name override is refused', () => {
    const compose = withService((s, c) => {
      s.volumes = ['data:/data', 'shared:/shared:ro'];
      c.volumes = { data: null, shared: { labels: { 'org.example.x': 'y' } } };
    });
    const plan = composeToContainerSpecs(compose, TRANSLATE);
    expect(plan.volumes).toEqual([
      { name: 'pic-notes-data', labels: { 'ngo.pic.owner': 'ServiceInstall/notes', 'ngo.pic.volume': 'data' } },
      { name: 'pic-notes-shared', labels: { 'ngo.pic.owner': 'ServiceInstall/notes', 'ngo.pic.volume': 'shared', 'org.example.x': 'y' } },
    ]);
    expect(plan.containers[0]?.create.HostConfig?.Mounts).toEqual([
      { Type: 'volume', Source: 'pic-notes-data', Target: '/data', ReadOnly: false },
      { Type: 'volume', Source: 'pic-notes-shared', Target: '/shared', ReadOnly: true },
    ]);
    const named = composeToContainerSpecs(withService((s, c) => { s.volumes = ['shared:/shared']; c.volumes = { shared: { name: 'notes-shared' } }; }), TRANSLATE);
    expect(named.problems).toEqual([{ file: FILE, pointer: '/volumes/shared/name', message: expect.stringMatching(/volume name "notes-shared" is refused/) }]);
  });

  test('an explicit volume name must still be a Docker volume name', () => {
    const problems = checkRenderedCompose(withService((_s, c) => { c.volumes.data = { name: '../etc' }; }), POLICY, FILE);
    expect(problems).toEqual([{ file: FILE, pointer: '/volumes/data/name', message: expect.stringMatching(/not a valid Docker volume name/) }]);
  });

  test('environment is sorted K=V, labels sorted and owned, aliases are the container name and its own declared ones, never the compose key', () => {
    const compose = withService((s) => {
      s.environment = { ZED: 1, ALPHA: 'a', MIDDLE: true };
      s.labels = ['z.label=1', 'a.label'];
      s.networks['cell-network'].aliases = ['cell-notes'];
    });
    const [container] = composeToContainerSpecs(compose, { ...TRANSLATE, projectLabel: 'pic-notes' }).containers;
    expect(container?.create.Env).toEqual(['ALPHA=a', 'MIDDLE=true', 'ZED=1']);
    expect(Object.keys(container?.create.Labels ?? {})).toEqual([
      'a.label', 'com.docker.compose.project', 'com.docker.compose.service', 'ngo.pic.owner', 'ngo.pic.service', 'ngo.pic.spec-hash', 'z.label',
    ]);
    expect(container?.create.Labels?.['com.docker.compose.project']).toBe('pic-notes');
    expect(container?.create.NetworkingConfig?.EndpointsConfig?.['cell-network']).toEqual({
      IPAMConfig: { IPv4Address: '172.20.0.20' },
      Aliases: ['cell-notes'],
    });
    expect(container?.create.HostConfig?.NetworkMode).toBe('cell-network');
  });

  test('extra labels from pic go on every container and volume, and cannot replace the owner', () => {
    const extraLabels = { 'ngo.pic.cell': 'alice', 'ngo.pic.version': '1.0.0', 'ngo.pic.owner': 'ServiceInstall/other' };
    const plan = composeToContainerSpecs(baseCompose(), { ...TRANSLATE, extraLabels });
    expect(plan.containers[0]?.create.Labels).toMatchObject({ 'ngo.pic.cell': 'alice', 'ngo.pic.version': '1.0.0', 'ngo.pic.owner': 'ServiceInstall/notes' });
    expect(plan.volumes[0]?.labels).toEqual({ 'ngo.pic.cell': 'alice', 'ngo.pic.owner': 'ServiceInstall/notes', 'ngo.pic.version': '1.0.0', 'ngo.pic.volume': 'data' });
    const other = composeToContainerSpecs(baseCompose(), { ...TRANSLATE, extraLabels: { ...extraLabels, 'ngo.pic.version': '1.0.1' } });
    expect(other.containers[0]?.specHash).not.toBe(plan.containers[0]?.specHash);
  });

  test('restart policies', () => {
    const restart = (value: unknown) => composeToContainerSpecs(withService((s) => { s.restart = value; }), TRANSLATE).containers[0]?.create.HostConfig?.RestartPolicy;
    expect(restart('no')).toEqual({ Name: 'no' });
    expect(restart('always')).toEqual({ Name: 'always' });
    expect(restart('unless-stopped')).toEqual({ Name: 'unless-stopped' });
    expect(restart('on-failure')).toEqual({ Name: 'on-failure' });
    expect(restart('on-failure:4')).toEqual({ Name: 'on-failure', MaximumRetryCount: 4 });
    expect(restart(undefined)).toBeUndefined();
  });

  test('healthcheck disable and string tests', () => {
    const health = (value: unknown) => composeToContainerSpecs(withService((s) => { s.healthcheck = value; }), TRANSLATE).containers[0]?.create.Healthcheck;
    expect(health({ disable: true })).toEqual({ Test: ['NONE'] });
    expect(health({ test: 'curl -f http://localhost/', timeout: '5s', retries: '2' })).toEqual({ Test: ['CMD-SHELL', 'curl -f http://localhost/'], Timeout: 5e9, Retries: 2 });
  });

  test('ports: short and long forms, all protocols', () => {
    const compose = withService((s) => {
      s.ports = ['8080:80', '127.0.0.1:5353:53/udp', '[::1]:8443:443', '9000:9000', { target: 80, published: 8081, protocol: 'tcp' }, '127.0.0.1:7000:7000'];
    });
    const create = composeToContainerSpecs(compose, TRANSLATE).containers[0]?.create;
    expect(create?.ExposedPorts).toEqual({ '53/udp': {}, '80/tcp': {}, '443/tcp': {}, '7000/tcp': {}, '9000/tcp': {} });
    expect(create?.HostConfig?.PortBindings).toEqual({
      '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5353' }],
      '80/tcp': [{ HostIp: '', HostPort: '8080' }, { HostIp: '', HostPort: '8081' }],
      '443/tcp': [{ HostIp: '::1', HostPort: '8443' }],
      '7000/tcp': [{ HostIp: '127.0.0.1', HostPort: '7000' }],
      '9000/tcp': [{ HostIp: '', HostPort: '9000' }],
    });
  });

  test('bind sources are listed for the applier to create', () => {
    const plan = composeToContainerSpecs(withService((s) => { s.volumes = ['/srv/pic/data/notes/b:/b', '/srv/pic/data/notes/a/:/a:ro', '/srv/pic/data/notes/./b:/c']; }), TRANSLATE);
    expect(plan.bindSources).toEqual(['/srv/pic/data/notes/a', '/srv/pic/data/notes/b']);
    expect(plan.containers[0]?.create.HostConfig?.Mounts?.[1]).toEqual({ Type: 'bind', Source: '/srv/pic/data/notes/a', Target: '/a', ReadOnly: true });
  });
});

// ---------------------------------------------------------------------------------------------

describe('canonicalJson and specHash', () => {
  test('canonicalJson sorts keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null }, u: undefined })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson('x')).toBe('"x"');
    expect(canonicalJson([undefined])).toBe('[null]');
  });

  test('canonicalJson gives the text of the hand-written canonical JSON it replaced, so spec hashes stay the same (property)', () => {
    // The canonical JSON the spec hash was computed from before safe-stable-stringify.
    const previous = (value: unknown): string => {
      if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
      if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : previous(item))).join(',')}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${keys.map((k) => `${JSON.stringify(k)}:${previous(record[k])}`).join(',')}}`;
    };
    fc.assert(
      fc.property(fc.jsonValue(), fc.anything({ withNullPrototype: false, withBigInt: false, withMap: false, withSet: false, withDate: false, withTypedArray: false, withSparseArray: false, withBoxedValues: false, values: [fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined)] }), (json, any) => {
        expect(canonicalJson(json)).toBe(previous(json));
        expect(canonicalJson(any)).toBe(previous(any));
      }),
      { numRuns: 1000 },
    );
  });

  test('the same compose gives the same hash, whatever the key order', () => {
    const a = composeToContainerSpecs(baseCompose(), TRANSLATE).containers[0]?.specHash;
    const reordered = JSON.parse(canonicalJson(baseCompose())) as ComposeFile;
    const b = composeToContainerSpecs(reordered, TRANSLATE).containers[0]?.specHash;
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(b).toBe(a);
  });

  test('any change in what would be created changes the hash', () => {
    const hash = (change: (s: Record<string, any>) => void) => composeToContainerSpecs(withService(change), TRANSLATE).containers[0]?.specHash;
    const base = hash(() => undefined);
    const variants = [
      hash((s) => { s.image = 'git.pic.ngo/roof/notes:1.1'; }),
      hash((s) => { s.environment = { A: '1' }; }),
      hash((s) => { delete s.networks['cell-network'].ipv4_address; }),
      hash((s) => { s.volumes = ['data:/data:ro']; }),
      hash((s) => { s.restart = 'always'; }),
      hash((s) => { s.labels = { a: 'b' }; }),
      hash((s) => { s.command = 'serve'; }),
    ];
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
    expect(composeToContainerSpecs(baseCompose(), { ...TRANSLATE, serviceId: 'other' }).containers[0]?.specHash).not.toBe(base);
  });

  test('the hash ignores the hash label itself', () => {
    const [container] = composeToContainerSpecs(baseCompose(), TRANSLATE).containers;
    const create = structuredClone(container?.create ?? {});
    (create.Labels as Record<string, string>)['ngo.pic.spec-hash'] = 'something else';
    expect(specHashOf(create)).toBe(container?.specHash);
  });

  test('the hash is the same in another process', () => {
    const here = composeToContainerSpecs(baseCompose(), TRANSLATE).containers[0]?.specHash;
    const module = path.join(process.cwd(), 'dist/reconcilers/containers/compose.js');
    const script = `
      const { planRenderedCompose } = await import(${JSON.stringify(module)});
      const compose = JSON.parse(process.argv[1]);
      process.stdout.write(planRenderedCompose(compose, JSON.parse(process.argv[3]), JSON.parse(process.argv[2])).plan.containers[0].specHash);
    `;
    const there = execFileSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(baseCompose()), JSON.stringify(TRANSLATE), JSON.stringify(POLICY)], { encoding: 'utf8' });
    expect(there).toBe(here);
  });
});
