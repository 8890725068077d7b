/**
 * "The internet" for the exit tests: network namespaces the test makes, each joined to the host by
 * a veth pair and reached by plain routing, running daemons of Debian packages with
 * `ip netns exec`. Nothing here talks to any address but those it creates.
 *
 * Every fixture claims one /24 of 198.18.0.0/16 (K), taken atomically as the host route
 * 198.18.K.0/24 over its veth (another fixture, a parallel run, gets "exists" and takes the next),
 * and owns 198.19.K.0/24 with it:
 *
 *   uplink          198.18.K.2 its end; PROBE 198.19.K.1:80 answers "uplink" (and, when asked,
 *                   serves BULK_PATH: that many bytes for throughput); DNS 198.19.K.53
 *                   answers TEST_NAME with 198.19.K.10; the host routes 198.19.K.0/24 to it.
 *                   Counters (iptables in the namespace) of every packet and every DNS query
 *                   arriving from the host.
 *   remote sites    a server at 198.18.K.2 (wireguard-go :51820, openvpn :1194…); through its
 *                   tunnel (198.19.K.0/24, not routed by the host, so only the tunnel reaches it)
 *                   it answers the uplink's PROBE address with "remote-<type>" and TEST_NAME with
 *                   198.19.K.10 from its DNS at 198.19.K.53.
 *   sshuttle        an sshd at 198.18.K.2:22 (its own host key and authorized key; the session runs
 *                   the host's python3, as sshuttle's server part needs).
 *
 * Names: namespace `<prefix>-<kind>`, host end `<prefix><kind>0`, namespace end `<prefix><kind>1`
 * (a prefix of at most 10 characters keeps them within Linux's 15). `removeSiteLeftovers(prefix)`
 * ends the processes left in such namespaces by a killed run (by their pids, from `ip netns pids`)
 * and removes the namespaces and veths.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where an HTTP server of these fixtures started with `bulkBytes` serves that many bytes. */
export const BULK_PATH = '/bulk';

/** The name every DNS server of these fixtures answers, each with its own address. */
export const TEST_NAME = 'probe.pic.test';

const BUSYBOX = process.env.BUSYBOX ?? '/bin/busybox';

/** Runs a program; a non-zero exit rejects with its stderr. Resolves to stdout. */
export async function sh(argv: string[], input?: string): Promise<string> {
  const [file, ...args] = argv as [string, ...string[]];
  if (input === undefined) {
    try {
      return (await run(file, args, { maxBuffer: 16 << 20 })).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${argv.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`);
    }
  }
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, (err, stdout, stderr) => (err ? reject(new Error(`${argv.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(stdout)));
    child.stdin?.end(input);
  });
}

async function trySh(argv: string[]): Promise<boolean> {
  try {
    await sh(argv);
    return true;
  } catch {
    return false;
  }
}

/** A daemon running inside a namespace; `stop` ends it (SIGTERM, then SIGKILL) and waits. */
export interface Daemon {
  readonly pid: number;
  stop(): Promise<void>;
  /** What it wrote on stderr so far (for a failure message). */
  stderr(): string;
}

export function spawnInNamespace(ns: string, argv: string[], env: Record<string, string> = {}): Daemon {
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid ?? -1,
    stderr: () => err,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Waits until `check` holds, polling; rejects after `ms` naming `what`. */
export async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One namespace joined to the host, with its /24 claimed. */
export interface Namespace {
  name: string;
  hostIf: string;
  nsIf: string;
  /** The third octet of 198.18.K.0/24 and 198.19.K.0/24. */
  k: number;
  hostAddress: string;
  nsAddress: string;
  /** ip netns exec <name> argv. */
  exec(argv: string[], input?: string): Promise<string>;
  spawn(argv: string[], env?: Record<string, string>): Daemon;
  /** A folder of its own for files (removed with the namespace). */
  dir: string;
  remove(): Promise<void>;
}

/** Creates `<prefix>-<kind>` and its veth pair, and claims a /24 for it. */
export async function createNamespace(prefix: string, kind: string): Promise<Namespace> {
  if (!/^[a-z][a-z0-9]{0,9}$/.test(prefix) || !/^[a-z]{2,3}$/.test(kind)) throw new Error(`bad namespace prefix/kind "${prefix}"/"${kind}"`);
  const name = `${prefix}-${kind}`;
  const hostIf = `${prefix}${kind}0`;
  const nsIf = `${prefix}${kind}1`;
  await removeNamespace(name, hostIf);
  await sh(['ip', 'netns', 'add', name]);
  const dir = await mkdtemp(join(tmpdir(), `${name}-`));
  try {
    await sh(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', name]);
    await sh(['ip', 'link', 'set', hostIf, 'up']);
    const k = await claimSlash24(hostIf);
    const hostAddress = `198.18.${k}.1`;
    const nsAddress = `198.18.${k}.2`;
    await sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    await sh(['ip', '-n', name, 'address', 'add', `${nsAddress}/24`, 'dev', nsIf]);
    await sh(['ip', '-n', name, 'link', 'set', nsIf, 'up']);
    await sh(['ip', '-n', name, 'route', 'add', 'default', 'via', hostAddress]);
    const daemons: Daemon[] = [];
    return {
      name,
      hostIf,
      nsIf,
      k,
      hostAddress,
      nsAddress,
      dir,
      exec: (argv, input) => sh(['ip', 'netns', 'exec', name, ...argv], input),
      spawn(argv, env) {
        const d = spawnInNamespace(name, argv, env);
        daemons.push(d);
        return d;
      },
      async remove() {
        for (const d of daemons) await d.stop();
        await removeNamespace(name, hostIf);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await removeNamespace(name, hostIf);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Takes the first free 198.18.K.0/24 (from a random start): the host end gets 198.18.K.1 without
 * the kernel's own prefix route, and the claim is adding that route, which fails when another
 * interface holds it.
 */
async function claimSlash24(hostIf: string): Promise<number> {
  const start = randomInt(1, 255);
  for (let i = 0; i < 254; i++) {
    const k = ((start + i - 1) % 254) + 1;
    await sh(['ip', 'address', 'add', `198.18.${k}.1/24`, 'dev', hostIf, 'noprefixroute']);
    if (await trySh(['ip', 'route', 'add', `198.18.${k}.0/24`, 'dev', hostIf, 'src', `198.18.${k}.1`])) return k;
    await sh(['ip', 'address', 'del', `198.18.${k}.1/24`, 'dev', hostIf]);
  }
  throw new Error('no free /24 in 198.18.0.0/16: remove leftover test namespaces (ip netns list)');
}

/** Ends what runs in the namespace (by pid), deletes it and the host end of its veth. */
async function removeNamespace(name: string, hostIf: string): Promise<void> {
  const pids = await sh(['ip', 'netns', 'pids', name]).catch(() => '');
  for (const pid of pids.split('\n').map((p) => Number(p.trim())).filter((p) => p > 1)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await trySh(['ip', 'netns', 'del', name]);
  await trySh(['ip', 'link', 'del', hostIf]);
}

/** Namespaces `<prefix>-*` and veths `<prefix>*` of an earlier, killed run. */
export async function removeSiteLeftovers(prefix: string): Promise<void> {
  const list = await sh(['ip', 'netns', 'list']);
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (name.startsWith(`${prefix}-`)) await removeNamespace(name, `${prefix}${name.slice(prefix.length + 1)}0`);
  }
  const links = await sh(['ip', '-o', 'link', 'show']);
  for (const m of links.matchAll(/^\d+: ([^:@\s]+)/gm)) {
    const link = m[1] ?? '';
    if (link.startsWith(prefix)) await trySh(['ip', 'link', 'del', link]);
  }
}

/** Counts (iptables in the namespace) of the packets arriving from the host. */
async function installCounters(ns: Namespace): Promise<void> {
  await ns.exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-i', ns.nsIf, '-m', 'comment', '--comment', 'all']);
  await ns.exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-i', ns.nsIf, '-p', 'udp', '--dport', '53', '-m', 'comment', '--comment', 'dns']);
  await ns.exec(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-i', ns.nsIf, '-p', 'tcp', '--dport', '53', '-m', 'comment', '--comment', 'dns']);
}

async function readCounter(ns: Namespace, comment: string): Promise<number> {
  const out = await ns.exec(['iptables', '-t', 'raw', '-L', 'PREROUTING', '-n', '-v', '-x']);
  let total = 0;
  for (const line of out.split('\n')) {
    if (line.includes(`/* ${comment} */`)) total += Number(line.trim().split(/\s+/)[0]);
  }
  return total;
}

async function startHttpd(ns: Namespace, address: string, body: string, folder: string, bulkBytes?: number): Promise<Daemon> {
  const www = join(ns.dir, folder);
  await sh(['mkdir', '-p', www]);
  await writeFile(join(www, 'index.html'), `${body}\n`);
  if (bulkBytes !== undefined) {
    if (!Number.isSafeInteger(bulkBytes) || bulkBytes < 1) throw new Error(`bulkBytes must be a positive integer, not ${bulkBytes}`);
    // A sparse file: any size, no disk space, read as zeros (nothing on the path compresses).
    const bulk = join(www, BULK_PATH.slice(1));
    await writeFile(bulk, '');
    await truncate(bulk, bulkBytes);
  }
  const d = ns.spawn([BUSYBOX, 'httpd', '-f', '-p', `${address}:80`, '-h', www]);
  await until(`httpd on ${address}:80 in ${ns.name}`, async () => (await ns.exec(['ss', '-Hltn', 'src', `${address}:80`])).includes(address));
  return d;
}

async function startDnsServer(ns: Namespace, address: string, answer: string): Promise<Daemon> {
  const d = ns.spawn([
    'dnsmasq', '--keep-in-foreground', '--no-resolv', '--no-hosts', '--no-poll', '--bind-interfaces', `--listen-address=${address}`,
    '--pid-file=', '--user=root', '--log-facility=-', `--address=/${TEST_NAME}/${answer}`,
  ]);
  await until(`dnsmasq on ${address}:53 in ${ns.name}`, async () => (await ns.exec(['ss', '-Hlun', 'src', `${address}:53`])).includes(address));
  return d;
}

export interface Uplink {
  ns: Namespace;
  /** 198.19.K.1: answers HTTP on port 80 with "uplink". */
  probe: string;
  /** 198.19.K.53: answers TEST_NAME with `dnsAnswer`. */
  dnsServer: string;
  dnsAnswer: string;
  /** Packets that arrived from the host so far. */
  countPackets(): Promise<number>;
  /** DNS queries (udp or tcp port 53) that arrived from the host so far. */
  countDns(): Promise<number>;
  stop(): Promise<void>;
}

export interface UplinkOptions {
  /** Also serve BULK_PATH on the probe address: this many bytes (for a throughput measurement). */
  bulkBytes?: number;
}

export async function startUplink(prefix: string, options: UplinkOptions = {}): Promise<Uplink> {
  const ns = await createNamespace(prefix, 'up');
  try {
    const probe = `198.19.${ns.k}.1`;
    const dnsServer = `198.19.${ns.k}.53`;
    const dnsAnswer = `198.19.${ns.k}.10`;
    await ns.exec(['ip', 'address', 'add', `${probe}/32`, 'dev', 'lo']);
    await ns.exec(['ip', 'address', 'add', `${dnsServer}/32`, 'dev', 'lo']);
    await sh(['ip', 'route', 'add', `198.19.${ns.k}.0/24`, 'via', ns.nsAddress, 'dev', ns.hostIf]);
    await installCounters(ns);
    await startHttpd(ns, probe, 'uplink', 'www', options.bulkBytes);
    await startDnsServer(ns, dnsServer, dnsAnswer);
    return {
      ns,
      probe,
      dnsServer,
      dnsAnswer,
      countPackets: () => readCounter(ns, 'all'),
      countDns: () => readCounter(ns, 'dns'),
      stop: () => ns.remove(),
    };
  } catch (err) {
    await ns.remove();
    throw err;
  }
}

/** A remote site: its own answer on the uplink's probe address, reached only through its tunnel. */
export interface RemoteSite {
  ns: Namespace;
  /** The body its HTTP server gives on the probe address, e.g. "remote-wireguard". */
  body: string;
  /** Its DNS server, reached only through its tunnel (198.19.K.53). */
  dnsServer: string;
  /** What its DNS server answers for TEST_NAME. */
  dnsAnswer: string;
  /** The file the exit's Connection uses (configFile). */
  clientConfig: string;
  /** The connection's server, host:port on the "internet" (for a health check, for instance). */
  endpoint: string;
  /** Config values the exit needs for this site besides its file (sshuttle: host, user, host key). */
  exitConfig?: Record<string, string>;
  /** Take the server down (the tunnel with it) and bring it back. */
  stopServer(): Promise<void>;
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface SiteOptions {
  /** The uplink's probe address: the site answers it too, differently. */
  probe: string;
  /** What its HTTP server answers there (default "remote-<type>"): two sites of one type told apart. */
  body?: string;
  /** Also serve BULK_PATH on the probe address: this many bytes (for a throughput measurement). */
  bulkBytes?: number;
}

async function wgKeyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await sh(['wg', 'genkey'])).trim();
  const publicKey = (await sh(['wg', 'pubkey'], `${privateKey}\n`)).trim();
  return { privateKey, publicKey };
}

/** The part every remote site shares: its namespace, the probe address and the DNS server behind its tunnel. */
async function startSiteBase(prefix: string, kind: string, options: SiteOptions, body: string): Promise<{ ns: Namespace; dnsServer: string; dnsAnswer: string }> {
  const ns = await createNamespace(prefix, kind);
  try {
    const dnsServer = `198.19.${ns.k}.53`;
    const dnsAnswer = `198.19.${ns.k}.10`;
    await ns.exec(['ip', 'address', 'add', `${options.probe}/32`, 'dev', 'lo']);
    await ns.exec(['ip', 'address', 'add', `${dnsServer}/32`, 'dev', 'lo']);
    await startHttpd(ns, options.probe, body, 'www', options.bulkBytes);
    await startDnsServer(ns, dnsServer, dnsAnswer);
    return { ns, dnsServer, dnsAnswer };
  } catch (err) {
    await ns.remove();
    throw err;
  }
}

/** A server daemon that the site can take down and bring back. */
function restartable(start: () => Promise<Daemon>, gone: () => Promise<boolean>): { startServer(): Promise<void>; stopServer(): Promise<void> } {
  let daemon: Daemon | undefined;
  return {
    async startServer() {
      daemon = await start();
    },
    async stopServer() {
      await daemon?.stop();
      daemon = undefined;
      await until('the server to be gone', gone, 10_000);
    },
  };
}

export interface WireguardSiteOptions extends SiteOptions {
  /** More clients the server accepts (at most 7), each with a wg-quick file of its own. */
  extraPeers?: number;
}

export interface WireguardSite extends RemoteSite {
  /** The wg-quick files of the extra peers (tunnel addresses 198.19.K.3, .4, …). */
  extraClientConfigs: string[];
  /** The server's WireGuard interface in the site's namespace. */
  tunnelInterface: string;
}

/** A WireGuard server (wireguard-go) whose tunnel leads to the probe address and a DNS server. */
export async function startWireguardSite(prefix: string, options: WireguardSiteOptions): Promise<WireguardSite> {
  const body = options.body ?? 'remote-wireguard';
  const extra = options.extraPeers ?? 0;
  if (!Number.isInteger(extra) || extra < 0 || extra > 7) throw new Error(`extraPeers must be an integer from 0 to 7, not ${extra}`);
  const { ns, dnsServer, dnsAnswer } = await startSiteBase(prefix, 'wg', options, body);
  try {
    const k = ns.k;
    const tunnelServer = `198.19.${k}.1`;
    const port = 51820;
    // wireguard-go's control socket is /var/run/wireguard/<interface>.sock on the host's file
    // system, shared by every namespace: the interface gets a name of its own.
    const wgIf = `${prefix}wgs`;
    const server = await wgKeyPair();
    // The first client is .2; the extra peers follow (.10 is the DNS answer, never a peer).
    const clients = await Promise.all(Array.from({ length: 1 + extra }, async (_, i) => ({ ...(await wgKeyPair()), address: `198.19.${k}.${2 + i}` })));
    const keyFile = join(ns.dir, 'server.key');
    await writeFile(keyFile, `${server.privateKey}\n`, { mode: 0o600 });
    await chmod(keyFile, 0o600);
    const present = () => trySh(['ip', '-n', ns.name, 'link', 'show', wgIf]);
    const control = restartable(
      async () => {
        const d = ns.spawn(['wireguard-go', '-f', wgIf], { WG_PROCESS_FOREGROUND: '1' });
        await until(`wireguard-go's ${wgIf} in ${ns.name}`, present, 10_000).catch((err: Error) => {
          throw new Error(`${err.message}: ${d.stderr()}`);
        });
        await until(`the control socket of ${wgIf}`, () => trySh(['ip', 'netns', 'exec', ns.name, 'wg', 'show', wgIf]), 10_000);
        const peers = clients.flatMap((c) => ['peer', c.publicKey, 'allowed-ips', `${c.address}/32`]);
        await ns.exec(['wg', 'set', wgIf, 'listen-port', String(port), 'private-key', keyFile, ...peers]);
        await ns.exec(['ip', 'address', 'add', `${tunnelServer}/24`, 'dev', wgIf]);
        await ns.exec(['ip', 'link', 'set', wgIf, 'up']);
        return d;
      },
      async () => !(await present()),
    );
    await control.startServer();

    const configOf = (client: { privateKey: string; address: string }) =>
      [
        '# A wg-quick file as a provider exports it (no PersistentKeepalive: the exit adds one).',
        '[Interface]',
        `PrivateKey = ${client.privateKey}`,
        `Address = ${client.address}/32`,
        `DNS = ${dnsServer}`,
        '',
        '[Peer]',
        `PublicKey = ${server.publicKey}`,
        `Endpoint = ${ns.nsAddress}:${port}`,
        'AllowedIPs = 0.0.0.0/0, ::/0',
        '',
      ].join('\n');
    const [first, ...others] = clients;
    return {
      ns,
      body,
      dnsServer,
      dnsAnswer,
      clientConfig: configOf(first!),
      extraClientConfigs: others.map(configOf),
      tunnelInterface: wgIf,
      endpoint: `${ns.nsAddress}:${port}`,
      ...control,
      stop: () => ns.remove(),
    };
  } catch (err) {
    await ns.remove();
    throw err;
  }
}

/** A test CA and two certificates signed by it (EC P-256, valid two days), made with openssl. */
async function testCertificates(dir: string): Promise<{ ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string }> {
  const f = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await sh(['openssl', 'req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=pic exit test CA']);
  for (const [name, usage, serial] of [['server', 'serverAuth', '2'], ['client', 'clientAuth', '3']] as const) {
    await writeFile(f(`${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=${usage}\n`);
    await sh(['openssl', 'req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name}`]);
    await sh(['openssl', 'x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-set_serial', serial, '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`)]);
  }
  const read = (name: string) => readFile(f(name), 'utf8');
  return { ca: await read('ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'), clientCert: await read('client.crt'), clientKey: await read('client.key') };
}

/**
 * An OpenVPN server (Debian's openvpn, UDP 1194, its own test CA) that pushes a DNS server and
 * redirect-gateway (the exit routes by itself and must ignore the latter).
 */
export async function startOpenvpnSite(prefix: string, options: SiteOptions): Promise<RemoteSite> {
  const body = 'remote-openvpn';
  const { ns, dnsServer, dnsAnswer } = await startSiteBase(prefix, 'ov', options, body);
  try {
    const k = ns.k;
    const port = 1194;
    const certs = await testCertificates(ns.dir);
    const listening = async () => (await ns.exec(['ss', '-Hlun', 'src', `${ns.nsAddress}:${port}`])).includes(ns.nsAddress);
    const control = restartable(
      async () => {
        const d = ns.spawn([
          'openvpn', '--dev', `${prefix}ovs`, '--dev-type', 'tun', '--proto', 'udp', '--local', ns.nsAddress, '--port', String(port),
          '--server', `198.19.${k}.128`, '255.255.255.128', '--topology', 'subnet', '--ca', join(ns.dir, 'ca.crt'), '--cert', certs.serverCert,
          '--key', certs.serverKey, '--dh', 'none', '--keepalive', '2', '10', '--push', `dhcp-option DNS ${dnsServer}`, '--push', 'redirect-gateway def1', '--verb', '1',
        ]);
        await until(`openvpn listening on ${ns.nsAddress}:${port}`, listening, 10_000).catch((err: Error) => {
          throw new Error(`${err.message}: ${d.stderr()}`);
        });
        return d;
      },
      async () => !(await listening()),
    );
    await control.startServer();
    const clientConfig = [
      '# An .ovpn file as a provider exports it, keys inline.',
      'client',
      'dev tun',
      'proto udp',
      `remote ${ns.nsAddress} ${port}`,
      'nobind',
      'remote-cert-tls server',
      'verb 3',
      `<ca>\n${certs.ca.trim()}\n</ca>`,
      `<cert>\n${certs.clientCert.trim()}\n</cert>`,
      `<key>\n${certs.clientKey.trim()}\n</key>`,
      '',
    ].join('\n');
    return { ns, body, dnsServer, dnsAnswer, clientConfig, endpoint: `${ns.nsAddress}:${port}`, ...control, stop: () => ns.remove() };
  } catch (err) {
    await ns.remove();
    throw err;
  }
}

/**
 * A SOCKS5 proxy (Debian's microsocks, no authentication) at 198.18.K.2:1080: what it connects to
 * inside its namespace answers the probe with "remote-proxy" and TEST_NAME (over TCP) from 198.19.K.53.
 * Its clientConfig is the proxy URL, as the proxy exit reads it from a configFile.
 */
export async function startProxySite(prefix: string, options: SiteOptions): Promise<RemoteSite> {
  const body = 'remote-proxy';
  const { ns, dnsServer, dnsAnswer } = await startSiteBase(prefix, 'px', options, body);
  try {
    const port = 1080;
    const listening = async () => (await ns.exec(['ss', '-Hltn', 'src', `${ns.nsAddress}:${port}`])).includes(ns.nsAddress);
    const control = restartable(
      async () => {
        const d = ns.spawn(['microsocks', '-i', ns.nsAddress, '-p', String(port)]);
        await until(`microsocks on ${ns.nsAddress}:${port}`, listening, 10_000).catch((err: Error) => {
          throw new Error(`${err.message}: ${d.stderr()}`);
        });
        return d;
      },
      async () => !(await listening()),
    );
    await control.startServer();
    const endpoint = `${ns.nsAddress}:${port}`;
    return { ns, body, dnsServer, dnsAnswer, clientConfig: `socks5://${endpoint}\n`, endpoint, ...control, stop: () => ns.remove() };
  } catch (err) {
    await ns.remove();
    throw err;
  }
}

/**
 * An SSH server (Debian's sshd, its own ed25519 host key, root's login by key only) at
 * 198.18.K.2:22: sshuttle's server part runs in its session (the host's python3), so what it
 * connects to answers the probe with "remote-sshuttle" and TEST_NAME from 198.19.K.53. Its
 * clientConfig is the client's private key; exitConfig gives host, port, user and the host key.
 * stopServer ends the listening sshd and every session it started.
 */
export async function startSshuttleSite(prefix: string, options: SiteOptions): Promise<RemoteSite> {
  const body = 'remote-sshuttle';
  const { ns, dnsServer, dnsAnswer } = await startSiteBase(prefix, 'ss', options, body);
  try {
    const port = 22;
    const file = (name: string) => join(ns.dir, name);
    await sh(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `${prefix} test host`, '-f', file('host_key')]);
    await sh(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `${prefix} test client`, '-f', file('client_key')]);
    await writeFile(file('authorized_keys'), await readFile(file('client_key.pub'), 'utf8'), { mode: 0o600 });
    await writeFile(
      file('sshd_config'),
      [
        `ListenAddress ${ns.nsAddress}:${port}`,
        `HostKey ${file('host_key')}`,
        `AuthorizedKeysFile ${file('authorized_keys')}`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        // The files live under /tmp, which StrictModes refuses as a parent folder.
        'StrictModes no',
        'PidFile none',
        'AllowTcpForwarding yes',
        'PrintMotd no',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    // sshd's privilege separation folder (Debian's unit makes it; no unit runs here).
    await sh(['mkdir', '-p', '/run/sshd']);
    const listening = async () => (await ns.exec(['ss', '-Hltn', 'src', `${ns.nsAddress}:${port}`])).includes(ns.nsAddress);
    const sessions = async (): Promise<number[]> => {
      const pids = (await sh(['ip', 'netns', 'pids', ns.name])).split('\n').map((p) => Number(p.trim())).filter((p) => p > 1);
      const found: number[] = [];
      for (const pid of pids) if ((await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() === 'sshd') found.push(pid);
      return found;
    };
    let daemon: Daemon | undefined;
    const startServer = async () => {
      const d = ns.spawn(['/usr/sbin/sshd', '-D', '-e', '-f', file('sshd_config')]);
      await until(`sshd listening on ${ns.nsAddress}:${port}`, listening, 10_000).catch((err: Error) => {
        throw new Error(`${err.message}: ${d.stderr()}`);
      });
      daemon = d;
    };
    const stopServer = async () => {
      await daemon?.stop();
      daemon = undefined;
      // The sessions outlive the listener: end them too (by pid), so the server is really gone.
      for (const pid of await sessions()) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      await until('sshd and its sessions to be gone', async () => !(await listening()) && (await sessions()).length === 0, 10_000);
    };
    await startServer();
    const hostKey = (await readFile(file('host_key.pub'), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    return {
      ns,
      body,
      dnsServer,
      dnsAnswer,
      clientConfig: await readFile(file('client_key'), 'utf8'),
      endpoint: `${ns.nsAddress}:${port}`,
      exitConfig: { host: ns.nsAddress, port: String(port), user: 'root', host_key: hostKey },
      startServer,
      stopServer,
      stop: () => ns.remove(),
    };
  } catch (err) {
    await ns.remove();
    throw err;
  }
}
