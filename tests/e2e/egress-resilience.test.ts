/**
 * Egress holds through what happens to a running cell, with pic as its own process: two
 * Connections of one type side by side (two remote WireGuard sites answering the probe address
 * `remote-a` and `remote-b`), `docker restart` of a service and of its exit, and kill -9 of pic in
 * the middle of an assignment change. The proof is where packets land: the uplink namespace counts
 * every packet reaching it, and a sampler inside the service records every answer it gets.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { egressChainsOf } from '../../reconcilers/egress/render.js';
import { removeTestCell, waitFor } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { createEgressCell, type EgressCell } from '../support/egress-cell.js';
import { CellView, startPic, type PicProcess } from '../support/egress-operator-process.js';
import { removeSiteLeftovers, startUplink, startWireguardSite, type RemoteSite, type Uplink } from '../support/remote-sites.js';

const run = promisify(execFile);
const PREFIX = 'pt20r';
const SITE_PREFIXES = { a: 'pt20ra', b: 'pt20rb' };
jest.setTimeout(300_000);

let cell: EgressCell;
let view: CellView;
let uplink: Uplink;
const sites: Partial<Record<'a' | 'b', RemoteSite>> = {};
let pic: PicProcess | undefined;

async function containerState(name: string): Promise<{ id: string; startedAt: string }> {
  const c = await docker.getContainer(name).inspect();
  return { id: c.Id, startedAt: c.State.StartedAt };
}

/** The cell's mark chain in the mangle table as the host has it now. */
async function markRules(): Promise<string> {
  return (await run('iptables', ['-t', 'mangle', '-S', egressChainsOf(cell.name).marks]).catch(() => ({ stdout: '' }))).stdout;
}

beforeAll(async () => {
  await removeSiteLeftovers(PREFIX);
  for (const p of Object.values(SITE_PREFIXES)) await removeSiteLeftovers(p);
  uplink = await startUplink(PREFIX);
  sites.a = await startWireguardSite(SITE_PREFIXES.a, { probe: uplink.probe, body: 'remote-a' });
  sites.b = await startWireguardSite(SITE_PREFIXES.b, { probe: uplink.probe, body: 'remote-b' });
  cell = await createEgressCell(['mail', 'news'], `${PREFIX}-`);
  view = new CellView(cell, uplink.probe);
  const health = { health_check: `${uplink.probe}:80` };
  await cell.writeConnection('vpn-a', { type: 'wireguard_ext', configFile: 'vpn-a.conf', config: health }, sites.a.clientConfig);
  await cell.writeConnection('vpn-b', { type: 'wireguard_ext', configFile: 'vpn-b.conf', config: health }, sites.b.clientConfig);
  await cell.assign('mail', 'vpn-a');
  await cell.assign('news', 'vpn-b');
  pic = startPic(cell);
}, 180_000);

afterAll(async () => {
  await pic?.stop();
  if (cell) await removeTestCell(cell);
  for (const site of Object.values(sites)) await site?.stop();
  await uplink?.stop();
}, 120_000);

describe('egress through what happens to a running cell', () => {
  test('two Connections of one type run side by side: their own exits, marks and tables, and each service gets its own remote', async () => {
    const a = await view.waitPhase('Connection/vpn-a', 'Ready').catch((err: Error) => {
      throw new Error(`${err.message}\n${pic?.output()}`);
    });
    const b = await view.waitPhase('Connection/vpn-b', 'Ready');
    expect(a.facts?.instance).not.toBe(b.facts?.instance);
    for (const name of ['vpn-a', 'vpn-b']) expect((await docker.getContainer(cell.exitName(name)).inspect()).State.Running).toBe(true);
    await view.waitPhase('ServiceInstall/mail', 'Ready');
    await view.waitPhase('ServiceInstall/news', 'Ready');
    const egress = await view.waitPhase('Resource/egress', 'Ready');
    const connections = egress.facts?.connections as { name: string; fwmark: string; table: number; services: string[] }[];
    expect(connections.map((c) => [c.name, c.services])).toEqual([['vpn-a', ['mail']], ['vpn-b', ['news']]]);
    expect(connections[0]!.fwmark).not.toBe(connections[1]!.fwmark);
    expect(connections[0]!.table).not.toBe(connections[1]!.table);
    const rules = (await run('ip', ['rule', 'show'])).stdout;
    for (const c of connections) expect(rules).toMatch(new RegExp(`fwmark ${c.fwmark} lookup ${c.table}\\b`));

    const packets = await uplink.countPackets();
    await view.waitAnswer('mail', 'remote-a');
    await view.waitAnswer('news', 'remote-b');
    expect(await uplink.countPackets()).toBe(packets);
  });

  test('docker restart of a service, then of its exit: never the uplink, and the exit\'s restart leaves the service running as it was', async () => {
    const packets = await uplink.countPackets();
    await docker.getContainer(cell.containerName('mail')).restart({ t: 1 });
    // Right after the restart, before anything of pic could have acted: fenced or tunnelled, never direct.
    expect(await view.probe('mail')).not.toBe('uplink');
    await view.waitAnswer('mail', 'remote-a');

    const mail = await containerState(cell.containerName('mail'));
    const sampler = await view.startSampler('mail');
    await docker.getContainer(cell.exitName('vpn-a')).restart({ t: 1 });
    await view.waitPhase('Connection/vpn-a', 'Ready');
    await view.waitAnswer('mail', 'remote-a');
    expect(await containerState(cell.containerName('mail'))).toEqual(mail);
    const answers = await sampler.answers();
    expect(answers.filter((a) => a !== 'remote-a' && a !== '-')).toEqual([]);
    expect(answers).toContain('remote-a');
    expect(await uplink.countPackets()).toBe(packets);
  });

  test('kill -9 of pic in the middle of an assignment change: no packet leaves directly, and the next pic converges it', async () => {
    const packets = await uplink.countPackets();
    const sampler = await view.startSampler('mail');
    // First the kill lands as soon as the host's rules start to change; then before pic could have acted.
    for (const [to, remote, killAt] of [['vpn-b', 'remote-b', 'first change'], ['vpn-a', 'remote-a', 'at once']] as const) {
      const before = await markRules();
      await cell.assign('mail', to);
      if (killAt === 'first change') {
        await waitFor('pic to start changing the marks', async () => ((await markRules()) !== before ? true : undefined), 60_000);
      }
      await pic!.kill();
      expect(await view.probe('mail')).not.toBe('uplink');
      pic = startPic(cell);
      await view.waitAnswer('mail', remote, 150_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${pic?.output()}`);
      });
    }
    await view.waitPhase('ServiceInstall/mail', 'Ready');
    await view.waitPhase('Resource/egress', 'Ready');
    const answers = await sampler.answers();
    expect(answers.filter((a) => !['remote-a', 'remote-b', '-'].includes(a))).toEqual([]);
    expect(answers).toContain('remote-b');
    expect(await uplink.countPackets()).toBe(packets);
  });

  test('both back on default: they reach the uplink, and the cell\'s rules and routes are gone from the host', async () => {
    const egress = await view.waitPhase('Resource/egress', 'Ready');
    const tables = (egress.facts?.connections as { table: number }[]).map((c) => c.table);
    await cell.assign('mail');
    await cell.assign('news');
    await view.waitAnswer('mail', 'uplink');
    await view.waitAnswer('news', 'uplink');
    await waitFor('the cell\'s rules withdrawn', async () => {
      const rules = (await run('ip', ['rule', 'show'])).stdout;
      return tables.every((t) => !new RegExp(`lookup ${t}\\b`).test(rules)) && !(await markRules()).includes('-A ') ? true : undefined;
    }, 60_000);
  });
});
