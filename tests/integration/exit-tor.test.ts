/**
 * The tor exit (examples/store/services/exit-tor). No Tor network is reachable here, and this test
 * must never send anything to an address it did not create, so its tor knows no public directory
 * authority: the Connection's file (torrc lines) names one directory authority at an address of a
 * namespace of the test's own, where nothing listens, and no fallback directories; a rule on the
 * host drops (and counts) any packet of the exit's that would go elsewhere than there.
 *
 * What this machine allows to prove: steered as pic steers it, the service's TCP connection to the
 * uplink's probe address reaches tor's TransPort (tor's ControlPort lists the stream to that
 * address; the exit's redirect counts it) and its DNS query reaches tor's DNSPort (tor lists the
 * name it was asked), while the uplink counts no packet and no query; UDP and ICMP go nowhere; the
 * health check says tor has no circuit; tor's own packets go only to the directory it was given;
 * with tor killed nothing leaks and the restart policy brings tor back. What it cannot: a
 * connection through Tor, and so the contract of tests/support/exit-suite.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { createExitNetwork, removeExitLeftovers, startClient, startExit, steerThroughExit, type ExitContainer, type ExitNetwork, type TestContainer } from '../support/exit-container.js';
import { createNamespace, removeSiteLeftovers, sh, startUplink, TEST_NAME, until, type Namespace, type Uplink } from '../support/remote-sites.js';

const prefix = 'tx20tor';
const GUARD = `${prefix}-guard`;

let uplink: Uplink;
let directory: Namespace;
let network: ExitNetwork;
let client: TestContainer;
let exit: ExitContainer;
let unsteer: (() => Promise<void>) | undefined;

/** The host's FORWARD rules of this test (the guard), removed by their comment. */
async function removeGuard(): Promise<void> {
  const rules = await sh(['iptables', '-S', 'FORWARD']);
  for (const line of rules.split('\n')) {
    if (!line.includes(`--comment ${GUARD}`)) continue;
    const args = line.replace(/^-A /, '').split(/\s+/).filter((a) => a !== '');
    await sh(['iptables', '-D', ...args]).catch(() => undefined);
  }
}

/** Packets of the exit's that the guard dropped: any to an address other than the directory's. */
async function guardCount(): Promise<number> {
  const out = await sh(['iptables', '-L', 'FORWARD', '-n', '-v', '-x']);
  return out.split('\n').filter((l) => l.includes(`/* ${GUARD} */`)).reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[0]), 0);
}

/** Packets that reached the directory's namespace from the host (tor trying its authority). */
async function directoryCount(): Promise<number> {
  const out = await directory.exec(['iptables', '-t', 'raw', '-L', 'PREROUTING', '-n', '-v', '-x']);
  return out.split('\n').filter((l) => l.includes('/* tor-directory */')).reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[0]), 0);
}

/** Packets the exit's nat PREROUTING redirected to `port` (TransPort or DNSPort). */
async function redirected(port: number, proto: 'tcp' | 'udp'): Promise<number> {
  const out = (await exit.exec(['iptables', '-t', 'nat', '-L', 'PREROUTING', '-n', '-v', '-x'])).stdout;
  const protoNumber = proto === 'tcp' ? '6' : '17';
  return out
    .split('\n')
    .filter((l) => l.includes(`redir ports ${port}`) && l.trim().split(/\s+/)[3] === protoNumber)
    .reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[0]), 0);
}

/** tor's answer on its ControlPort (authenticated with its cookie) to one GETINFO. */
async function torInfo(key: string): Promise<string> {
  const r = await exit.exec(['sh', '-c', `. /usr/local/lib/pic-exit/tor.sh; tor_control 'GETINFO ${key}'`], 15_000);
  return r.stdout;
}

const fetchProbe = async (): Promise<string> => {
  const r = await client.exec(['timeout', '5', 'wget', '-q', '-O', '-', `http://${uplink.probe}/`], 15_000);
  return r.exitCode === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
};

/** Opens a TCP connection from the service to the probe and holds it for `seconds` (in the background). */
const holdConnection = (seconds: number) =>
  client.exec(['sh', '-c', `(sleep ${seconds} | timeout ${seconds} nc ${uplink.probe} 80 >/dev/null 2>&1 &) >/dev/null 2>&1`]);

/** A stream tor lists for the probe address: the service's connection arrived at its TransPort. */
async function torStreamToProbe(): Promise<void> {
  await until(`tor to list a stream to ${uplink.probe}:80`, async () => (await torInfo('stream-status')).includes(`${uplink.probe}:80`), 20_000).catch(async (err: Error) => {
    throw new Error(`${err.message}; stream-status: ${await torInfo('stream-status')}\nlogs:\n${await exit.logs()}`);
  });
}

beforeAll(async () => {
  await removeGuard();
  await removeExitLeftovers(prefix);
  await removeSiteLeftovers(prefix);
  uplink = await startUplink(prefix);
  directory = await createNamespace(prefix, 'dir');
  await directory.exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-i', directory.nsIf, '-m', 'comment', '--comment', 'tor-directory']);
  network = await createExitNetwork(prefix);
  client = await startClient(prefix, network, network.address(3));
  const exitIp = network.address(2);
  // Before the exit exists: anything of it that would leave the host elsewhere than to the
  // directory is dropped, and counted (bridged frames to the service stay on the bridge).
  await sh(['iptables', '-I', 'FORWARD', '1', '-s', exitIp, '!', '-o', network.bridge, '!', '-d', `${directory.nsAddress}/32`, '-m', 'comment', '--comment', GUARD, '-j', 'DROP']);
  const hex = (n: number) => randomBytes(n).toString('hex').toUpperCase();
  const torrc = [
    '# Test only: no public directory authority; the one named here is a namespace of the test where nothing listens.',
    `DirAuthority pictest orport=9001 no-v2 v3ident=${hex(20)} ${directory.nsAddress}:9030 ${hex(20)}`,
    'UseDefaultFallbackDirs 0',
    '',
  ].join('\n');
  exit = await startExit({ prefix, service: 'exit-tor', network, ip: exitIp, configFile: torrc, healthInterval: '2s', healthStartPeriod: '5s' });
  await until('tor to answer on its ControlPort', async () => (await torInfo('version')).includes('250-version='), 30_000).catch(async (err: Error) => {
    throw new Error(`${err.message}; logs:\n${await exit.logs()}`);
  });
}, 120_000);

afterAll(async () => {
  await unsteer?.();
  await exit?.remove();
  await client?.remove();
  await network?.remove();
  await removeGuard();
  await directory?.remove();
  await uplink?.stop();
}, 60_000);

describe('tor exit (exit-tor), without a Tor network', () => {
  it('the service reaches the uplink directly before it is steered (the fixtures answer)', async () => {
    expect(await fetchProbe()).toBe('uplink');
  });

  it('tor has no circuit: the health check says so and the exit is unhealthy', async () => {
    await until('the exit to be unhealthy', async () => (await exit.health()) === 'unhealthy', 45_000);
    const r = await exit.exec(['pic-exit-health']);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain('tor has no circuit');
    expect(await torInfo('status/circuit-established')).toContain('status/circuit-established=0');
  });

  it("tor's own packets go only to the directory it was given", async () => {
    await until('tor to try its directory authority', async () => (await directoryCount()) > 0, 60_000);
    expect(await guardCount()).toBe(0);
  });

  it("steered, the service's TCP reaches tor's TransPort, and the uplink counts no packet", async () => {
    unsteer = await steerThroughExit(prefix, network, client, exit);
    const before = await uplink.countPackets();
    const redirectedBefore = await redirected(9040, 'tcp');
    await holdConnection(15);
    await torStreamToProbe();
    expect(await redirected(9040, 'tcp')).toBeGreaterThan(redirectedBefore);
    // Without a circuit tor carries nothing: the request fails, and never reaches the uplink.
    expect(await fetchProbe()).toMatch(/^failed/);
    expect(await uplink.countPackets()).toBe(before);
  });

  it("the service's DNS query reaches tor's DNSPort, and the uplink counts no query", async () => {
    const before = await uplink.countDns();
    const packets = await uplink.countPackets();
    const redirectedBefore = await redirected(5353, 'udp');
    const query = client.exec(['timeout', '10', 'nslookup', TEST_NAME, uplink.dnsServer], 20_000);
    await until(`tor to list a resolve of ${TEST_NAME}`, async () => (await torInfo('stream-status')).includes(TEST_NAME), 15_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; stream-status: ${await torInfo('stream-status')}`);
    });
    const answer = await query;
    expect(answer.stdout).not.toContain(uplink.dnsAnswer);
    expect(await redirected(5353, 'udp')).toBeGreaterThan(redirectedBefore);
    expect(await uplink.countDns()).toBe(before);
    expect(await uplink.countPackets()).toBe(packets);
  });

  it('UDP other than DNS and ICMP go nowhere', async () => {
    const before = await uplink.countPackets();
    await client.exec(['sh', '-c', `echo probe | timeout 3 nc -u -w 1 ${uplink.probe} 9999; ping -c 2 -W 1 ${uplink.probe}; true`]);
    expect(await uplink.countPackets()).toBe(before);
  });

  it('tor killed: the exit stops with an error, nothing leaks, and its restart takes connections to TransPort again', async () => {
    const before = await uplink.countPackets();
    const pid = (await exit.exec(['pidof', 'tor'])).stdout.trim();
    expect(pid).toMatch(/^\d+$/);
    await exit.exec(['kill', pid]);
    expect(await fetchProbe()).toMatch(/^failed/);
    await until('the exit to restart', async () => (await exit.state()).restarts > 0, 20_000);
    expect(await exit.logs()).toContain('stopping the exit');
    await until('tor to answer on its ControlPort again', async () => (await torInfo('version')).includes('250-version='), 30_000);
    await holdConnection(15);
    await torStreamToProbe();
    expect(await fetchProbe()).toMatch(/^failed/);
    expect(await uplink.countPackets()).toBe(before);
    expect(await guardCount()).toBe(0);
  });

  it('a torrc option outside the accepted ones (here a port of its own) is refused, naming its line', async () => {
    const other = await startExit({ prefix, service: 'exit-tor', network, ip: network.address(4), configFile: '# ok\nExitNodes {de}\nTransPort 0.0.0.0:1234\n' });
    try {
      await until('the exit to refuse its file', async () => (await other.logs()).includes('line 3'), 30_000);
      expect(await other.logs()).toContain('the torrc option "TransPort" is not accepted');
      // tor never started: it logs its version first thing.
      expect(await other.logs()).not.toMatch(/Tor \d+\.\d+[^\n]* running on Linux/);
    } finally {
      await other.remove();
    }
  });
});
