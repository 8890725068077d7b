/**
 * Upgrades (issue 12): a service with PIC_BENCH_UPGRADE_MIB MiB of data (default 100) in its
 * volume, upgraded by the operator from 1.0.0 to 2.0.0 — snapshot, verification by a test
 * restore, switch, wait for Ready — timed from the document's change to Ready at the new version;
 * the service's downtime measured from outside by an HTTP probe of its address every 20 ms, next
 * to the pause of its snapshot as the snapshot records it.
 */
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SnapshotStore } from '../../state/snapshots.js';
import { StatusStore } from '../../state/status-store.js';
import { waitFor } from '../support/cell.js';
import { containerFacts, createUpgradeCell, execIn, KEY, type Version } from '../support/upgrade-cell.js';
import { writeBenchSection } from './report.js';
import { ms } from './support/probes.js';

const MIB = Number(process.env.PIC_BENCH_UPGRADE_MIB ?? 100);
const V1: Version = { version: '1.0.0', prepare: '', healthcheck: 'passes' };
const V2: Version = { version: '2.0.0', prepare: 'echo 2.0.0 > /data/version;', healthcheck: 'passes' };

function probe(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: ip, port: 8080, path: '/', timeout: 500 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** Probe until stopped; the longest run of failed probes, from the last success before it to the first after. */
function startProbe(ip: () => string | undefined): { stop(): Promise<{ longestMs: number; failures: number }> } {
  let running = true;
  let longest = 0;
  let failures = 0;
  let lastOk = performance.now();
  let down = false;
  const loop = (async () => {
    while (running) {
      const address = ip();
      const ok = address ? await probe(address) : false;
      const now = performance.now();
      if (ok) {
        if (down) longest = Math.max(longest, now - lastOk);
        down = false;
        lastOk = now;
      } else {
        failures++;
        down = true;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { longestMs: longest, failures };
    },
  };
}

async function main(): Promise<void> {
  const cell = await createUpgradeCell();
  const status = new StatusStore(path.join(cell.stateDir, 'status'));
  const operator = await cell.startOperator();
  const readyAt = (version: string) =>
    waitFor(`Ready at ${version}`, async () => {
      const s = await status.get(KEY);
      return s?.phase === 'Ready' && s.facts?.version === version ? s : undefined;
    }, 600_000);
  try {
    await cell.publish(V1);
    await cell.writeInstall('1.0.0', 600);
    await readyAt('1.0.0');
    await execIn(cell.container, ['sh', '-c', 'dd if=/dev/urandom of=/data/blob bs=1M count="$1" 2>/dev/null; i=0; while [ $i -lt 500 ]; do echo $i > /data/small-$i; i=$((i + 1)); done; echo ok > /data/file', 'sh', String(MIB)]);
    let ip = (await containerFacts(cell.container)).ip;
    await cell.publish(V2);
    await operator.resyncAndSettle(60_000);

    const watcher = startProbe(() => ip);
    const refresh = setInterval(() => {
      containerFacts(cell.container).then((f) => (ip = f.ip ?? ip), () => undefined);
    }, 200);
    const t = performance.now();
    await cell.writeInstall('2.0.0', 600);
    await readyAt('2.0.0');
    const total = performance.now() - t;
    // Served again after the switch.
    await waitFor('the new version answering', async () => ((ip && (await probe(ip))) ? true : undefined), 60_000);
    clearInterval(refresh);
    const outage = await watcher.stop();

    const { snapshots } = await new SnapshotStore(path.join(cell.stateDir, 'backups')).list();
    const snapshot = snapshots.find((s) => s.reason === 'upgrade');
    if (!snapshot) throw new Error('no upgrade snapshot was recorded');
    const archive = snapshot.services[0]!.archives[0]!;
    await writeBenchSection(
      'Upgrade',
      [
        {
          name: `upgrade 1.0.0 → 2.0.0 of a service with ${MIB} MiB of data (${archive.files} files): snapshot, verification by a test restore, switch, wait for Ready`,
          result: ms(total),
          target: '— (reported)',
          met: true,
        },
        {
          name: 'downtime of the service, seen by an HTTP probe every 20 ms (snapshot pause and the switch to the new container)',
          result: `${ms(outage.longestMs)} longest outage (${outage.failures} failed probes); snapshot pause ${ms(snapshot.services[0]!.downtimeMs)}`,
          target: '— (reported)',
          met: true,
        },
      ],
      [`Snapshot archive ${(archive.size / 1048576).toFixed(1)} MiB (random data does not compress). The service runs while the snapshot is verified; it is down only while paused for its archive and while its container is recreated from the new image and passes its health check.`],
    );
  } finally {
    await operator.stop();
    await cell.remove([V1, V2]);
  }
}

await main();
