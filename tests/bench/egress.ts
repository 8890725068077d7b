/**
 * Benchmarks of egress (issue 20), against the real dockerd, the real `wireguard_ext` exit of the
 * example catalog (its image from examples/images/build-exits.sh, its container from its own
 * template: tests/support/exit-container.ts), pic's own host steering (the egress reconciler,
 * reconcilers/egress/, as `pic run` applies it) and a remote WireGuard site and an uplink that are
 * network namespaces of the bench's own (tests/support/remote-sites.ts; 198.18.0.0/15 on veths):
 *
 *  a. throughput of a service steered by pic through the exit, against the same transfer (the
 *     same bytes from the same remote site) from a container sharing the network namespace of an
 *     equal wireguard-go tunnel: the exit's image and start script with a wg-quick file of its own
 *     (a second peer of the same server), the "VPN sidecar" way. Pairs in alternating order, the
 *     ratio taken per pair;
 *  b. throughput of a service on `default` to the uplink with the steering of ten other services
 *     in place (fence, marks, DNS rewrites, policy rules and tables, written by the reconciler),
 *     against the same cell without any steering; pairs in alternating order;
 *  c. `docker kill` of the exit while the steered service pings through it every 10 ms: packets
 *     arriving at the uplink during the outage (must be 0), then `docker start` → the first of the
 *     service's echo requests arriving at the remote site through the tunnel, without pic
 *     touching anything in between.
 *
 * Sizes: PIC_BENCH_EGRESS_MIB (the remote site's body), PIC_BENCH_EGRESS_UPLINK_MIB (the uplink's),
 * PIC_BENCH_RUNS (pairs for a), PIC_BENCH_EGRESS_DEFAULT_PAIRS (pairs for b), PIC_BENCH_EGRESS_KILLS. Everything created is named eb20*
 * (containers, network, namespaces, veths), the host chains PIC-EG?-<hash of eb20-egress-bench>
 * and the state in <tmp>/eb20-egress-bench-state; all is removed at the end and, left by a killed
 * run, at the start.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CellDocument, ConnectionDocument } from '../../crds/types.js';
import { egressReconciler, loadEgressAllocations } from '../../reconcilers/egress/index.js';
import { egressChainsOf, type AssignedService, type ExitState } from '../../reconcilers/egress/render.js';
import type { CellRouting, ResourceContext } from '../../reconcilers/shared/types.js';
import { docker } from '../support/docker.js';
import {
  createExitNetwork,
  removeExitLeftovers,
  startClient,
  startClientBeside,
  startExit,
  type ExitContainer,
  type ExitNetwork,
  type TestContainer,
} from '../support/exit-container.js';
import { BULK_PATH, removeSiteLeftovers, sh, startUplink, startWireguardSite, until, type Uplink, type WireguardSite } from '../support/remote-sites.js';
import { median } from './support/probes.js';
import { writeBenchSection, type BenchRow } from './report.js';

const SECTION = 'Egress (issue 20)';
const PREFIX = 'eb20';
const CELL = 'eb20-egress-bench';
const STATE_ROOT = path.join(os.tmpdir(), `${CELL}-state`);
const MIB = 1 << 20;
const SITE_BYTES = Number(process.env.PIC_BENCH_EGRESS_MIB ?? 64) * MIB;
const UPLINK_BYTES = Number(process.env.PIC_BENCH_EGRESS_UPLINK_MIB ?? 1024) * MIB;
const PAIRS = Number(process.env.PIC_BENCH_RUNS ?? 7);
/**
 * Pairs for b: its transfers take a fraction of a second at loopback speed, so one scheduling hiccup
 * of this 2-core machine moves a single ratio by ±20 %; the median of many pairs is what holds.
 */
const DEFAULT_PAIRS = Number(process.env.PIC_BENCH_EGRESS_DEFAULT_PAIRS ?? 21);
const KILLS = Number(process.env.PIC_BENCH_EGRESS_KILLS ?? 3);
const OTHERS = 10;
const OUTAGE_MS = 3000;
/** The fresh pings' spacing (µs, busybox usleep) and the ongoing ping's (s). */
const FRESH_INTERVAL_US = '10000';
const ONGOING_INTERVAL = '0.01';
const ONGOING_GRACE_MS = 5000;
const TUNNEL_RATIO = 0.8;
const DEFAULT_RATIO = 0.95;

// The world ---------------------------------------------------------------------------------------

interface World {
  uplink: Uplink;
  site: WireguardSite;
  network: ExitNetwork;
  /** pic's exit (catalog template) and the service steered to it by the reconciler. */
  exit: ExitContainer;
  steered: TestContainer;
  /** The same image and start script, with the busybox client in its namespace. */
  tunnel: ExitContainer;
  sidecar: TestContainer;
  /** A service on `default`. */
  direct: TestContainer;
}

function cellDocument(network: ExitNetwork): CellDocument {
  return {
    apiVersion: 'pic.ngo/v1alpha1',
    kind: 'Cell',
    metadata: { name: CELL },
    spec: {
      domain: 'egress-bench.test',
      store: { path: './store' },
      network: { name: network.name, subnet: network.subnet, servicePool: network.subnet },
      imageVerification: { mode: 'off' },
      allowedImagePrefix: 'git.pic.ngo/roof/',
    },
  };
}

function connection(name: string): ConnectionDocument {
  return { apiVersion: 'pic.ngo/v1alpha1', kind: 'Connection', metadata: { name }, spec: { type: 'wireguard_ext' } };
}

/** What the egress reconciler gets from the operator: services, their Connections and each exit's address. */
function routing(network: ExitNetwork, assigned: AssignedService[], exits: ExitState[]): CellRouting {
  return { cell: cellDocument(network), services: [], connections: exits.map((e) => connection(e.name)), egress: { assigned, exits } };
}

const events: string[] = [];
const context = (): ResourceContext => ({ docker, stateRoot: STATE_ROOT, cellDir: STATE_ROOT, event: (reason, message) => events.push(`${reason}: ${message}`) });

async function reconcileEgress(input: CellRouting): Promise<void> {
  const outcome = await egressReconciler.reconcile(input, context());
  if (outcome.notReady) throw new Error(`egress not ready: ${outcome.notReady.message}`);
}

/** The host state of this bench's cell: its three chains, its policy rules and tables, its state folder. */
async function removeEgressHostState(): Promise<void> {
  const chains = egressChainsOf(CELL);
  const quiet = (argv: string[]) => sh(argv).catch(() => '');
  for (const [table, chain, parent] of [['filter', chains.fence, 'DOCKER-USER'], ['mangle', chains.marks, 'PREROUTING'], ['nat', chains.dns, 'PREROUTING']] as const) {
    await quiet(['iptables', '-t', table, '-D', parent, '-j', chain]);
    await quiet(['iptables', '-t', table, '-F', chain]);
    await quiet(['iptables', '-t', table, '-X', chain]);
  }
  const allocations = await loadEgressAllocations(STATE_ROOT).catch(() => undefined);
  for (const a of Object.values(allocations?.connections ?? {})) {
    await quiet(['ip', 'route', 'flush', 'table', String(a.table)]);
    for (;;) {
      const deleted = await sh(['ip', 'rule', 'del', 'lookup', String(a.table)]).then(() => true, () => false);
      if (!deleted) break;
    }
  }
  await fs.rm(STATE_ROOT, { recursive: true, force: true });
}

/** The host's rules of this cell, counted (to say what was in place). */
async function countSteering(): Promise<{ fence: number; marks: number; dns: number; rules: number }> {
  const chains = egressChainsOf(CELL);
  const count = async (table: string, chain: string) => (await sh(['iptables', '-t', table, '-S', chain]).catch(() => '')).split('\n').filter((l) => l.startsWith('-A ')).length;
  const allocations = await loadEgressAllocations(STATE_ROOT).catch(() => undefined);
  const tables = new Set(Object.values(allocations?.connections ?? {}).map((a) => String(a.table)));
  const rules = (await sh(['ip', 'rule', 'show'])).split('\n').filter((l) => tables.has(l.trim().split(/\s+/).pop() ?? '')).length;
  return { fence: await count('filter', chains.fence), marks: await count('mangle', chains.marks), dns: await count('nat', chains.dns), rules };
}

// Instruments -------------------------------------------------------------------------------------

/** `adjtimex` (busybox) prints the clock to the microsecond: the container times its own transfer. */
const TIMED_GET = 'adjtimex | grep tv_; wget -q -O /dev/null "$1"; echo "rc=$?"; adjtimex | grep tv_';

/** GET `url` inside `c` to /dev/null; the seconds it took, timed inside the container. */
async function timedGet(c: TestContainer, url: string): Promise<number> {
  const r = await c.exec(['sh', '-c', TIMED_GET, 'sh', url], 300_000);
  const secs = [...r.stdout.matchAll(/tv_sec:\s*(\d+)/g)].map((m) => Number(m[1]));
  const usecs = [...r.stdout.matchAll(/tv_usec:\s*(\d+)/g)].map((m) => Number(m[1]));
  if (!r.stdout.includes('rc=0') || secs.length !== 2 || usecs.length !== 2) throw new Error(`GET ${url} in ${c.name} failed: ${r.stdout.trim()} ${r.stderr.trim()}`);
  return secs[1]! - secs[0]! + (usecs[1]! - usecs[0]!) / 1e6;
}

/** The bytes a GET of `url` inside `c` returns (to check both sides move the same bytes). */
async function bytesOf(c: TestContainer, url: string): Promise<number> {
  const r = await c.exec(['sh', '-c', 'wget -q -O - "$1" | wc -c', 'sh', url], 300_000);
  return Number(r.stdout.trim());
}

async function body(c: TestContainer, url: string): Promise<string> {
  const r = await c.exec(['timeout', '5', 'wget', '-q', '-O', '-', url], 15_000);
  return r.exitCode === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
}

const mbits = (bytes: number, seconds: number) => (bytes * 8) / seconds / 1e6;

/** Echo requests (ICMP InEchos) the remote site's kernel received: only the tunnel reaches its probe address. */
async function echoCounter(site: WireguardSite): Promise<() => Promise<number>> {
  const pid = (await sh(['ip', 'netns', 'pids', site.ns.name])).split('\n').map((p) => p.trim()).find((p) => /^\d+$/.test(p));
  if (!pid) throw new Error(`no process in ${site.ns.name} to read its counters through`);
  const file = `/proc/${pid}/net/snmp`;
  return async () => {
    const lines = (await fs.readFile(file, 'utf8')).split('\n').filter((l) => l.startsWith('Icmp:'));
    const [names, values] = lines.map((l) => l.trim().split(/\s+/));
    return Number(values?.[names?.indexOf('InEchos') ?? -1]);
  };
}

/**
 * In the steered service, in the background: a one-shot ping to $2 every $1 µs (each a new ICMP
 * id), and one ongoing ping to $4 every $3 s writing its replies to /tmp/ongoing. Prints both pids.
 */
const SENDERS =
  '(while :; do ping -c 1 -W 1 "$2" >/dev/null 2>&1 & usleep "$1"; done) >/dev/null 2>&1 & fresh=$!; ' +
  'ping -i "$3" "$4" >/tmp/ongoing 2>&1 & echo "$fresh $!"';

/** Replies the ongoing ping has printed so far. */
async function ongoingReplies(c: TestContainer): Promise<number> {
  const r = await c.exec(['grep', '-c', 'bytes from', '/tmp/ongoing']);
  return Number(r.stdout.trim() || 0);
}

interface Kill {
  leaked: number;
  sent: number;
  outage: number;
  firstPacket: number;
  startReturned: number;
  resumed: boolean;
}

/** Packets the mark chain counted for the steered service (what it sent to leave the cell). */
async function markedPackets(): Promise<number> {
  const out = await sh(['iptables', '-t', 'mangle', '-L', egressChainsOf(CELL).marks, '-n', '-v', '-x']);
  return out.split('\n').filter((l) => l.includes('MARK')).reduce((n, l) => n + Number(l.trim().split(/\s+/)[0]), 0);
}

function spread(values: number[], digits = 2): string {
  return `median ${median(values).toFixed(digits)} (min ${Math.min(...values).toFixed(digits)}, max ${Math.max(...values).toFixed(digits)})`;
}

// The benchmark -------------------------------------------------------------------------------------

async function setUp(): Promise<World> {
  const uplink = await startUplink(PREFIX, { bulkBytes: UPLINK_BYTES });
  const site = await startWireguardSite(PREFIX, { probe: uplink.probe, bulkBytes: SITE_BYTES, extraPeers: 1 });
  const network = await createExitNetwork(PREFIX);
  const exitOptions = { prefix: PREFIX, service: 'exit-wireguard', network, config: { health_check: `${uplink.probe}:80` }, healthInterval: '5s' };
  const exit = await startExit({ ...exitOptions, ip: network.address(2), configFile: site.clientConfig });
  const tunnel = await startExit({ ...exitOptions, ip: network.address(4), configFile: site.extraClientConfigs[0]! });
  const steered = await startClient(PREFIX, network, network.address(3));
  const sidecar = await startClientBeside(PREFIX, tunnel);
  const direct = await startClient(PREFIX, network, network.address(5));
  for (const c of [exit, tunnel]) {
    await until(`${c.name} healthy`, async () => (await c.health()) === 'healthy', 60_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; logs:\n${await c.logs()}`);
    });
  }
  return { uplink, site, network, exit, steered, tunnel, sidecar, direct };
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0]!;
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  let failed = false;
  let world: World | undefined;
  await removeExitLeftovers(PREFIX);
  await removeSiteLeftovers(PREFIX);
  await removeEgressHostState();
  try {
    world = await setUp();
    const { uplink, site, network, exit, steered, sidecar, direct } = world;
    const vpn: ExitState = { name: 'vpn', failOpen: false, healthy: true, declared: true, address: exit.ip };
    const steeredService: AssignedService = { name: 'steered', address: steered.ip, connection: 'vpn' };
    // Ten other services on ten Connections (the most policy rules ten services can bring), at
    // addresses of the cell network; their exits' addresses are only routes' next hops.
    const others: AssignedService[] = Array.from({ length: OTHERS }, (_, i) => ({ name: `other${i}`, address: network.address(20 + i), connection: `vpn${i}` }));
    const otherExits: ExitState[] = others.map((s, i) => ({ name: s.connection, failOpen: false, healthy: true, declared: true, address: network.address(40 + i) }));
    // One address, two answers: the uplink's bulk for a service on default, the remote site's
    // (SITE_BYTES) for one that leaves through a tunnel.
    const bulkUrl = `http://${uplink.probe}${BULK_PATH}`;

    // The fixtures answer as they must before anything is measured.
    if ((await body(direct, `http://${uplink.probe}/`)) !== 'uplink') throw new Error('the service on default does not reach the uplink');
    if ((await body(sidecar, `http://${uplink.probe}/`)) !== site.body) throw new Error('the sidecar does not reach the remote site through its tunnel');

    // b. A service on default, without and with ten others steered. ----------------------------------
    await reconcileEgress(routing(network, [], []));
    if ((await bytesOf(direct, bulkUrl)) !== UPLINK_BYTES) throw new Error(`the uplink's ${BULK_PATH} is not ${UPLINK_BYTES} bytes`);
    const bare: number[] = [];
    const withTen: number[] = [];
    let inPlace = { fence: 0, marks: 0, dns: 0, rules: 0 };
    for (let i = 0; i < DEFAULT_PAIRS; i++) {
      for (const ten of i % 2 === 0 ? [false, true] : [true, false]) {
        await reconcileEgress(ten ? routing(network, others, otherExits) : routing(network, [], []));
        const steering = await countSteering();
        if (ten) inPlace = steering;
        if (!ten && steering.fence + steering.marks + steering.dns + steering.rules > 0) throw new Error(`steering left in place: ${JSON.stringify(steering)}`);
        if (ten && steering.fence !== OTHERS) throw new Error(`expected ${OTHERS} fenced services, found ${JSON.stringify(steering)}`);
        // The rule writes (iptables processes, the kernel's ruleset commit) are over before the
        // timed transfer starts: a short request first, then the transfer.
        await body(direct, `http://${uplink.probe}/`);
        (ten ? withTen : bare).push(mbits(UPLINK_BYTES, await timedGet(direct, bulkUrl)));
      }
    }
    const defaultRatios = bare.map((b, i) => withTen[i]! / b);

    // a. Through pic's exit against the sidecar tunnel. --------------------------------------------
    await reconcileEgress(routing(network, [steeredService], [vpn]));
    if ((await body(steered, `http://${uplink.probe}/`)) !== site.body) throw new Error('the steered service does not get the remote site\'s answer');
    for (const c of [steered, sidecar]) if ((await bytesOf(c, bulkUrl)) !== SITE_BYTES) throw new Error(`${c.name}: the site's ${BULK_PATH} is not ${SITE_BYTES} bytes`);
    const uplinkBefore = await uplink.countPackets();
    const viaExit: number[] = [];
    const viaSidecar: number[] = [];
    for (let i = 0; i < PAIRS; i++) {
      for (const pic of i % 2 === 0 ? [true, false] : [false, true]) {
        (pic ? viaExit : viaSidecar).push(mbits(SITE_BYTES, await timedGet(pic ? steered : sidecar, bulkUrl)));
      }
    }
    const uplinkDuringTransfers = (await uplink.countPackets()) - uplinkBefore;
    const tunnelRatios = viaSidecar.map((s, i) => viaExit[i]! / s);

    // c. The exit killed and started again. -------------------------------------------------------
    const echoes = await echoCounter(site);
    // Two senders in the steered service: a new ping (a new ICMP id: a new flow for conntrack)
    // every 10 ms, whose first echo at the site after `docker start` is the figure; and one
    // ongoing ping to the site's other address, to see whether a flow that spans the outage resumes.
    const senders = await steered.exec(['sh', '-c', SENDERS, 'sh', FRESH_INTERVAL_US, uplink.probe, ONGOING_INTERVAL, site.dnsServer]);
    const senderPids = senders.stdout.trim().split(/\s+/);
    if (senderPids.length !== 2 || !senderPids.every((p) => /^\d+$/.test(p))) throw new Error(`the senders did not start in ${steered.name}: ${senders.stdout} ${senders.stderr}`);
    const kills: Kill[] = [];
    try {
      const flowing = await echoes();
      await until('the steered pings to reach the remote site', async () => (await echoes()) > flowing + 10, 10_000);
      const container = docker.getContainer(exit.id);
      for (let i = 0; i < KILLS; i++) {
        await until(`${exit.name} healthy`, async () => (await exit.health()) === 'healthy', 60_000);
        const uplink0 = await uplink.countPackets();
        const marked0 = await markedPackets();
        const killedAt = performance.now();
        await container.kill();
        await sleep(OUTAGE_MS);
        const state = await exit.state();
        if (state.status === 'running') throw new Error(`${exit.name} came back by itself after docker kill (restart policy): the outage is not ours`);
        const echoes0 = await echoes();
        const t0 = performance.now();
        const started = container.start();
        let startReturned = NaN;
        void started.then(() => (startReturned = performance.now() - t0));
        let t1 = NaN;
        for (const deadline = t0 + 60_000; performance.now() < deadline; await sleep(1)) {
          if ((await echoes()) > echoes0) {
            t1 = performance.now();
            break;
          }
        }
        await started;
        if (Number.isNaN(t1)) throw new Error(`no echo request reached the remote site within 60 s of docker start; exit logs:\n${await exit.logs()}`);
        // The uplink is read once the tunnel carries traffic again: the outage is over by then.
        const leaked = (await uplink.countPackets()) - uplink0;
        const sent = (await markedPackets()) - marked0;
        const replies0 = await ongoingReplies(steered);
        await sleep(ONGOING_GRACE_MS);
        const resumed = (await ongoingReplies(steered)) > replies0;
        kills.push({ leaked, sent, outage: t1 - killedAt, firstPacket: t1 - t0, startReturned, resumed });
      }
    } finally {
      await steered.exec(['kill', ...senderPids]).catch(() => undefined);
    }

    const leaked = kills.reduce((n, k) => n + k.leaked, 0);
    const tunnelRatio = median(tunnelRatios);
    const defaultRatio = median(defaultRatios);
    rows.push(
      {
        name: `a. a service steered by pic through the \`wireguard_ext\` exit: GET of ${SITE_BYTES / MIB} MiB from the remote site`,
        result: `${spread(viaExit, 0)} Mbit/s`,
        target: '—',
        met: true,
      },
      {
        name: 'a. the same GET from a container in the namespace of an equal wireguard-go tunnel (sidecar)',
        result: `${spread(viaSidecar, 0)} Mbit/s`,
        target: '—',
        met: true,
      },
      { name: 'a. ratio exit / sidecar (per pair)', result: spread(tunnelRatios), target: `≥ ${TUNNEL_RATIO} (median)`, met: tunnelRatio >= TUNNEL_RATIO },
      {
        name: `b. a service on \`default\`: GET of ${UPLINK_BYTES / MIB} MiB from the uplink, no steering on the host`,
        result: `${spread(bare, 0)} Mbit/s`,
        target: '—',
        met: true,
      },
      {
        name: `b. the same with ${OTHERS} other services steered (${OTHERS} Connections)`,
        result: `${spread(withTen, 0)} Mbit/s`,
        target: '—',
        met: true,
      },
      { name: `b. ratio with ${OTHERS} steered / none (per pair)`, result: spread(defaultRatios), target: `≥ ${DEFAULT_RATIO} (median)`, met: defaultRatio >= DEFAULT_RATIO },
      {
        name: `c. \`docker kill\` of the exit: packets on the uplink until the tunnel carries the service again (${KILLS} kills)`,
        result: `${leaked} (each: ${kills.map((k) => k.leaked).join(', ')}; the service sent ${kills.map((k) => k.sent).join(', ')} packets meanwhile)`,
        target: '0',
        met: leaked === 0,
      },
      {
        name: 'c. `docker start` of the exit → the service\'s first packet through the tunnel at the remote site',
        result: `median ${median(kills.map((k) => k.firstPacket)).toFixed(0)} ms (each: ${kills.map((k) => k.firstPacket.toFixed(0)).join(', ')} ms; \`docker start\` returned after ${kills.map((k) => k.startReturned.toFixed(0)).join(', ')} ms)`,
        target: 'report',
        met: true,
      },
      {
        name: `c. a flow that spans the outage (one ping, ${Number(ONGOING_INTERVAL) * 1000} ms apart) answered again within ${ONGOING_GRACE_MS / 1000} s of the first packet`,
        result: `${kills.filter((k) => k.resumed).length} of ${kills.length}`,
        target: 'report',
        met: true,
      },
    );
    notes.push(
      `**Egress**: the exit is the catalog's \`exit-wireguard\` (image \`git.pic.ngo/roof/pic-exit-wireguard\`, wireguard-go: the host has no kernel WireGuard) created from its compose template on a bridge network of the bench's, with its Connection's wg-quick file mounted; ` +
        'the remote site is wireguard-go in a network namespace reached through the host, serving a sparse file with busybox httpd on the address the uplink also answers (only the tunnel reaches the site\'s). ' +
        `Every transfer is busybox \`wget -O /dev/null\` in a busybox container, timed inside it (\`adjtimex\`, µs), started by \`docker exec\`; ${PAIRS} pairs for a, ${DEFAULT_PAIRS} for b (each of its runs after the rule writes and one short request), the order alternating.`,
      `a. pic's path: the service's packets leave its namespace for the host, are marked and routed by the reconciler's rules back into the bridge to the exit, which forwards them into its tunnel, masqueraded. ` +
        'The sidecar: the same image and start script with a second peer\'s wg-quick file of the same server (the two tunnels are up together, one transferring at a time), and the busybox container in its network namespace (Docker\'s `container:` network mode), so its packets go into the tunnel directly. ' +
        `Packets on the uplink during these transfers: ${uplinkDuringTransfers}.`,
      `b. The ten other services are fenced, marked, their DNS rewritten and each Connection has its policy rule and table (${inPlace.fence} fence rules, ${inPlace.marks} mark rules, ${inPlace.dns} DNS rules, ${inPlace.rules} policy rules on the host), written by the egress reconciler between runs; no container runs at their addresses. ` +
        'Without: the reconciler given no assignment, and no rule of the cell left (counted before each run).',
      `c. The steered service sends a new one-shot ping (a new ICMP id, so a new flow) every ${Number(FRESH_INTERVAL_US) / 1000} ms through the exit, and keeps one ping running to another address of the site; the exit is killed (\`docker kill\`: its restart policy does not bring it back), left down ${OUTAGE_MS / 1000} s, then started. ` +
        'The packets the service sent meanwhile are the mark chain\'s counter; the uplink counts every packet arriving from the host. The first packet is the first echo request the remote site\'s kernel counts (`InEchos`, polled every 1 ms), ' +
        `timed from the \`docker start\` call; it includes the container's start, wireguard-go's, the handshake and the next ping. Nothing of pic runs in between: the steering stays on the host. Kill → first packet: ${kills.map((k) => `${(k.outage / 1000).toFixed(1)} s`).join(', ')}. ` +
        'The ongoing ping counts as answered again when it printed a reply in the seconds after the first packet. A flow whose packets reach the restarted exit before its start script has put its masquerade in place gets a conntrack entry without NAT; the exit flushes its conntrack table once its rules are in (examples/images/exits/common), so such a flow is translated again from its next packet.',
    );
  } catch (err) {
    failed = true;
    console.error('egress benchmark failed:', err);
    rows.push({ name: 'egress benchmark', result: `failed: ${(err as Error).message.split('\n')[0]}`, target: `ratios ≥ ${TUNNEL_RATIO} and ≥ ${DEFAULT_RATIO}, 0 packets leaked`, met: false });
  } finally {
    await removeEgressHostState().catch((err: Error) => console.error(`egress bench: removing the host's rules: ${err.message}`));
    for (const c of [world?.sidecar, world?.steered, world?.direct, world?.tunnel, world?.exit]) await c?.remove();
    await world?.network.remove();
    await world?.site.stop();
    await world?.uplink.stop();
    await removeExitLeftovers(PREFIX);
    await removeSiteLeftovers(PREFIX);
  }
  notes.push(
    'Figures from one run on a shared machine (other suites may have been using the same dockerd at the same time). ' +
      `1-minute load average at the start → end (${os.cpus().length} CPUs): ${loadBefore.toFixed(1)} → ${os.loadavg()[0]!.toFixed(1)}.`,
  );
  await writeBenchSection(SECTION, rows, notes);
  if (failed) process.exitCode = 1;
}

await main();
