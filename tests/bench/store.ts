/**
 * A published store (issue 22), served by node:http on loopback (tests/support/store-server.ts):
 * the refresh of an unchanged 200-service catalog (requests, bytes, files written: the target is
 * one conditional request and no write), and the install of one service by `pic run --once` from
 * the store's URL against the same from a local folder (fresh state directory each time, so the
 * remote run includes fetching the catalog), median of PIC_BENCH_STORE_RUNS (default 3) each.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { checkStoreUrl } from '../../crds/store-url.js';
import { DEFAULT_MANIFEST_POLICY } from '../../crds/validate-manifest.js';
import { refreshStore } from '../../state/store/refresh.js';
import { createTestCell, removeTestCell, writeDocumentFile } from '../support/cell.js';
import { runPic } from '../support/pic-cli.js';
import { startStoreServer } from '../support/store-server.js';
import { writeBenchSection } from './report.js';
import { ms } from './support/probes.js';

const SERVICES = 200;
const RUNS = Number(process.env.PIC_BENCH_STORE_RUNS ?? 3);

/** A store of `count` services, each a renamed copy of examples/store's homepage. */
async function writeLargeStore(dir: string, count: number): Promise<void> {
  const home = path.join(process.cwd(), 'examples', 'store', 'services', 'homepage');
  const manifest = await fs.readFile(path.join(home, 'manifest.json'), 'utf8');
  const template = await fs.readFile(path.join(home, 'compose-template.yml'), 'utf8');
  const index = [];
  for (let i = 0; i < count; i++) {
    const id = `svc${i}`;
    const rename = (text: string) => text.replaceAll('homepage', id).replaceAll('Homepage', `Service ${i}`).replaceAll('"home"', `"${id}"`);
    await fs.mkdir(path.join(dir, 'services', id), { recursive: true });
    await fs.writeFile(path.join(dir, 'services', id, 'manifest.json'), rename(manifest));
    await fs.writeFile(path.join(dir, 'services', id, 'compose-template.yml'), rename(template));
    index.push({ id, name: `Service ${i}`, description: 'A static homepage served from your cell', version: '1.0.0', author: 'pic examples' });
  }
  await fs.writeFile(path.join(dir, 'index.json'), JSON.stringify(index, null, 2));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function refreshBench(root: string) {
  const store = path.join(root, 'large-store');
  const state = path.join(root, 'large-state');
  await writeLargeStore(store, SERVICES);
  await fs.mkdir(state, { mode: 0o700 });
  const server = await startStoreServer(store);
  try {
    const url = checkStoreUrl(server.url).url!;
    let t = performance.now();
    const first = await refreshStore({ stateRoot: state, url, policy: DEFAULT_MANIFEST_POLICY });
    const firstMs = performance.now() - t;
    if (first.outcome !== 'updated') throw new Error(`the first refresh failed: ${first.failure?.url}: ${first.failure?.message}`);
    t = performance.now();
    const again = await refreshStore({ stateRoot: state, url, policy: DEFAULT_MANIFEST_POLICY });
    const againMs = performance.now() - t;
    return { first, firstMs, again, againMs };
  } finally {
    await server.close();
  }
}

async function installBench() {
  const cell = await createTestCell([{ id: 'web' }], { prefix: 'sto-' });
  const server = await startStoreServer(cell.storeDir);
  const cellFile = path.join(cell.cellDir, 'cell.yaml');
  const localDoc = await fs.readFile(cellFile, 'utf8');
  const remoteDoc = localDoc.replace('store: {path: ../store}', `store: {url: "${server.url}"}`);
  if (remoteDoc === localDoc) throw new Error('the test cell document changed shape');
  await cell.writeService('web');
  const times: Record<'local' | 'remote', number[]> = { local: [], remote: [] };
  try {
    for (let i = 0; i < RUNS; i++) {
      for (const kind of ['local', 'remote'] as const) {
        await writeDocumentFile(cellFile, kind === 'local' ? localDoc : remoteDoc);
        const state = path.join(cell.root, `state-${kind}-${i}`);
        const t = performance.now();
        const run = await runPic(['run', '--once', '--cell', cell.cellDir, '--state-dir', state, '--log-format', 'json']);
        const elapsed = performance.now() - t;
        if (run.code !== 0) throw new Error(`pic run --once (${kind}) exited ${run.code}: ${run.stderr.slice(-2000)}`);
        times[kind].push(elapsed);
        // The next run installs from nothing again: its containers, volumes and network go.
        await removeTestCell({ name: cell.name, network: cell.network });
      }
    }
  } finally {
    await server.close();
    await removeTestCell(cell);
  }
  return { local: median(times.local), remote: median(times.remote) };
}

async function main(): Promise<void> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'sto-bench-'));
  try {
    const refresh = await refreshBench(root);
    const install = await installBench();
    const ratio = install.remote / install.local;
    const { again } = refresh;
    await writeBenchSection('Published store', [
      {
        name: `first refresh of a ${SERVICES}-service remote catalog`,
        result: `${refresh.first.requests} requests, ${refresh.first.bytes} bytes, ${refresh.first.writes} files written, ${ms(refresh.firstMs)}`,
        target: '— (reported)',
        met: true,
      },
      {
        name: `refresh of the unchanged ${SERVICES}-service remote catalog`,
        result: `${again.outcome}: ${again.requests} request${again.requests === 1 ? '' : 's'}, ${again.bytes} bytes, ${again.writes} writes, ${ms(refresh.againMs)}`,
        target: 'one conditional request, 0 writes',
        met: again.outcome === 'unchanged' && again.requests === 1 && again.writes === 0,
      },
      {
        name: 'install of one service by pic run --once from the remote catalog vs from a local folder (fresh state directory, median)',
        result: `${ms(install.remote)} vs ${ms(install.local)} (ratio ${ratio.toFixed(2)})`,
        target: 'ratio ≤ 1.1',
        met: ratio <= 1.1,
      },
    ]);
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

await main();
