/**
 * Egress steering on the real host (reconcilers/egress/): real netfilter, real policy routing, a
 * real Docker bridge, and packets counted where they land. The test makes its own world:
 *
 * - an "uplink": a network namespace reached through the host by plain routing, answering HTTP on
 *   the probe address with `uplink`, and counting every packet that arrives in it;
 * - a Docker network standing in for the cell network, with a "service" container and an "exit"
 *   container (NET_ADMIN, forwarding on) that answers on the SAME probe address with `remote` and
 *   listens for DNS on its own address.
 *
 * A service steered through the exit gets `remote`; the uplink sees nothing of it, with the exit up,
 * stopped, or with pic's policy rule gone; its DNS reaches the exit; fail-open and `default` reach
 * the uplink. The exit image's own tunnel is tested elsewhere; this is the host's half.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import type { CellDocument } from '../../crds/types.js';
import { readBootFence, restoreBootFence } from '../../reconcilers/egress/boot-fence.js';
import { egressReconciler, fenceServiceAddress, loadEgressAllocations } from '../../reconcilers/egress/index.js';
import { egressChainsOf, type AssignedService, type ExitState } from '../../reconcilers/egress/render.js';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import type { CellRouting, ResourceContext } from '../../reconcilers/shared/types.js';
import { buildBusyboxImage, docker, pickSubnet, TEST_LABELS, uniqueName } from '../support/docker.js';

const run = promisify(execFile);
const PREFIX = 'pteg';
const IMAGE = 'pictest/busybox:1';
/** The uplink's veth pair and the probe address both the uplink and the exit answer on. */
const UPLINK_NET = '198.18.201';
const PROBE = '198.18.202.1';

const cellName = uniqueName(`${PREFIX}-cell`);
const chains = egressChainsOf(cellName);
const ns = `${PREFIX}-up-${cellName.slice(-8)}`;
const vethHost = `${PREFIX}h${cellName.slice(-6)}`;
const vethNs = `${PREFIX}u${cellName.slice(-6)}`;
let network: Dockerode.Network | undefined;
let subnet = '';
let serviceIp = '';
let exitIp = '';
let service: Dockerode.Container | undefined;
let exit: Dockerode.Container | undefined;
let stateRoot = '';
let www = '';
const events: string[] = [];

async function sh(file: string, args: string[]): Promise<string> {
  return (await run(file, args, { encoding: 'utf8' })).stdout;
}
const quiet = (file: string, args: string[]) => sh(file, args).catch(() => '');

/** Packets that reached the uplink namespace from the host (its INPUT counter). */
async function uplinkPackets(): Promise<number> {
  const out = await sh('ip', ['netns', 'exec', ns, 'iptables', '-L', 'INPUT', '-v', '-n', '-x']);
  const line = out.split('\n').find((l) => l.includes(vethNs));
  return Number(line?.trim().split(/\s+/)[0] ?? 'NaN');
}

/** UDP datagrams the exit's kernel received for a port nothing listens on (its 53, here). */
async function exitUdpNoPorts(): Promise<number> {
  const snmp = (await execInContainer(docker, { id: exit!.id, name: 'exit' }, ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
  const [names, values] = snmp.map((l) => l.trim().split(/\s+/));
  return Number(values?.[names?.indexOf('NoPorts') ?? -1]);
}

/** What the service gets asking the probe address over HTTP ('' when nothing answers). */
async function probe(): Promise<string> {
  const result = await execInContainer(docker, { id: service!.id, name: 'service' }, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${PROBE} 80 | tail -n 1`]);
  return result.stdout.trim();
}

function cellDoc(): CellDocument {
  return {
    apiVersion: 'pic.ngo/v1alpha1',
    kind: 'Cell',
    metadata: { name: cellName },
    spec: {
      domain: 'egress.test',
      store: { path: './store' },
      network: { name: `${cellName}-net`, subnet, servicePool: subnet },
      imageVerification: { mode: 'off' },
      allowedImagePrefix: 'git.pic.ngo/roof/',
    },
  };
}

function routing(connection: string, exitState: Partial<ExitState> = {}): CellRouting {
  const assigned: AssignedService[] = connection === 'default' ? [] : [{ name: 'mail', address: serviceIp, connection }];
  const exits: ExitState[] = [{ name: 'vpn', failOpen: false, healthy: true, declared: true, address: exitIp, ...exitState }];
  const declared = exitState.declared ?? true;
  const connections = declared ? [{ apiVersion: 'pic.ngo/v1alpha1' as const, kind: 'Connection' as const, metadata: { name: 'vpn' }, spec: { type: 'wireguard_ext' as const } }] : [];
  return { cell: cellDoc(), services: [], connections, egress: { assigned, exits } };
}

function ctx(): ResourceContext {
  return { docker, stateRoot, cellDir: stateRoot, event: (reason, message) => events.push(`${reason}: ${message}`) };
}

async function removeHostState(): Promise<void> {
  for (const [table, chain, parent] of [['filter', chains.fence, 'DOCKER-USER'], ['mangle', chains.marks, 'PREROUTING'], ['nat', chains.dns, 'PREROUTING']] as const) {
    await quiet('iptables', ['-t', table, '-D', parent, '-j', chain]);
    await quiet('iptables', ['-t', table, '-F', chain]);
    await quiet('iptables', ['-t', table, '-X', chain]);
  }
  const allocations = stateRoot ? await loadEgressAllocations(stateRoot).catch(() => undefined) : undefined;
  for (const a of Object.values(allocations?.connections ?? {})) {
    await quiet('ip', ['route', 'flush', 'table', String(a.table)]);
    await quiet('ip', ['rule', 'del', 'lookup', String(a.table)]);
  }
}

beforeAll(async () => {
  await buildBusyboxImage(IMAGE);
  stateRoot = await fs.mkdtemp(path.join(os.tmpdir(), `${PREFIX}-state-`));
  www = await fs.mkdtemp(path.join(os.tmpdir(), `${PREFIX}-www-`));
  await fs.writeFile(path.join(www, 'index.html'), 'uplink\n');

  // The uplink: a namespace behind a veth, reached through the host's routing table.
  await quiet('ip', ['netns', 'del', ns]);
  await quiet('ip', ['link', 'del', vethHost]);
  await sh('ip', ['netns', 'add', ns]);
  await sh('ip', ['link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs]);
  await sh('ip', ['link', 'set', vethNs, 'netns', ns]);
  await sh('ip', ['addr', 'add', `${UPLINK_NET}.2/24`, 'dev', vethHost]);
  await sh('ip', ['link', 'set', vethHost, 'up']);
  for (const args of [
    ['addr', 'add', `${UPLINK_NET}.1/24`, 'dev', vethNs],
    ['link', 'set', vethNs, 'up'],
    ['link', 'set', 'lo', 'up'],
    ['addr', 'add', `${PROBE}/32`, 'dev', 'lo'],
    ['route', 'add', 'default', 'via', `${UPLINK_NET}.2`],
  ]) {
    await sh('ip', ['netns', 'exec', ns, 'ip', ...args]);
  }
  await sh('ip', ['netns', 'exec', ns, 'iptables', '-A', 'INPUT', '-i', vethNs]);
  await sh('ip', ['route', 'add', `${PROBE}/32`, 'via', `${UPLINK_NET}.1`]);
  await sh('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-p', `${PROBE}:80`, '-h', www]);

  // The cell network and its two containers.
  for (let attempt = 0; !network; attempt++) {
    subnet = await pickSubnet();
    try {
      network = await docker.createNetwork({ Name: `${cellName}-net`, Driver: 'bridge', IPAM: { Config: [{ Subnet: subnet }] }, Labels: TEST_LABELS });
    } catch (err) {
      if (attempt > 5) throw err;
    }
  }
  const base = subnet.replace(/\.0\/24$/, '');
  serviceIp = `${base}.10`;
  exitIp = `${base}.20`;
  const endpoint = (ip: string) => ({ EndpointsConfig: { [`${cellName}-net`]: { IPAMConfig: { IPv4Address: ip } } } });
  service = await docker.createContainer({ name: `${cellName}-svc`, Image: IMAGE, Cmd: ['sleep', '3600'], Labels: TEST_LABELS, HostConfig: { NetworkMode: `${cellName}-net` }, NetworkingConfig: endpoint(serviceIp) });
  exit = await docker.createContainer({
    name: `${cellName}-exit`,
    Image: IMAGE,
    // The far end of a tunnel, in one container: the probe address on its loopback, a DNS "resolver"
    // that records what reaches it.
    Cmd: ['sh', '-c', `ip addr add ${PROBE}/32 dev lo; mkdir -p /w; echo remote > /w/index.html; httpd -p ${PROBE}:80 -h /w; while true; do nc -l -p 53 >> /tmp/dns; done`],
    Labels: TEST_LABELS,
    HostConfig: { NetworkMode: `${cellName}-net`, CapAdd: ['NET_ADMIN'], Sysctls: { 'net.ipv4.ip_forward': '1' } },
    NetworkingConfig: endpoint(exitIp),
  });
  await service.start();
}, 120_000);

afterAll(async () => {
  await removeHostState();
  for (const c of [service, exit]) await c?.remove({ force: true }).catch(() => undefined);
  await network?.remove().catch(() => undefined);
  await quiet('ip', ['route', 'del', `${PROBE}/32`]);
  await quiet('ip', ['netns', 'exec', ns, 'pkill', '-f', `httpd -p ${PROBE}`]);
  await quiet('ip', ['link', 'del', vethHost]);
  await quiet('ip', ['netns', 'del', ns]);
  for (const dir of [stateRoot, www]) if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('egress steering on the host', () => {
  test('on default, the service reaches the uplink directly', async () => {
    expect(await probe()).toBe('uplink');
    expect(await uplinkPackets()).toBeGreaterThan(0);
  });

  test('before it starts, an assigned service is fenced: nothing reaches the uplink', async () => {
    expect(await fenceServiceAddress({ name: cellName, subnet }, { name: 'mail', address: serviceIp }, stateRoot)).toBe(true);
    expect(await fenceServiceAddress({ name: cellName, subnet }, { name: 'mail', address: serviceIp }, stateRoot)).toBe(false);
    const before = await uplinkPackets();
    expect(await probe()).toBe('');
    expect(await uplinkPackets()).toBe(before);
  });

  test('steered through the exit: the remote answers, the uplink sees nothing, and DNS goes to the exit', async () => {
    await exit!.start();
    const input = routing('vpn');
    expect((await egressReconciler.plan(input, ctx())).length).toBeGreaterThan(0);
    const outcome = await egressReconciler.reconcile(input, ctx());
    expect(outcome.changed).toBe(true);
    expect(outcome.notReady).toBeUndefined();
    expect(outcome.facts?.bridge).toMatch(/^br-/);
    const before = await uplinkPackets();
    expect(await probe()).toBe('remote');
    // DNS to the uplink's address (any resolver off the cell network) lands at the exit: over TCP
    // (what reached its listener), and over UDP (its kernel counts the datagram for port 53).
    await execInContainer(docker, { id: service!.id, name: 'service' }, ['sh', '-c', `printf 'dns-query-from-mail' | nc -w 1 ${UPLINK_NET}.1 53`]);
    const seen = await execInContainer(docker, { id: exit!.id, name: 'exit' }, ['cat', '/tmp/dns']);
    expect(seen.stdout).toContain('dns-query-from-mail');
    const udpBefore = await exitUdpNoPorts();
    // busybox has no UDP client but tftp, which sends a datagram to any port.
    await execInContainer(docker, { id: service!.id, name: 'service' }, ['timeout', '3', 'tftp', '-g', '-r', 'query', `${UPLINK_NET}.1`, '53']);
    expect(await exitUdpNoPorts()).toBeGreaterThan(udpBefore);
    expect(await uplinkPackets()).toBe(before);
    // The steering needs nothing inside the service: its default route is still the bridge's gateway.
    const routes = await execInContainer(docker, { id: service!.id, name: 'service' }, ['ip', 'route', 'show', 'default']);
    expect(routes.stdout).toMatch(new RegExp(`default via ${subnet.replace(/\.0\/24$/, '')}\\.1 `));
  });

  test('a second reconcile with nothing changed writes nothing', async () => {
    expect(await egressReconciler.plan(routing('vpn'), ctx())).toEqual([]);
    const outcome = await egressReconciler.reconcile(routing('vpn'), ctx());
    expect(outcome.changed).toBe(false);
  });

  test('kill switch: with the exit stopped, or pic\'s policy rule gone, not one packet reaches the uplink', async () => {
    const before = await uplinkPackets();
    await exit!.stop({ t: 1 });
    expect(await probe()).toBe('');
    expect(await uplinkPackets()).toBe(before);
    // pic is not there to repair it: its rule is deleted by hand. The fence alone holds.
    const allocation = Object.values((await loadEgressAllocations(stateRoot))!.connections)[0]!;
    await sh('ip', ['rule', 'del', 'lookup', String(allocation.table)]);
    expect(await probe()).toBe('');
    expect(await uplinkPackets()).toBe(before);
    const counters = await sh('iptables', ['-L', chains.fence, '-v', '-n', '-x']);
    expect(Number(counters.split('\n').find((l) => l.includes('DROP'))?.trim().split(/\s+/)[0])).toBeGreaterThan(0);
    // Back: the exit restarts (same address), the rule is restored, the service was never touched.
    const id = service!.id;
    await exit!.start();
    await egressReconciler.reconcile(routing('vpn'), ctx());
    expect(await probe()).toBe('remote');
    expect((await service!.inspect()).Id).toBe(id);
    expect(await uplinkPackets()).toBe(before);
  });

  test('the Connection deleted: the service stays fenced, and the resource says so', async () => {
    const before = await uplinkPackets();
    const outcome = await egressReconciler.reconcile(routing('vpn', { declared: false, healthy: false }), ctx());
    expect(outcome.notReady?.reason).toBe('ConnectionDown');
    expect(outcome.notReady?.message).toMatch(/mail blocked/);
    expect(await probe()).toBe('');
    expect(await uplinkPackets()).toBe(before);
  });

  test('a reboot clears every rule of the host: pic fence puts the kill switch back from the state directory alone', async () => {
    const recorded = await readBootFence(stateRoot);
    expect(recorded).toMatchObject({ cell: cellName, chain: chains.fence, parent: 'DOCKER-USER' });
    expect(recorded!.rules).toHaveLength(1);
    expect(recorded!.rules[0]).toContain(`-s ${serviceIp}/32`);
    // What a reboot leaves: none of the cell's chains, rules or routes. Without the fence the
    // service's packets go straight to the uplink (what dockerd's restart of it would do at boot).
    await removeHostState();
    const before = await uplinkPackets();
    expect(await probe()).toBe('uplink');
    expect(await uplinkPackets()).toBeGreaterThan(before);
    // pic fence: no Docker, no cell folder, no operator; only the state directory's record.
    expect((await restoreBootFence(stateRoot)).wrote).toBe(true);
    const fenced = await uplinkPackets();
    expect(await probe()).toBe('');
    expect(await uplinkPackets()).toBe(fenced);
    expect((await sh('iptables', ['-S', chains.fence])).split('\n').filter((l) => l.startsWith('-A '))).toEqual(recorded!.rules);
    expect((await restoreBootFence(stateRoot)).wrote).toBe(false);
  });

  test('fail-open with the exit down: the direct path, and the resource says so', async () => {
    const outcome = await egressReconciler.reconcile(routing('vpn', { failOpen: true, healthy: false }), ctx());
    expect(outcome.notReady?.reason).toBe('FailingOpen');
    expect(await probe()).toBe('uplink');
    await egressReconciler.reconcile(routing('vpn', { failOpen: true, healthy: true }), ctx());
    expect(await probe()).toBe('remote');
  });

  test('back to default: every rule, route and chain entry of the cell goes; the numbers are kept', async () => {
    const outcome = await egressReconciler.reconcile(routing('default'), ctx());
    expect(outcome.changed).toBe(true);
    expect(await probe()).toBe('uplink');
    const allocation = Object.values((await loadEgressAllocations(stateRoot))!.connections)[0]!;
    expect(await sh('ip', ['route', 'show', 'table', String(allocation.table)])).toBe('');
    expect(await sh('ip', ['rule', 'show'])).not.toContain(`lookup ${allocation.table}`);
    for (const [table, chain] of [['filter', chains.fence], ['mangle', chains.marks], ['nat', chains.dns]] as const) {
      expect((await sh('iptables', ['-t', table, '-S', chain])).split('\n').filter((l) => l.startsWith('-A '))).toEqual([]);
    }
    expect(await egressReconciler.plan(routing('default'), ctx())).toEqual([]);
    // Nothing is fenced any more, and a boot puts back nothing.
    expect((await readBootFence(stateRoot))?.rules).toEqual([]);
  });
});
