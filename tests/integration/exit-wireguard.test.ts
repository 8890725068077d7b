/**
 * The wireguard_ext exit of the example catalog (examples/store/services/exit-wireguard), run as pic
 * runs it, against a remote WireGuard server of the test's own: a service steered to it reaches
 * the remote's answer on an address the uplink answers too, resolves through the tunnel, and
 * reaches nothing, with no packet on the uplink, while the remote or the exit's tunnel is down.
 * Needs the image (examples/images/build-exits.sh) and root (namespaces, host routes).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createExitNetwork, removeExitLeftovers, startClient, startExit, steerThroughExit, type ExitContainer, type ExitNetwork, type TestContainer } from '../support/exit-container.js';
import { removeSiteLeftovers, startUplink, startWireguardSite, TEST_NAME, until, type RemoteSite, type Uplink } from '../support/remote-sites.js';

const PREFIX = 'px20wg';

let uplink: Uplink;
let site: RemoteSite;
let network: ExitNetwork;
let exit: ExitContainer;
let client: TestContainer;
let unsteer: (() => Promise<void>) | undefined;

async function fetchProbe(): Promise<string> {
  const r = await client.exec(['timeout', '5', 'wget', '-q', '-O', '-', `http://${uplink.probe}/`], 15_000);
  return r.exitCode === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
}

async function resolve(): Promise<string> {
  const r = await client.exec(['nslookup', TEST_NAME, uplink.dnsServer], 15_000);
  return r.stdout;
}

async function waitForHealth(status: string): Promise<void> {
  await until(`the exit to be ${status}`, async () => (await exit.health()) === status, 45_000).catch(async (err: Error) => {
    throw new Error(`${err.message}; logs:\n${await exit.logs()}`);
  });
}

beforeAll(async () => {
  await removeExitLeftovers(PREFIX);
  await removeSiteLeftovers(PREFIX);
  uplink = await startUplink(PREFIX);
  site = await startWireguardSite(PREFIX, { probe: uplink.probe });
  network = await createExitNetwork(PREFIX);
  client = await startClient(PREFIX, network, network.address(3));
  exit = await startExit({
    prefix: PREFIX,
    service: 'exit-wireguard',
    network,
    ip: network.address(2),
    configFile: site.clientConfig,
    config: { health_check: `${uplink.probe}:80` },
    healthInterval: '2s',
  });
}, 90_000);

afterAll(async () => {
  await unsteer?.();
  await exit?.remove();
  await client?.remove();
  await network?.remove();
  await site?.stop();
  await uplink?.stop();
}, 60_000);

describe('wireguard_ext exit', () => {
  it('the service reaches the uplink directly before it is steered (the fixture answers)', async () => {
    expect(await fetchProbe()).toBe('uplink');
    expect(await resolve()).toContain(uplink.dnsAnswer);
  });

  it('steered, the service gets the remote answer and the uplink sees none of it', async () => {
    unsteer = await steerThroughExit(PREFIX, network, client, exit);
    await waitForHealth('healthy');
    const before = await uplink.countPackets();
    expect(await fetchProbe()).toBe('remote-wireguard');
    expect(await uplink.countPackets()).toBe(before);
  });

  it('DNS to any server is answered through the tunnel, and no query reaches the uplink', async () => {
    const before = await uplink.countDns();
    const answer = await resolve();
    if (!answer.includes(site.dnsAnswer)) throw new Error(`no answer through the tunnel: ${answer}\nexit logs:\n${await exit.logs()}`);
    expect(answer).not.toContain(uplink.dnsAnswer);
    expect(await uplink.countDns()).toBe(before);
  });

  it('the remote down: nothing gets out, the health turns unhealthy, and both come back with it', async () => {
    const before = await uplink.countPackets();
    await site.stopServer();
    expect(await fetchProbe()).toMatch(/^failed/);
    expect(await resolve()).not.toContain(uplink.dnsAnswer);
    await waitForHealth('unhealthy');
    expect(await fetchProbe()).toMatch(/^failed/);
    expect(await uplink.countPackets()).toBe(before);

    await site.startServer();
    await waitForHealth('healthy');
    expect(await fetchProbe()).toBe('remote-wireguard');
    expect(await uplink.countPackets()).toBe(before);
  });

  it('the tunnel process killed: the exit stops with an error, nothing leaks, and its restart carries traffic again', async () => {
    const before = await uplink.countPackets();
    const pid = (await exit.exec(['pidof', 'wireguard-go'])).stdout.trim();
    expect(pid).toMatch(/^\d+$/);
    await exit.exec(['kill', pid]);
    expect(await fetchProbe()).toMatch(/^failed/);
    await until('the exit to restart', async () => (await exit.state()).restarts > 0, 20_000);
    await waitForHealth('healthy');
    expect(await fetchProbe()).toBe('remote-wireguard');
    expect(await uplink.countPackets()).toBe(before);
  });
});
