/**
 * The DNS reconciler against BIND serving the zone in the cell's DNS container (the core image
 * `make images` builds): what counts is the SOA serial the server answers with, not the file. A
 * reload that did not happen (here: the Docker API could not be reached when the signal was to be
 * sent) is seen on the next pass as a served serial older than the file's, and sent again.
 *
 * The test's own view of the server is Debian's `dig` on the host, not the reconciler's query.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { createDnsReconciler } from '../../reconcilers/dns/index.js';
import { DNS_ZONE_DIR } from '../../reconcilers/core/desired.js';
import { parseZoneSerial } from '../../reconcilers/dns/render.js';
import { testContext, testRouting } from '../support/caddy.js';
import { waitFor } from '../support/cell.js';
import { cleanupTestResources, docker, pickSubnet, TEST_LABELS, uniqueName } from '../support/docker.js';

const run = promisify(execFile);
const DNS_IMAGE = process.env.PIC_TEST_DNS_IMAGE ?? 'git.pic.ngo/roof/pic-core-dns:1.0.0';
const DOMAIN = 'dserved.pic.test';
const RUN_LABEL = 'ngo.pic.test-run';
/** Every run of this file carries it, so a later run removes what a killed one left (and nothing else). */
const SUITE_LABEL = 'ngo.pic.test-suite';
const SUITE = 'pictest-dns-served';

/** The SOA serial the server answers with, as `dig` on the host reads it; undefined without an answer for the zone. */
async function servedSerial(address: string): Promise<number | undefined> {
  try {
    const { stdout } = await run('dig', ['+short', '+time=1', '+tries=2', '+norecurse', `@${address}`, DOMAIN, 'SOA']);
    const serial = stdout.trim().split(/\s+/)[2];
    return serial === undefined ? undefined : Number(serial);
  } catch {
    return undefined;
  }
}

/** Whether the server answers at all (NOERROR, REFUSED, SERVFAIL: any status). */
async function answers(address: string): Promise<boolean> {
  try {
    const { stdout } = await run('dig', ['+time=1', '+tries=1', '+norecurse', `@${address}`, DOMAIN, 'SOA']);
    return /status: [A-Z]+/.test(stdout);
  } catch {
    return false;
  }
}

const name = uniqueName('pictest-dns');
let work: string;
let address: string;

beforeAll(async () => {
  try {
    await docker.getImage(DNS_IMAGE).inspect();
  } catch {
    throw new Error(`the core DNS image ${DNS_IMAGE} is not there: build it with make images`);
  }
  await cleanupTestResources(`${SUITE_LABEL}=${SUITE}`, { olderThanMs: 10 * 60_000 });
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-dns-'));
  await fs.chmod(work, 0o755);
  const labels = { ...TEST_LABELS, [SUITE_LABEL]: SUITE, [RUN_LABEL]: name };
  for (let attempt = 0; ; attempt++) {
    const subnet = await pickSubnet();
    try {
      await docker.createNetwork({ Name: name, Labels: labels, IPAM: { Config: [{ Subnet: subnet }] } });
      address = subnet.replace(/\.0\/24$/, '.53');
      break;
    } catch (err) {
      if (attempt >= 4 || !/overlap/i.test((err as Error).message)) throw err;
    }
  }
  // The folder the reconciler writes the zone into, mounted read-only the way Core/dns mounts it.
  const zoneDir = path.join(work, 'state', 'dns');
  await fs.mkdir(zoneDir, { recursive: true, mode: 0o755 });
  const container = await docker.createContainer({
    name,
    Image: DNS_IMAGE,
    // pic's own labels, as Core/dns creates it: pic signals only a DNS server it owns.
    Labels: { ...labels, 'ngo.pic.owner': 'Core/dns', 'ngo.pic.cell': DOMAIN.split('.')[0]! },
    Env: [`DNS_DOMAIN=${DOMAIN}`, 'DNS_UPSTREAMS=', `DNS_ZONE_FILE=${DNS_ZONE_DIR}/${DOMAIN}.zone`],
    HostConfig: { NetworkMode: name, Mounts: [{ Type: 'bind', Source: zoneDir, Target: DNS_ZONE_DIR, ReadOnly: true }] },
    NetworkingConfig: { EndpointsConfig: { [name]: { IPAMConfig: { IPv4Address: address } } } },
  });
  await container.start();
  // named listens a moment after the container starts; without its zone yet, it answers REFUSED.
  await waitFor(`named in ${name} to answer`, async () => ((await answers(address)) ? true : undefined), 20_000);
});

afterAll(async () => {
  await docker.getContainer(name).remove({ force: true }).catch(() => undefined);
  await docker.getNetwork(name).remove().catch(() => undefined);
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('DNS reconciler with BIND serving the zone', () => {
  const zoneFile = () => path.join(work, 'state', 'dns', `${DOMAIN}.zone`);
  const ctx = () => testContext(path.join(work, 'state'), path.join(work, 'cell'));
  // A Docker client whose socket is not there: every Docker request fails, as when dockerd restarts.
  const withoutDocker = () => ({ ...ctx(), docker: new Dockerode({ socketPath: path.join(work, 'no-docker.sock') }) });
  const at = (iso: string) => createDnsReconciler({ now: () => new Date(iso) });
  const input = (names: string[]) =>
    testRouting(
      { domain: DOMAIN, dns: { address: '172.20.0.2', run: { image: DNS_IMAGE, address, container: name } } },
      Object.fromEntries(names.map((n) => [n, { subdomain: n, backend: `cell-${n}:8080` }])),
    );
  const fileSerial = async () => parseZoneSerial(await fs.readFile(zoneFile(), 'utf8'));

  test('the first zone is written and served', async () => {
    await at('2026-03-10T08:00:00Z').reconcile(input(['notes']), ctx());
    expect(await fileSerial()).toBe(2026031000);
    expect(await waitFor('BIND to serve serial 2026031000', async () => ((await servedSerial(address)) === 2026031000 ? true : undefined), 20_000)).toBe(true);
  });

  test('a reload that could not be sent is sent on the next pass, and the new serial is served', async () => {
    const later = at('2026-03-10T09:00:00Z');
    await expect(later.reconcile(input(['notes', 'files']), withoutDocker())).rejects.toThrow();
    expect(await fileSerial()).toBe(2026031001);
    expect(await servedSerial(address)).toBe(2026031000);

    const c = ctx();
    const outcome = await later.reconcile(input(['notes', 'files']), c);
    expect(outcome.changed).toBe(true);
    expect(await servedSerial(address)).toBe(2026031001);
    expect(c.events.map((e) => e.reason)).toEqual(['ZoneReloaded']);
  });

  test('in sync with what BIND serves: nothing to do, and no Docker request (none could succeed)', async () => {
    const again = at('2026-03-11T09:00:00Z');
    expect(await again.plan(input(['notes', 'files']), withoutDocker())).toEqual([]);
    const outcome = await again.reconcile(input(['notes', 'files']), withoutDocker());
    expect(outcome).toMatchObject({ changed: false, summary: `2 records in ${DOMAIN}; zone unchanged and served (serial 2026031001)` });
  });

  test('a server that does not answer: the zone is written, the pass fails saying so, and a started server serves it', async () => {
    await docker.getContainer(name).stop({ t: 1 });
    const outcome = at('2026-03-11T10:00:00Z').reconcile(input(['notes', 'files', 'wiki']), ctx());
    await expect(outcome).rejects.toThrow(new RegExp(`DNS server ${name} \\(${address.replace(/\./g, '\\.')}\\) does not answer`));
    expect(await fileSerial()).toBe(2026031100);
    await docker.getContainer(name).start();
    await waitFor('BIND to serve serial 2026031100', async () => ((await servedSerial(address)) === 2026031100 ? true : undefined), 20_000);
    const settled = await at('2026-03-11T10:00:00Z').reconcile(input(['notes', 'files', 'wiki']), withoutDocker());
    expect(settled.changed).toBe(false);
  });
});
