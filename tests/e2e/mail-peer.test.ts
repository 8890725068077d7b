/**
 * The email service (examples/store/services/email: Postfix and Dovecot from
 * examples/images/build-apps.sh) from a person's side. The real operator runs a cell whose core
 * stack it runs itself (Caddy, BIND, WireGuard) and the email package as the catalog ships it
 * (but for its container name and image prefix); peers are throwaway containers on a network of
 * their own, configured only from `pic credentials PEER -o wireguard` and `pic ca`, and every
 * mail client is curl speaking IMAP and SMTP with what `pic credentials PEER -o json` prints:
 *
 * - the host names resolve through the cell's DNS to where the ports are (mail.<domain>: the
 *   service's own address, a direct subdomain; autoconfig.<domain>: Caddy);
 * - IMAP over TLS signs in; a message submitted by one peer on 587 arrives in another's INBOX;
 *   wrong passwords are refused by IMAP and submission; relaying for strangers is refused;
 * - mail from an outside sender to the published port 25 arrives; mail to an outside address
 *   leaves through the smarthost of the service's config (an SMTP sink of the test's);
 * - the autoconfig file names the endpoints the clients used;
 * - removing email from a PeerAccount refuses that person's password at once; the mail stays.
 *
 * IMAP and submission present the certificate of mail.<domain> that the cell's CA (Caddy's
 * internal one) issued, placed in the container by the certificates resource: the clients trust
 * only the root `pic ca` prints.
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
import { execInContainer } from '../../reconcilers/shared/exec.js';
import { StateDir } from '../../state/state-dir.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { ensureExampleImages } from '../support/example-images.js';
import { testCellDocument, waitFor, writeDocumentFile } from '../support/cell.js';
import { docker, pickSubnet, TEST_LABEL } from '../support/docker.js';
import { buildCoreImages, buildPeerImage, configurePeer, coreStackLines, removeContainer, startPeerContainer, type PeerContainer } from '../support/peer.js';
import { createRoutingCell, removeRoutingCell, removeStaleRoutingCells, SUITE_LABEL, type RoutingCell } from '../support/routing-cell.js';

const SUITE = 'mail-peer';
/** Names of what this suite creates (cell, its core containers, networks, volumes). */
const PREFIX = 'eml-';
const EMAIL = 'email';
const EXAMPLE = path.join(process.cwd(), 'examples', 'store', 'services', EMAIL);
/** The host port other mail servers deliver to: consented in the ServiceInstall's spec.publish. */
const smtpPort = 20000 + (randomBytes(2).readUInt16BE(0) % 20000);
const wgPort = 40000 + (randomBytes(2).readUInt16BE(0) % 20000);
const vpnSubnet = `100.65.${randomBytes(1)[0]! % 250}.0/24`;
const SINK_PORT = 2525;

interface EmailCredentials {
  imap_host: string;
  imap_port: string;
  smtp_host: string;
  smtp_port: string;
  username: string;
  email: string;
  password: string;
  autoconfig_url: string;
}

let cell: RoutingCell | undefined;
let operator: Operator | undefined;
let status: StatusStore;
let peerImage: string | undefined;
let peerNetwork: { name: string; gateway: string } | undefined;
const peers = new Map<string, PeerContainer>();
const others: PeerContainer[] = [];
let sink: PeerContainer | undefined;
const creds = new Map<string, EmailCredentials>();

const c = () => {
  if (!cell) throw new Error('the test cell did not start (see beforeAll)');
  return cell;
};
const core = (name: string) => `${c().name}-${name}`;
const address = (last: number) => `${c().base}.${last}`;
const mailContainer = () => c().containerName(EMAIL);
const sinkAddress = () => address(200);

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
 * The example email package in the test cell's catalog: its container is the cell's own
 * (`cell-<tag>-email`), and its pinned image is named under the test prefix. The pin is the
 * image ID examples/images/build-apps.sh loads, so that very image runs.
 */
async function addExampleEmail(cell: RoutingCell): Promise<void> {
  await ensureExampleImages('build-apps.sh', ['email'], ['mail']);
  const to = path.join(cell.storeDir, 'services', EMAIL);
  await fs.mkdir(to, { recursive: true });
  for (const file of ['manifest.json', 'compose-template.yml']) {
    const text = await fs.readFile(path.join(EXAMPLE, file), 'utf8');
    await fs.writeFile(path.join(to, file), text.replace(/\bcell-mail\b/g, mailContainer()).replace(/git\.pic\.ngo\/roof\/pic-mail@/g, 'pictest/pic-mail@'));
  }
  const indexFile = path.join(cell.storeDir, 'index.json');
  const index = JSON.parse(await fs.readFile(indexFile, 'utf8')) as { id: string }[];
  const example = (JSON.parse(await fs.readFile(path.join(EXAMPLE, '..', '..', 'index.json'), 'utf8')) as { id: string }[]).find((e) => e.id === EMAIL);
  await fs.writeFile(indexFile, JSON.stringify([...index, example]));
}

async function peerAddress(name: string): Promise<string> {
  return waitFor(`${name} in the peer set`, async () => {
    const s = await phaseOf('Resource/wireguard', 'Ready');
    const found = (s?.facts?.peers as Record<string, string> | undefined)?.[name];
    return typeof found === 'string' ? found : undefined;
  }, 120_000);
}

/** A peer container brought up from `pic credentials NAME -o wireguard` and `pic ca` only. */
async function startPeer(name: string): Promise<PeerContainer> {
  await peerAddress(name);
  const file = await pic(['credentials', name, '-o', 'wireguard']);
  expect(file.code).toBe(0);
  const ca = await waitFor('pic ca', async () => {
    const r = await pic(['ca']);
    return r.code === 0 ? r.out : undefined;
  });
  const peer = await startPeerContainer(peerImage!, peerNetwork!.name, c().labels);
  peers.set(name, peer);
  await configurePeer(peer, file.out, ca);
  return peer;
}

async function emailCredentials(name: string): Promise<EmailCredentials> {
  const printed = await pic(['credentials', name, '-o', 'json']);
  expect(printed.code).toBe(0);
  return (JSON.parse(printed.out) as { services: Record<string, EmailCredentials> }).services[EMAIL]!;
}

/** A string in a curl config file (`curl -K -`): quoted, with backslash and quote escaped. */
const curlConfigString = (value: string) => `"${value.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;

/**
 * curl in `peer` with the user's name and password in its config on stdin (never in its argument
 * list), trusting only the cell's root (`pic ca`): the exit code and what it printed.
 */
async function mailCurl(peer: PeerContainer, args: string[], user?: { name: string; password: string }, body?: string): Promise<{ code: number; out: string; err: string }> {
  const config = user ? `user = ${curlConfigString(`${user.name}:${user.password}`)}\n` : '';
  // The message goes in a file first: curl's config and the message cannot share stdin.
  const upload: string[] = [];
  if (body !== undefined) {
    const file = `/tmp/msg-${randomBytes(4).toString('hex')}.eml`;
    await peer.sh(['sh', '-c', `cat > ${file}`], body);
    upload.push('-T', file);
  }
  const r = await peer.exec(['curl', '-sS', '--max-time', '20', '--cacert', '/root/cell-ca.pem', '-K', '-', ...upload, ...args], config);
  return { code: r.exitCode, out: r.stdout, err: r.stderr };
}

function message(from: string, to: string, subject: string): string {
  return [`From: <${from}>`, `To: <${to}>`, `Subject: ${subject}`, `Message-ID: <${randomBytes(8).toString('hex')}@pic.test>`, '', `This is ${subject}.`, ''].join('\r\n');
}

/** Submit on 587 (STARTTLS required) as `who`, the way a mail client set up from the credentials does. */
function submit(peer: PeerContainer, who: EmailCredentials, to: string, subject: string, password = who.password) {
  return mailCurl(peer, ['--ssl-reqd', `smtp://${who.smtp_host}:${who.smtp_port}`, '--mail-from', who.email, '--mail-rcpt', to], { name: who.username, password }, message(who.email, to, subject));
}

/**
 * The UIDs of the messages in `who`'s INBOX whose subject contains `subject` (every message
 * without one), searched over IMAPS: curl prints a SEARCH answer whole, not a FETCH's literals.
 */
async function inboxSearch(peer: PeerContainer, who: EmailCredentials, subject?: string, password = who.password): Promise<{ code: number; uids: number[]; err: string }> {
  const criteria = subject === undefined ? 'ALL' : `SUBJECT "${subject}"`;
  const r = await mailCurl(peer, [`imaps://${who.imap_host}:${who.imap_port}/INBOX`, '-X', `UID SEARCH ${criteria}`], { name: who.username, password });
  const line = /^\* SEARCH([ \d]*)\r?$/m.exec(r.out)?.[1] ?? '';
  return { code: r.code, uids: line.split(' ').filter(Boolean).map(Number), err: r.err };
}

/** The message of `uid`, fetched whole over IMAPS (curl prints a fetched message's body). */
async function fetchMessage(peer: PeerContainer, who: EmailCredentials, uid: number): Promise<string> {
  const r = await mailCurl(peer, [`imaps://${who.imap_host}:${who.imap_port}/INBOX;UID=${uid}`], { name: who.username, password: who.password });
  if (r.code !== 0) throw new Error(`fetching UID ${uid} of ${who.email}: curl exited ${r.code}: ${r.err.trim()}`);
  return r.out;
}

/** Waits until a message with `subject` is in `who`'s INBOX; the message. */
async function arrives(peer: PeerContainer, who: EmailCredentials, subject: string): Promise<string> {
  const uid = await waitFor(`"${subject}" in ${who.email}'s INBOX`, async () => (await inboxSearch(peer, who, subject)).uids[0], 60_000);
  return fetchMessage(peer, who, uid);
}

/**
 * An SMTP server that accepts any mail and appends it to /tmp/sink.txt: busybox nc running a
 * shell dialogue per connection, on the cell network at an address outside the service pool.
 */
const SINK_SCRIPT = `#!/bin/sh
CR=$(printf '\\r')
reply() { printf '%s\\r\\n' "$1"; }
reply '220 sink.test ESMTP test sink'
while IFS= read -r line; do
  line=\${line%"$CR"}
  case $line in
    [Ee][Hh][Ll][Oo]* | [Hh][Ee][Ll][Oo]*) reply '250 sink.test' ;;
    [Mm][Aa][Ii][Ll]* | [Rr][Cc][Pp][Tt]*) echo "$line" >> /tmp/sink.txt; reply '250 2.1.0 ok' ;;
    [Dd][Aa][Tt][Aa])
      reply '354 go ahead'
      while IFS= read -r data; do
        data=\${data%"$CR"}
        [ "$data" = . ] && break
        echo "$data" >> /tmp/sink.txt
      done
      reply '250 2.0.0 queued' ;;
    [Qq][Uu][Ii][Tt]) reply '221 2.0.0 bye'; exit 0 ;;
    *) reply '250 2.0.0 ok' ;;
  esac
done
`;

async function startSink(): Promise<PeerContainer> {
  const name = `${c().name}-sink`;
  await docker.getContainer(name).remove({ force: true }).catch(() => undefined);
  const container = await docker.createContainer({
    name,
    Image: peerImage!,
    // nc answers once the script is in place (an exec's background process would not outlive the exec).
    Cmd: ['sh', '-c', `while [ ! -x /sink.sh ]; do sleep 0.1; done; exec nc -ll -p ${SINK_PORT} -e /sink.sh`],
    Labels: { ...c().labels, [TEST_LABEL]: '1' },
    StopTimeout: 1,
    HostConfig: { NetworkMode: c().network },
    NetworkingConfig: { EndpointsConfig: { [c().network]: { IPAMConfig: { IPv4Address: sinkAddress() } } } },
  });
  await container.start();
  const exec = (argv: string[], stdin?: string) => execInContainer(docker, name, argv, stdin === undefined ? { timeoutMs: 60_000 } : { stdin, timeoutMs: 60_000 });
  const sh = async (argv: string[], stdin?: string) => {
    const r = await exec(argv, stdin);
    if (r.exitCode !== 0) throw new Error(`${argv.join(' ')} in ${name} exited ${r.exitCode}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  await sh(['sh', '-c', 'touch /tmp/sink.txt && cat > /sink.tmp && chmod 755 /sink.tmp && mv /sink.tmp /sink.sh'], SINK_SCRIPT);
  return { name, id: container.id, exec, sh };
}

async function startOperator(): Promise<Operator> {
  const started = new Operator({
    cellDir: c().cellDir,
    stateDir: new StateDir(c().stateDir),
    docker,
    logger: createLogger({ json: true, level: process.env.PIC_TEST_LOG ?? 'error' }),
    resyncIntervalMs: 60 * 60_000,
    watch: true,
  });
  await started.stateDirReady();
  await started.start();
  return started;
}

beforeAll(async () => {
  await removeStaleRoutingCells(SUITE, 30 * 60_000, PREFIX);
  for (const n of await docker.listNetworks({ filters: { label: [`${SUITE_LABEL}=${SUITE}`, `${TEST_LABEL}=1`] } })) {
    if (n.Name.startsWith(PREFIX) && n.Name.endsWith('-peers') && Date.parse(n.Created) < Date.now() - 30 * 60_000) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
  await buildCoreImages();
  peerImage = await buildPeerImage();
  cell = await createRoutingCell([], SUITE, { prefix: PREFIX });
  await addExampleEmail(cell);

  const subnet = await pickSubnet();
  const base = subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  peerNetwork = { name: `${cell.name}-peers`, gateway: `${base}.1` };
  await docker.createNetwork({ Name: peerNetwork.name, Driver: 'bridge', CheckDuplicate: true, Labels: cell.labels, IPAM: { Driver: 'default', Config: [{ Subnet: subnet, Gateway: peerNetwork.gateway }] } });
  sink = await startSink();

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
  const config = { domain: cell.domain, smtp_port: smtpPort, relay_host: sinkAddress(), relay_port: SINK_PORT };
  await writeDocumentFile(
    path.join(cell.cellDir, 'services', `${EMAIL}.yaml`),
    `apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: ${EMAIL}}\nspec:\n  version: 2.0.0\n  minReadySeconds: 0\n  config: ${JSON.stringify(config)}\n  publish: ["${smtpPort}/tcp"]\n`,
  );
  await writePeer('alice', [EMAIL]);
  await writePeer('bob', [EMAIL]);

  status = new StatusStore(path.join(cell.stateDir, 'status'));
  operator = await startOperator();
}, 900_000);

afterAll(async () => {
  await operator?.stop();
  for (const peer of [...peers.values(), ...others]) await removeContainer(peer.id);
  if (sink) await removeContainer(sink.id);
  if (peerNetwork) await docker.getNetwork(peerNetwork.name).remove().catch(() => undefined);
  if (cell) await removeRoutingCell(cell);
  // The mail service's volumes: named pic-<cell>-email-<key>, kept by pic on uninstall.
  if (cell) {
    const { Volumes } = await docker.listVolumes({ filters: { name: [`pic-${cell.name}-`] } });
    for (const v of Volumes ?? []) await docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined);
  }
  if (peerImage) await docker.getImage(peerImage).remove({ force: true }).catch(() => undefined);
}, 300_000);

jest.setTimeout(300_000);

describe('the email service from a peer\'s side', () => {
  test('the cell converges with email installed and two peers holding mailboxes', async () => {
    for (const key of ['Core/caddy', 'Core/dns', 'Core/wireguard', `ServiceInstall/${EMAIL}`, 'Resource/dns', 'Resource/firewall', 'PeerAccount/alice', 'PeerAccount/bob']) await waitPhase(key);
    const accounts = await execInContainer(docker, mailContainer(), ['mail-account', 'list', c().domain]);
    expect(accounts.stdout.split('\n').filter(Boolean).sort()).toEqual(['alice', 'bob']);
  });

  test('pic credentials gives the interface other checks use', async () => {
    for (const name of ['alice', 'bob']) {
      const e = await emailCredentials(name);
      expect(e).toEqual({
        email: `${name}@${c().domain}`,
        imap_host: `mail.${c().domain}`,
        imap_port: '993',
        smtp_host: `mail.${c().domain}`,
        smtp_port: '587',
        username: `${name}@${c().domain}`,
        password: expect.stringMatching(/^.{16,}$/),
        autoconfig_url: `https://autoconfig.${c().domain}/mail/config-v1.1.xml`,
      });
      creds.set(name, e);
    }
  });

  test('the host names resolve through the cell DNS: mail to the service itself, autoconfig to Caddy', async () => {
    const alice = await startPeer('alice');
    const serviceIp = (await status.get(`ServiceInstall/${EMAIL}`))?.facts?.serviceIp;
    const dig = (name: string) =>
      waitFor(`dig ${name}`, async () => {
        const r = await alice.exec(['dig', '+short', '+time=2', '+tries=1', name, 'A']);
        return r.exitCode === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
      }, 120_000);
    expect(await dig(creds.get('alice')!.imap_host)).toBe(serviceIp);
    expect(await dig(creds.get('alice')!.smtp_host)).toBe(serviceIp);
    expect(await dig(`autoconfig.${c().domain}`)).toBe(address(10));
  });

  test('IMAP over TLS, with a certificate chaining to pic ca, signs in with the peer\'s credentials; a wrong password is refused', async () => {
    const alice = peers.get('alice')!;
    const a = creds.get('alice')!;
    // The certificates resource places the cell CA's certificate of mail.<domain>; the image takes it up within seconds.
    await waitPhase('Resource/certificates');
    const ok = await waitFor('IMAPS sign-in', async () => {
      const r = await inboxSearch(alice, a);
      if (r.code !== 0) throw new Error(`curl exited ${r.code}: ${r.err.trim()}`);
      return r;
    }, 60_000);
    expect(ok.uids).toEqual([]);
    const wrong = await inboxSearch(alice, a, undefined, `${a.password}x`);
    expect(wrong.code).toBe(67); // CURLE_LOGIN_DENIED
    // bob's password does not open alice's mailbox.
    expect((await inboxSearch(alice, a, undefined, creds.get('bob')!.password)).code).toBe(67);
    // Plain IMAP on 143 is not offered at all.
    const plain = await alice.exec(['curl', '-sS', '--max-time', '5', `imap://${a.imap_host}:143/`]);
    expect(plain.exitCode).not.toBe(0);
  });

  test('a message submitted by one peer on 587 arrives in another peer\'s INBOX', async () => {
    const alice = peers.get('alice')!;
    const bob = await startPeer('bob');
    const subject = `from alice ${randomBytes(4).toString('hex')}`;
    const sent = await submit(alice, creds.get('alice')!, creds.get('bob')!.email, subject);
    expect(sent).toMatchObject({ code: 0 });
    const received = await arrives(bob, creds.get('bob')!, subject);
    expect(received).toContain(`This is ${subject}.`);
    expect(received).toMatch(new RegExp(`^From: <${creds.get('alice')!.email.replace(/\./g, '\\.')}>`, 'm'));
  });

  test('submission refuses a wrong password, a foreign sender address, and a session without TLS', async () => {
    const alice = peers.get('alice')!;
    const a = creds.get('alice')!;
    const b = creds.get('bob')!;
    expect((await submit(alice, a, b.email, 'wrong password', `${a.password}x`)).code).toBe(67);
    // alice may not send as bob.
    const spoof = await mailCurl(alice, ['--ssl-reqd', `smtp://${a.smtp_host}:${a.smtp_port}`, '--mail-from', b.email, '--mail-rcpt', b.email], { name: a.username, password: a.password }, message(b.email, b.email, 'spoofed'));
    expect(spoof.code).toBe(55);
    // Without STARTTLS the server offers no AUTH, so the password is never sent in the clear.
    const clear = await mailCurl(alice, [`smtp://${a.smtp_host}:${a.smtp_port}`, '--mail-from', a.email, '--mail-rcpt', b.email], { name: a.username, password: a.password }, message(a.email, b.email, 'in the clear'));
    expect(clear.code).not.toBe(0);
    expect((await inboxSearch(peers.get('bob')!, b, 'spoofed')).uids).toEqual([]);
  });

  test('an unauthenticated relay to an outside address is refused on 25 and on 587', async () => {
    const alice = peers.get('alice')!;
    const a = creds.get('alice')!;
    for (const port of [25, 587]) {
      const r = await mailCurl(alice, [`smtp://${a.smtp_host}:${port}`, '--mail-from', 'someone@outside.test', '--mail-rcpt', 'victim@elsewhere.test'], undefined, message('someone@outside.test', 'victim@elsewhere.test', `relay on ${port}`));
      expect({ port, code: r.code }).toEqual({ port, code: 55 });
    }
    const sunk = await sink!.sh(['cat', '/tmp/sink.txt']);
    expect(sunk).not.toContain('victim@elsewhere.test');
  });

  test('mail from an outside sender to the published port 25 arrives', async () => {
    // A sender outside the VPN: a container on the peers' network, reaching the host's published port.
    const outside = await startPeerContainer(peerImage!, peerNetwork!.name, c().labels);
    others.push(outside);
    const b = creds.get('bob')!;
    const subject = `from outside ${randomBytes(4).toString('hex')}`;
    const body = message('sender@outside.test', b.email, subject);
    await outside.sh(['sh', '-c', 'cat > /tmp/outside.eml'], body);
    const r = await outside.exec(['curl', '-sS', '--max-time', '20', `smtp://${peerNetwork!.gateway}:${smtpPort}`, '--mail-from', 'sender@outside.test', '--mail-rcpt', b.email, '-T', '/tmp/outside.eml']);
    expect({ code: r.exitCode, err: r.stderr }).toEqual({ code: 0, err: '' });
    expect(await arrives(peers.get('bob')!, b, subject)).toContain(`This is ${subject}.`);
    // An address of the domain without a mailbox is refused at once, not bounced later.
    const nobody = await outside.exec(['curl', '-sS', '--max-time', '20', `smtp://${peerNetwork!.gateway}:${smtpPort}`, '--mail-from', 'sender@outside.test', '--mail-rcpt', `nobody@${c().domain}`, '-T', '/tmp/outside.eml']);
    expect(nobody.exitCode).toBe(55);
  });

  test('mail to an outside address leaves through the smarthost', async () => {
    const alice = peers.get('alice')!;
    const subject = `to the world ${randomBytes(4).toString('hex')}`;
    expect((await submit(alice, creds.get('alice')!, 'friend@elsewhere.test', subject)).code).toBe(0);
    const sunk = await waitFor('the message at the smarthost', async () => {
      const text = await sink!.sh(['cat', '/tmp/sink.txt']);
      return text.includes(`Subject: ${subject}`) ? text : undefined;
    }, 60_000);
    expect(sunk).toMatch(/RCPT TO:<friend@elsewhere\.test>/i);
    expect(sunk).toMatch(new RegExp(`MAIL FROM:<alice@${c().domain.replace(/\./g, '\\.')}>`, 'i'));
  });

  test('the autoconfig file names the endpoints the clients used', async () => {
    const alice = peers.get('alice')!;
    const a = creds.get('alice')!;
    const r = await alice.exec(['curl', '-sS', '--max-time', '10', '--cacert', '/root/cell-ca.pem', `${a.autoconfig_url}?emailaddress=${encodeURIComponent(a.email)}`]);
    expect(r.exitCode).toBe(0);
    const xml = r.stdout;
    const server = (type: string) => {
      const block = new RegExp(`<(incomingServer|outgoingServer) type="${type}">([\\s\\S]*?)</\\1>`).exec(xml)?.[2] ?? '';
      const field = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(block)?.[1];
      return { hostname: field('hostname'), port: field('port'), socketType: field('socketType'), username: field('username') };
    };
    expect(xml).toContain(`<domain>${c().domain}</domain>`);
    expect(server('imap')).toEqual({ hostname: a.imap_host, port: a.imap_port, socketType: 'SSL', username: '%EMAILADDRESS%' });
    expect(server('smtp')).toEqual({ hostname: a.smtp_host, port: a.smtp_port, socketType: 'STARTTLS', username: '%EMAILADDRESS%' });
  });

  test('removing email from a PeerAccount refuses that person at once; the mail stays', async () => {
    const bob = peers.get('bob')!;
    const b = creds.get('bob')!;
    expect((await inboxSearch(bob, b)).code).toBe(0);
    await writePeer('bob', []);
    await waitFor('bob refused by IMAP', async () => ((await inboxSearch(bob, b)).code === 67 ? true : undefined), 120_000);
    expect((await submit(bob, b, creds.get('alice')!.email, 'after removal')).code).toBe(67);
    const listed = await execInContainer(docker, mailContainer(), ['mail-account', 'list', c().domain]);
    expect(listed.stdout.split('\n').filter(Boolean)).toEqual(['alice']);
    // The messages bob received are still in the volume, for the admin to keep or delete.
    const kept = await execInContainer(docker, mailContainer(), ['sh', '-c', `ls /data/mail/mailboxes/${c().domain}/bob/Maildir/new /data/mail/mailboxes/${c().domain}/bob/Maildir/cur | grep -c .`]);
    expect(Number(kept.stdout.trim())).toBeGreaterThanOrEqual(2);
    // alice is untouched.
    expect((await inboxSearch(peers.get('alice')!, creds.get('alice')!)).code).toBe(0);
  });
});
