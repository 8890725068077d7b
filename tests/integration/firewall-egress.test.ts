/**
 * The firewall reconciler against a real netfilter (egress steering lives on the host: see
 * egress-host.test.ts): a
 * `cell-wireguard` stand-in (iptables-nft and iproute2 copied from the host, NET_ADMIN) that
 * this file builds, starts and removes. Steps run in order; each re-reads the live state.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isTerminal } from '../../reconcilers/errors.js';
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

describe('without the wireguard container', () => {
  test('the firewall fails with a retryable error naming the container', async () => {
    const missing = uniqueName('pictest-wg-absent');
    const input = testRouting(missing, [{ name: 'mail', ip: '172.20.0.20', rules: [tcp(25)] }]);
    for (const reconciler of [firewallReconciler]) {
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
