/**
 * A dockerd restart under a service on a kill-switched Connection: every container stops and comes
 * back (their restart policy), Docker rewrites its own iptables chains, the cell network's bridge
 * loses and regains its ports, and pic's event stream breaks. Through all of it the service sends
 * not one packet to the uplink, and afterwards it leaves through the tunnel again, in the same
 * container, with the same pic process still converging.
 *
 * This file restarts the Docker engine every other test uses, so it lives in tests/serial/: the
 * Makefile runs that folder alone, after the rest of the suite (jest.config.js keeps it out of the
 * parallel run).
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { egressChainsOf } from '../../reconcilers/egress/render.js';
import { loadEgressAllocations } from '../../reconcilers/egress/index.js';
import { removeTestCell, waitFor } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { createEgressCell, type EgressCell } from '../support/egress-cell.js';
import { CellView, startPic, type PicProcess } from '../support/egress-operator-process.js';
import { removeSiteLeftovers, startUplink, startWireguardSite, type RemoteSite, type Uplink } from '../support/remote-sites.js';

const run = promisify(execFile);
const PREFIX = 'pt20d';
const PIC = path.join(process.cwd(), 'bin', 'pic');
jest.setTimeout(300_000);

let cell: EgressCell;
let view: CellView;
let uplink: Uplink;
let site: RemoteSite;
let pic: PicProcess | undefined;

async function systemdRunsDocker(): Promise<boolean> {
  return run('systemctl', ['is-active', '--quiet', 'docker']).then(() => true, () => false);
}

/** Whether systemd ran the engine when it was stopped: it is started again the same way. */
let bySystemd = false;

/** Stops the Docker engine and starts it again the way this machine runs it (systemd, or ensure-host.sh). */
async function restartDockerd(): Promise<void> {
  await stopDockerd();
  await startDockerd();
}

async function startDockerd(): Promise<void> {
  if (bySystemd) await run('systemctl', ['start', 'docker']);
  else await run(path.join(process.cwd(), 'deploy', 'scripts', 'ensure-host.sh'), ['all'], { timeout: 120_000 });
}

async function stopDockerd(): Promise<void> {
  bySystemd = await systemdRunsDocker();
  if (bySystemd) {
    await run('systemctl', ['stop', 'docker']);
    return;
  }
  const pid = Number((await run('pidof', ['dockerd'])).stdout.trim().split(/\s+/)[0]);
  process.kill(pid, 'SIGTERM');
  const gone = (): boolean => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  };
  await waitFor('dockerd to exit', async () => gone() || undefined, 90_000);
}

beforeAll(async () => {
  await removeSiteLeftovers(PREFIX);
  uplink = await startUplink(PREFIX);
  site = await startWireguardSite(PREFIX, { probe: uplink.probe });
  cell = await createEgressCell(['mail'], `${PREFIX}-`);
  view = new CellView(cell, uplink.probe);
  await cell.writeConnection('vpn', { type: 'wireguard_ext', configFile: 'vpn.conf', config: { health_check: `${uplink.probe}:80` } }, site.clientConfig);
  await cell.assign('mail', 'vpn');
  pic = startPic(cell);
}, 180_000);

afterAll(async () => {
  await pic?.stop();
  if (cell) await removeTestCell(cell);
  await site?.stop();
  await uplink?.stop();
}, 120_000);

describe('egress across a dockerd restart', () => {
  test('the engine restarted: not one packet of mail on the uplink, then mail through the tunnel again in the same container', async () => {
    await view.waitPhase('ServiceInstall/mail', 'Ready').catch((err: Error) => {
      throw new Error(`${err.message}\n${pic?.output()}`);
    });
    await view.waitAnswer('mail', 'remote-wireguard');
    const mailId = (await docker.getContainer(cell.containerName('mail')).inspect()).Id;
    const packets = await uplink.countPackets();

    await restartDockerd();
    // As soon as the engine answers, and while the containers come back: fenced or tunnelled, never direct.
    for (let i = 0; i < 10; i++) {
      expect(await view.probe('mail')).not.toBe('uplink');
    }
    await view.waitAnswer('mail', 'remote-wireguard', 150_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${pic?.output()}`);
    });
    expect(pic!.child.exitCode).toBeNull();
    expect((await docker.getContainer(cell.containerName('mail')).inspect()).Id).toBe(mailId);
    await view.waitPhase('Connection/vpn', 'Ready');
    await view.waitPhase('Resource/egress', 'Ready');
    expect(await uplink.countPackets()).toBe(packets);
  });

  test('a reboot: every rule of the cell and DOCKER-USER gone, pic fence before dockerd starts, and not one packet of mail on the uplink until pic steers it again', async () => {
    await view.waitAnswer('mail', 'remote-wireguard', 150_000);
    const mailId = (await docker.getContainer(cell.containerName('mail')).inspect()).Id;
    await pic!.stop();
    pic = undefined;
    const packets = await uplink.countPackets();

    // What a reboot leaves of the host's state before dockerd starts: no rule of the cell, no
    // DOCKER-USER, no policy rule or route of its Connection.
    await stopDockerd();
    const chains = egressChainsOf(cell.name);
    const quiet = (args: string[]) => run('iptables', args).catch(() => undefined);
    for (const [table, chain, parent] of [['filter', chains.fence, 'DOCKER-USER'], ['mangle', chains.marks, 'PREROUTING'], ['nat', chains.dns, 'PREROUTING']] as const) {
      await quiet(['-t', table, '-D', parent, '-j', chain]);
      await quiet(['-t', table, '-F', chain]);
      await quiet(['-t', table, '-X', chain]);
    }
    while (await run('iptables', ['-D', 'FORWARD', '-j', 'DOCKER-USER']).then(() => true, () => false));
    await quiet(['-F', 'DOCKER-USER']);
    await quiet(['-X', 'DOCKER-USER']);
    for (const a of Object.values((await loadEgressAllocations(cell.stateDir))?.connections ?? {})) {
      await run('ip', ['route', 'flush', 'table', String(a.table)]).catch(() => undefined);
      await run('ip', ['rule', 'del', 'lookup', String(a.table)]).catch(() => undefined);
    }
    expect((await run('iptables', ['-S'])).stdout).not.toContain(chains.fence);

    // The boot unit: pic fence, from the state directory alone, before dockerd.
    const fenced = await run(PIC, ['fence', '--state-dir', cell.stateDir]);
    expect(fenced.stdout).toMatch(/^put back: 1 service of cell .* fenced/);
    await startDockerd();
    // dockerd brings mail back by its restart policy; pic is not running: fenced, never direct.
    await waitFor('mail to run again', async () => ((await docker.getContainer(cell.containerName('mail')).inspect()).State.Running ? true : undefined), 120_000);
    for (let i = 0; i < 3; i++) expect(await view.probe('mail')).toBe('');
    expect(await uplink.countPackets()).toBe(packets);

    // pic starts: the steering comes back, through the tunnel, in the same container.
    pic = startPic(cell);
    await view.waitAnswer('mail', 'remote-wireguard', 150_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${pic?.output()}`);
    });
    expect((await docker.getContainer(cell.containerName('mail')).inspect()).Id).toBe(mailId);
    expect(await uplink.countPackets()).toBe(packets);
  });
});

