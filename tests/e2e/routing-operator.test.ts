/**
 * Routing end to end through the real operator (watching the cell folder): a Caddy container on
 * the cell's network, a `cell-wireguard` stand-in (iptables-nft, NET_ADMIN), and two routed
 * busybox services installed and removed by writing and deleting their documents. Each step checks
 * what a person would: the page behind each host name, the zone file (also through
 * `named-checkzone`), the firewall chain, the statuses, and `pic plan`. (Egress through a
 * Connection's exit has its own end-to-end test, egress-operator.test.ts.) Caddy's admin API is reached through a counting proxy on loopback,
 * so the test can tell whether the operator asked Caddy to load anything.
 *
 * Steps run in order, each on the state the previous one left.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { IptablesRule } from '../../crds/types.js';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { startCountingProxy, type CountingProxy } from '../support/caddy.js';
import { waitFor } from '../support/cell.js';
import { docker } from '../support/docker.js';
import {
  createRoutingCell,
  removeRoutingCell,
  removeStaleRoutingCells,
  routeAnswers,
  startCellCaddy,
  throughCaddy,
  type CellCaddy,
  type RoutedService,
  type RoutingCell,
} from '../support/routing-cell.js';
import {
  buildWireguardImage,
  recordExecs,
  removeWireguardContainer,
  removeWireguardImage,
  removeWireguardLeftovers,
  startWireguardContainer,
  type WireguardTestContainer,
} from '../support/wireguard.js';

const run = promisify(execFile);

const SUITE = 'routing-operator';
const RESOURCES = ['Resource/caddy', 'Resource/dns', 'Resource/firewall', 'Resource/egress'];

const tcp = (port: number): IptablesRule => ({ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: port, proto: 'tcp' });
const udp = (port: number): IptablesRule => ({ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: port, proto: 'udp' });

/** `web` opens one port to VPN peers; `relay` opens two and leaves through the VPN exit. */
const WEB: RoutedService = { id: 'web', iptablesRules: [tcp(8080)] };
const RELAY: RoutedService = { id: 'relay', subdomain: 'relay', iptablesRules: [udp(5353), tcp(8080)], egress: ['wireguard_ext'] };

let cell: RoutingCell | undefined;
let caddy: CellCaddy | undefined;
let proxy: CountingProxy | undefined;
let wgImage: string | undefined;
let wg: WireguardTestContainer | undefined;
let operator: Operator | undefined;
let status: StatusStore;

function the<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} did not start (see beforeAll)`);
  return value;
}
const c = () => the(cell, 'the test cell');
const k = () => the(caddy, 'the Caddy container');
const w = () => the(wg, 'the wireguard test container');
const p = () => the(proxy, 'the admin proxy');

async function phaseOf(key: string, phase: DocumentStatus['phase']): Promise<DocumentStatus | undefined> {
  const s = await status.get(key);
  return s?.phase === phase ? s : undefined;
}

async function waitPhase(key: string, phase: DocumentStatus['phase']): Promise<DocumentStatus> {
  return waitFor(`${key} ${phase}`, () => phaseOf(key, phase));
}

async function serviceIp(id: string): Promise<string> {
  const s = await waitPhase(`ServiceInstall/${id}`, 'Ready');
  const ip = s.facts?.serviceIp;
  if (typeof ip !== 'string') throw new Error(`ServiceInstall/${id} is Ready without a serviceIp fact`);
  return ip;
}

async function lines(argv: string[]): Promise<string[]> {
  return (await w().sh(argv))
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter((l) => l !== '');
}

/** The rules of an own chain, without its `-N` line. */
async function chain(table: string, name: string): Promise<string[]> {
  return (await lines(['iptables', '-t', table, '-S', name])).filter((l) => l.startsWith('-A '));
}

function firewallRules(id: string, ip: string, rules: IptablesRule[]): string[] {
  return rules.map((r) => `-A PIC-SERVICES -d ${ip}/32 -p ${r.proto} -m ${r.proto} --dport ${r.dest_port} -m comment --comment "pic:${id}" -j ACCEPT`);
}


/** A records of the zone file, as `owner address`. */
async function zoneRecords(): Promise<string[]> {
  const text = await fs.readFile(c().zoneFile, 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(/\s+/))
    .filter((f) => f[1] === 'IN' && f[2] === 'A')
    .map((f) => `${f[0]} ${f[3]}`);
}

async function checkZone(): Promise<string> {
  const { stdout } = await run('named-checkzone', [c().domain, c().zoneFile]);
  return stdout;
}

async function fileIdentity(file: string): Promise<{ ino: number; mtimeMs: number; size: number }> {
  const s = await fs.stat(file);
  return { ino: s.ino, mtimeMs: s.mtimeMs, size: s.size };
}

async function serviceContainer(id: string): Promise<{ state: string } | undefined> {
  const list = await docker.listContainers({ all: true, filters: { name: [`^/${c().containerName(id)}$`] } });
  return list[0] ? { state: list[0].State } : undefined;
}

async function allReady(keys: string[]): Promise<true | undefined> {
  for (const key of keys) if (!(await phaseOf(key, 'Ready'))) return undefined;
  return true;
}

beforeAll(async () => {
  // Leftovers of a run that was killed before its afterAll.
  await removeStaleRoutingCells(SUITE);
  await removeWireguardLeftovers();

  cell = await createRoutingCell([WEB, RELAY], SUITE);
  caddy = await startCellCaddy(cell);
  const current = caddy;
  proxy = await startCountingProxy(() => `127.0.0.1:${current.adminPort}`);
  wgImage = await buildWireguardImage();
  wg = await startWireguardContainer(wgImage, cell.labels);

  await cell.writeCellDocument({ adminAddress: proxy.address, wireguardContainer: wg.name });
  status = new StatusStore(path.join(cell.stateDir, 'status'));
  operator = new Operator({
    cellDir: cell.cellDir,
    stateDir: new StateDir(cell.stateDir),
    docker,
    logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }),
    resyncIntervalMs: 60 * 60_000,
    watch: true,
  });
  await operator.stateDirReady();
  await operator.start();
});

afterAll(async () => {
  await operator?.stop();
  await proxy?.close();
  if (wg) await removeWireguardContainer(wg);
  if (cell) await removeRoutingCell(cell);
  if (wgImage) await removeWireguardImage(wgImage);
});

describe('routing through the operator', () => {
  test('two routed services installed by their documents: pages, zone, firewall, egress, statuses', async () => {
    await c().writeService('web');
    await c().writeService('relay');
    const webIp = await serviceIp('web');
    const relayIp = await serviceIp('relay');
    expect(webIp).not.toBe(relayIp);

    // Each host name reaches its own container through Caddy.
    for (const id of ['web', 'relay']) {
      await waitFor(`${c().host(id)} through Caddy`, async () => ((await routeAnswers(c(), k(), id)) ? true : undefined));
    }
    expect((await throughCaddy(c(), k(), 'web')).body.trim()).toBe(c().page('web'));
    expect((await throughCaddy(c(), k(), 'relay')).body.trim()).toBe(c().page('relay'));
    expect(c().page('web')).not.toBe(c().page('relay'));

    // One A record per subdomain (plus the name server), and a zone BIND accepts.
    await waitFor('both A records', async () => {
      const records = await zoneRecords();
      return records.includes('web 192.0.2.53') && records.includes('relay 192.0.2.53') ? true : undefined;
    });
    expect((await zoneRecords()).sort()).toEqual(['ns1 192.0.2.53', 'relay 192.0.2.53', 'web 192.0.2.53']);
    expect(await checkZone()).toMatch(/OK/);

    // The ports each manifest opens, to the service's own address.
    const wanted = [...firewallRules('relay', relayIp, RELAY.iptablesRules!), ...firewallRules('web', webIp, WEB.iptablesRules!)];
    await waitFor('the PIC-SERVICES rules', async () => ((await chain('filter', 'PIC-SERVICES')).length === wanted.length ? true : undefined));
    expect(await chain('filter', 'PIC-SERVICES')).toEqual(wanted);
    expect((await lines(['iptables', '-S', 'FORWARD'])).filter((l) => l === '-A FORWARD -j PIC-SERVICES')).toHaveLength(1);

    await waitFor('every Resource Ready', () => allReady(RESOURCES));
    const caddyStatus = (await status.get('Resource/caddy'))!;
    expect((caddyStatus.facts?.routes as { host: string }[]).map((r) => r.host).sort()).toEqual([c().host('relay'), c().host('web')]);
  });

  test('pic plan shows nothing pending once converged', async () => {
    await operator!.queue.whenIdle(30_000);
    const { stdout } = await run(path.join(process.cwd(), 'bin', 'pic'), ['plan', '--cell', c().cellDir], {
      env: { ...process.env, PIC_STATE_DIR: c().stateDir },
    });
    expect(stdout.trim()).toBe('in sync: nothing to change');
  });

  test('a resync with nothing changed writes nothing and loads nothing into Caddy', async () => {
    await operator!.queue.whenIdle(30_000);
    const caddyfileBefore = await fileIdentity(c().caddyfile);
    const zoneBefore = await fileIdentity(c().zoneFile);
    p().requests.length = 0;
    const commands = await recordExecs(w(), () => operator!.resyncAndSettle());
    // The Caddy reconcile ran (it read the running config) but asked for no load.
    expect(p().requests.length).toBeGreaterThan(0);
    expect(p().requests.filter((r) => r !== 'GET /config/')).toEqual([]);
    expect(await fileIdentity(c().caddyfile)).toEqual(caddyfileBefore);
    expect(await fileIdentity(c().zoneFile)).toEqual(zoneBefore);
    // The firewall only looked, and from the host through the container's namespaces: no exec at all.
    expect(commands).toEqual([]);
    expect((await status.get('Resource/firewall'))?.facts?.readVia).toBe('host namespaces');
    expect(await allReady(RESOURCES)).toBe(true);
    expect((await status.get('Resource/caddy'))!.conditions.find((x) => x.type === 'Ready')!.message).toBe('2 routes; Caddyfile unchanged');
  });

  test('uninstalling a service withdraws its route, record, rules and egress', async () => {
    const webIp = await serviceIp('web');
    const relayIp = await serviceIp('relay');
    const serialBefore = (await status.get('Resource/dns'))!.facts?.serial as number;
    await c().removeServiceFile('relay');
    await waitFor('relay’s container removed', async () => ((await serviceContainer('relay')) ? undefined : true));
    await waitFor('relay’s status gone', async () => ((await status.get('ServiceInstall/relay')) ? undefined : true));

    await waitFor('relay no longer routed', async () => ((await routeAnswers(c(), k(), 'relay')) ? undefined : true));
    expect((await throughCaddy(c(), k(), 'relay')).body).not.toContain(c().page('relay'));
    expect(await routeAnswers(c(), k(), 'web')).toBe(true);
    expect(await fs.readFile(c().caddyfile, 'utf8')).not.toContain(c().host('relay'));

    await waitFor('relay’s A record removed', async () => ((await zoneRecords()).includes('relay 192.0.2.53') ? undefined : true));
    expect((await zoneRecords()).sort()).toEqual(['ns1 192.0.2.53', 'web 192.0.2.53']);
    expect(await checkZone()).toMatch(/OK/);

    await waitFor('relay’s firewall rules removed', async () => ((await chain('filter', 'PIC-SERVICES')).some((l) => l.includes(relayIp)) ? undefined : true));
    expect(await chain('filter', 'PIC-SERVICES')).toEqual(firewallRules('web', webIp, WEB.iptablesRules!));

    await waitFor('every Resource Ready', () => allReady(RESOURCES));
    expect((await status.get('Resource/dns'))!.facts?.serial).toBeGreaterThan(serialBefore);
  });

  test('with Caddy stopped the next change is retried, and goes through by itself once Caddy is back', async () => {
    await operator!.queue.whenIdle(30_000);
    await k().stop();
    p().requests.length = 0;
    await c().writeService('relay');
    // The change reaches the Caddy key twice: as soon as the document is read (relay has no address
    // yet, nothing to write: "cannot confirm"), and again once relay holds its address.
    const why = await waitFor('Resource/caddy Reconciling over the new route', async () => {
      const condition = (await phaseOf('Resource/caddy', 'Reconciling'))?.conditions.find((x) => x.type === 'Reconciling');
      return condition?.message.includes('the new Caddyfile was not written') ? condition : undefined;
    });
    expect(why.reason).toBe('RetryingAfterError');
    expect(why.message).toContain(`Caddy's admin API at ${p().address} is unreachable`);
    // Retried: more than one attempt reached the admin address while Caddy was down.
    await waitFor('a second attempt', async () => (p().requests.filter((r) => r === 'GET /config/').length >= 2 ? true : undefined));
    expect(await fs.readFile(c().caddyfile, 'utf8')).not.toContain(c().host('relay'));
    // Everything that does not need Caddy converged meanwhile.
    await waitPhase('ServiceInstall/relay', 'Ready');
    await waitFor('relay’s A record back', async () => ((await zoneRecords()).includes('relay 192.0.2.53') ? true : undefined));

    await k().start();
    await waitPhase('Resource/caddy', 'Ready');
    await waitFor('relay routed again', async () => ((await routeAnswers(c(), k(), 'relay')) ? true : undefined));
    expect(await routeAnswers(c(), k(), 'web')).toBe(true);
    expect(await fs.readFile(c().caddyfile, 'utf8')).toContain(c().host('relay'));
    expect(p().requests).toContain('POST /load');
    await waitFor('every Resource Ready', () => allReady(RESOURCES));
  });
});
