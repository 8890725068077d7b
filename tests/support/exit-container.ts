/**
 * An exit of the example catalog run without pic, the way pic runs it: its container created from
 * its own compose template (image, cap_add, devices, sysctls, environment with the config values,
 * healthcheck) on a test network of its own at a fixed address, the Connection's file mounted
 * read-only at the manifest's connectivity.config_path; a busybox "service" beside it; and on the
 * host what pic does for an assigned service: a policy rule sending every packet from the
 * service's address to the exit as next hop, and the DNAT of its DNS queries to the exit.
 *
 * Names start with the caller's prefix; everything Docker holds carries `ngo.pic.test-exit=<prefix>`
 * and TEST_LABELS, the host's rules a comment or a table number derived from the prefix, so
 * `removeExitLeftovers(prefix)` finds what a killed run left.
 */
import type Dockerode from 'dockerode';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { execInContainer, type ExecResult } from '../../reconcilers/shared/exec.js';
import { buildBusyboxImage, cleanupTestResources, docker, TEST_LABELS } from './docker.js';
import { sh, until } from './remote-sites.js';

export const EXIT_TEST_LABEL = 'ngo.pic.test-exit';
const CLIENT_IMAGE = 'pictest/busybox:1';
const STORE = path.join(process.cwd(), 'examples', 'store', 'services');

interface TemplateService {
  image: string;
  restart?: string;
  cap_add?: string[];
  devices?: string[];
  sysctls?: Record<string, string>;
  environment?: Record<string, string>;
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number; start_period?: string };
}

interface ManifestSubset {
  connectivity: { config_path: string };
  config_schema?: Record<string, { default?: string | number | boolean }>;
}

/** "10s", "1m30s", "500ms" as nanoseconds (Docker's unit for healthchecks). */
function nanoseconds(duration: string | undefined): number | undefined {
  if (duration === undefined) return undefined;
  const units: Record<string, number> = { ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  for (const m of duration.matchAll(/(\d+)(ms|s|m|h)/g)) total += Number(m[1]) * (units[m[2] ?? 's'] ?? 0);
  return total;
}

export interface ExitNetwork {
  name: string;
  bridge: string;
  subnet: string;
  /** `10.x.y.<n>` */
  address(n: number): string;
  remove(): Promise<void>;
}

/** A bridge network of the test's own, named bridge, on a free 10.220.x.0/24. */
export async function createExitNetwork(prefix: string): Promise<ExitNetwork> {
  const hex = randomBytes(2).toString('hex');
  const name = `${prefix}-net-${hex}`;
  const bridge = `${prefix}br${hex}`;
  const used = new Set((await docker.listNetworks()).flatMap((n) => n.IPAM?.Config ?? []).map((c) => c.Subnet));
  const start = randomBytes(1)[0] ?? 0;
  for (let i = 0; i < 256; i++) {
    const base = `10.220.${(start + i) % 256}`;
    if (used.has(`${base}.0/24`)) continue;
    try {
      const network = await docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        Labels: { ...TEST_LABELS, [EXIT_TEST_LABEL]: prefix },
        IPAM: { Config: [{ Subnet: `${base}.0/24`, Gateway: `${base}.1` }] },
        Options: { 'com.docker.network.bridge.name': bridge },
      });
      return {
        name,
        bridge,
        subnet: `${base}.0/24`,
        address: (n) => `${base}.${n}`,
        remove: async () => void (await network.remove().catch(() => undefined)),
      };
    } catch (err) {
      if (!/overlap|already/i.test((err as Error).message)) throw err;
    }
  }
  throw new Error('no free /24 in 10.220.0.0/16 for an exit test network');
}

export interface TestContainer {
  name: string;
  id: string;
  ip: string;
  exec(argv: string[], timeoutMs?: number): Promise<ExecResult>;
  remove(): Promise<void>;
}

function handle(name: string, id: string, ip: string): TestContainer {
  return {
    name,
    id,
    ip,
    exec: (argv, timeoutMs) => execInContainer(docker, { name, id }, argv, timeoutMs === undefined ? {} : { timeoutMs }),
    remove: async () => void (await docker.getContainer(id).remove({ force: true }).catch(() => undefined)),
  };
}

export interface ExitOptions {
  prefix: string;
  /** The catalog folder, e.g. `exit-wireguard`. */
  service: string;
  network: ExitNetwork;
  ip: string;
  /** The Connection's configFile contents. */
  configFile: string;
  /** Values for the manifest's config_schema (the rest take their defaults). */
  config?: Record<string, string | number | boolean>;
  /** Replaces the template's healthcheck interval (a test waits for fewer seconds). */
  healthInterval?: string;
  /** Replaces the template's healthcheck start period (during which failures do not count). */
  healthStartPeriod?: string;
}

export interface ExitContainer extends TestContainer {
  /** Docker's health status: starting, healthy or unhealthy. */
  health(): Promise<string>;
  /** running, exited…, and the exit code. */
  state(): Promise<{ status: string; exitCode: number; restarts: number }>;
  logs(): Promise<string>;
  /** `docker restart` (the stop timeout of the container, 3 s). */
  restart(): Promise<void>;
  /** `docker kill`, then `docker start` once it has stopped. */
  killAndStart(): Promise<void>;
}

/** Creates and starts the exit as its template says. */
export async function startExit(options: ExitOptions): Promise<ExitContainer> {
  const dir = path.join(STORE, options.service);
  const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as ManifestSubset;
  const template = YAML.parse(await readFile(path.join(dir, 'compose-template.yml'), 'utf8')) as { services: Record<string, TemplateService> };
  const [service] = Object.values(template.services);
  if (service === undefined) throw new Error(`${options.service}: the template has no service`);
  const values: Record<string, string> = {};
  for (const [key, field] of Object.entries(manifest.config_schema ?? {})) values[key.toUpperCase()] = String(options.config?.[key] ?? field.default ?? '');
  const env = Object.entries(service.environment ?? {}).map(([k, v]) => `${k}=${String(v).replace(/\$\{PIC_CFG_([A-Z0-9_]+)\}/g, (_, key: string) => values[key] ?? '')}`);

  const work = await mkdtemp(path.join(tmpdir(), `${options.prefix}-exit-`));
  const configPath = path.join(work, 'config');
  await writeFile(configPath, options.configFile, { mode: 0o600 });
  await chmod(configPath, 0o600);
  const name = `${options.prefix}-exit-${randomBytes(3).toString('hex')}`;
  const hc = service.healthcheck;
  const container = await docker.createContainer({
    name,
    // Loaded by build-exits.sh, not pulled: the pinned digest is the local image ID.
    Image: service.image.includes('@') ? service.image.slice(service.image.indexOf('@') + 1) : service.image,
    Env: env,
    Labels: { ...TEST_LABELS, [EXIT_TEST_LABEL]: options.prefix },
    ...(hc
      ? {
          Healthcheck: {
            Test: hc.test,
            Interval: nanoseconds(options.healthInterval ?? hc.interval),
            Timeout: nanoseconds(hc.timeout),
            Retries: hc.retries,
            StartPeriod: nanoseconds(options.healthStartPeriod ?? hc.start_period),
          },
        }
      : {}),
    StopTimeout: 3,
    HostConfig: {
      CapAdd: service.cap_add ?? [],
      Devices: (service.devices ?? []).map((d) => ({ PathOnHost: d, PathInContainer: d, CgroupPermissions: 'rwm' })),
      Sysctls: service.sysctls ?? {},
      Binds: [`${configPath}:${manifest.connectivity.config_path}:ro`],
      NetworkMode: options.network.name,
      ...(service.restart ? { RestartPolicy: { Name: service.restart } } : {}),
    },
    NetworkingConfig: { EndpointsConfig: { [options.network.name]: { IPAMConfig: { IPv4Address: options.ip } } } },
  });
  await container.start();
  const base = handle(name, container.id, options.ip);
  return {
    ...base,
    async health() {
      return (await container.inspect()).State.Health?.Status ?? 'none';
    },
    async state() {
      const s = await container.inspect();
      return { status: s.State.Status, exitCode: s.State.ExitCode, restarts: s.RestartCount };
    },
    async logs() {
      return demultiplex(await container.logs({ stdout: true, stderr: true, tail: 80 }));
    },
    async restart() {
      await container.restart({ t: 3 });
    },
    async killAndStart() {
      await container.kill();
      await until('the killed exit to stop', async () => !(await container.inspect()).State.Running, 20_000);
      await container.start();
    },
    async remove() {
      await base.remove();
      await rm(work, { recursive: true, force: true });
    },
  };
}

/** The text of a log stream Docker multiplexes (8-byte frame headers) for a container without a TTY. */
function demultiplex(raw: Buffer): string {
  const parts: string[] = [];
  for (let at = 0; at + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(at + 4);
    parts.push(raw.subarray(at + 8, at + 8 + size).toString('utf8'));
    at += 8 + size;
  }
  return parts.join('');
}

/** A busybox container that sleeps, with these network settings. */
async function startSleeper(prefix: string, ip: string, network: Pick<Dockerode.ContainerCreateOptions, 'NetworkingConfig'> & { mode: string }): Promise<TestContainer> {
  await buildBusyboxImage(CLIENT_IMAGE);
  const name = `${prefix}-client-${randomBytes(3).toString('hex')}`;
  const container = await docker.createContainer({
    name,
    Image: CLIENT_IMAGE,
    Cmd: ['sh', '-c', "trap 'exit 0' TERM; while :; do sleep 1; done"],
    Labels: { ...TEST_LABELS, [EXIT_TEST_LABEL]: prefix },
    HostConfig: { NetworkMode: network.mode },
    ...(network.NetworkingConfig ? { NetworkingConfig: network.NetworkingConfig } : {}),
  });
  await container.start();
  return handle(name, container.id, ip);
}

/** A busybox container that sleeps: the "service" whose traffic is steered. */
export function startClient(prefix: string, network: ExitNetwork, ip: string): Promise<TestContainer> {
  return startSleeper(prefix, ip, { mode: network.name, NetworkingConfig: { EndpointsConfig: { [network.name]: { IPAMConfig: { IPv4Address: ip } } } } });
}

/**
 * The same busybox container in another container's network namespace (`--network container:`):
 * the "VPN sidecar" way, where the service's own packets leave by the tunnel of the container
 * whose namespace it shares, without the host steering anything.
 */
export function startClientBeside(prefix: string, beside: TestContainer): Promise<TestContainer> {
  return startSleeper(prefix, beside.ip, { mode: `container:${beside.id}` });
}

/** The routing table the steering of this prefix uses (stable, so leftovers are found). */
function steeringTable(prefix: string): number {
  let h = 0;
  for (const c of prefix) h = (h * 31 + c.charCodeAt(0)) % 9000;
  return 31000 + h;
}

/**
 * What pic does on the host for a service assigned to a Connection: every packet from the
 * service's address to anything outside the cell network goes to the exit as next hop, and its
 * DNS queries (udp and tcp 53) are rewritten to the exit's address. Returns the undo.
 */
export async function steerThroughExit(prefix: string, network: ExitNetwork, client: TestContainer, exit: TestContainer): Promise<() => Promise<void>> {
  const table = String(steeringTable(prefix));
  const comment = `${prefix}-steer`;
  await sh(['ip', 'route', 'replace', 'default', 'via', exit.ip, 'dev', network.bridge, 'table', table]);
  await sh(['ip', 'rule', 'add', 'from', client.ip, 'to', network.subnet, 'lookup', 'main', 'priority', String(Number(table) - 20000)]);
  await sh(['ip', 'rule', 'add', 'from', client.ip, 'lookup', table, 'priority', String(Number(table) - 19999)]);
  for (const proto of ['udp', 'tcp']) {
    await sh(['iptables', '-t', 'nat', '-I', 'PREROUTING', '-s', client.ip, '-p', proto, '--dport', '53', '-m', 'comment', '--comment', comment, '-j', 'DNAT', '--to-destination', `${exit.ip}:53`]);
  }
  return () => removeSteering(prefix);
}

async function removeSteering(prefix: string): Promise<void> {
  const table = steeringTable(prefix);
  const rules = await sh(['ip', 'rule', 'show']);
  for (const line of rules.split('\n')) {
    const m = /^(\d+):/.exec(line);
    if (m && (Number(m[1]) === table - 20000 || Number(m[1]) === table - 19999)) await sh(['ip', 'rule', 'del', 'priority', m[1] ?? '']).catch(() => undefined);
  }
  await sh(['ip', 'route', 'flush', 'table', String(table)]).catch(() => undefined);
  const nat = await sh(['iptables', '-t', 'nat', '-S', 'PREROUTING']);
  for (const line of nat.split('\n')) {
    if (!line.includes(`--comment ${prefix}-steer`)) continue;
    const args = line.replace(/^-A /, '').split(/\s+/).filter((a) => a !== '');
    await sh(['iptables', '-t', 'nat', '-D', ...args]).catch(() => undefined);
  }
}

/** Containers, networks and host rules of an earlier, killed run of this prefix. */
export async function removeExitLeftovers(prefix: string): Promise<void> {
  await removeSteering(prefix);
  await cleanupTestResources(`${EXIT_TEST_LABEL}=${prefix}`);
}
