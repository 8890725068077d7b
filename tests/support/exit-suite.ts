/**
 * The contract every exit of the example catalog keeps, as one jest suite each exit's test file
 * runs against its own remote site: the exit (from its catalog template) on a network of the
 * test's, a busybox "service" beside it steered to it from the host as pic does, an uplink
 * namespace that answers the same probe address differently, and the remote site. It proves:
 *   - unsteered, the service gets the uplink's answer (the fixtures work, the test can fail);
 *   - steered, it gets the remote's answer and the uplink counts no packet;
 *   - its DNS query, to the uplink's resolver address, is answered through the connection and the
 *     uplink counts no query;
 *   - with the remote's server down, the service reaches nothing, the uplink counts nothing, the
 *     healthcheck turns unhealthy, and all comes back with the server;
 *   - with the exit's tunnel process killed, the exit stops (non-zero), nothing leaks, and its
 *     restart (the template's restart policy) carries traffic again;
 *   - a flow the service keeps sending (a ping, or TCP connections from fixed ports) resumes
 *     through the connection after `docker restart` and after `docker kill` and start of the exit,
 *     the service untouched, and the uplink counts none of it: packets that reach a starting exit
 *     before its NAT is in place must not leave a connection-tracking entry without NAT behind.
 * Needs the exit's image (examples/images/build-exits.sh) and root (namespaces, host routes).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { docker } from './docker.js';
import { createExitNetwork, removeExitLeftovers, startClient, startExit, steerThroughExit, type ExitContainer, type ExitNetwork, type TestContainer } from './exit-container.js';
import { removeSiteLeftovers, startUplink, TEST_NAME, until, type RemoteSite, type SiteOptions, type Uplink } from './remote-sites.js';

export interface ExitSuite {
  /** Names of everything the suite makes start with it (at most 10 characters). */
  prefix: string;
  /** The catalog folder, e.g. exit-wireguard. */
  service: string;
  /** The connection type, for the suite's title. */
  type: string;
  startSite(prefix: string, options: SiteOptions): Promise<RemoteSite>;
  /** The exit's config values for this site (a health check target is added). */
  config?(site: RemoteSite): Record<string, string>;
  /** The process whose death is the tunnel's (killed by its pid inside the exit). */
  tunnelProcess: string;
  /**
   * What the service keeps sending across restarts of the exit: `ping` (one ICMP echo flow, every
   * 20 ms) where the exit carries IP, `tcp` (HTTP requests again and again from each of 16 fixed
   * source ports, so that each port is one conntrack tuple) where it relays TCP only.
   */
  ongoingFlow: 'ping' | 'tcp';
  /** More checks, run while the exit carries traffic. */
  extra?(context: { uplink: () => Uplink; client: () => TestContainer; exit: () => ExitContainer; site: () => RemoteSite; network: () => ExitNetwork }): void;
}

/** A flow the service keeps sending: how many answers from the remote each of its tuples got so far. */
interface OngoingFlow {
  answered(): Promise<number[]>;
  /** Its processes are all still running. */
  running(): Promise<boolean>;
  /** The tail of its logs (for a failure message). */
  logs(): Promise<string>;
  stop(): Promise<void>;
}

const FLOW_PORTS = Array.from({ length: 16 }, (_, i) => 41_000 + i);

async function startFlow(kind: 'ping' | 'tcp', client: TestContainer, probe: string, body: string): Promise<OngoingFlow> {
  // Each process in the background of a shell of its own, its output in a file: `echo $!` gives its pid.
  const spawn = async (script: string): Promise<string> => {
    const r = await client.exec(['sh', '-c', `${script} & echo $!`]);
    const pid = r.stdout.trim();
    if (r.exitCode !== 0 || !/^\d+$/.test(pid)) throw new Error(`cannot start the flow in the service: ${r.stderr}`);
    return pid;
  };
  const count = async (pattern: string, file: string): Promise<number> => Number((await client.exec(['grep', '-c', pattern, file])).stdout.trim() || '0');
  const flows =
    kind === 'ping'
      ? [{ log: '/tmp/flow-ping.log', pattern: 'bytes from', pid: await spawn(`ping -i 0.02 ${probe} >/tmp/flow-ping.log 2>&1`) }]
      : await Promise.all(
          FLOW_PORTS.map(async (port, i) => {
            const log = `/tmp/flow-${port}.log`;
            // A connection every 0.4 s, ended by then when unanswered (busybox timeout counts whole
            // seconds). The request stays open until the server has answered and closed: the server
            // closes first, so the service's side keeps no TIME_WAIT and the next connection can
            // come from the same port at once.
            const request = `{ printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 0.4; } | nc -p ${port} ${probe} 80 & sleep 0.4; kill $! 2>/dev/null; wait`;
            // The ports start 25 ms apart, so that some connection is opened every 25 ms or so.
            const offset = ((i * 0.4) / FLOW_PORTS.length).toFixed(3);
            return { log, pattern: body, pid: await spawn(`sleep ${offset}; while :; do ${request}; done >${log} 2>&1`) };
          }),
        );
  return {
    answered: () => Promise.all(flows.map((f) => count(f.pattern, f.log))),
    running: async () => (await Promise.all(flows.map(async (f) => (await client.exec(['kill', '-0', f.pid])).exitCode === 0))).every(Boolean),
    logs: async () => (await client.exec(['sh', '-c', `tail -n 3 ${flows.map((f) => f.log).join(' ')}`])).stdout,
    stop: async () => void (await client.exec(['kill', ...flows.map((f) => f.pid)])),
  };
}

export function describeExit(suite: ExitSuite): void {
  const { prefix } = suite;
  let uplink: Uplink;
  let site: RemoteSite;
  let network: ExitNetwork;
  let exit: ExitContainer;
  let client: TestContainer;
  let unsteer: (() => Promise<void>) | undefined;

  const fetchProbe = async (): Promise<string> => {
    // busybox wget's own -T did not end a stalled transfer here: timeout(1) bounds it.
    const r = await client.exec(['timeout', '5', 'wget', '-q', '-O', '-', `http://${uplink.probe}/`], 15_000);
    return r.exitCode === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
  };
  const resolve = async (): Promise<string> => (await client.exec(['timeout', '8', 'nslookup', TEST_NAME, uplink.dnsServer], 15_000)).stdout;
  const waitForHealth = async (status: string): Promise<void> => {
    await until(`the exit to be ${status}`, async () => (await exit.health()) === status, 45_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; logs:\n${await exit.logs()}`);
    });
  };

  beforeAll(async () => {
    await removeExitLeftovers(prefix);
    await removeSiteLeftovers(prefix);
    uplink = await startUplink(prefix);
    site = await suite.startSite(prefix, { probe: uplink.probe });
    network = await createExitNetwork(prefix);
    client = await startClient(prefix, network, network.address(3));
    exit = await startExit({
      prefix,
      service: suite.service,
      network,
      ip: network.address(2),
      configFile: site.clientConfig,
      config: { ...(suite.config?.(site) ?? {}), health_check: `${uplink.probe}:80` },
      // The template's interval is 10 s; the test waits for fewer seconds.
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

  describe(`${suite.type} exit (${suite.service})`, () => {
    it('the service reaches the uplink directly before it is steered (the fixtures answer)', async () => {
      expect(await fetchProbe()).toBe('uplink');
      expect(await resolve()).toContain(uplink.dnsAnswer);
    });

    it(`steered, the service gets the remote answer (${suite.startSite.name}) and the uplink sees none of it`, async () => {
      unsteer = await steerThroughExit(prefix, network, client, exit);
      await waitForHealth('healthy');
      const before = await uplink.countPackets();
      expect(await fetchProbe()).toBe(site.body);
      expect(await uplink.countPackets()).toBe(before);
    });

    it('DNS to any server is answered through the connection, and no query reaches the uplink', async () => {
      const before = await uplink.countDns();
      const answer = await resolve();
      if (!answer.includes(site.dnsAnswer)) throw new Error(`no answer through the connection: ${answer}\nexit logs:\n${await exit.logs()}`);
      expect(answer).not.toContain(uplink.dnsAnswer);
      expect(await uplink.countDns()).toBe(before);
    });

    suite.extra?.({ uplink: () => uplink, client: () => client, exit: () => exit, site: () => site, network: () => network });

    it('the remote server down: nothing gets out, the health turns unhealthy, and both come back with it', async () => {
      const before = await uplink.countPackets();
      await site.stopServer();
      expect(await fetchProbe()).toMatch(/^failed/);
      expect(await resolve()).not.toContain(uplink.dnsAnswer);
      await waitForHealth('unhealthy');
      expect(await fetchProbe()).toMatch(/^failed/);
      expect(await uplink.countPackets()).toBe(before);

      await site.startServer();
      await waitForHealth('healthy');
      expect(await fetchProbe()).toBe(site.body);
      expect(await uplink.countPackets()).toBe(before);
    });

    it('the tunnel process killed: the exit stops with an error, nothing leaks, and its restart carries traffic again', async () => {
      const before = await uplink.countPackets();
      const pid = (await exit.exec(['pidof', suite.tunnelProcess])).stdout.trim();
      expect(pid).toMatch(/^\d+$/);
      await exit.exec(['kill', pid]);
      // While the tunnel process shuts down its tunnel may still carry a request; never the uplink.
      expect(await fetchProbe()).not.toBe('uplink');
      await until('the exit to restart', async () => (await exit.state()).restarts > 0, 20_000);
      expect(await exit.logs()).toContain('stopping the exit');
      await waitForHealth('healthy');
      expect(await fetchProbe()).toBe(site.body);
      expect(await uplink.countPackets()).toBe(before);
    });
    it(`a flow the service keeps sending (${suite.ongoingFlow}) resumes through the connection after the exit restarts, the service untouched, and the uplink counts none of it`, async () => {
      const flow = await startFlow(suite.ongoingFlow, client, uplink.probe, site.body);
      try {
        const service = (await docker.getContainer(client.id).inspect()).State.StartedAt;
        await until('the flow to be answered through the connection', async () => (await flow.answered()).every((n) => n > 0), 20_000);
        const before = await uplink.countPackets();
        const bounces: [string, () => Promise<void>][] = [
          ['docker restart', () => exit.restart()],
          ['docker kill and start', () => exit.killAndStart()],
        ];
        for (const [how, bounce] of bounces) {
          await bounce();
          await waitForHealth('healthy');
          const answered = await flow.answered();
          await until(`every tuple of the flow to be answered again after ${how}`, async () => (await flow.answered()).every((n, i) => n > (answered[i] ?? 0)), 20_000).catch(async (err: Error) => {
            const conntrack = (await exit.exec(['cat', '/proc/net/nf_conntrack'])).stdout;
            throw new Error(`${err.message}; answers per tuple before ${answered.join(',')}, now ${(await flow.answered()).join(',')}\nthe exit's conntrack:\n${conntrack}\nthe flow:\n${await flow.logs()}`);
          });
        }
        expect(await flow.running()).toBe(true);
        expect((await docker.getContainer(client.id).inspect()).State.StartedAt).toBe(service);
        expect(await uplink.countPackets()).toBe(before);
      } finally {
        await flow.stop();
      }
    }, 120_000);
  });
}
