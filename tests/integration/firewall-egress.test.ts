/**
 * The firewall and egress reconcilers against a real netfilter and real policy routing: a
 * `cell-wireguard` stand-in (iptables-nft and iproute2 copied from the host, NET_ADMIN) that
 * this file builds, starts and removes. Steps run in order; each re-reads the live state.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isTerminal } from '../../reconcilers/errors.js';
import { egressAllocationsFile, egressReconciler } from '../../reconcilers/egress/index.js';
import { firewallReconciler } from '../../reconcilers/firewall/index.js';
import { renderServiceRules } from '../../reconcilers/firewall/render.js';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import type { CellRouting, ResourceContext } from '../../reconcilers/shared/types.js';
import type { IptablesRule } from '../../crds/types.js';
import { docker, uniqueName } from '../support/docker.js';
import {
  addTestInterface,
  buildWireguardImage,
  recordExecs,
  removeWireguardContainer,
  removeWireguardImage,
  removeWireguardLeftovers,
  startWireguardContainer,
  testRouting,
  type TestConnectionShape,
  type TestServiceShape,
  type WireguardTestContainer,
} from '../support/wireguard.js';

/** Traffic to private addresses is never marked (replies to peers must not hit the kill switch). */
const LOCAL_RETURNS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'].map((cidr) => `-A PIC-EGRESS -d ${cidr} -m comment --comment "pic:local" -j RETURN`);

const tcp = (port: number): IptablesRule => ({ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: port, proto: 'tcp' });
const udp = (port: number): IptablesRule => ({ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: port, proto: 'udp' });

/** Rules of others that every reconcile must leave alone. */
const FOREIGN_INPUT = '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT';
const FOREIGN_FORWARD = '-A FORWARD -s 10.99.0.0/24 -j ACCEPT';
const FOREIGN_MANGLE = '-A PREROUTING -s 10.98.0.0/24 -j MARK --set-xmark 0x7/0xffffffff';

let image = '';
let wg: WireguardTestContainer | undefined;
let stateRoot = '';
const events: string[] = [];

function container(): WireguardTestContainer {
  if (!wg) throw new Error('the test container did not start');
  return wg;
}

function ctx(): ResourceContext {
  return { docker, stateRoot, cellDir: stateRoot, event: (reason, message) => events.push(`${reason}: ${message}`) };
}

function routing(services: TestServiceShape[], connections: TestConnectionShape[] = []): CellRouting {
  return testRouting(container().name, services, connections);
}

async function lines(argv: string[]): Promise<string[]> {
  return (await container().sh(argv))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

const chainRules = async (table: string, chain: string) => (await lines(['iptables', '-t', table, '-S', chain])).filter((l) => l.startsWith('-A '));

async function expectForeignRulesIntact(): Promise<void> {
  expect(await lines(['iptables', '-S', 'INPUT'])).toContain(FOREIGN_INPUT);
  expect(await lines(['iptables', '-S', 'FORWARD'])).toContain(FOREIGN_FORWARD);
  expect(await lines(['iptables', '-t', 'mangle', '-S', 'PREROUTING'])).toContain(FOREIGN_MANGLE);
}

beforeAll(async () => {
  await removeWireguardLeftovers();
  stateRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-egress-state-'));
  image = await buildWireguardImage();
  wg = await startWireguardContainer(image);
  await wg.sh(['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
  await wg.sh(['iptables', '-A', 'FORWARD', '-s', '10.99.0.0/24', '-j', 'ACCEPT']);
  await wg.sh(['iptables', '-t', 'mangle', '-A', 'PREROUTING', '-s', '10.98.0.0/24', '-j', 'MARK', '--set-mark', '7']);
  await addTestInterface(wg, 'wgx0');
});

afterAll(async () => {
  if (wg) await removeWireguardContainer(wg);
  if (image) await removeWireguardImage(image);
  if (stateRoot) await fs.rm(stateRoot, { recursive: true, force: true });
});

describe('execInContainer', () => {
  test('passes stdin, and returns stdout, stderr and the exit code', async () => {
    const result = await execInContainer(docker, container().name, ['sh', '-c', 'cat; echo oops >&2; exit 3'], { stdin: 'a "quoted" $line\n' });
    expect(result).toEqual({ stdout: 'a "quoted" $line\n', stderr: 'oops\n', exitCode: 3 });
  });

  test('arguments reach the program as they are, with no shell in between', async () => {
    const result = await execInContainer(docker, container().name, ['echo', '$(id)', ';', 'x y']);
    expect(result).toEqual({ stdout: '$(id) ; x y\n', stderr: '', exitCode: 0 });
  });

  test('a missing container is an error naming it', async () => {
    const missing = uniqueName('pictest-wg-absent');
    await expect(execInContainer(docker, missing, ['true'])).rejects.toThrow(`waiting for container ${missing}`);
  });
});

describe('firewall', () => {
  const homepage: TestServiceShape = { name: 'homepage', ip: '172.20.0.20', rules: [tcp(80), tcp(443)] };
  const voice: TestServiceShape = { name: 'voice', ip: '172.20.0.31', rules: [udp(3478), tcp(3478)] };

  test('installed services get their rules, and FORWARD one jump at the top', async () => {
    const input = routing([homepage, voice]);
    expect(await firewallReconciler.plan(input, ctx())).toContain('+ -N PIC-SERVICES');
    const outcome = await firewallReconciler.reconcile(input, ctx());
    expect(outcome.changed).toBe(true);
    expect(outcome.summary).toMatch(/^4 rules for 2 services in PIC-SERVICES; rewritten/);
    expect(await chainRules('filter', 'PIC-SERVICES')).toEqual(renderServiceRules(input.services));
    const forward = (await lines(['iptables', '-S', 'FORWARD'])).filter((l) => l.startsWith('-A '));
    expect(forward[0]).toBe('-A FORWARD -j PIC-SERVICES');
    expect(forward.filter((l) => l === '-A FORWARD -j PIC-SERVICES')).toHaveLength(1);
    await expectForeignRulesIntact();
  });

  test('a second reconcile with nothing changed only reads, from the host: no exec', async () => {
    const input = routing([homepage, voice]);
    expect(await firewallReconciler.plan(input, ctx())).toEqual([]);
    let outcome: Awaited<ReturnType<typeof firewallReconciler.reconcile>> | undefined;
    const commands = await recordExecs(container(), async () => {
      outcome = await firewallReconciler.reconcile(input, ctx());
    });
    expect(outcome).toMatchObject({ changed: false, facts: { readVia: 'host namespaces' } });
    expect(commands).toEqual([]);
  });

  test('rules change with the installed set', async () => {
    const moved: TestServiceShape = { ...homepage, rules: [tcp(8080)] };
    const notes: TestServiceShape = { name: 'notes', ip: '172.20.0.22', rules: [tcp(8081)] };
    const input = routing([moved, notes, voice]);
    const outcome = await firewallReconciler.reconcile(input, ctx());
    expect(outcome.changed).toBe(true);
    const live = await chainRules('filter', 'PIC-SERVICES');
    expect(live).toEqual(renderServiceRules(input.services));
    expect(live.some((l) => l.includes('--dport 80 '))).toBe(false);
    expect(live.some((l) => l.includes('"pic:notes"'))).toBe(true);
  });

  test('a rule added by hand to PIC-SERVICES is removed; rules elsewhere survive', async () => {
    const input = routing([homepage, voice]);
    await firewallReconciler.reconcile(input, ctx());
    await container().sh(['iptables', '-A', 'PIC-SERVICES', '-s', '10.9.9.9/32', '-j', 'ACCEPT']);
    expect(await firewallReconciler.plan(input, ctx())).toEqual(['- -A PIC-SERVICES -s 10.9.9.9/32 -j ACCEPT']);
    expect((await firewallReconciler.reconcile(input, ctx())).changed).toBe(true);
    expect(await chainRules('filter', 'PIC-SERVICES')).toEqual(renderServiceRules(input.services));
    await expectForeignRulesIntact();
  });

  test('a deleted jump comes back; a duplicated one is removed', async () => {
    const input = routing([homepage, voice]);
    await container().sh(['iptables', '-D', 'FORWARD', '-j', 'PIC-SERVICES']);
    await firewallReconciler.reconcile(input, ctx());
    let forward = await lines(['iptables', '-S', 'FORWARD']);
    expect(forward.filter((l) => l === '-A FORWARD -j PIC-SERVICES')).toHaveLength(1);

    await container().sh(['iptables', '-A', 'FORWARD', '-j', 'PIC-SERVICES']);
    expect(await firewallReconciler.plan(input, ctx())).toEqual(['- -A FORWARD -j PIC-SERVICES (duplicate)']);
    await firewallReconciler.reconcile(input, ctx());
    forward = await lines(['iptables', '-S', 'FORWARD']);
    expect(forward.filter((l) => l === '-A FORWARD -j PIC-SERVICES')).toHaveLength(1);
    await expectForeignRulesIntact();
  });

  test('with nothing installed the chain is empty and stays jumped to', async () => {
    const outcome = await firewallReconciler.reconcile(routing([]), ctx());
    expect(outcome.changed).toBe(true);
    expect(await chainRules('filter', 'PIC-SERVICES')).toEqual([]);
    expect(await lines(['iptables', '-S', 'FORWARD'])).toContain('-A FORWARD -j PIC-SERVICES');
    await expectForeignRulesIntact();
    expect((await firewallReconciler.reconcile(routing([]), ctx())).changed).toBe(false);
  });
});

describe('egress', () => {
  const connections: TestConnectionShape[] = [
    { name: 'vpn-home', type: 'wireguard_ext', interface: 'wgx0' },
    { name: 'office', type: 'openvpn', interface: 'wgx0', failOpen: true },
    { name: 'later', type: 'wireguard_ext', interface: 'wgnotyet' },
  ];
  const routed: TestServiceShape[] = [
    { name: 'mail', ip: '172.20.0.20', connection: 'vpn-home' },
    { name: 'files', ip: '172.20.0.24', connection: 'office' },
    { name: 'web', ip: '172.20.0.23', rules: [tcp(80)] },
  ];

  async function allocations(): Promise<Record<string, { fwmark: number; table: number }>> {
    return (JSON.parse(await fs.readFile(egressAllocationsFile(stateRoot), 'utf8')) as { connections: Record<string, { fwmark: number; table: number }> }).connections;
  }

  test('routed services are marked, policy-routed and fenced as planned', async () => {
    const input = routing(routed, connections);
    const planned = await egressReconciler.plan(input, ctx());
    expect(planned).toContain('+ allocation Connection/vpn-home fwmark 0x1002 table 1002');
    const outcome = await egressReconciler.reconcile(input, ctx());
    expect(outcome.changed).toBe(true);

    // Allocated in name order: later 0, office 1, vpn-home 2; saved 0600.
    expect(await allocations()).toEqual({
      later: { fwmark: 0x1000, table: 1000 },
      office: { fwmark: 0x1001, table: 1001 },
      'vpn-home': { fwmark: 0x1002, table: 1002 },
    });
    expect((await fs.stat(egressAllocationsFile(stateRoot))).mode & 0o777).toBe(0o600);

    expect(await chainRules('mangle', 'PIC-EGRESS')).toEqual([
      ...LOCAL_RETURNS,
      '-A PIC-EGRESS -s 172.20.0.24/32 -m comment --comment "pic:files" -j MARK --set-xmark 0x1001/0xffffffff',
      '-A PIC-EGRESS -s 172.20.0.20/32 -m comment --comment "pic:mail" -j MARK --set-xmark 0x1002/0xffffffff',
    ]);
    expect(await lines(['iptables', '-t', 'mangle', '-S', 'PREROUTING'])).toContain('-A PREROUTING -j PIC-EGRESS');
    // office is failOpen: no DROP for it.
    expect(await chainRules('filter', 'PIC-KILLSWITCH')).toEqual([
      '-A PIC-KILLSWITCH ! -o wgx0 -m mark --mark 0x1002 -m comment --comment "pic:vpn-home" -j DROP',
    ]);
    expect(await lines(['iptables', '-S', 'FORWARD'])).toContain('-A FORWARD -j PIC-KILLSWITCH');
    const rules = await lines(['ip', 'rule', 'show']);
    expect(rules.map((r) => r.replace(/\s+/g, ' '))).toEqual(expect.arrayContaining(['10001: from all fwmark 0x1001 lookup 1001', '10002: from all fwmark 0x1002 lookup 1002']));
    expect(rules.some((r) => r.includes('lookup 1000'))).toBe(false);
    expect(await lines(['ip', 'route', 'show', 'table', '1002'])).toEqual([expect.stringMatching(/^default dev wgx0 scope link/)]);
    expect(await lines(['ip', 'route', 'show', 'table', '1001'])).toEqual([expect.stringMatching(/^default dev wgx0 scope link/)]);
    await expectForeignRulesIntact();
  });

  test('a second reconcile with nothing changed only reads, from the host: no exec', async () => {
    const input = routing(routed, connections);
    expect(await egressReconciler.plan(input, ctx())).toEqual([]);
    let outcome: Awaited<ReturnType<typeof egressReconciler.reconcile>> | undefined;
    const commands = await recordExecs(container(), async () => {
      outcome = await egressReconciler.reconcile(input, ctx());
    });
    expect(outcome).toMatchObject({ changed: false, facts: { readVia: 'host namespaces' } });
    expect(commands).toEqual([]);
  });

  test('a connection whose interface does not exist yet: waiting, fenced, no crash', async () => {
    const input = routing([...routed, { name: 'notes', ip: '172.20.0.22', connection: 'later' }], connections);
    const outcome = await egressReconciler.reconcile(input, ctx());
    expect(outcome.summary).toMatch(/waiting: Connection\/later: interface wgnotyet does not exist yet/);
    expect(outcome.facts?.waiting).toEqual([expect.stringMatching(/wgnotyet/)]);
    expect(await chainRules('filter', 'PIC-KILLSWITCH')).toContain(
      '-A PIC-KILLSWITCH ! -o wgnotyet -m mark --mark 0x1000 -m comment --comment "pic:later" -j DROP',
    );
    expect((await lines(['ip', 'rule', 'show'])).map((r) => r.replace(/\s+/g, ' '))).toContain('10000: from all fwmark 0x1000 lookup 1000');
    expect((await container().exec(['ip', 'route', 'show', 'table', '1000'])).stdout.trim()).toBe('');
    // Still waiting, still nothing to write.
    const again = await egressReconciler.reconcile(input, ctx());
    expect(again.changed).toBe(false);
    expect(again.summary).toMatch(/waiting/);
  });

  test('a rule added by hand to the kill switch is removed', async () => {
    const input = routing(routed, connections);
    await egressReconciler.reconcile(input, ctx());
    await container().sh(['iptables', '-A', 'PIC-KILLSWITCH', '-s', '10.1.1.1/32', '-j', 'DROP']);
    await container().sh(['ip', 'rule', 'add', 'fwmark', '0x1005', 'lookup', '1005', 'priority', '10005']);
    const planned = await egressReconciler.plan(input, ctx());
    expect(planned).toEqual(['- -A PIC-KILLSWITCH -s 10.1.1.1/32 -j DROP', '- ip rule 10005: from all fwmark 0x1005 lookup 1005']);
    await egressReconciler.reconcile(input, ctx());
    expect(await egressReconciler.plan(input, ctx())).toEqual([]);
  });

  test('services back to default: marks, rules, routes and DROPs vanish; numbers are kept', async () => {
    const input = routing(
      routed.map((s) => ({ ...s, connection: undefined })),
      connections,
    );
    const outcome = await egressReconciler.reconcile(input, ctx());
    expect(outcome.changed).toBe(true);
    expect(await chainRules('mangle', 'PIC-EGRESS')).toEqual([]);
    expect(await chainRules('filter', 'PIC-KILLSWITCH')).toEqual([]);
    const rules = await lines(['ip', 'rule', 'show']);
    expect(rules.filter((r) => /^1\d{4}:/.test(r))).toEqual([]);
    const tables = await lines(['ip', 'route', 'show', 'table', 'all']);
    expect(tables.filter((r) => /table 1\d{3}\b/.test(r))).toEqual([]);
    expect(Object.keys(await allocations())).toEqual(['later', 'office', 'vpn-home']);
    await expectForeignRulesIntact();
    // The firewall's chain is not egress's business.
    expect(await lines(['iptables', '-S', 'FORWARD'])).toContain('-A FORWARD -j PIC-SERVICES');
  });

  test('a removed Connection frees its numbers, and a new one takes the lowest free pair', async () => {
    const kept = connections.filter((c) => c.name !== 'later');
    const input = routing([{ name: 'mail', ip: '172.20.0.20', connection: 'fresh' }], [...kept, { name: 'fresh', interface: 'wgx0' }]);
    await egressReconciler.reconcile(input, ctx());
    expect(await allocations()).toEqual({
      fresh: { fwmark: 0x1000, table: 1000 },
      office: { fwmark: 0x1001, table: 1001 },
      'vpn-home': { fwmark: 0x1002, table: 1002 },
    });
    expect(await chainRules('mangle', 'PIC-EGRESS')).toEqual([
      ...LOCAL_RETURNS,
      '-A PIC-EGRESS -s 172.20.0.20/32 -m comment --comment "pic:mail" -j MARK --set-xmark 0x1000/0xffffffff',
    ]);
    expect(await lines(['ip', 'route', 'show', 'table', '1000'])).toEqual([expect.stringMatching(/^default dev wgx0/)]);
    await egressReconciler.reconcile(routing([], kept), ctx());
    expect(await egressReconciler.plan(routing([], kept), ctx())).toEqual([]);
  });
});

describe('without the wireguard container', () => {
  test('both reconcilers fail with a retryable error naming the container', async () => {
    const missing = uniqueName('pictest-wg-absent');
    const input = testRouting(missing, [{ name: 'mail', ip: '172.20.0.20', rules: [tcp(25)], connection: 'vpn' }], [{ name: 'vpn', interface: 'wg0' }]);
    for (const reconciler of [firewallReconciler, egressReconciler]) {
      let thrown: unknown;
      try {
        await reconciler.reconcile(input, ctx());
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(Error);
      expect(isTerminal(thrown)).toBe(false);
      expect((thrown as Error).message).toMatch(new RegExp(`waiting for container ${missing}`));
    }
  });
});
