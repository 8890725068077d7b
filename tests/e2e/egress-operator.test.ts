/**
 * Egress end to end through the real operator: a Connection of type wireguard_ext with a wg-quick
 * file beside it, the example catalog's exit (examples/store/services/exit-wireguard, built by
 * examples/images/build-exits.sh), and two busybox services, `mail` assigned to the Connection and
 * `web` on default. The "internet" is the test's own: an uplink namespace that answers the probe
 * address with `uplink` and counts every packet reaching it, and a remote WireGuard site answering
 * the same address with `remote-wireguard` (tests/support/remote-sites.ts).
 *
 * What a person would check: mail's traffic and DNS leave through the tunnel and none reaches the
 * uplink; with the remote down, the exit killed, or pic stopped, mail reaches nothing (zero packets
 * on the uplink) and the statuses say so; all resume with mail's container unchanged; a deleted
 * Connection keeps mail blocked and Stalled; back on default, mail reaches the uplink.
 */
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createLogger } from '../../controllers/logging.js';
import { Operator } from '../../controllers/operator.js';
import { instanceIdOf } from '../../controllers/reconcile-connection.js';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { removeTestCell, waitFor } from '../support/cell.js';
import { createEgressCell, type EgressCell } from '../support/egress-cell.js';
import { docker } from '../support/docker.js';
import { removeSiteLeftovers, startUplink, startWireguardSite, TEST_NAME, type RemoteSite, type Uplink } from '../support/remote-sites.js';

const PREFIX = 'pt20e';
const PIC = path.join(process.cwd(), 'bin', 'pic');
const run = promisify(execFile);
// Each step waits for the exit's health checks and Docker; its own waits fail first, with what they waited for.
jest.setTimeout(300_000);
const CONNECTION = 'vpn';

let cell: EgressCell;
let uplink: Uplink;
let site: RemoteSite;
let operator: Operator | undefined;
let status: StatusStore;

function startOperator(): Promise<void> {
  operator = new Operator({
    cellDir: cell.cellDir,
    stateDir: new StateDir(cell.stateDir),
    docker,
    logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }),
    resyncIntervalMs: 60 * 60_000,
    watch: true,
  });
  return operator.stateDirReady().then(() => operator!.start());
}

async function exec(service: string, argv: string[]): Promise<{ stdout: string; exitCode: number }> {
  const name = cell.containerName(service);
  return execInContainer(docker, { name, id: name }, argv, { timeoutMs: 20_000 });
}

/** What `service` gets from the probe address ('' when nothing answers). */
async function probe(service: string): Promise<string> {
  const r = await exec(service, ['timeout', '4', 'wget', '-q', '-O', '-', `http://${uplink.probe}/`]);
  return r.exitCode === 0 ? r.stdout.trim() : '';
}

async function phase(key: string): Promise<DocumentStatus | undefined> {
  return status.get(key);
}

async function waitPhase(key: string, wanted: string, timeoutMs = 120_000): Promise<DocumentStatus> {
  return waitFor(`${key} ${wanted}`, async () => {
    const s = await phase(key);
    return s?.phase === wanted ? s : undefined;
  }, timeoutMs);
}

function reasonOf(s: DocumentStatus | undefined, type: string): string | undefined {
  return s?.conditions.find((c) => c.type === type)?.reason;
}

async function writeMail(connection?: string): Promise<void> {
  await cell.assign('mail', connection);
}

const exitName = () => cell.exitName(CONNECTION);

beforeAll(async () => {
  await removeSiteLeftovers(PREFIX);
  uplink = await startUplink(PREFIX);
  site = await startWireguardSite(PREFIX, { probe: uplink.probe });
  cell = await createEgressCell(['mail', 'web'], `${PREFIX}-`);
  await cell.writeConnection(CONNECTION, { type: 'wireguard_ext', configFile: `${CONNECTION}.conf`, failOpen: false, config: { health_check: `${uplink.probe}:80` } }, site.clientConfig);
  await writeMail(CONNECTION);
  await cell.writeService('web');
  status = new StatusStore(path.join(cell.stateDir, 'status'));
  await startOperator();
}, 180_000);

afterAll(async () => {
  await operator?.stop();
  // The host state pic made for this cell: withdrawn by converging mail back to default first.
  if (cell) await removeTestCell(cell);
  await site?.stop();
  await uplink?.stop();
}, 120_000);

describe('egress through a Connection', () => {
  test('the exit runs, mail leaves through the tunnel (HTTP and DNS), web directly, and the uplink sees none of mail', async () => {
    const connection = await waitPhase(`Connection/${CONNECTION}`, 'Ready', 150_000);
    expect(connection.facts?.instance).toBe(instanceIdOf(CONNECTION));
    expect(connection.facts?.services).toEqual(['mail']);
    expect(JSON.stringify(connection)).not.toContain('PrivateKey');
    await waitPhase('ServiceInstall/mail', 'Ready');
    await waitPhase('Resource/egress', 'Ready');
    await waitFor('mail through the tunnel', async () => ((await probe('mail')) === 'remote-wireguard' ? true : undefined), 60_000);

    const packets = await uplink.countPackets();
    const dns = await uplink.countDns();
    expect(await probe('mail')).toBe('remote-wireguard');
    const answer = await exec('mail', ['nslookup', TEST_NAME, uplink.dnsServer]);
    expect(answer.stdout).toContain(site.dnsAnswer);
    expect(answer.stdout).not.toContain(uplink.dnsAnswer);
    expect(await uplink.countPackets()).toBe(packets);
    expect(await uplink.countDns()).toBe(dns);

    expect(await probe('web')).toBe('uplink');
    expect(await uplink.countPackets()).toBeGreaterThan(packets);
  });

  test('pic describe Connection/vpn: the instance, the services it carries, and the bytes through its tunnel now', async () => {
    const describe = async () => (await run(PIC, ['describe', `Connection/${CONNECTION}`, '--state-dir', cell.stateDir])).stdout;
    const sentOf = (text: string): string => /^\s+wg0\s+(\S+ \S+)\s+\S+ \S+$/m.exec(text)?.[1] ?? 'no wg0 row';
    const before = await describe();
    expect(before).toMatch(new RegExp(`Instance:\\s+${instanceIdOf(CONNECTION)}`));
    expect(before).toMatch(/Services:\s+mail/);
    expect(before).toMatch(/Tunnel traffic \(now, since the exit started\):\n\s+INTERFACE\s+SENT\s+RECEIVED\n\s+wg0\s/);
    expect(before).not.toContain('PrivateKey');
    // Every container is named as it runs, the Images table too.
    expect(before).not.toContain('${INSTANCE_ID}');
    // A larger transfer through the tunnel moves the counter.
    for (let i = 0; i < 5; i++) expect(await probe('mail')).toBe('remote-wireguard');
    expect(sentOf(await describe())).not.toBe(sentOf(before));
  });

  test('the remote down: mail reaches nothing, the statuses say blocked; back with mail unchanged', async () => {
    const mailId = (await docker.getContainer(cell.containerName('mail')).inspect()).Id;
    const packets = await uplink.countPackets();
    await site.stopServer();
    expect(await probe('mail')).toBe('');
    const down = await waitFor('Connection not Ready', async () => {
      const s = await phase(`Connection/${CONNECTION}`);
      return s && s.phase !== 'Ready' ? s : undefined;
    }, 90_000);
    expect(reasonOf(down, 'Reconciling')).toBe('ConnectionDown');
    const mail = await waitFor('mail not Ready', async () => {
      const s = await phase('ServiceInstall/mail');
      return s && s.phase !== 'Ready' ? s : undefined;
    });
    expect(mail.conditions.find((c) => c.type === 'Reconciling')?.message).toMatch(/blocked \(kill switch\)/);
    expect(await probe('mail')).toBe('');
    expect(await uplink.countPackets()).toBe(packets);

    await site.startServer();
    await waitPhase(`Connection/${CONNECTION}`, 'Ready', 90_000);
    await waitPhase('ServiceInstall/mail', 'Ready');
    await waitFor('mail through the tunnel again', async () => ((await probe('mail')) === 'remote-wireguard' ? true : undefined), 60_000);
    expect((await docker.getContainer(cell.containerName('mail')).inspect()).Id).toBe(mailId);
    expect(await uplink.countPackets()).toBe(packets);
  });

  test('the exit killed, and pic stopped meanwhile: not one packet of mail reaches the uplink', async () => {
    const packets = await uplink.countPackets();
    await operator!.stop();
    operator = undefined;
    await docker.getContainer(exitName()).kill();
    for (let i = 0; i < 3; i++) expect(await probe('mail')).toBe('');
    expect(await uplink.countPackets()).toBe(packets);
    await startOperator();
    await waitPhase(`Connection/${CONNECTION}`, 'Ready', 120_000);
    await waitFor('mail through the tunnel after pic came back', async () => ((await probe('mail')) === 'remote-wireguard' ? true : undefined), 60_000);
    expect(await uplink.countPackets()).toBe(packets);
  });

  test('the Connection deleted: its exit goes, mail stays blocked and Stalled, never moved to the direct path', async () => {
    const packets = await uplink.countPackets();
    await fs.rm(path.join(cell.cellDir, 'connections', `${CONNECTION}.yaml`));
    const mail = await waitPhase('ServiceInstall/mail', 'Stalled');
    expect(mail.conditions.find((c) => c.type === 'Stalled')?.message).toMatch(/Connection/);
    await waitFor('the exit removed', async () => ((await docker.listContainers({ all: true, filters: { name: [exitName()] } })).length === 0 ? true : undefined));
    const egress = await waitFor('egress says blocked', async () => {
      const s = await phase('Resource/egress');
      return s && reasonOf(s, 'Reconciling') === 'ConnectionDown' ? s : undefined;
    });
    expect(egress.conditions.find((c) => c.type === 'Reconciling')?.message).toMatch(/mail blocked/);
    expect(await probe('mail')).toBe('');
    expect(await uplink.countPackets()).toBe(packets);
  });

  test('back on default: mail reaches the uplink, and the cell\'s host rules are gone', async () => {
    await writeMail();
    await waitPhase('ServiceInstall/mail', 'Ready');
    await waitFor('mail direct', async () => ((await probe('mail')) === 'uplink' ? true : undefined), 60_000);
    const egress = await waitPhase('Resource/egress', 'Ready');
    expect(egress.facts?.connections).toEqual([]);
  });
});
