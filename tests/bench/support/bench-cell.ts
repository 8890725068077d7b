/**
 * A throwaway cell for the reconcile-loop benchmarks: like tests/support/cell.ts, but with any
 * number of services whose containers stop at once (the shell traps SIGTERM and exits), so a
 * recreate measures pic and Docker rather than a ten-second stop timeout. Names are
 * `pictest-pt<hex>` / `cell-pt<hex>-*`, so `removeTestCell` (and its stale-cell sweep) apply.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serviceInstallDocument, TEST_IMAGE, testCellDocument, writeDocumentFile } from '../../support/cell.js';
import { buildBusyboxImage, pickSubnet } from '../../support/docker.js';

/** PID 1 is a shell that exits on SIGTERM; httpd runs beside it as a job. */
export const FAST_STOP_COMMAND = ['sh', '-c', "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"];

export interface BenchCell {
  name: string;
  tag: string;
  root: string;
  cellDir: string;
  storeDir: string;
  stateDir: string;
  network: string;
  subnet: string;
  domain: string;
  ids: string[];
  containerName(id: string): string;
  /** Write a ServiceInstall as an editor would: beside, then renamed over. */
  writeService(id: string, config?: Record<string, string>): Promise<void>;
}

export function serviceIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `svc${String(i).padStart(3, '0')}`);
}

function manifestOf(tag: string, id: string) {
  return {
    schema_version: 3,
    id,
    name: `Bench ${id}`,
    description: 'A benchmark service',
    version: '1.0.0',
    author: 'pic bench',
    kind: 'store',
    capabilities: { has_subdomain: false, has_accounts: false, has_admin_config: true, has_storage: false, has_egress: false, has_api_hooks: false },
    config_schema: { greeting: { type: 'string', label: 'Greeting', default: 'hello' } },
    image: TEST_IMAGE,
    container_name: `cell-${tag}-${id}`,
    volumes: [{ name: `${id}-data`, mount: '/data' }],
    compose: null,
  };
}

function templateOf(tag: string, id: string): string {
  return `services:
  ${id}:
    image: ${TEST_IMAGE}
    container_name: cell-${tag}-${id}
    command: ${JSON.stringify(FAST_STOP_COMMAND)}
    environment:
      GREETING: "\${PIC_CFG_GREETING}"
      DOMAIN: "\${PIC_DOMAIN}"
    volumes:
      - data:/data
    networks:
      cell-network:
        ipv4_address: "\${SERVICE_IP}"
    restart: unless-stopped
volumes:
  data: {}
networks:
  cell-network:
    external: true
`;
}

/**
 * .20 of the first /24 of a /22 to .254 of its last: 1,003 addresses (to .250 it held 999, one short
 * of a 1,000-service cell, whose last service then waited for an address for ever).
 */
export function widePool(subnet: string): string {
  const [a, b, c] = subnet.split('/')[0]!.split('.').map(Number) as [number, number, number];
  return `${a}.${b}.${c}.20-${a}.${b}.${c + 3}.254`;
}

/** A catalog of `count` services and a cell folder installing every one of them. */
export async function createBenchCell(count: number): Promise<BenchCell> {
  // One /24 up to 230 services, a /22 (four of them, under the 1,024 ports of a Linux bridge) beyond.
  if (count > 1000) throw new RangeError('a bench cell has at most a /22: at most 1,000 services');
  await buildBusyboxImage(TEST_IMAGE);
  const tag = `pt${randomBytes(4).toString('hex')}`;
  const name = `pictest-${tag}`;
  const domain = `${tag}.pic.test`;
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-bench-'));
  const cellDir = path.join(root, 'cell');
  const storeDir = path.join(root, 'store');
  const stateDir = path.join(root, 'state');
  const subnet = await pickSubnet(count > 230 ? 22 : 24);
  const ids = serviceIds(count);
  for (const d of ['services', 'peers', 'connections']) await fs.mkdir(path.join(cellDir, d), { recursive: true });
  for (const id of ids) {
    const dir = path.join(storeDir, 'services', id);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifestOf(tag, id), null, 2));
    await fs.writeFile(path.join(dir, 'compose-template.yml'), templateOf(tag, id));
  }
  await fs.writeFile(
    path.join(storeDir, 'index.json'),
    JSON.stringify(ids.map((id) => ({ id, name: `Bench ${id}`, description: 'A benchmark service', version: '1.0.0', author: 'pic bench' }))),
  );
  await fs.writeFile(path.join(cellDir, 'cell.yaml'), testCellDocument({ name, domain, subnet, poolEnd: 250, allowedImagePrefix: 'pictest/', ...(count > 230 ? { servicePool: widePool(subnet) } : {}) }));
  const cell: BenchCell = {
    name,
    tag,
    root,
    cellDir,
    storeDir,
    stateDir,
    network: name,
    subnet,
    domain,
    ids,
    containerName: (id) => `cell-${tag}-${id}`,
    async writeService(id, config = {}) {
      await writeDocumentFile(path.join(cellDir, 'services', `${id}.yaml`), serviceInstallDocument(id, config, undefined, 'default'));
    },
  };
  for (const id of ids) await cell.writeService(id);
  return cell;
}
