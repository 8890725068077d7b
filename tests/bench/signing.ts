/**
 * Signed images (issue 14), against a real registry (docker-registry on loopback):
 *
 *  1. the signature check of one image on a cache miss (legacy `.sig` tag; bundle through the
 *     referrers tag-schema index), next to `docker pull` of the same image already present;
 *  2. a no-op resync of N verified services under enforce: registry requests (expected 0, the
 *     verification cache answers) and Docker requests (expected 1, the listing) per pass.
 *
 * PIC_BENCH_SIGNING_SERVICES sets N (default 100).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Dockerode from 'dockerode';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { ImageVerifier } from '../../reconcilers/images/index.js';
import { loadPublicKeys } from '../../reconcilers/images/keys.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import { removeTestCell, TEST_IMAGE, testCellDocument } from '../support/cell.js';
import { generateTestKey, signBundle, signLegacy, writePublicKey } from '../support/cosign-signer.js';
import { buildBusyboxImage, docker, followStream } from '../support/docker.js';
import { getManifest, pushLocalImage, startRegistry } from '../support/registry.js';
import { writeBenchSection } from './report.js';
import { createBenchCell } from './support/bench-cell.js';
import { isContainerListing, median, ms, recordDockerRequests } from './support/probes.js';

const SERVICES = Number(process.env.PIC_BENCH_SIGNING_SERVICES ?? 100);
const MISSES = 20;
const PULLS = 10;
const PASSES = 10;

async function main(): Promise<void> {
  const registry = await startRegistry();
  const scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-bench-signing-'));
  const pulled: string[] = [];
  let cell: Awaited<ReturnType<typeof createBenchCell>> | undefined;
  let op: Operator | undefined;
  try {
    await buildBusyboxImage(TEST_IMAGE);
    const key = generateTestKey();
    const keyFile = await writePublicKey(scratch, 'bench.pub', key);
    const keys = await loadPublicKeys([keyFile]);
    const settings = { mirrors: { 'git.pic.ngo': registry.host }, insecure: [] };

    // 1. Cache misses, one image per format.
    const legacyRepo = 'roof/bench-legacy';
    const legacyDigest = await pushLocalImage(TEST_IMAGE, registry.host, legacyRepo, '1');
    await signLegacy(registry.host, legacyRepo, `git.pic.ngo/${legacyRepo}`, legacyDigest, key);
    const bundleRepo = 'roof/bench-bundle';
    const bundleDigest = await pushLocalImage(TEST_IMAGE, registry.host, bundleRepo, '1');
    const m = (await getManifest(registry.host, bundleRepo, bundleDigest))!;
    await signBundle(registry.host, bundleRepo, `git.pic.ngo/${bundleRepo}`, { digest: bundleDigest, size: m.bytes.length, mediaType: m.mediaType }, key);
    const miss = async (ref: string) => {
      const times: number[] = [];
      let requests = 0;
      for (let i = 0; i < MISSES; i++) {
        const v = new ImageVerifier(await fs.mkdtemp(path.join(scratch, 'state-')), async () => undefined);
        const t0 = performance.now();
        const { verdict } = await v.verify(ref, keys, settings);
        times.push(performance.now() - t0);
        if (!verdict.ok) throw new Error(`${ref} should verify: ${verdict.message}`);
        requests = v.requests;
      }
      return { med: median(times), max: Math.max(...times), requests };
    };
    const legacy = await miss(`git.pic.ngo/${legacyRepo}@${legacyDigest}`);
    const bundle = await miss(`git.pic.ngo/${bundleRepo}@${bundleDigest}`);
    const pullRef = `${registry.host}/${legacyRepo}@${legacyDigest}`;
    pulled.push(pullRef, `${registry.host}/${bundleRepo}@${bundleDigest}`);
    await followStream(await docker.pull(pullRef), `pull of ${pullRef}`);
    const pullTimes: number[] = [];
    for (let i = 0; i < PULLS; i++) {
      const t0 = performance.now();
      await followStream(await docker.pull(pullRef), `pull of ${pullRef}`);
      pullTimes.push(performance.now() - t0);
    }

    // 2. A no-op resync of SERVICES verified services.
    cell = await createBenchCell(SERVICES);
    for (const id of cell.ids) {
      const repository = `roof/${cell.tag}-${id}`;
      const digest = await pushLocalImage(TEST_IMAGE, registry.host, repository, '1');
      await signLegacy(registry.host, repository, `git.pic.ngo/${repository}`, digest, key);
      pulled.push(`${registry.host}/${repository}@${digest}`);
      for (const file of ['manifest.json', 'compose-template.yml']) {
        const p = path.join(cell.storeDir, 'services', id, file);
        await fs.writeFile(p, (await fs.readFile(p, 'utf8')).split(TEST_IMAGE).join(`git.pic.ngo/${repository}@${digest}`));
      }
    }
    await fs.copyFile(keyFile, path.join(cell.cellDir, 'bench.pub'));
    const doc = testCellDocument({ name: cell.name, domain: cell.domain, subnet: cell.subnet, poolEnd: 250, allowedImagePrefix: 'git.pic.ngo/roof/', extra: [`  registries: {mirrors: {git.pic.ngo: "${registry.host}"}}`] })
      .replace('  imageVerification: {mode: warn}\n', '  imageVerification: {mode: enforce, publicKey: ./bench.pub}\n');
    await fs.writeFile(path.join(cell.cellDir, 'cell.yaml'), doc);
    const client = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
    const recorder = recordDockerRequests(client);
    op = new Operator({ cellDir: cell.cellDir, stateDir: new StateDir(cell.stateDir), docker: client, logger: createLogger({ json: true, level: 'error' }), resyncIntervalMs: 3_600_000, watch: false });
    await op.stateDirReady();
    await op.start();
    const statuses = new StatusStore(path.join(cell.stateDir, 'status'));
    for (let i = 0; ; i++) {
      await op.queue.whenIdle(120_000);
      const ready = (await statuses.list()).filter((s) => s.kind === 'ServiceInstall' && s.phase === 'Ready').length;
      if (ready === SERVICES) break;
      if (i > 600) throw new Error(`only ${ready} of ${SERVICES} services became Ready`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const verifier = op.ctx.imageVerifier;
    const registryRequests: number[] = [];
    const dockerRequests: number[] = [];
    const listings: number[] = [];
    const passTimes: number[] = [];
    for (let i = 0; i < PASSES; i++) {
      const before = verifier.requests;
      recorder.start();
      const t0 = performance.now();
      await op.resyncAndSettle();
      passTimes.push(performance.now() - t0);
      const made = recorder.stop();
      registryRequests.push(verifier.requests - before);
      dockerRequests.push(made.length);
      listings.push(made.filter(isContainerListing).length);
    }
    const exactly = (values: number[], n: number) => values.every((v) => v === n);
    await writeBenchSection(
      'Signed images',
      [
        { name: 'signature check of one image, cache miss, legacy `.sig` tag (loopback registry)', result: `median ${ms(legacy.med)}, max ${ms(legacy.max)} (${MISSES} runs; ${legacy.requests} registry requests)`, target: '≤ 50 ms', met: legacy.med <= 50 },
        { name: 'signature check of one image, cache miss, sigstore bundle via the `sha256-<hex>` index', result: `median ${ms(bundle.med)}, max ${ms(bundle.max)} (${MISSES} runs; ${bundle.requests} registry requests)`, target: '≤ 50 ms', met: bundle.med <= 50 },
        { name: '`docker pull` by digest of the same image, already present', result: `median ${ms(median(pullTimes))}, max ${ms(Math.max(...pullTimes))} (${PULLS} runs)`, target: '— (for comparison)', met: true },
        { name: `no-op resync of ${SERVICES} verified services under enforce: registry requests per pass`, result: registryRequests.join(', '), target: 'exactly 0', met: exactly(registryRequests, 0) },
        { name: `no-op resync of ${SERVICES} verified services: Docker requests per pass`, result: `listings ${listings.join(', ')}; all ${dockerRequests.join(', ')}`, target: 'exactly 1 (the listing)', met: exactly(listings, 1) && exactly(dockerRequests, 1) },
        { name: `no-op resync of ${SERVICES} verified services: time per pass`, result: `median ${ms(median(passTimes))}, max ${ms(Math.max(...passTimes))} (${PASSES} passes)`, target: '—', met: true },
      ],
      [
        `The registry is Debian's docker-registry (distribution 2.8, no referrers API) on 127.0.0.1, started by the bench; a cache miss is a fresh verification cache per run. ` +
          `A legacy check reads the \`.sig\` manifest and one payload blob; a bundle check also asks the referrers API (404 on this registry) and reads the fallback index, the artifact manifest and the bundle blob, after finding no \`.sig\` tag.`,
      ],
    );
  } finally {
    await op?.stop();
    if (cell) await removeTestCell(cell);
    for (const ref of pulled) await docker.getImage(ref).remove({ noprune: true }).catch(() => undefined);
    await registry.stop();
    await fs.rm(scratch, { recursive: true, force: true });
  }
}

await main();
