/**
 * A file that cannot be read is not a deletion (issue 10, defect 1). A test cell runs the example
 * `notes` and `files` with a peer, alice, on both; then the admin breaks files in every way a
 * careless edit or a bad checkout can — a YAML typo, a duplicate key, an oversize file, an alias
 * bomb, an empty file, a broken catalog package, a broken cell.yaml, a broken peer file — and the
 * operator must hold: the containers keep running (same ids), the service keeps its address, its
 * route and its zone record, alice keeps her accounts, and the status says Stalled with why. Only
 * a deleted file uninstalls, and only while the cell itself is readable.
 *
 * The tests run in order and share the cell; each leaves every file valid again.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Operator } from '../../controllers/operator.js';
import type { DocumentStatus } from '../../state/status-types.js';
import { serviceInstallDocument, waitFor } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { runPic } from '../support/pic-cli.js';
import {
  commandAccounts,
  createExampleCell,
  httpAccounts,
  peerDocument,
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

function theCell(): ExampleCell {
  if (!cell) throw new Error('the test cell was not created');
  return cell;
}

const notesFile = () => path.join(theCell().cellDir, 'services', 'notes.yaml');
const filesFile = () => path.join(theCell().cellDir, 'services', 'files.yaml');
const aliceFile = () => path.join(theCell().cellDir, 'peers', 'alice.yaml');
const cellFile = () => path.join(theCell().cellDir, 'cell.yaml');

/** Name → id of every container of the cell. */
async function containerIds(): Promise<Map<string, string>> {
  const list = await docker.listContainers({ all: true, filters: { label: [`ngo.pic.cell=${theCell().name}`] } });
  return new Map(list.map((c) => [c.Names[0]!.replace(/^\//, ''), c.Id]));
}

async function ipOf(key: string): Promise<string | undefined> {
  const text = await fs.readFile(path.join(theCell().stateDir, 'allocations', 'ips.json'), 'utf8');
  return (JSON.parse(text) as { assignments: Record<string, string> }).assignments[key];
}

async function caddyfile(): Promise<string> {
  return fs.readFile(path.join(theCell().stateDir, 'caddy', 'Caddyfile'), 'utf8').catch(() => '');
}

function stalled(key: string, reason: string, messagePart?: string): Promise<DocumentStatus> {
  return waitFor(`${key} Stalled ${reason}${messagePart ? ` (${messagePart})` : ''}`, () =>
    statusWhere(theCell(), key, (s) => {
      const c = s.conditions.find((x) => x.type === 'Stalled');
      return s.phase === 'Stalled' && c?.reason === reason && (messagePart === undefined || c.message.includes(messagePart));
    }),
  );
}

function ready(key: string): Promise<DocumentStatus> {
  return waitFor(`${key} Ready`, () => statusWhere(theCell(), key, (s) => s.phase === 'Ready'), 100_000);
}

/** What a held service and peer must still have after a full pass: nothing of it is pruned. */
async function expectNothingPruned(before: Map<string, string>): Promise<void> {
  await operator!.resyncAndSettle();
  const after = await containerIds();
  for (const [name, id] of before) expect(after.get(name)).toBe(id);
  expect(await ipOf('ServiceInstall/notes')).toBe(notesIp);
  expect(await caddyfile()).toContain(`notes.${theCell().domain}`);
  expect(await httpAccounts(notesIp)).toContain('alice');
  expect(await commandAccounts(theCell().containerName('cell-files'), ['files-account', 'list'])).toContain('alice');
  const credentials = await readCredentials(theCell());
  expect(Object.keys(credentials.notes ?? {})).toContain('alice');
  expect(Object.keys(credentials.files ?? {})).toContain('alice');
}

beforeAll(async () => {
  await removeStaleExampleCells();
  cell = await createExampleCell(['notes', 'files']);
  operator = await startExampleOperator(cell);
  await cell.writeService('notes');
  await cell.writeService('files');
  await cell.writePeer('alice', ['notes', 'files']);
  const notes = await ready('ServiceInstall/notes');
  await ready('ServiceInstall/files');
  await ready('PeerAccount/alice');
  notesIp = notes.facts!.serviceIp!;
});

afterAll(async () => {
  await operator?.stop();
  await removeExampleCell(cell);
});

const ALIAS_BOMB = ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 9 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`)].join('\n');

describe('a broken file holds what it declared', () => {
  test.each([
    ['a YAML typo', 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: notes\nspec:\n  version: 1.0.0\n', 'ParseError'],
    ['a duplicate key', 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nkind: ServiceInstall\nmetadata: {name: notes}\nspec: {version: 1.0.0}\n', 'ParseError'],
    ['a file over the size limit', `# ${'x'.repeat(1024 * 1024 + 10)}\n`, 'ParseError'],
    ['an alias bomb', `${ALIAS_BOMB}\n`, 'ParseError'],
    ['an empty file', '', 'ParseError'],
    ['a schema error', 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: notes}\nspec: {version: 1.0.0, confgi: {}}\n', 'InvalidSpec'],
  ])('%s in services/notes.yaml keeps notes running, routed and with its accounts', async (_what, text, reason) => {
    const before = await containerIds();
    await fs.writeFile(notesFile(), text);
    const status = await stalled('ServiceInstall/notes', reason);
    expect(status.conditions.find((c) => c.type === 'Stalled')!.message).toMatch(/holding the last accepted version/);
    await expectNothingPruned(before);
    await fs.writeFile(notesFile(), serviceInstallDocument('notes'));
    await ready('ServiceInstall/notes');
    expect(await containerIds()).toEqual(before);
  });

  test('pic plan holds a broken file too: no removal is planned', async () => {
    await fs.writeFile(notesFile(), 'kind: ServiceInstall\nmetadata: {name: notes\n');
    await stalled('ServiceInstall/notes', 'ParseError');
    const plan = await runPic(['plan', '--cell', theCell().cellDir, '--state-dir', theCell().stateDir]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).not.toMatch(/remove container|release IP/);
    expect(plan.stderr).toContain('notes.yaml');
    await fs.writeFile(notesFile(), serviceInstallDocument('notes'));
    await ready('ServiceInstall/notes');
  });

  test('a broken peer file deprovisions nothing', async () => {
    const before = await containerIds();
    await fs.writeFile(aliceFile(), 'apiVersion: pic.ngo/v1alpha1\nkind: PeerAccount\nmetadata: {name: alice}\nspec: {services: [notes, files}\n');
    await stalled('PeerAccount/alice', 'ParseError');
    await expectNothingPruned(before);
    // A peer that names a service that is not installed is held too: notes and files keep alice.
    await fs.writeFile(aliceFile(), peerDocument('alice', ['notes', 'calendar']));
    await stalled('PeerAccount/alice', 'InvalidSpec', 'calendar');
    await expectNothingPruned(before);
    await fs.writeFile(aliceFile(), peerDocument('alice', ['notes', 'files']));
    await ready('PeerAccount/alice');
  });

  test('a broken catalog package leaves the service running from its admitted package, with a notice', async () => {
    const before = await containerIds();
    const manifest = path.join(theCell().storeDir, 'services', 'notes', 'manifest.json');
    const good = await fs.readFile(manifest, 'utf8');
    try {
      await fs.writeFile(manifest, good.replace(/"version": "1.0.0"/, '"version": "1.0.0",,'));
      // The catalog is read again on a resync (the watcher follows the cell folder only).
      await operator!.resyncAndSettle();
      const notes = await waitFor('ServiceInstall/notes Ready with a notice of the broken catalog package', () =>
        statusWhere(theCell(), 'ServiceInstall/notes', (s) => s.phase === 'Ready' && (s.facts?.notices ?? []).some((n) => n.includes('manifest.json') && n.includes('keeps running'))),
      );
      expect(notes.phase).toBe('Ready');
      await expectNothingPruned(before);
    } finally {
      await fs.writeFile(manifest, good);
    }
    await operator!.resyncAndSettle();
    await ready('ServiceInstall/notes');
    expect(await containerIds()).toEqual(before);
  });

  test('the operator restarted while a file is broken still holds it', async () => {
    const before = await containerIds();
    await operator!.stop();
    await fs.writeFile(notesFile(), 'kind: ServiceInstall\nmetadata: [\n');
    operator = await startExampleOperator(theCell());
    await stalled('ServiceInstall/notes', 'ParseError');
    await expectNothingPruned(before);
    await fs.writeFile(notesFile(), serviceInstallDocument('notes'));
    await ready('ServiceInstall/notes');
  });

  test('a checkout that replaces every file at once, one of them broken, holds only that one', async () => {
    const before = await containerIds();
    // Git writes each file anew (a new inode) one after another, then the watcher sees them together.
    const writes: [string, string][] = [
      [notesFile(), serviceInstallDocument('notes')],
      [filesFile(), 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: files}\nspec:\n  version: 1.0.0\n  config: {\n'],
      [aliceFile(), peerDocument('alice', ['notes', 'files'])],
      [cellFile(), await fs.readFile(cellFile(), 'utf8')],
    ];
    for (const [file, text] of writes) {
      await fs.writeFile(`${file}.new`, text);
      await fs.rename(`${file}.new`, file);
    }
    await stalled('ServiceInstall/files', 'ParseError');
    await expectNothingPruned(before);
    expect((await theCell().status.get('ServiceInstall/notes'))?.phase).toBe('Ready');
    await fs.writeFile(filesFile(), serviceInstallDocument('files'));
    await ready('ServiceInstall/files');
    expect(await containerIds()).toEqual(before);
  });

  test('a broken cell.yaml holds the whole cell, even a deletion, until it is valid', async () => {
    const before = await containerIds();
    const good = await fs.readFile(cellFile(), 'utf8');
    await fs.writeFile(cellFile(), good.replace('kind: Cell', 'kind: Cell\nkind: Cell'));
    await waitFor('Cell Stalled', async () => {
      const keys = await theCell().status.keys();
      const key = keys.find((k) => k.kind === 'Cell')?.key;
      return key ? statusWhere(theCell(), key, (s) => s.phase === 'Stalled') : undefined;
    });
    await stalled('ServiceInstall/notes', 'CellInvalid');
    // Deleting a file while the cell is held uninstalls nothing yet.
    await fs.rm(filesFile());
    await operator!.resyncAndSettle();
    expect(await containerIds()).toEqual(before);
    expect(await httpAccounts(notesIp)).toContain('alice');
    await fs.writeFile(cellFile(), good);
    await ready('ServiceInstall/notes');
    // Now the deletion counts: files goes, notes stays as it was.
    await waitFor('files removed', async () => ((await containerIds()).has(theCell().containerName('cell-files')) ? undefined : true));
    // Its status goes once every container of it (files and webdav) is removed.
    await waitFor('files uninstalled', async () => ((await theCell().status.get('ServiceInstall/files')) ? undefined : true));
    const after = await containerIds();
    expect(after.get(theCell().containerName('cell-notes'))).toBe(before.get(theCell().containerName('cell-notes')));
    expect((await theCell().status.keys()).some((k) => k.kind === 'Cell')).toBe(false);
  });

  test('a state directory the operator cannot read is a Stalled cell, not a dead operator', async () => {
    const before = await containerIds();
    await operator!.stop();
    const applied = path.join(theCell().stateDir, 'applied.json');
    await fs.writeFile(applied, '{"version": 1, "documents": [');
    operator = await startExampleOperator(theCell());
    await operator.resyncAndSettle();
    const status = await waitFor('Cell LoadFailed', async () => {
      const key = (await theCell().status.keys()).find((k) => k.kind === 'Cell')?.key;
      return key ? statusWhere(theCell(), key, (s) => s.conditions.some((c) => c.type === 'Stalled' && c.reason === 'LoadFailed')) : undefined;
    });
    expect(status.conditions.find((c) => c.type === 'Stalled')!.message).toContain('applied.json');
    expect(await containerIds()).toEqual(before);
    // Moved aside, the operator reads the folder again and accepts what is there.
    await fs.rename(applied, `${applied}.bad`);
    await operator.resyncAndSettle();
    await ready('ServiceInstall/notes');
    await waitFor('Cell status gone', async () => ((await theCell().status.keys()).some((k) => k.kind === 'Cell') ? undefined : true));
    expect(await containerIds()).toEqual(before);
  });
});
