/**
 * The catalog's calendar and files services as the real applications, used from a person's side
 * with clients nobody here wrote. The real operator runs a cell with its own core stack (Caddy,
 * BIND, WireGuard from examples/images/build-core.sh) and the example calendar (Radicale) and
 * files (Apache mod_dav) packages from their real images (examples/images/build-apps.sh). Peer
 * containers are configured only from `pic credentials PEER -o wireguard` and `pic ca`, and reach
 * the services through the tunnel, the cell's DNS and Caddy:
 *
 * - Debian's litmus (basic, copymove, props, locks) against the peer's `webdav_url`, every test
 *   passing; another peer's folder, a wrong password and a COPY into another's folder refused;
 *   files.<domain> shows the same folder read-only.
 * - curl speaking CalDAV and CardDAV (MKCALENDAR, extended MKCOL, PUT, REPORT) to the peer's
 *   `caldav_url`: a calendar, an event, an address book and a contact read back; another peer
 *   and a wrong password refused; RFC 6764 discovery from /.well-known to the principal.
 * - `pic backup create`, a loss through the clients and `pic backup restore` bring the event, the
 *   contact and the file back byte for byte.
 * - Taking the services out of a PeerAccount removes the person's access at once; the data stays.
 *
 * Steps run in order, each on the state the previous one left.
 */
import { jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createLogger } from '../../controllers/logging.js';
import { main } from '../../controllers/cli/main.js';
import { Operator } from '../../controllers/operator.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import { ensureExampleImages } from '../support/example-images.js';
import { testCellDocument, waitFor, writeDocumentFile } from '../support/cell.js';
import { docker, pickSubnet, TEST_LABEL } from '../support/docker.js';
import { buildCoreImages, buildPeerImage, configurePeer, coreStackLines, removeContainer, startPeerContainer, type PeerContainer } from '../support/peer.js';
import { createRoutingCell, removeRoutingCell, removeStaleRoutingCells, SUITE_LABEL, type RoutingCell } from '../support/routing-cell.js';

const SUITE = 'reference-apps';
const EXAMPLES = path.join(process.cwd(), 'examples', 'store', 'services');
/** The catalog packages under test, and the containers each names (renamed for the test cell). */
const PACKAGES = { calendar: ['cell-calendar'], files: ['cell-files', 'cell-webdav'] } as const;
/** litmus (a shell script), its test programs and the file it uploads, copied into the peer image. */
const LITMUS = ['/usr/bin/litmus', ...['basic', 'copymove', 'props', 'locks'].map((t) => `/usr/libexec/litmus/${t}`), '/usr/share/litmus/htdocs/foo'];

let cell: RoutingCell | undefined;
let operator: Operator | undefined;
let status: StatusStore;
let peerImage: string | undefined;
let peerNetwork: { name: string; gateway: string } | undefined;
const peers = new Map<string, PeerContainer>();
const wgPort = 40000 + (randomBytes(2).readUInt16BE(0) % 20000);
const vpnSubnet = `100.64.${randomBytes(1)[0]! % 250}.0/24`;

interface Account { username: string; password: string }
interface Credentials { files: Account & { url: string; webdav_url: string }; calendar: Account & { caldav_url: string } }
const creds = new Map<string, Credentials>();

const c = () => {
  if (!cell) throw new Error('the test cell did not start (see beforeAll)');
  return cell;
};
const core = (name: string) => `${c().name}-${name}`;
const address = (last: number) => `${c().base}.${last}`;
const peer = (name: string) => {
  const p = peers.get(name);
  if (!p) throw new Error(`peer ${name} was not started`);
  return p;
};
const account = (name: string) => {
  const a = creds.get(name);
  if (!a) throw new Error(`no credentials read for ${name}`);
  return a;
};

async function phaseOf(key: string, phase: DocumentStatus['phase']): Promise<DocumentStatus | undefined> {
  const s = await status.get(key);
  return s?.phase === phase ? s : undefined;
}
const waitPhase = (key: string, phase: DocumentStatus['phase'] = 'Ready') => waitFor(`${key} ${phase}`, () => phaseOf(key, phase), 240_000);

async function pic(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const state = args[0] === 'ca' ? [] : ['--state-dir', c().stateDir];
  const code = await main([...args, '--cell', c().cellDir, ...state], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function writePeer(name: string, services: string[]): Promise<void> {
  await writeDocumentFile(path.join(c().cellDir, 'peers', `${name}.yaml`), `apiVersion: pic.ngo/v1alpha1\nkind: PeerAccount\nmetadata: {name: ${name}}\nspec: {services: ${JSON.stringify(services)}}\n`);
}

/**
 * An example package in the test cell's catalog as the store ships it but for two names: its
 * containers are the cell's own (`cell-<tag>-<name>`), and its pinned images are named under the
 * test cell's allowed prefix. The pins are the image IDs build-apps.sh loads, so the same images run.
 */
async function addExample(cell: RoutingCell, id: keyof typeof PACKAGES): Promise<void> {
  const to = path.join(cell.storeDir, 'services', id);
  await fs.mkdir(to, { recursive: true });
  for (const file of ['manifest.json', 'compose-template.yml']) {
    let text = await fs.readFile(path.join(EXAMPLES, id, file), 'utf8');
    for (const container of PACKAGES[id]) text = text.replace(new RegExp(`\\b${container}\\b`, 'g'), cell.containerName(container.slice('cell-'.length)));
    await fs.writeFile(path.join(to, file), text.replace(/git\.pic\.ngo\/roof\/pic-/g, 'pictest/pic-'));
  }
  const indexFile = path.join(cell.storeDir, 'index.json');
  const index = JSON.parse(await fs.readFile(indexFile, 'utf8')) as { id: string }[];
  const example = (JSON.parse(await fs.readFile(path.join(EXAMPLES, '..', 'index.json'), 'utf8')) as { id: string }[]).find((e) => e.id === id);
  await fs.writeFile(indexFile, JSON.stringify([...index, example]));
}

/** A string in a curl config file (`curl -K -`): quoted, with backslash, quote and line breaks escaped. */
const CONFIG_ESCAPES: Record<string, string> = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const curlConfigString = (value: string) => `"${value.replace(/[\\"\n\r\t]/g, (ch) => CONFIG_ESCAPES[ch]!)}"`;

interface Answer { status: number; body: string; location: string }

/**
 * One HTTP request from the peer with curl (the cell's CA trusted), the credentials given on stdin
 * as curl's config, never in its argument list.
 */
async function request(from: PeerContainer, method: string, url: string, options: { user?: Account; body?: string; headers?: string[] } = {}): Promise<Answer> {
  const config = [
    options.user ? `user = ${curlConfigString(`${options.user.username}:${options.user.password}`)}` : '',
    ...(options.headers ?? []).map((h) => `header = ${curlConfigString(h)}`),
    options.body === undefined ? '' : `data-binary = ${curlConfigString(options.body)}`,
  ].filter((l) => l !== '');
  const r = await from.exec(['curl', '-sS', '--max-time', '20', '--cacert', '/root/cell-ca.pem', '-X', method, '-K', '-', '-w', '\n%{http_code} %{redirect_url}', url], `${config.join('\n')}\n`);
  const lines = r.stdout.trimEnd().split('\n');
  const [code, redirect] = (lines.pop() ?? '').split(' ');
  if (r.exitCode !== 0) throw new Error(`curl -X ${method} ${url} from ${from.name} exited ${r.exitCode}: ${r.stderr.trim()}`);
  // curl names the redirect's target with the credentials in it: they are not kept.
  let location = '';
  if (redirect) {
    const target = new URL(redirect);
    target.username = '';
    target.password = '';
    location = target.href;
  }
  return { status: Number(code), body: lines.join('\n'), location };
}

/** A peer container brought up from `pic credentials NAME -o wireguard` and `pic ca` only. */
async function startPeer(name: string): Promise<PeerContainer> {
  await waitFor(`${name} in the peer set`, async () => {
    const s = await phaseOf('Resource/wireguard', 'Ready');
    return typeof (s?.facts?.peers as Record<string, string> | undefined)?.[name] === 'string' ? true : undefined;
  }, 120_000);
  const file = await pic(['credentials', name, '-o', 'wireguard']);
  expect(file.code).toBe(0);
  const ca = await waitFor('pic ca', async () => {
    const r = await pic(['ca']);
    return r.code === 0 ? r.out : undefined;
  });
  const started = await startPeerContainer(peerImage!, peerNetwork!.name, c().labels);
  peers.set(name, started);
  await configurePeer(started, file.out, ca);
  // Also where GnuTLS (litmus's neon) looks for trusted roots.
  await started.sh(['sh', '-c', 'mkdir -p /etc/ssl/certs && cat /root/cell-ca.pem > /etc/ssl/certs/ca-certificates.crt']);
  return started;
}

/** litmus's summary lines: group → [run, passed, failed]. */
function litmusSummary(output: string): Record<string, [number, number, number]> {
  const found: Record<string, [number, number, number]> = {};
  for (const m of output.matchAll(/<- summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed/g)) found[m[1]!] = [Number(m[2]), Number(m[3]), Number(m[4])];
  return found;
}

function startOperator(): Promise<Operator> {
  const started = new Operator({
    cellDir: c().cellDir,
    stateDir: new StateDir(c().stateDir),
    docker,
    logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }),
    resyncIntervalMs: 60 * 60_000,
    watch: true,
  });
  return started.stateDirReady().then(() => started.start()).then(() => started);
}

beforeAll(async () => {
  await removeStaleRoutingCells(SUITE);
  for (const n of await docker.listNetworks({ filters: { label: [`${SUITE_LABEL}=${SUITE}`, `${TEST_LABEL}=1`] } })) {
    if (n.Name.startsWith('pictest-') && n.Name.endsWith('-peers') && Date.parse(n.Created) < Date.now() - 30 * 60_000) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
  await ensureExampleImages('build-apps.sh', ['calendar', 'files']);
  await buildCoreImages();
  peerImage = await buildPeerImage(undefined, LITMUS);
  cell = await createRoutingCell([], SUITE);
  for (const id of Object.keys(PACKAGES) as (keyof typeof PACKAGES)[]) await addExample(cell, id);

  const subnet = await pickSubnet();
  const base = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  peerNetwork = { name: `${cell.name}-peers`, gateway: `${base}.1` };
  await docker.createNetwork({ Name: peerNetwork.name, Driver: 'bridge', CheckDuplicate: true, Labels: cell.labels, IPAM: { Driver: 'default', Config: [{ Subnet: subnet, Gateway: peerNetwork.gateway }] } });

  await writeDocumentFile(
    path.join(cell.cellDir, 'cell.yaml'),
    testCellDocument({
      name: cell.name,
      domain: cell.domain,
      subnet: cell.subnet,
      poolEnd: 120,
      allowedImagePrefix: 'pictest/',
      extra: coreStackLines({
        caddy: { container: core('caddy'), address: address(10) },
        dns: { container: core('dns'), address: address(11) },
        wireguard: { container: core('wg'), address: address(12), subnet: vpnSubnet, hostIp: peerNetwork.gateway, port: wgPort },
      }),
    }),
  );
  for (const id of Object.keys(PACKAGES)) await cell.writeService(id);
  await writePeer('alice', ['calendar', 'files']);
  await writePeer('bob', ['calendar', 'files']);
  status = new StatusStore(path.join(cell.stateDir, 'status'));
  operator = await startOperator();
}, 900_000);

afterAll(async () => {
  await operator?.stop();
  for (const p of peers.values()) await removeContainer(p.id);
  if (peerNetwork) await docker.getNetwork(peerNetwork.name).remove().catch(() => undefined);
  if (cell) await removeRoutingCell(cell);
  if (peerImage) await docker.getImage(peerImage).remove({ force: true }).catch(() => undefined);
}, 300_000);

jest.setTimeout(600_000);

describe('calendar (Radicale) and files (Apache WebDAV) used from a peer through the tunnel', () => {
  test('both converge; pic credentials -o json gives each peer its webdav_url, caldav_url and passwords', async () => {
    for (const key of ['Core/caddy', 'Core/dns', 'Core/wireguard', 'ServiceInstall/calendar', 'ServiceInstall/files', 'PeerAccount/alice', 'PeerAccount/bob']) await waitPhase(key);
    for (const name of ['alice', 'bob']) {
      const r = await pic(['credentials', name, '-o', 'json']);
      expect(r.code).toBe(0);
      const services = (JSON.parse(r.out) as { services: Credentials }).services;
      expect(services.files.webdav_url).toBe(`https://webdav.${c().domain}/dav/${name}/`);
      expect(services.files.url).toBe(`https://files.${c().domain}/${name}/`);
      expect(services.calendar.caldav_url).toBe(`https://calendar.${c().domain}/${name}/`);
      expect(services.files.password).not.toBe(services.calendar.password);
      creds.set(name, services);
    }
    await startPeer('alice');
    await startPeer('bob');
    // The first request through a new tunnel waits for the route and the name.
    await waitFor('webdav reachable from alice', async () => {
      try {
        return (await request(peer('alice'), 'PROPFIND', account('alice').files.webdav_url, { user: account('alice').files, headers: ['Depth: 0'] })).status === 207 ? true : undefined;
      } catch {
        return undefined;
      }
    }, 120_000);
  });

  test('litmus: basic, copymove, props and locks all pass against alice\'s webdav_url', async () => {
    const { files } = account('alice');
    // The groups this server offers (it locks, so locks too); http is about proxies and 100-continue.
    const r = await peer('alice').exec(['env', 'TESTS=basic copymove props locks', 'litmus', '-k', files.webdav_url, files.username, files.password]);
    const summary = litmusSummary(r.stdout);
    expect(Object.keys(summary).sort()).toEqual(['basic', 'copymove', 'locks', 'props']);
    for (const [group, [run, passed, failed]] of Object.entries(summary)) {
      expect({ group, failed, passed }).toEqual({ group, failed: 0, passed: run });
      expect(run).toBeGreaterThan(0);
    }
    expect(r.exitCode).toBe(0);
  });

  test('WebDAV: a file stored by alice is hers only; wrong passwords and a COPY into bob\'s folder are refused; files.<domain> shows it read-only', async () => {
    const alice = account('alice').files;
    const bob = account('bob').files;
    const url = `${alice.webdav_url}report.txt`;
    expect((await request(peer('alice'), 'PUT', url, { user: alice, body: 'alice report\n' })).status).toBe(201);
    const mine = await request(peer('alice'), 'GET', url, { user: alice });
    expect(mine).toMatchObject({ status: 200, body: 'alice report\n' });
    expect((await request(peer('bob'), 'GET', url, { user: bob })).status).toBe(401);
    expect((await request(peer('bob'), 'PROPFIND', alice.webdav_url, { user: bob, headers: ['Depth: 1'] })).status).toBe(401);
    expect((await request(peer('bob'), 'PUT', `${alice.webdav_url}from-bob.txt`, { user: bob, body: 'x' })).status).toBe(401);
    expect((await request(peer('alice'), 'GET', url, { user: { ...alice, password: `${alice.password}x` } })).status).toBe(401);
    expect((await request(peer('alice'), 'GET', url)).status).toBe(401);
    // The folder list of every person is nobody's.
    expect((await request(peer('alice'), 'PROPFIND', `https://webdav.${c().domain}/dav/`, { user: alice, headers: ['Depth: 1'] })).status).toBe(403);
    for (const destination of [`${bob.webdav_url}stolen.txt`, `${alice.webdav_url}../${bob.username}/stolen.txt`]) {
      expect((await request(peer('alice'), 'COPY', url, { user: alice, headers: [`Destination: ${destination}`] })).status).toBe(401);
    }
    expect((await request(peer('bob'), 'GET', `${bob.webdav_url}stolen.txt`, { user: bob })).status).toBe(404);

    // files.<domain>: / sends alice to her folder, which lists the file; bob is refused; nothing is written.
    const root = await request(peer('alice'), 'GET', `https://files.${c().domain}/`, { user: alice });
    expect(root).toMatchObject({ status: 303, location: alice.url });
    const listing = await request(peer('alice'), 'GET', alice.url, { user: alice });
    expect(listing.status).toBe(200);
    expect(listing.body).toContain('report.txt');
    expect(await request(peer('alice'), 'GET', `${alice.url}report.txt`, { user: alice })).toMatchObject({ status: 200, body: 'alice report\n' });
    expect((await request(peer('bob'), 'GET', alice.url, { user: bob })).status).toBe(401);
    expect((await request(peer('alice'), 'PUT', `${alice.url}web.txt`, { user: alice, body: 'x' })).status).toBe(405);
  });

  test('CalDAV and CardDAV: alice makes a calendar with an event and an address book with a contact, reads them back; bob cannot', async () => {
    const alice = account('alice').calendar;
    const bob = account('bob').calendar;
    const home = alice.caldav_url;
    const calendar = `${home}work/`;
    const mkcalendar = '<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Work</D:displayname></D:prop></D:set></C:mkcalendar>';
    expect((await request(peer('alice'), 'MKCALENDAR', calendar, { user: alice, body: mkcalendar })).status).toBe(201);
    const event = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//pic tests//EN', 'BEGIN:VEVENT', 'UID:meeting-1@pic.test', 'DTSTAMP:20260101T090000Z', 'DTSTART:20260105T100000Z', 'DTEND:20260105T110000Z', 'SUMMARY:Planning meeting', 'END:VEVENT', 'END:VCALENDAR', ''].join('\r\n');
    expect((await request(peer('alice'), 'PUT', `${calendar}meeting-1.ics`, { user: alice, body: event, headers: ['Content-Type: text/calendar; charset=utf-8'] })).status).toBe(201);
    const query = '<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20260101T000000Z" end="20260201T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>';
    const report = await request(peer('alice'), 'REPORT', calendar, { user: alice, body: query, headers: ['Depth: 1', 'Content-Type: application/xml'] });
    expect(report.status).toBe(207);
    expect(report.body).toContain('UID:meeting-1@pic.test');
    expect(report.body).toContain('SUMMARY:Planning meeting');
    const calendars = await request(peer('alice'), 'PROPFIND', home, { user: alice, headers: ['Depth: 1'] });
    expect(calendars.body).toMatch(/<[A-Za-z0-9]*:?calendar\s*\/>/);

    const book = `${home}contacts/`;
    const mkcol = '<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>Contacts</D:displayname></D:prop></D:set></D:mkcol>';
    expect((await request(peer('alice'), 'MKCOL', book, { user: alice, body: mkcol, headers: ['Content-Type: application/xml'] })).status).toBe(201);
    const card = ['BEGIN:VCARD', 'VERSION:3.0', 'UID:carol-1@pic.test', 'FN:Carol Example', 'N:Example;Carol;;;', 'EMAIL:carol@example.org', 'END:VCARD', ''].join('\r\n');
    expect((await request(peer('alice'), 'PUT', `${book}carol.vcf`, { user: alice, body: card, headers: ['Content-Type: text/vcard; charset=utf-8'] })).status).toBe(201);
    const cards = await request(peer('alice'), 'REPORT', book, {
      user: alice,
      body: '<?xml version="1.0" encoding="utf-8"?><CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><CR:address-data/></D:prop></CR:addressbook-query>',
      headers: ['Depth: 1', 'Content-Type: application/xml'],
    });
    expect(cards.status).toBe(207);
    expect(cards.body).toContain('FN:Carol Example');

    // Bob, signed in as himself, cannot read or write alice's collections; wrong or no password: refused.
    expect((await request(peer('bob'), 'GET', `${calendar}meeting-1.ics`, { user: bob })).status).toBe(403);
    expect((await request(peer('bob'), 'REPORT', calendar, { user: bob, body: query, headers: ['Depth: 1'] })).status).toBe(403);
    expect((await request(peer('bob'), 'GET', `${book}carol.vcf`, { user: bob })).status).toBe(403);
    expect((await request(peer('bob'), 'PUT', `${calendar}bob.ics`, { user: bob, body: event })).status).toBe(403);
    expect((await request(peer('alice'), 'GET', `${calendar}meeting-1.ics`, { user: { ...alice, password: `${alice.password}x` } })).status).toBe(401);
    expect((await request(peer('alice'), 'GET', `${calendar}meeting-1.ics`)).status).toBe(401);
  });

  test('discovery (RFC 6764): /.well-known/caldav and /carddav lead a client to the signed-in person\'s principal', async () => {
    const alice = account('alice').calendar;
    const principal = '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>';
    for (const well of ['caldav', 'carddav']) {
      const redirect = await request(peer('alice'), 'PROPFIND', `https://calendar.${c().domain}/.well-known/${well}`, { user: alice, body: principal, headers: ['Depth: 0'] });
      expect([301, 302, 303, 307, 308]).toContain(redirect.status);
      const context = new URL(redirect.location, `https://calendar.${c().domain}/`).href;
      const found = await request(peer('alice'), 'PROPFIND', context, { user: alice, body: principal, headers: ['Depth: 0', 'Content-Type: application/xml'] });
      expect(found.status).toBe(207);
      const href = /current-user-principal>\s*<[A-Za-z0-9]*:?href>([^<]+)</.exec(found.body)?.[1];
      expect(href).toBeDefined();
      expect(new URL(href!, context).href).toBe(alice.caldav_url);
    }
  });

  test('backup, loss and restore bring back alice\'s event, contact and file byte for byte, read through the clients', async () => {
    const alice = account('alice');
    const items = [
      { url: `${alice.calendar.caldav_url}work/meeting-1.ics`, user: alice.calendar },
      { url: `${alice.calendar.caldav_url}contacts/carol.vcf`, user: alice.calendar },
      { url: `${alice.files.webdav_url}report.txt`, user: alice.files },
    ];
    const before: string[] = [];
    for (const item of items) {
      const r = await request(peer('alice'), 'GET', item.url, { user: item.user });
      expect(r.status).toBe(200);
      before.push(r.body);
    }
    const created = await pic(['backup', 'create', 'calendar', 'files', '-o', 'json']);
    expect(created.err).not.toMatch(/error/i);
    expect(created.code).toBe(0);
    const snapshot = JSON.parse(created.out) as { id: string; verification: { ok: boolean } };
    expect(snapshot.verification.ok).toBe(true);

    // Radicale answers a DELETE with 200, Apache with 204.
    for (const item of items) expect([200, 204]).toContain((await request(peer('alice'), 'DELETE', item.url, { user: item.user })).status);
    for (const item of items) expect((await request(peer('alice'), 'GET', item.url, { user: item.user })).status).toBe(404);

    const restored = await pic(['backup', 'restore', snapshot.id]);
    expect(restored.code).toBe(0);
    for (const [i, item] of items.entries()) {
      const back = await waitFor(`${item.url} after the restore`, async () => {
        try {
          const r = await request(peer('alice'), 'GET', item.url, { user: item.user });
          return r.status === 200 ? r.body : undefined;
        } catch {
          return undefined;
        }
      }, 180_000);
      expect(back).toBe(before[i]);
    }
  });

  test('taking calendar and files out of bob\'s PeerAccount removes his access at once; his data stays', async () => {
    const bob = account('bob');
    expect((await request(peer('bob'), 'PUT', `${bob.files.webdav_url}keep.txt`, { user: bob.files, body: 'kept\n' })).status).toBe(201);
    expect((await request(peer('bob'), 'MKCALENDAR', `${bob.calendar.caldav_url}home/`, { user: bob.calendar })).status).toBe(201);
    await writePeer('bob', []);
    await waitFor('bob refused by WebDAV and CalDAV', async () => {
      const dav = await request(peer('bob'), 'GET', `${bob.files.webdav_url}keep.txt`, { user: bob.files });
      const cal = await request(peer('bob'), 'PROPFIND', bob.calendar.caldav_url, { user: bob.calendar, headers: ['Depth: 0'] });
      return dav.status === 401 && cal.status === 401 ? true : undefined;
    }, 120_000);
    // Alice is untouched, and bob's data is still on the volumes.
    expect((await request(peer('alice'), 'PROPFIND', account('alice').files.webdav_url, { user: account('alice').files, headers: ['Depth: 0'] })).status).toBe(207);
    const kept = await execInContainer(docker, c().containerName('files'), ['cat', '/data/files/bob/keep.txt']);
    expect(kept.stdout).toBe('kept\n');
    const home = await execInContainer(docker, c().containerName('calendar'), ['ls', '/data/calendar/collections/collection-root/bob']);
    expect(home.stdout.split('\n')).toContain('home');
  });
});
