/**
 * Peer accounts end to end through the operator (issue 5): a test cell runs the example `notes`
 * (accounts over its HTTP API) and `files` (accounts through `docker exec files-account`) from
 * their real images, and the operator watches the cell folder. PeerAccount documents dropped in
 * peers/ become accounts inside the services, their passwords land in credentials.json (0600),
 * `pic credentials` hands them out, and removals, a failing service, an account made by hand and
 * an operator killed mid-provision all converge as the admin would expect.
 *
 * The tests run in order and share the cell; each states what it leaves behind.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Operator } from '../../controllers/operator.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { waitFor } from '../support/cell.js';
import { PIC, runPic, type PicResult } from '../support/pic-cli.js';
import {
  commandAccounts,
  containerIp,
  createExampleCell,
  dockerExec,
  httpAccounts,
  readCredentials,
  removeExampleCell,
  removeStaleExampleCells,
  startExampleOperator,
  statusWhere,
  type ExampleCell,
} from '../support/example-cell.js';


let cell: ExampleCell | undefined;
let operator: Operator | undefined;
let notesIp: string;
/** Every password pic stored during this file: none may ever show in a status or an event. */
const passwordsSeen = new Set<string>();

function theCell(): ExampleCell {
  if (!cell) throw new Error('the test cell was not created');
  return cell;
}

const notesContainer = () => theCell().containerName('cell-notes');
const filesContainer = () => theCell().containerName('cell-files');
const notesAccounts = () => httpAccounts(notesIp);
const filesAccounts = () => commandAccounts(filesContainer(), ['files-account', 'list']);

async function credentials() {
  const all = await readCredentials(theCell());
  for (const peers of Object.values(all)) for (const c of Object.values(peers)) passwordsSeen.add(c.password);
  return all;
}

function peerKey(peer: string): string {
  return `PeerAccount/${peer}`;
}

/** The PeerAccount once it is Ready with `message` (e.g. "provisioned on files, notes"). */
function peerReady(peer: string, message: string): Promise<DocumentStatus> {
  return waitFor(`${peerKey(peer)} Ready (${message})`, () =>
    statusWhere(theCell(), peerKey(peer), (s) => s.phase === 'Ready' && s.conditions.find((c) => c.type === 'Ready')?.message === message),
  );
}

function servicesFact(s: DocumentStatus): Record<string, { state: string; reason?: string }> {
  return (s.facts?.services ?? {}) as Record<string, { state: string; reason?: string }>;
}

/** `pic credentials ...` as a separate process, with the cell's state directory in PIC_STATE_DIR. */
function pic(...args: string[]): Promise<PicResult> {
  return runPic(args, { PIC_STATE_DIR: theCell().stateDir });
}

/**
 * Basic auth against cell-webdav, which checks the files accounts: a file in the user's folder
 * (written here as root) is served only with the user's password.
 */
async function webdavStatus(user: string, password: string): Promise<number> {
  const folder = `/data/files/${user}`;
  const put = await dockerExec(filesContainer(), ['sh', '-c', 'test -f "$0/hello.txt" || echo hello > "$0/hello.txt"', folder], { user: '0' });
  if (put.exitCode !== 0) throw new Error(`cannot write ${folder}/hello.txt: ${put.stderr}`);
  const ip = await containerIp(theCell(), theCell().containerName('cell-webdav'));
  const response = await fetch(`http://${ip}:8080/dav/${encodeURIComponent(user)}/hello.txt`, {
    headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
    signal: AbortSignal.timeout(5_000),
  });
  await response.arrayBuffer();
  return response.status;
}

/** Wait until cell-webdav (Apache, reading the account file at every request) serves the user's file with this password. */
async function webdavAccepts(user: string, password: string): Promise<void> {
  await waitFor(`webdav serving ${user}'s file with the stored password`, async () => ((await webdavStatus(user, password)) === 200 ? true : undefined), 30_000);
}

/** Make notes' account store read-only (every create answers 500), or writable again. */
async function notesFailsWrites(on: boolean): Promise<void> {
  const result = await dockerExec(notesContainer(), ['chmod', on ? '0555' : '0755', '/data/notes'], { user: '0' });
  if (result.exitCode !== 0) throw new Error(`chmod of /data/notes in ${notesContainer()} failed: ${result.stderr}`);
}

beforeAll(async () => {
  await removeStaleExampleCells();
  cell = await createExampleCell(['notes', 'files']);
  operator = await startExampleOperator(cell);
  await cell.writeService('notes');
  await cell.writeService('files');
  // The example health checks run every 30 s: Ready comes after the first one passes.
  const [notes] = await Promise.all(
    ['notes', 'files'].map((id) => waitFor(`ServiceInstall/${id} Ready`, () => statusWhere(theCell(), `ServiceInstall/${id}`, (s) => s.phase === 'Ready'), 100_000)),
  );
  notesIp = notes!.facts!.serviceIp!;
}, 115_000);

afterAll(async () => {
  await operator?.stop();
  await removeExampleCell(cell);
});

describe('peer accounts through the operator', () => {
  test('alice and bob (notes, files) become Ready with real accounts in both services', async () => {
    const c = theCell();
    await c.writePeer('alice', ['notes', 'files']);
    await c.writePeer('bob', ['notes', 'files']);
    const [alice, bob] = await Promise.all([peerReady('alice', 'provisioned on files, notes'), peerReady('bob', 'provisioned on files, notes')]);
    for (const s of [alice, bob]) {
      expect(s.conditions.find((x) => x.type === 'Ready')?.reason).toBe('Provisioned');
      expect(servicesFact(s)).toEqual({ files: { state: 'provisioned' }, notes: { state: 'provisioned' } });
    }

    expect(await notesAccounts()).toEqual(['alice', 'bob']);
    expect(await filesAccounts()).toEqual(['alice', 'bob']);

    expect((await fs.stat(c.credentialsFile)).mode & 0o777).toBe(0o600);
    const creds = await credentials();
    expect(Object.keys(creds)).toEqual(['files', 'notes']);
    for (const service of ['files', 'notes']) {
      expect(Object.keys(creds[service]!)).toEqual(['alice', 'bob']);
      for (const peer of ['alice', 'bob']) expect(creds[service]![peer]!.password).toMatch(/^[A-Za-z0-9_-]{22}$/);
    }
    expect(creds.notes!.alice!.password).not.toBe(creds.files!.alice!.password);

    // The password pic keeps is the one files checks (cell-webdav serves the same accounts).
    await webdavAccepts('alice', creds.files!.alice!.password);
    expect(await webdavStatus('alice', 'not-her-password')).toBe(401);
  });

  test('pic credentials alice -o json prints the filled templates of both services', async () => {
    const c = theCell();
    const creds = await credentials();
    const r = await pic('credentials', 'alice', '--cell', c.cellDir, '-o', 'json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      peer: 'alice',
      services: {
        files: {
          url: `https://files.${c.domain}/alice/`,
          webdav_url: `https://webdav.${c.domain}/dav/alice/`,
          username: 'alice',
          password: creds.files!.alice!.password,
        },
        notes: { url: `https://notes.${c.domain}/`, username: 'alice', password: creds.notes!.alice!.password },
      },
    });
  });

  test('taking files out of bob\'s list removes his files account only', async () => {
    const c = theCell();
    const before = await credentials();
    await c.writePeer('bob', ['notes']);
    const bob = await peerReady('bob', 'provisioned on notes');
    expect(servicesFact(bob)).toEqual({ notes: { state: 'provisioned' } });
    await waitFor('bob gone from files', async () => ((await filesAccounts()).includes('bob') ? undefined : true));

    expect(await filesAccounts()).toEqual(['alice']);
    expect(await notesAccounts()).toEqual(['alice', 'bob']);
    const after = await credentials();
    expect(Object.keys(after.files!)).toEqual(['alice']);
    expect(after.notes).toEqual(before.notes);
    expect(after.files!.alice).toEqual(before.files!.alice);
    expect((await statusWhere(c, peerKey('alice'), (s) => s.phase === 'Ready'))?.conditions.find((x) => x.type === 'Ready')?.message).toBe('provisioned on files, notes');
  });

  test('deleting alice\'s document removes all her accounts and her credentials', async () => {
    const c = theCell();
    await c.removePeer('alice');
    await waitFor('alice gone from notes and files', async () => {
      const [notes, files] = await Promise.all([notesAccounts(), filesAccounts()]);
      return !notes.includes('alice') && !files.includes('alice') ? true : undefined;
    });
    await waitFor('alice forgotten', async () => {
      const creds = await credentials();
      return Object.values(creds).some((peers) => 'alice' in peers) ? undefined : true;
    });
    await waitFor('alice\'s status removed', async () => ((await c.status.get(peerKey('alice'))) ? undefined : true));

    expect(await notesAccounts()).toEqual(['bob']);
    expect(await filesAccounts()).toEqual([]);
    expect(await credentials()).toEqual({ notes: { bob: expect.objectContaining({ password: expect.any(String) }) } });
    const r = await pic('credentials', 'alice', '--cell', c.cellDir, '-o', 'json');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no credentials are stored for peer "alice"/);
    expect((await statusWhere(c, peerKey('bob'), (s) => s.phase === 'Ready'))?.conditions.find((x) => x.type === 'Ready')?.message).toBe('provisioned on notes');
  });

  test('notes answering 500: carol is failed there with the reason, then provisioned by the retry alone, once', async () => {
    const c = theCell();
    await notesFailsWrites(true);
    let kept: string;
    try {
      await c.writePeer('carol', ['notes', 'files']);
      const failed = await waitFor('carol failed on notes', () =>
        statusWhere(c, peerKey('carol'), (s) => servicesFact(s).notes?.state === 'failed' && servicesFact(s).files?.state === 'provisioned'),
      );
      expect(failed.phase).toBe('Reconciling');
      const reconciling = failed.conditions.find((x) => x.type === 'Reconciling');
      expect(reconciling?.reason).toBe('AccountsFailed');
      expect(servicesFact(failed).notes?.reason).toBe('notes: POST /service-api/accounts for "carol" answered 500 (could not write the account store)');
      expect(reconciling?.message).toContain('notes: failed (notes: POST /service-api/accounts for "carol" answered 500');
      expect(failed.conditions.find((x) => x.type === 'Ready')?.status).toBe('False');
      // Only notes is held up: carol has her files account, bob keeps his notes one.
      expect(await filesAccounts()).toEqual(['carol']);
      expect(await notesAccounts()).toEqual(['bob']);
      expect((await statusWhere(c, peerKey('bob'), (s) => s.phase === 'Ready'))).toBeDefined();
      // A 5xx may come after the account was written, so pic keeps the password it sent.
      kept = (await credentials()).notes!.carol!.password;
    } finally {
      await notesFailsWrites(false);
    }
    // Nothing else changes: the operator's back-off retry alone provisions carol.
    const ready = await peerReady('carol', 'provisioned on files, notes');
    expect(servicesFact(ready)).toEqual({ files: { state: 'provisioned' }, notes: { state: 'provisioned' } });
    expect(await notesAccounts()).toEqual(['bob', 'carol']);
    expect((await credentials()).notes!.carol!.password).toBe(kept);
  });

  test('an account created in notes by hand is left alone across reconciles', async () => {
    const c = theCell();
    const response = await fetch(`http://${notesIp}:8080/service-api/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'mallory', password: 'chosen-by-hand' }),
    });
    await response.arrayBuffer();
    expect(response.status).toBe(200);

    await operator!.resyncAndSettle();
    await c.writePeer('dave', ['notes']);
    await peerReady('dave', 'provisioned on notes');
    await operator!.resyncAndSettle();

    expect(await notesAccounts()).toEqual(['bob', 'carol', 'dave', 'mallory']);
    const creds = await credentials();
    expect(Object.keys(creds.notes!)).toEqual(['bob', 'carol', 'dave']);
    const events = (await fs.readFile(path.join(c.stateDir, 'events.jsonl'), 'utf8')).split('\n').filter((l) => l !== '');
    expect(events.filter((l) => l.includes('mallory'))).toEqual([]);
  });

  test('an operator killed mid-provision leaves a parseable 0600 credentials file, and a new one converges without duplicates', async () => {
    const c = theCell();
    await operator!.stop();
    operator = undefined;
    const peers = Array.from({ length: 24 }, (_, i) => `p${String(i).padStart(2, '0')}`);
    const child = spawn(PIC, ['run', '--cell', c.cellDir, '--log-format', 'json'], { env: { ...process.env, PIC_STATE_DIR: c.stateDir }, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    try {
      for (const p of peers) await c.writePeer(p, ['notes', 'files']);
      // Kill as soon as the first new credentials are stored: the rest are then still to come.
      await waitFor('the first new credentials', async () => {
        const creds = await credentials();
        return peers.some((p) => creds.notes?.[p] || creds.files?.[p]) ? true : undefined;
      });
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    expect((await fs.stat(c.credentialsFile)).mode & 0o777).toBe(0o600);
    await credentials(); // parses

    operator = await startExampleOperator(c);
    await Promise.all(peers.map((p) => peerReady(p, 'provisioned on files, notes')));
    const creds = await credentials();
    const notes = await notesAccounts();
    const files = await filesAccounts();
    expect(notes).toEqual([...new Set(notes)]);
    expect(files).toEqual([...new Set(files)]);
    expect(notes).toEqual([...Object.keys(creds.notes!), 'mallory'].sort());
    expect(files).toEqual(Object.keys(creds.files!).sort());
    expect(files).toEqual(['carol', ...peers]);
    // Every files account, wherever the kill fell, has the password pic holds.
    for (const p of peers) await webdavAccepts(p, creds.files![p]!.password);
  }, 240_000);

  test('pic run --once beside a converged cell keeps each peer Ready from the same moment', async () => {
    const c = theCell();
    await operator!.stop();
    operator = undefined;
    // p00 has accounts in two services: the first to report must not make it pending for the other.
    const before = await statusWhere(c, peerKey('p00'), (s) => s.phase === 'Ready');
    const since = before!.conditions.find((x) => x.type === 'Ready')!.lastTransitionTime;
    const run = await pic('run', '--once', '--cell', c.cellDir);
    expect(run.code).toBe(0);
    const after = await statusWhere(c, peerKey('p00'), () => true);
    expect(after!.phase).toBe('Ready');
    expect(after!.conditions.find((x) => x.type === 'Ready')!.lastTransitionTime).toBe(since);
    operator = await startExampleOperator(c);
  }, 120_000);

  test('no password appears in a status, an event or the operator\'s files other than credentials.json', async () => {
    const c = theCell();
    expect(passwordsSeen.size).toBeGreaterThan(20);
    const texts: string[] = [];
    const visit = async (dir: string): Promise<void> => {
      for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) await visit(p);
        else if (p !== c.credentialsFile && entry.isFile()) texts.push(await fs.readFile(p, 'utf8'));
      }
    };
    await visit(c.stateDir);
    const all = texts.join('\n');
    expect(all).toContain('AccountCreated');
    for (const p of passwordsSeen) expect(all).not.toContain(p);
  });
});
