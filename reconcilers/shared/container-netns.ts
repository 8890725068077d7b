/**
 * Reads of a core container's network state (its netfilter tables, policy routing, links and
 * WireGuard peer set) from the host, through the container's namespaces, instead of a `docker
 * exec` per observation: `nsenter --net=/proc/<pid>/ns/net iptables-save`, one `ip -json -batch`,
 * and WireGuard's UAPI socket under `/proc/<pid>/root`. No Docker request is made; a pass in sync
 * costs two host processes per resource and no exec.
 *
 * The host's view needs root (entering a namespace, reading another process's root), the
 * container's pid (from the owner guard's inspect), and an iptables of the same backend as the
 * container's (rules written by iptables-nft are not seen by iptables-legacy, and the other way
 * round). When one of these is missing, every read goes through the Docker exec API instead,
 * one exec per read (`iptables-save`, `ip -json -batch -`, `wg show <if> dump`), and `via` says why.
 * Writes stay execs in the container (reconcilers' apply.ts): they happen only when something
 * differs.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { execInContainer } from './exec.js';
import type { OwnedContainer } from './owned-container.js';

const READ_TIMEOUT_MS = 10_000;
const MAX_OUTPUT = 64 << 20;
/** Where the host's iptables lives (Debian; `iptables-save` is a link to the backend's multi-binary). */
const HOST_IPTABLES_SAVE = ['/usr/sbin/iptables-save', '/sbin/iptables-save'];
const CONTAINER_BIN_DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin'];

export interface ContainerNetworkReader {
  /** `host`: through the container's namespaces; `exec`: through the Docker exec API, with the reason. */
  readonly via: { mode: 'host' } | { mode: 'exec'; reason: string };
  /** `iptables-save` of every table the container's netns has (each `*table` … `COMMIT`). */
  iptablesSave(): Promise<string>;
  /** One `ip -json -batch -`: the parsed JSON array of each command, in order. */
  ipJson(commands: readonly string[]): Promise<unknown[][]>;
  /**
   * The interface's state as WireGuard's cross-platform UAPI `get=1` answers it (`key=value`
   * lines), or, read by exec, `wg show <if> dump`; the caller parses the one it got.
   */
  wireguard(iface: string): Promise<{ format: 'uapi' | 'dump'; text: string }>;
}

/**
 * The reader for one resolved container: whether this process may and can read from the host is
 * decided here (a few file-system reads, no process), once per resolution.
 */
export async function containerNetworkReader(docker: Dockerode, container: OwnedContainer): Promise<ContainerNetworkReader> {
  const refusal = await hostReadRefusal(container);
  if (refusal === undefined) return hostReader(container, container.pid!, docker);
  return execReader(docker, container, refusal);
}

/** Why the host cannot read the container's namespaces, or undefined when it can. */
export async function hostReadRefusal(container: OwnedContainer): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'pic does not run as root, so it cannot enter the container\'s namespaces';
  if (container.pid === undefined) return `no process of ${container.name} is known (it is not running, or was not inspected)`;
  const proc = `/proc/${container.pid}`;
  // The pid came from an inspect; it must still be that container's (a pid is reused once freed).
  const cgroup = await fs.readFile(`${proc}/cgroup`, 'utf8').catch(() => '');
  if (!cgroup.includes(container.id)) return `process ${container.pid} is not (or no longer) in ${container.name}'s control group, or pic does not see the host's processes`;
  const host = await backendOf(HOST_IPTABLES_SAVE.map((p) => ({ root: '/', file: p })));
  if (host === undefined) return 'the host has no iptables-nft or iptables-legacy';
  const inside = await backendOf(CONTAINER_BIN_DIRS.map((dir) => ({ root: `${proc}/root`, file: `${dir}/iptables` })));
  if (inside === undefined) return `cannot tell the iptables backend of ${container.name}`;
  if (inside !== host) return `${container.name} uses iptables-${inside} and the host iptables-${host}: they see different rules`;
  return undefined;
}

/**
 * `nft` or `legacy`, from the multi-binary the first existing candidate links to (links
 * followed inside `root`, so an absolute link in the container is not read on the host).
 */
async function backendOf(candidates: readonly { root: string; file: string }[]): Promise<'nft' | 'legacy' | undefined> {
  for (const { root, file } of candidates) {
    let current = file;
    for (let hops = 0; hops < 16; hops++) {
      const base = path.basename(current);
      if (/nft/.test(base)) return 'nft';
      if (/legacy/.test(base)) return 'legacy';
      const target = await fs.readlink(path.join(root, current)).catch(() => undefined);
      if (target === undefined) break;
      current = path.isAbsolute(target) ? target : path.join(path.dirname(current), target);
    }
  }
  return undefined;
}

/** Reads from the host through the namespaces of process `pid` (checked by `hostReadRefusal`). */
export function hostReader(container: OwnedContainer, pid: number, docker?: Dockerode): ContainerNetworkReader {
  const netns = `--net=/proc/${pid}/ns/net`;
  return {
    via: { mode: 'host' },
    iptablesSave: () => runHost('nsenter', [netns, 'iptables-save'], undefined, container.name),
    async ipJson(commands) {
      return parseIpBatch(await runHost('nsenter', [netns, 'ip', '-json', '-batch', '-'], `${commands.join('\n')}\n`, container.name), commands.length);
    },
    async wireguard(iface) {
      const socket = `/proc/${pid}/root/var/run/wireguard/${iface}.sock`;
      if (await fs.stat(socket).then(() => true, () => false)) return { format: 'uapi', text: await uapiGet(socket, container.name) };
      // No userspace WireGuard: the kernel's, asked over netlink from inside the namespace by the
      // host's `wg`, or by exec where the host has none.
      const text = await runHost('nsenter', [netns, 'wg', 'show', iface, 'dump'], undefined, container.name).catch((err: Error) =>
        /ENOENT|No such file/.test(err.message) && docker ? execReader(docker, container, 'no wg on the host').wireguard(iface).then((r) => r.text) : Promise.reject(err),
      );
      return { format: 'dump', text };
    },
  };
}

/** The host's own network state (its netfilter tables, policy routing, addresses): where egress steering lives. */
export interface HostNetworkReader {
  iptablesSave(): Promise<string>;
  ipJson(commands: readonly string[]): Promise<unknown[][]>;
}

export function hostNetworkReader(): HostNetworkReader {
  return {
    iptablesSave: () => runHost('iptables-save', [], undefined, 'the host'),
    ipJson: async (commands) => parseIpBatch(await runHost('ip', ['-json', '-batch', '-'], `${commands.join('\n')}\n`, 'the host'), commands.length),
  };
}

/** Reads by one Docker exec each, in the container. */
export function execReader(docker: Dockerode, container: OwnedContainer, reason: string): ContainerNetworkReader {
  const run = async (argv: string[], stdin?: string) => {
    const result = await execInContainer(docker, container, argv, stdin === undefined ? {} : { stdin });
    if (result.exitCode !== 0) throw new Error(`${argv.join(' ')} in container ${container.name} exited ${result.exitCode}: ${result.stderr.trim()}`);
    return result.stdout;
  };
  return {
    via: { mode: 'exec', reason },
    iptablesSave: () => run(['iptables-save']),
    ipJson: async (commands) => parseIpBatch(await run(['ip', '-json', '-batch', '-'], `${commands.join('\n')}\n`), commands.length),
    wireguard: async (iface) => ({ format: 'dump', text: await run(['wg', 'show', iface, 'dump']) }),
  };
}

function runHost(file: string, args: string[], stdin: string | undefined, container: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: READ_TIMEOUT_MS, maxBuffer: MAX_OUTPUT, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} (reading ${container === 'the host' ? container : `container ${container}`}): ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** `ip -json -batch` prints one JSON array per command, each on its own line. Pure. */
export function parseIpBatch(stdout: string, commands: number): unknown[][] {
  const arrays = stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as unknown);
  if (arrays.length !== commands || !arrays.every(Array.isArray)) throw new Error(`ip -json -batch: expected ${commands} JSON arrays, got ${arrays.length}`);
  return arrays as unknown[][];
}

/** One `get=1` on a WireGuard UAPI socket: the answer up to its blank line, `errno=0` checked. */
export function uapiGet(socket: string, container: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const conn = net.createConnection(socket);
    const fail = (message: string) => {
      conn.destroy();
      reject(new Error(`WireGuard UAPI ${socket} (container ${container}): ${message}`));
    };
    conn.setTimeout(READ_TIMEOUT_MS, () => fail('no answer'));
    conn.on('connect', () => conn.write('get=1\n\n'));
    conn.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('utf8');
      if (!text.endsWith('\n\n')) return;
      conn.end();
      const errno = /^errno=(-?\d+)$/m.exec(text)?.[1];
      if (errno !== '0') fail(`errno=${errno ?? '(none)'}`);
      else resolve(text);
    });
    conn.on('error', (err) => fail(err.message));
    conn.on('end', () => fail('closed before the end of its answer'));
  });
}
