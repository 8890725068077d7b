/**
 * The reads of the VPN container's network state from the host (its namespaces, its WireGuard
 * UAPI socket) against the real core WireGuard image (examples/images/build-core.sh, wireguard-go
 * on /dev/net/tun): they give the same observation as the reads by exec did (`iptables -S` per
 * chain, `ip rule show`, `ip route show table all`, `ip -o link show`, `wg show wg0 dump`, all run
 * in the test beside them), and they start no exec. The exec reader, used where the host cannot
 * read, gives the same too.
 */
import { randomBytes } from 'node:crypto';
import { ipRuleLine, parseIpRules, parseRoutes, isOwnIpRule, routeLine } from '../../reconcilers/egress/observe.js';
import { jumpRule, SERVICES_CHAIN } from '../../reconcilers/firewall/render.js';
import { observeChains, parseListing, type ChainRef, type ObservedChain } from '../../reconcilers/firewall/observe.js';
import { execReader, hostReader, hostReadRefusal, containerNetworkReader, type ContainerNetworkReader } from '../../reconcilers/shared/container-netns.js';
import { resolveOwnedContainer, type OwnedContainer } from '../../reconcilers/shared/owned-container.js';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import { observeInterface, parseDump } from '../../reconcilers/wireguard/observe.js';
import { generateKeyPair } from '../../state/wireguard-keys.js';
import { docker, recordDockerEvents, TEST_LABELS, uniqueName } from '../support/docker.js';
import { buildCoreImages, CORE_IMAGES } from '../support/peer.js';

let name = '';
let owned: OwnedContainer | undefined;

function vpn(): OwnedContainer {
  if (!owned) throw new Error('the core WireGuard container did not start');
  return owned;
}

async function sh(argv: string[], stdin?: string): Promise<string> {
  const r = await execInContainer(docker, name, argv, stdin === undefined ? {} : { stdin });
  if (r.exitCode !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The observation of one chain as the reads by exec made it: `iptables -S` of the parent and of the chain. */
async function chainByExec(ref: ChainRef): Promise<ObservedChain> {
  const parent = await execInContainer(docker, name, ['iptables', '-t', ref.table, '-S', ref.parent]);
  const jumps = parent.exitCode === 0 ? parseListing(parent.stdout).filter((l) => l === jumpRule(ref.parent, ref.chain)).length : 0;
  const own = await execInContainer(docker, name, ['iptables', '-t', ref.table, '-S', ref.chain]);
  if (own.exitCode !== 0) return { exists: false, rules: [], jumps };
  return { exists: true, rules: parseListing(own.stdout).filter((l) => l.startsWith(`-A ${ref.chain} `)), jumps };
}

/** Exec events in the container while `action` runs (a marker exec closes the window). */
async function execsDuring(action: () => Promise<unknown>): Promise<string[]> {
  const recording = await recordDockerEvents({ type: ['container'], container: [vpn().id] });
  await action().catch((err: unknown) => {
    recording.close();
    throw err;
  });
  const events = await recording.stop((marker) => sh(['echo', marker]));
  return events.filter((e) => /^exec_(create|start)/.test(e));
}

const REFS: ChainRef[] = [
  { table: 'filter', chain: SERVICES_CHAIN, parent: 'FORWARD' },
  { table: 'filter', chain: 'PIC-KILLSWITCH', parent: 'FORWARD' },
  { table: 'mangle', chain: 'PIC-EGRESS', parent: 'PREROUTING' },
  { table: 'filter', chain: 'PIC-ABSENT', parent: 'INPUT' },
  { table: 'nat', chain: 'PIC-TUNNEL-NAT', parent: 'POSTROUTING' },
  { table: 'raw', chain: 'PIC-NEVER', parent: 'PREROUTING' },
];

beforeAll(async () => {
  await buildCoreImages();
  name = uniqueName('pictest-quiet-wg');
  const created = await docker.createContainer({
    name,
    Image: CORE_IMAGES.wireguard,
    Env: ['WG_ADDRESS=10.231.0.1/24'],
    Labels: { ...TEST_LABELS },
    StopTimeout: 1,
    HostConfig: { CapAdd: ['NET_ADMIN'], Devices: [{ PathOnHost: '/dev/net/tun', PathInContainer: '/dev/net/tun', CgroupPermissions: 'rwm' }], NetworkMode: 'none' },
  });
  await created.start();
  for (let i = 0; ; i++) {
    if ((await execInContainer(docker, name, ['wg', 'show', 'wg0'])).exitCode === 0) break;
    if (i > 100) throw new Error('wg0 did not come up');
    await new Promise((r) => setTimeout(r, 100));
  }
  const claim = { name, owner: 'Core/wireguard', cell: 'pictest', createdBy: 'admin' as const, role: 'the test VPN', use: 'read from' as const };
  owned = await resolveOwnedContainer(docker, claim);

  // Live state of every kind the resources read: a key, peers (one with several allowed IPs, one
  // with none), own and foreign chains with quoted comments, rules in nat, policy rules and routes.
  const server = generateKeyPair();
  const peers = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
  await sh(['wg', 'set', 'wg0', 'private-key', '/dev/stdin', 'listen-port', '51820'], `${server.privateKey}\n`);
  await sh(['wg', 'set', 'wg0', 'peer', peers[0]!.publicKey, 'allowed-ips', '10.231.0.9/32,10.231.0.2/32']);
  await sh(['wg', 'set', 'wg0', 'peer', peers[1]!.publicKey, 'allowed-ips', '10.231.0.3/32', 'endpoint', '127.0.0.1:9', 'persistent-keepalive', '25']);
  await sh(['wg', 'set', 'wg0', 'peer', peers[2]!.publicKey]);
  const script = [
    `iptables -N ${SERVICES_CHAIN}`,
    `iptables -I FORWARD 1 -j ${SERVICES_CHAIN}`,
    `iptables -A ${SERVICES_CHAIN} -d 172.20.0.20/32 -p tcp -m tcp --dport 443 -m comment --comment "pic:web app" -j ACCEPT`,
    'iptables -N PIC-KILLSWITCH',
    'iptables -A FORWARD -j PIC-KILLSWITCH',
    'iptables -A FORWARD -j PIC-KILLSWITCH',
    'iptables -A PIC-KILLSWITCH ! -o wg0 -m mark --mark 0x1001 -m comment --comment pic:home -j DROP',
    'iptables -A FORWARD -s 10.99.0.0/24 -j ACCEPT',
    'iptables -t mangle -N PIC-EGRESS',
    'iptables -t mangle -A PREROUTING -j PIC-EGRESS',
    'iptables -t mangle -A PIC-EGRESS -s 172.20.0.21/32 -m comment --comment "pic:notes" -j MARK --set-xmark 0x1001/0xffffffff',
    'iptables -t nat -N PIC-TUNNEL-NAT',
    'iptables -t nat -A PIC-TUNNEL-NAT -s 10.231.0.0/24 ! -o wg0 -j MASQUERADE',
    'ip rule add priority 10001 fwmark 0x1001 lookup 1001',
    'ip rule add priority 10002 fwmark 0x1002/0xff00 lookup 1002',
    'ip rule add priority 500 from 10.9.0.0/16 lookup 77',
    'ip route add default dev wg0 table 1001',
    'ip route add unreachable default table 1002',
    'ip route add 10.50.0.0/16 dev wg0 table 1003',
  ].join('\n');
  await sh(['sh', '-eu', '-c', script]);
}, 300_000);

afterAll(async () => {
  if (name) await docker.getContainer(name).remove({ force: true }).catch(() => undefined);
});

test('the host may read this container: root, its pid in its control group, iptables-nft on both sides', async () => {
  expect(vpn().pid).toBeGreaterThan(0);
  expect(await hostReadRefusal(vpn())).toBeUndefined();
  expect((await containerNetworkReader(docker, vpn())).via).toEqual({ mode: 'host' });
});

test('a pid that is not the container\'s is refused, and the reads go by exec', async () => {
  const wrong = { ...vpn(), pid: process.pid };
  expect(await hostReadRefusal(wrong)).toMatch(/not \(or no longer\) in .*control group/);
  expect((await containerNetworkReader(docker, wrong)).via).toMatchObject({ mode: 'exec' });
  const { pid: _pid, ...unknown } = vpn();
  expect(await hostReadRefusal(unknown)).toMatch(/no process of/);
});

test('chains: one iptables-save from the host sees what iptables -S per chain saw by exec', async () => {
  const byExec = [];
  for (const ref of REFS) byExec.push(await chainByExec(ref));
  expect(byExec[0]).toMatchObject({ exists: true, jumps: 1 });
  expect(byExec[1]).toMatchObject({ exists: true, jumps: 2 });
  expect(byExec[3]).toEqual({ exists: false, rules: [], jumps: 0 });
  let fromHost: ObservedChain[] = [];
  const execs = await execsDuring(async () => {
    fromHost = await observeChains(hostReader(vpn(), vpn().pid!), REFS);
  });
  expect(fromHost).toEqual(byExec);
  expect(execs).toEqual([]);
  expect(await observeChains(execReader(docker, vpn(), 'test'), REFS)).toEqual(byExec);
});

/** Policy rules and routes as the egress parsers read them, from one `ip -json -batch`. */
async function readRouting(reader: ContainerNetworkReader): Promise<{ ipRules: ReturnType<typeof parseIpRules>; routes: ReturnType<typeof parseRoutes> }> {
  const [rules = [], routes = []] = await reader.ipJson(['rule show', 'route show table all']);
  return { ipRules: parseIpRules(rules.map(ipRuleLine).join('\n')).filter(isOwnIpRule), routes: parseRoutes(routes.map(routeLine).join('\n')) };
}

test('policy rules and routes from one ip -json -batch are the text the exec reads parsed', async () => {
  const byExec = {
    ipRules: parseIpRules(await sh(['ip', 'rule', 'show'])).filter(isOwnIpRule),
    routes: parseRoutes(await sh(['ip', 'route', 'show', 'table', 'all'])),
  };
  expect(byExec.ipRules.map((r) => `${r.priority}: ${r.text}`)).toEqual(['10001: from all fwmark 0x1001 lookup 1001', '10002: from all fwmark 0x1002/0xff00 lookup 1002']);
  expect(byExec.routes.length).toBe(3);
  let fromHost: Awaited<ReturnType<typeof readRouting>> | undefined;
  const execs = await execsDuring(async () => {
    fromHost = await readRouting(hostReader(vpn(), vpn().pid!));
  });
  expect(execs).toEqual([]);
  expect(fromHost).toEqual(byExec);
  expect(await readRouting(execReader(docker, vpn(), 'test'))).toEqual(fromHost);
});

test('WireGuard: the UAPI socket under the container\'s root gives what wg show dump gave, with no process at all', async () => {
  const byExec = parseDump(await sh(['wg', 'show', 'wg0', 'dump']));
  expect(byExec.peers.size).toBe(3);
  expect(byExec.listenPort).toBe(51820);
  let fromHost: Awaited<ReturnType<typeof observeInterface>> | undefined;
  const execs = await execsDuring(async () => {
    fromHost = await observeInterface(hostReader(vpn(), vpn().pid!), 'wg0');
  });
  expect(execs).toEqual([]);
  expect(fromHost).toEqual(byExec);
  expect(await observeInterface(execReader(docker, vpn(), 'test'), 'wg0')).toEqual(byExec);
});

test('an interface that is not there (no socket, and wg finds none) is an error naming the container', async () => {
  const iface = `x${randomBytes(3).toString('hex')}`;
  await expect(observeInterface(hostReader(vpn(), vpn().pid!), iface)).rejects.toThrow(name);
});
