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
import { spawn } from 'node:child_process';
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
   * source ports, so that each port is one conntrack tuple; see TCP_FLOW) where it relays TCP only.
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

/**
 * The `tcp` flow, run by the host's python3 in the service's network namespace (busybox nc cannot
 * choose the source port of a connection): from each port given, an HTTP request to the probe
 * address every 0.4 s, the ports 25 ms apart, so that some connection opens every 25 ms. One not
 * answered within 0.4 s is abandoned (closing a socket in SYN_SENT sends nothing); an answered one
 * is closed with a reset (SO_LINGER 0), so that no TIME_WAIT keeps its port. Prints the port of
 * each answer that holds the body it is given; ends when its stdin closes.
 */
const TCP_FLOW = `
import os, socket, struct, sys, threading, time
probe, body, ports = sys.argv[1], sys.argv[2].encode(), [int(p) for p in sys.argv[3:]]
lock = threading.Lock()
def run(port, delay):
    time.sleep(delay)
    while True:
        began = time.monotonic()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        try:
            s.bind(('0.0.0.0', port))
            s.settimeout(0.4)
            s.connect((probe, 80))
            s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')
            data = b''
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if body in data:
                with lock:
                    print(port, flush=True)
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(max(0.0, 0.4 - (time.monotonic() - began)))
for i, port in enumerate(ports):
    threading.Thread(target=run, args=(port, i * 0.4 / len(ports)), daemon=True).start()
sys.stdin.read()
os._exit(0)
`;

async function startFlow(kind: 'ping' | 'tcp', client: TestContainer, probe: string, body: string): Promise<OngoingFlow> {
  if (kind === 'tcp') {
    const pid = (await docker.getContainer(client.id).inspect()).State.Pid;
    const child = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, '/usr/bin/python3', '-u', '-c', TCP_FLOW, probe, body, ...FLOW_PORTS.map(String)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const answers = new Map<number, number>();
    let stderr = '';
    let rest = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) answers.set(Number(line), (answers.get(Number(line)) ?? 0) + 1);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => void (stderr = (stderr + chunk).slice(-2000)));
    return {
      answered: async () => FLOW_PORTS.map((port) => answers.get(port) ?? 0),
      running: async () => child.exitCode === null && child.signalCode === null,
      logs: async () => `answers per port: ${FLOW_PORTS.map((port) => `${port}:${answers.get(port) ?? 0}`).join(' ')}\n${stderr}`,
      stop: async () => {
        child.stdin.end();
        child.kill();
      },
    };
  }
  // ping in the background of a shell of the service's own, its output in a file (`echo $!` gives its pid).
  const log = '/tmp/flow-ping.log';
  const r = await client.exec(['sh', '-c', `ping -i 0.02 ${probe} >${log} 2>&1 & echo $!`]);
  const ping = r.stdout.trim();
  if (r.exitCode !== 0 || !/^\d+$/.test(ping)) throw new Error(`cannot start ping in the service: ${r.stderr}`);
  return {
    answered: async () => [Number((await client.exec(['grep', '-c', 'bytes from', log])).stdout.trim() || '0')],
    running: async () => (await client.exec(['kill', '-0', ping])).exitCode === 0,
    logs: async () => (await client.exec(['tail', '-n', '3', log])).stdout,
    stop: async () => void (await client.exec(['kill', ping])),
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
