/**
 * A cell with one service that keeps data in a volume, published in versions: each version its
 * own image (built here, labelled as a test image) and its own package in the catalog, with a
 * health check that passes, fails, or never finishes. For the upgrade tests and benchmark.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { LABEL } from '../../reconcilers/containers/labels.js';
import { StateDir } from '../../state/state-dir.js';
import { HELPER_IMAGE } from './backup-fixture.js';
import { removeTestCell, testCellDocument, writeDocumentFile } from './cell.js';
import { buildBusyboxImage, docker, pickSubnet } from './docker.js';

export const SERVICE = 'keeper';
export const KEY = `ServiceInstall/${SERVICE}`;

export interface Version {
  version: string;
  /** Shell run before serving: a migration that rewrites the data, say (fixed text, never input). */
  prepare: string;
  healthcheck: 'passes' | 'fails' | 'slow' | 'none';
  /** Docker's restart policy; unless-stopped when not given. */
  restart?: 'no' | 'unless-stopped';
}

export interface UpgradeCell {
  tag: string;
  name: string;
  root: string;
  cellDir: string;
  storeDir: string;
  stateDir: string;
  container: string;
  image(version: string): string;
  /** Environment the operator needs (the backup helper image, names of helper containers). */
  env: Record<string, string>;
  publish(v: Version): Promise<void>;
  /** The ServiceInstall at `version`; `minReadySeconds` left out (pic's default window) unless given. */
  writeInstall(version: string, deadlineSeconds?: number, minReadySeconds?: number): Promise<void>;
  startOperator(): Promise<Operator>;
  remove(versions: readonly Version[]): Promise<void>;
}

export async function createUpgradeCell(): Promise<UpgradeCell> {
  const tag = `pt${randomBytes(4).toString('hex')}`;
  const name = `pictest-${tag}`;
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-upgrade-'));
  const cellDir = path.join(root, 'cell');
  const storeDir = path.join(root, 'store');
  const stateDir = path.join(root, 'state');
  const container = `cell-${tag}-${SERVICE}`;
  const image = (v: string) => `pictest/upgrade-${tag}:${v}`;
  for (const d of ['services', 'peers', 'connections']) await fs.mkdir(path.join(cellDir, d), { recursive: true });
  const subnet = await pickSubnet();
  await fs.writeFile(path.join(cellDir, 'cell.yaml'), testCellDocument({ name, domain: `${tag}.pic.test`, subnet, poolEnd: 100, allowedImagePrefix: 'pictest/' }));
  const env = { PIC_BACKUP_HELPER_IMAGE: HELPER_IMAGE, PIC_BACKUP_NAME_PREFIX: name };

  const manifest = (v: Version) => ({
    schema_version: 3,
    id: SERVICE,
    name: 'Keeper',
    description: 'A service with data',
    version: v.version,
    author: 'pic tests',
    kind: 'store',
    capabilities: { has_subdomain: false, has_accounts: false, has_admin_config: false, has_storage: true, has_egress: false, has_api_hooks: false },
    backup: { volumes: [{ container, path: '/data', name: 'keeper_data' }], config_paths: [] },
    storage: { primary_path: '/data', quota_mb: 1024 },
    image: image(v.version),
    container_name: container,
    volumes: [{ name: 'keeper-data', mount: '/data' }],
    compose: null,
  });
  const template = (v: Version) => {
    const test = v.healthcheck === 'fails' ? '["CMD", "false"]' : v.healthcheck === 'slow' ? '["CMD", "test", "-f", "/never"]' : '["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]';
    return `services:
  ${SERVICE}:
    image: ${image(v.version)}
    container_name: ${container}
    command: ["sh", "-c", "trap 'exit 0' TERM; ${v.prepare} echo ok > /www/index.html && httpd -f -p 8080 -h /www & wait"]
    volumes:
      - data:/data
    networks:
      cell-network:
        ipv4_address: "\${SERVICE_IP}"
    restart: ${v.restart ?? 'unless-stopped'}
${v.healthcheck === 'none' ? '' : `    healthcheck:
      test: ${test}
      interval: 1s
      timeout: 2s
      retries: ${v.healthcheck === 'slow' ? 10000 : 2}
`}volumes:
  data: {}
networks:
  cell-network:
    external: true
`;
  };

  return {
    tag,
    name,
    root,
    cellDir,
    storeDir,
    stateDir,
    container,
    image,
    env,
    async publish(v) {
      await buildBusyboxImage(image(v.version), { files: { '/version': v.version } });
      const dir = path.join(storeDir, 'services', SERVICE);
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest(v), null, 2));
      await fs.writeFile(path.join(dir, 'compose-template.yml'), template(v));
      await fs.writeFile(path.join(storeDir, 'index.json'), JSON.stringify([{ id: SERVICE, name: 'Keeper', description: 'A service with data', version: v.version, author: 'pic tests' }]));
    },
    async writeInstall(version, deadlineSeconds = 30, minReadySeconds) {
      const window = minReadySeconds === undefined ? '' : `  minReadySeconds: ${minReadySeconds}\n`;
      await writeDocumentFile(
        path.join(cellDir, 'services', `${SERVICE}.yaml`),
        `apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: ${SERVICE}}\nspec:\n  version: ${version}\n  upgrade: {deadlineSeconds: ${deadlineSeconds}}\n${window}`,
      );
    },
    async startOperator() {
      Object.assign(process.env, env);
      const op = new Operator({ cellDir, stateDir: new StateDir(stateDir), docker, logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }), resyncIntervalMs: 60 * 60_000 });
      await op.stateDirReady();
      await op.start();
      return op;
    },
    async remove(versions) {
      await removeTestCell({ name, network: name });
      for (const v of versions) await docker.getImage(image(v.version)).remove({ force: true }).catch(() => undefined);
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

/** Run a fixed command in a container; its stdout (Docker's multiplexed frames taken apart). */
export async function execIn(container: string, cmd: string[]): Promise<string> {
  const exec = await docker.getContainer(container).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve());
    stream.on('error', reject);
  });
  const raw = Buffer.concat(chunks);
  let out = '';
  for (let i = 0; i + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(i + 4);
    if (raw[i] === 1) out += raw.subarray(i + 8, i + 8 + size).toString('utf8');
    i += 8 + size;
  }
  return out;
}

export async function containerFacts(container: string): Promise<{ id: string; image: string; specHash: string; state: string; ip?: string }> {
  const info = await docker.getContainer(container).inspect();
  const ip = Object.values(info.NetworkSettings.Networks ?? {})[0]?.IPAddress;
  return { id: info.Id, image: info.Config.Image, specHash: info.Config.Labels?.[LABEL.specHash] ?? '', state: info.State.Status, ...(ip ? { ip } : {}) };
}
