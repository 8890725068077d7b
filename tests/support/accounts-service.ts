/**
 * The example services with accounts (notes, files, calendar, email), each running from its real
 * example image on a test network of its own, for the accounts reconciler's integration test.
 *
 * Each container is `cell-pt<hex>-<id>` at a fixed address, with named volumes, labelled with
 * the test marker, this suite and this run, so `removeAccountsTestEnv` deletes exactly what a run
 * made and a later run removes what a killed one left behind. The matching `InstalledService` is
 * the example manifest with `container_name` (and `backend`) pointing at the test container.
 *
 * Faults are real ones: a stopped container (connection refused / not running), and a data
 * directory made read-only, on which notes answers 500 to a create.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ConfigValue } from '../../crds/config.js';
import type { Manifest } from '../../crds/types.js';
import { LABEL } from '../../reconcilers/containers/labels.js';
import { serviceKey } from '../../state/document-keys.js';
import { httpRequest } from '../../reconcilers/shared/http.js';
import type { InstalledService } from '../../reconcilers/shared/types.js';
import { cleanupTestResources, docker, pickSubnet, TEST_LABELS } from './docker.js';

const run = promisify(execFile);

export const ACCOUNTS_SUITE_LABEL = 'ngo.pic.test-suite';
export const ACCOUNTS_SUITE = 'accounts';

export type ExampleServiceId = 'notes' | 'files' | 'calendar' | 'email';

interface ExampleShape {
  image: string;
  env: (domain: string) => string[];
  /** Volume name (as in the manifest) → mount point. */
  volumes: Record<string, string>;
  /** The port its own page answers on, to know it is up. */
  port: number;
  /** The account data directory: made read-only to make the service fail its writes. */
  dataDir: string;
  /** The image's tag (default 1.0.0). */
  version?: string;
}

const EXAMPLES: Record<ExampleServiceId, ExampleShape> = {
  notes: {
    image: 'pic-notes',
    env: (domain) => ['NOTES_PORT=8080', 'NOTES_DATA=/data/notes', `NOTES_DOMAIN=${domain}`],
    volumes: { 'notes-data': '/data/notes' },
    port: 8080,
    dataDir: '/data/notes',
  },
  files: {
    image: 'pic-files',
    env: () => ['FILES_DATA=/data/files', 'FILES_ACCOUNTS=/data/accounts'],
    volumes: { 'files-data': '/data/files', 'files-accounts': '/data/accounts' },
    port: 8080,
    dataDir: '/data/accounts',
  },
  calendar: {
    image: 'pic-calendar',
    env: () => ['CAL_DATA=/data/calendar'],
    volumes: { 'calendar-data': '/data/calendar' },
    port: 5232,
    dataDir: '/data/calendar',
  },
  email: {
    image: 'pic-mail',
    env: (domain) => [`MAIL_DOMAIN=${domain}`, 'MAIL_DATA=/data/mail', `MAIL_HOSTNAME=mail.${domain}`],
    volumes: { 'mail-data': '/data/mail', 'mail-queue': '/var/spool/postfix' },
    port: 8080,
    dataDir: '/data/mail',
    version: '2.0.0',
  },
};

export const EXAMPLE_DOMAIN = 'demo.pic.test';
const IMAGE_VERSION = '1.0.0';

export function exampleManifest(id: string): Manifest {
  return JSON.parse(readFileSync(path.join(process.cwd(), 'examples', 'store', 'services', id, 'manifest.json'), 'utf8')) as Manifest;
}

/** The applications built from Debian packages by examples/images/build-apps.sh, not build.sh. */
const APP_IMAGES = new Set(['pic-calendar', 'pic-files', 'pic-mail']);

/**
 * Builds (offline) the example images that are not loaded yet: examples/images/build.sh for the
 * busybox ones, examples/images/build-apps.sh for the applications (calendar, files, mail).
 */
export async function ensureExampleImages(): Promise<void> {
  const scripts = new Set<string>();
  for (const shape of Object.values(EXAMPLES)) {
    try {
      await docker.getImage(`git.pic.ngo/roof/${shape.image}:${shape.version ?? IMAGE_VERSION}`).inspect();
    } catch {
      scripts.add(APP_IMAGES.has(shape.image) ? 'build-apps.sh' : 'build.sh');
    }
  }
  for (const script of scripts) await run('bash', [path.join(process.cwd(), 'examples', 'images', script)], { maxBuffer: 16 * 1024 * 1024 });
}

export interface AccountsTestEnv {
  /** `pt<8 hex>`: in every name this run creates. */
  tag: string;
  network: string;
  subnet: string;
  labels: Record<string, string>;
  /** The cell label its service containers carry (what pic would put on them), and the accounts reconciler is given. */
  cellName: string;
  /** An address of the test subnet: ipOf(20) is x.y.z.20. */
  ipOf(host: number): string;
}

/** Removes what killed runs of this suite left (older than 30 minutes), then makes a network for this run. */
export async function createAccountsTestEnv(): Promise<AccountsTestEnv> {
  await cleanupTestResources(`${ACCOUNTS_SUITE_LABEL}=${ACCOUNTS_SUITE}`, { olderThanMs: 30 * 60_000 });
  await ensureExampleImages();
  const tag = `pt${randomBytes(4).toString('hex')}`;
  const labels = { ...TEST_LABELS, [ACCOUNTS_SUITE_LABEL]: ACCOUNTS_SUITE, 'ngo.pic.test-run': tag };
  const network = `pictest-${tag}-accounts`;
  for (let attempt = 0; ; attempt++) {
    const subnet = await pickSubnet();
    try {
      await docker.createNetwork({ Name: network, Driver: 'bridge', CheckDuplicate: true, Labels: labels, IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } });
      return { tag, network, subnet, labels, cellName: network, ipOf: (host) => subnet.replace(/\.0\/24$/, `.${host}`) };
    } catch (err) {
      // Another suite took the subnet between the pick and the create.
      if (attempt >= 5 || !/overlap/i.test((err as Error).message)) throw err;
    }
  }
}

/** Removes every container, volume and the network of this run. */
export async function removeAccountsTestEnv(env: AccountsTestEnv | undefined): Promise<void> {
  if (env) await cleanupTestResources(`ngo.pic.test-run=${env.tag}`);
}

export interface RunningExample {
  id: ExampleServiceId;
  container: string;
  ip: string;
  /** The example manifest aimed at the test container, with its config merged. */
  service: InstalledService;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Make the account store read-only (true), so every write fails, or writable again (false). */
  failWrites(on: boolean): Promise<void>;
  /** Run a command in the container as its service user, like `docker exec -i`. */
  exec(argv: string[], stdin?: string): Promise<{ stdout: string; exitCode: number }>;
}

/**
 * Starts the example service `id` at `env.ipOf(host)` and waits until it answers on its port.
 * `config` replaces the manifest defaults (email gets `{domain: demo.pic.test}` unless given).
 */
export async function startExampleService(
  env: AccountsTestEnv,
  id: ExampleServiceId,
  host: number,
  config?: Record<string, ConfigValue>,
): Promise<RunningExample> {
  const shape = EXAMPLES[id];
  const container = `cell-${env.tag}-${id}`;
  const ip = env.ipOf(host);
  const binds: string[] = [];
  for (const [volume, mount] of Object.entries(shape.volumes)) {
    const name = `${container}-${volume}`;
    await docker.createVolume({ Name: name, Labels: env.labels });
    binds.push(`${name}:${mount}`);
  }
  await docker.createContainer({
    name: container,
    Image: `git.pic.ngo/roof/${shape.image}:${shape.version ?? IMAGE_VERSION}`,
    Env: shape.env(EXAMPLE_DOMAIN),
    // What pic puts on a service's container: the account managers exec only into one carrying them.
    Labels: { ...env.labels, [LABEL.owner]: serviceKey(id), [LABEL.cell]: env.cellName },
    StopTimeout: 5,
    HostConfig: { NetworkMode: env.network, Binds: binds, RestartPolicy: { Name: 'no' } },
    NetworkingConfig: { EndpointsConfig: { [env.network]: { IPAMConfig: { IPv4Address: ip } } } },
  });

  const manifest = exampleManifest(id);
  const port = manifest.backend?.split(':')[1];
  manifest.container_name = container;
  if (manifest.backend !== undefined && manifest.accounts?.manager === 'http') manifest.backend = `${container}:${port}`;
  const defaults: Record<string, ConfigValue> = {};
  for (const [key, field] of Object.entries(manifest.config_schema ?? {})) if (field.default !== undefined) defaults[key] = field.default;
  const merged = config ?? (id === 'email' ? { domain: EXAMPLE_DOMAIN } : {});
  const service: InstalledService = {
    name: id,
    manifest,
    config: { ...defaults, ...merged },
    serviceIp: ip,
    egress: { connection: 'default', type: 'default', failOpen: false },
  };

  const handle = docker.getContainer(container);
  const waitReady = async () => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const response = await httpRequest(`http://${ip}:${shape.port}/`, { timeoutMs: 2_000 });
        if (response.status < 500) return;
      } catch {
        // not up yet
      }
      const state = (await handle.inspect()).State;
      if (!state.Running) throw new Error(`${container} is not running (exit ${state.ExitCode}); see docker logs ${container}`);
      if (Date.now() > deadline) throw new Error(`${container} did not answer on ${ip}:${shape.port} within 30 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const dockerExec = async (argv: string[], user?: string, stdin?: string) => {
    const args = ['exec', ...(stdin === undefined ? [] : ['-i']), ...(user ? ['-u', user] : []), container, ...argv];
    return new Promise<{ stdout: string; exitCode: number }>((resolve, reject) => {
      const child = execFile('docker', args, (err, stdout) => {
        const code = (err as { code?: unknown } | null)?.code;
        if (err instanceof Error && typeof code !== 'number') reject(err);
        else resolve({ stdout, exitCode: typeof code === 'number' ? code : 0 });
      });
      child.stdin?.end(stdin ?? '');
    });
  };

  await handle.start();
  await waitReady();
  return {
    id,
    container,
    ip,
    service,
    stop: async () => {
      await handle.stop({ t: 5 });
    },
    start: async () => {
      await handle.start();
      await waitReady();
    },
    failWrites: async (on) => {
      const result = await dockerExec(['chmod', on ? '0555' : '0755', shape.dataDir], '0');
      if (result.exitCode !== 0) throw new Error(`chmod of ${shape.dataDir} in ${container} failed`);
    },
    exec: (argv, stdin) => dockerExec(argv, undefined, stdin),
  };
}
