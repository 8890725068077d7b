/**
 * The accounts reconciler against the real example services: notes through its HTTP account API,
 * files, calendar and email through their account commands in the containers. Steps run in
 * order and build on each other, like an admin editing PeerAccounts over time.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { credentialsCommand } from '../../controllers/cli/credentials.js';
import { reconcileServiceAccounts, type ServiceAccountsResult } from '../../reconcilers/accounts/index.js';
import { CredentialsStore } from '../../state/credentials.js';
import { docker } from '../support/docker.js';
import {
  createAccountsTestEnv,
  EXAMPLE_DOMAIN,
  removeAccountsTestEnv,
  startExampleService,
  type AccountsTestEnv,
  type RunningExample,
} from '../support/accounts-service.js';

let env: AccountsTestEnv | undefined;
let notes: RunningExample;
let files: RunningExample;
let calendar: RunningExample;
let email: RunningExample;
let stateDir: string;
let store: CredentialsStore;
const events: { reason: string; message: string; type?: string }[] = [];
/** Every reason a result carried, to check no password ever appears in one. */
const reasons: string[] = [];
/** Every password pic ever stored during this file. */
const passwordsSeen = new Set<string>();

function deps() {
  return { docker, cellName: env!.cellName, credentials: store, event: (reason: string, message: string, type?: 'Normal' | 'Warning') => events.push({ reason, message, ...(type ? { type } : {}) }) };
}

async function reconcile(target: RunningExample, peers: string[]): Promise<ServiceAccountsResult> {
  const result = await reconcileServiceAccounts(target.service, peers, deps());
  for (const r of [...result.peers, ...result.removals]) if (r.reason) reasons.push(r.reason);
  for (const peers of Object.values(await store.all())) for (const c of Object.values(peers)) passwordsSeen.add(c.password);
  return result;
}

async function notesAccounts(): Promise<string[]> {
  const response = await fetch(`http://${notes.ip}:8080/service-api/accounts`);
  return ((await response.json()) as { accounts: string[] }).accounts;
}

async function commandAccounts(target: RunningExample, argv: string[]): Promise<string[]> {
  const { stdout, exitCode } = await target.exec(argv);
  expect(exitCode).toBe(0);
  return stdout.split('\n').filter((l) => l !== '');
}

const filesAccounts = () => commandAccounts(files, ['files-account', 'list']);

async function password(service: string, peer: string): Promise<string> {
  const creds = await store.get(service, peer);
  if (!creds) throw new Error(`no stored credentials of ${peer} on ${service}`);
  return creds.password;
}

beforeAll(async () => {
  env = await createAccountsTestEnv();
  [notes, files, calendar, email] = await Promise.all([
    startExampleService(env, 'notes', 20),
    startExampleService(env, 'files', 21),
    startExampleService(env, 'calendar', 22),
    startExampleService(env, 'email', 23),
  ]);
  stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-accounts-'));
  store = new CredentialsStore(path.join(stateDir, 'credentials.json'));
});

afterAll(async () => {
  await removeAccountsTestEnv(env);
  if (stateDir) await fs.rm(stateDir, { recursive: true, force: true });
});

test('provisions alice and bob on notes (http) and files (exec), then finds them in sync', async () => {
  const onNotes = await reconcile(notes, ['bob', 'alice']);
  const onFiles = await reconcile(files, ['alice', 'bob']);
  for (const result of [onNotes, onFiles]) {
    expect(result.peers).toEqual([
      { peer: 'alice', state: 'provisioned' },
      { peer: 'bob', state: 'provisioned' },
    ]);
    expect(result.removals).toEqual([]);
    expect(result.changed).toBe(true);
  }
  expect(await notesAccounts()).toEqual(['alice', 'bob']);
  expect(await filesAccounts()).toEqual(['alice', 'bob']);
  expect(await store.peersOf('notes')).toEqual(['alice', 'bob']);
  expect(await store.peersOf('files')).toEqual(['alice', 'bob']);
  expect(await password('notes', 'alice')).toMatch(/^[A-Za-z0-9_-]{22}$/);
  expect(await password('notes', 'alice')).not.toBe(await password('files', 'alice'));
  expect((await fs.stat(store.file)).mode & 0o777).toBe(0o600);

  const created = events.filter((e) => e.reason === 'AccountCreated').length;
  const again = await reconcile(notes, ['alice', 'bob']);
  expect(again).toEqual({ service: 'notes', peers: [{ peer: 'alice', state: 'provisioned' }, { peer: 'bob', state: 'provisioned' }], removals: [], changed: false });
  expect((await reconcile(files, ['alice', 'bob'])).changed).toBe(false);
  expect(events.filter((e) => e.reason === 'AccountCreated').length).toBe(created);
});

test('the stored password is the one the service checks (calendar: Radicale, Basic auth)', async () => {
  const result = await reconcile(calendar, ['alice']);
  expect(result.peers).toEqual([{ peer: 'alice', state: 'provisioned' }]);
  const url = `http://${calendar.ip}:5232/alice/`;
  const basic = (pw: string) => ({ authorization: `Basic ${Buffer.from(`alice:${pw}`).toString('base64')}`, depth: '0' });
  const good = await fetch(url, { method: 'PROPFIND', headers: basic(await password('calendar', 'alice')) });
  await good.arrayBuffer();
  expect(good.status).toBe(207);
  const bad = await fetch(url, { method: 'PROPFIND', headers: basic('not-the-password') });
  await bad.arrayBuffer();
  expect(bad.status).toBe(401);
});

test('email: provisions the mailbox in the configured domain; without a domain it fails before calling anything', async () => {
  const result = await reconcile(email, ['alice']);
  expect(result.peers).toEqual([{ peer: 'alice', state: 'provisioned' }]);
  expect(await commandAccounts(email, ['mail-account', 'list', EXAMPLE_DOMAIN])).toEqual(['alice']);

  // Aimed at a container that does not exist: any call would fail with "does not exist" instead.
  const noDomain = {
    ...email.service,
    name: 'email',
    config: {},
    manifest: { ...email.service.manifest, container_name: `${email.container}-absent` },
  };
  const failed = await reconcileServiceAccounts(noDomain, ['alice', 'bob'], deps());
  expect(failed.peers.map((p) => p.state)).toEqual(['failed', 'failed']);
  expect(failed.peers[0]?.reason).toMatch(/has no mail domain: set spec\.config\.domain/);
  expect(failed.peers[0]?.retryable).toBe(false);
  expect(failed.changed).toBe(false);
  expect(await store.peersOf('email')).toEqual(['alice']);
});

test('pic credentials alice: the filled templates of every service she has', async () => {
  const cellDir = path.join(stateDir, 'cell');
  await fs.cp(path.join(process.cwd(), 'examples', 'store'), path.join(cellDir, 'store'), { recursive: true });
  const write = async (file: string, text: string) => {
    await fs.mkdir(path.dirname(path.join(cellDir, file)), { recursive: true });
    await fs.writeFile(path.join(cellDir, file), text);
  };
  await write(
    'cell.yaml',
    `apiVersion: pic.ngo/v1alpha1\nkind: Cell\nmetadata: {name: demo}\nspec:\n  domain: ${EXAMPLE_DOMAIN}\n  store: {path: ./store}\n` +
      `  network: {name: cell-network, subnet: 172.20.0.0/16, servicePool: 172.20.0.20-172.20.0.254}\n  imageVerification: {mode: warn}\n  allowedImagePrefix: git.pic.ngo/roof/\n`,
  );
  for (const id of ['notes', 'files', 'calendar']) await write(`services/${id}.yaml`, `apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: ${id}}\nspec: {version: 1.0.0}\n`);
  await write('services/email.yaml', `apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: email}\nspec:\n  version: 2.0.0\n  config: {domain: mail.example.org}\n  publish: ["25/tcp"]\n`);
  await write('peers/alice.yaml', `apiVersion: pic.ngo/v1alpha1\nkind: PeerAccount\nmetadata: {name: alice}\nspec: {services: [notes, files, calendar, email]}\n`);

  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  const code = await credentialsCommand(['alice', '-o', 'json', '--cell', cellDir, '--state-dir', stateDir], io);
  expect(err).toEqual([]);
  expect(code).toBe(0);
  const parsed = JSON.parse(out.join('\n')) as { peer: string; services: Record<string, Record<string, string>> };
  expect(parsed.peer).toBe('alice');
  expect(Object.keys(parsed.services)).toEqual(['calendar', 'email', 'files', 'notes']);
  expect(parsed.services.notes).toEqual({ url: `https://notes.${EXAMPLE_DOMAIN}/`, username: 'alice', password: await password('notes', 'alice') });
  expect(parsed.services.files?.webdav_url).toBe(`https://webdav.${EXAMPLE_DOMAIN}/dav/alice/`);
  expect(parsed.services.files?.password).toBe(await password('files', 'alice'));
  expect(parsed.services.calendar?.caldav_url).toBe(`https://calendar.${EXAMPLE_DOMAIN}/alice/`);
  expect(parsed.services.email?.username).toBe('alice@mail.example.org');
  expect(parsed.services.email).toEqual({
    email: 'alice@mail.example.org',
    imap_host: `mail.${EXAMPLE_DOMAIN}`,
    imap_port: '993',
    smtp_host: `mail.${EXAMPLE_DOMAIN}`,
    smtp_port: '587',
    username: 'alice@mail.example.org',
    password: await password('email', 'alice'),
    autoconfig_url: `https://autoconfig.${EXAMPLE_DOMAIN}/mail/config-v1.1.xml`,
  });

  const text: string[] = [];
  expect(await credentialsCommand(['alice', '--cell', cellDir, '--state-dir', stateDir], { out: (l) => text.push(l), err: (l) => err.push(l) })).toBe(0);
  expect(text.join('\n')).toContain(`notes\n  url:       https://notes.${EXAMPLE_DOMAIN}/\n  username:  alice\n`);

  const none: string[] = [];
  expect(await credentialsCommand(['nobody', '--cell', cellDir, '--state-dir', stateDir], { out: () => undefined, err: (l) => none.push(l) })).toBe(1);
  expect(none.join('\n')).toMatch(/no credentials are stored for peer "nobody"/);
});

test('taking files out of bob\'s list removes his account there only', async () => {
  const result = await reconcile(files, ['alice']);
  expect(result.peers).toEqual([{ peer: 'alice', state: 'provisioned' }]);
  expect(result.removals).toEqual([{ peer: 'bob', state: 'removed' }]);
  expect(await filesAccounts()).toEqual(['alice']);
  expect(await store.get('files', 'bob')).toBeUndefined();
  expect(await notesAccounts()).toEqual(['alice', 'bob']);
  expect(await store.get('notes', 'bob')).toBeDefined();
});

test('an account created in the service by hand is left alone, and a peer of that name is reported, not adopted', async () => {
  const response = await fetch(`http://${notes.ip}:8080/service-api/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'mallory', password: 'chosen-by-hand' }),
  });
  expect(response.status).toBe(200);
  await response.arrayBuffer();

  const untouched = await reconcile(notes, ['alice', 'bob']);
  expect(untouched.changed).toBe(false);
  expect(untouched.removals).toEqual([]);
  expect(await notesAccounts()).toEqual(['alice', 'bob', 'mallory']);

  const conflict = await reconcile(notes, ['alice', 'bob', 'mallory']);
  const mallory = conflict.peers.find((p) => p.peer === 'mallory');
  expect(mallory?.state).toBe('failed');
  expect(mallory?.reason).toMatch(/account "mallory" exists in notes but pic has no password for it/);
  expect(await store.get('notes', 'mallory')).toBeUndefined();
  expect(await notesAccounts()).toEqual(['alice', 'bob', 'mallory']);
});

test('notes down: failed with the reason, then provisioned once it is back, without a duplicate', async () => {
  await notes.stop();
  try {
    const down = await reconcile(notes, ['alice', 'bob', 'carol']);
    expect(down.peers.map((p) => [p.peer, p.state, p.retryable])).toEqual([
      ['alice', 'failed', true],
      ['bob', 'failed', true],
      ['carol', 'failed', true],
    ]);
    expect(down.peers[2]?.reason).toMatch(/^notes: GET \/service-api\/accounts: (cannot reach|no answer from) http:\/\//);
    expect(down.changed).toBe(false);
    expect(await store.get('notes', 'carol')).toBeUndefined();
  } finally {
    await notes.start();
  }
  const back = await reconcile(notes, ['alice', 'bob', 'carol']);
  expect(back.peers).toEqual([
    { peer: 'alice', state: 'provisioned' },
    { peer: 'bob', state: 'provisioned' },
    { peer: 'carol', state: 'provisioned' },
  ]);
  expect(await notesAccounts()).toEqual(['alice', 'bob', 'carol', 'mallory']);
  expect((await reconcile(notes, ['alice', 'bob', 'carol'])).changed).toBe(false);
});

test('notes answering 500: the password is kept and used again once it recovers', async () => {
  await notes.failWrites(true);
  let kept: string;
  try {
    const failing = await reconcile(notes, ['alice', 'bob', 'carol', 'dave']);
    const dave = failing.peers.find((p) => p.peer === 'dave');
    expect(dave?.state).toBe('failed');
    expect(dave?.retryable).toBe(true);
    expect(dave?.reason).toMatch(/^notes: POST \/service-api\/accounts for "dave" answered 500 \(could not write the account store\)$/);
    // A 5xx may come after the account was written: pic keeps the password it sent.
    kept = await password('notes', 'dave');
  } finally {
    await notes.failWrites(false);
  }
  const recovered = await reconcile(notes, ['alice', 'bob', 'carol', 'dave']);
  expect(recovered.peers.find((p) => p.peer === 'dave')?.state).toBe('provisioned');
  expect(await password('notes', 'dave')).toBe(kept);
  expect(await notesAccounts()).toEqual(['alice', 'bob', 'carol', 'dave', 'mallory']);
});

test('files stopped: the exec manager fails with the reason, isolated to files', async () => {
  await files.stop();
  try {
    const down = await reconcile(files, ['alice', 'erin']);
    expect(down.peers.every((p) => p.state === 'failed' && p.retryable === true)).toBe(true);
    expect(down.peers[0]?.reason).toMatch(/^files: files-account list in cell-pt[0-9a-f]+-files: .*not running$/);
    // notes, reconciled on its own, is unaffected.
    expect((await reconcile(notes, ['alice', 'bob', 'carol', 'dave'])).peers.every((p) => p.state === 'provisioned')).toBe(true);
  } finally {
    await files.start();
  }
  expect((await reconcile(files, ['alice', 'erin'])).peers).toEqual([
    { peer: 'alice', state: 'provisioned' },
    { peer: 'erin', state: 'provisioned' },
  ]);
  expect(await filesAccounts()).toEqual(['alice', 'erin']);
});

test('deleting alice removes all her accounts and credentials, and nothing else', async () => {
  const onNotes = await reconcile(notes, ['bob', 'carol', 'dave']);
  const onFiles = await reconcile(files, ['erin']);
  const onCalendar = await reconcile(calendar, []);
  const onEmail = await reconcile(email, []);
  for (const r of [onNotes, onFiles, onCalendar, onEmail]) expect(r.removals).toEqual([{ peer: 'alice', state: 'removed' }]);
  expect(await notesAccounts()).toEqual(['bob', 'carol', 'dave', 'mallory']);
  expect(await filesAccounts()).toEqual(['erin']);
  expect(await commandAccounts(calendar, ['cal-account', 'list'])).toEqual([]);
  expect(await commandAccounts(email, ['mail-account', 'list', EXAMPLE_DOMAIN])).toEqual([]);
  expect(await store.servicesOf('alice')).toEqual([]);
  const file = JSON.parse(await fs.readFile(store.file, 'utf8')) as Record<string, unknown>;
  expect(Object.keys(file)).toEqual(['files', 'notes']);
  expect((await fs.stat(store.file)).mode & 0o777).toBe(0o600);
});

test('no password ever appeared in an event or a reason', async () => {
  expect(passwordsSeen.size).toBeGreaterThan(5);
  const seen = [...events.map((e) => `${e.reason} ${e.message}`), ...reasons].join('\n');
  for (const p of passwordsSeen) expect(seen).not.toContain(p);
  expect(events.some((e) => e.type === 'Warning')).toBe(true);
});
