/**
 * holdBrokenDocuments: which documents a snapshot holds, at which version, and which it lets go.
 * Each row starts from a copy of the example cell accepted once, changes its files as an admin
 * (or a checkout) might, loads it again and compares what is held and what the snapshot converges.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AppliedStore } from '../../state/applied-store.js';
import { loadCell } from '../../state/cell.js';
import { documentKey } from '../../state/document-keys.js';
import { holdBrokenDocuments, type AppliedRecord } from '../../state/hold.js';

const EXAMPLE_CELL = path.join(process.cwd(), 'examples', 'cell');
const EXAMPLE_STORE = path.join(process.cwd(), 'examples', 'store');

let root: string;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-hold-'));
});

afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function copyCell(name: string): Promise<string> {
  const dir = path.join(root, name, 'cell');
  await fs.cp(EXAMPLE_CELL, dir, { recursive: true });
  // The example Connection, as an admin adds it (the demo cell runs none: it has no far end).
  await fs.mkdir(path.join(dir, 'connections'), { recursive: true });
  await fs.cp(path.join(EXAMPLE_CELL, '..', 'connections', 'vpn-home.yaml'), path.join(dir, 'connections', 'vpn-home.yaml'));
  await fs.cp(EXAMPLE_STORE, path.join(root, name, 'store'), { recursive: true });
  return dir;
}

interface Row {
  what: string;
  change: (dir: string) => Promise<void>;
  /** key → reason, for every held key. */
  held: Record<string, string>;
  /** Held keys that keep their accepted version in the snapshot. */
  kept?: string[];
  frozen?: boolean;
  /** Keys no longer in the snapshot nor in the records. */
  gone?: string[];
}

const write = (relative: string, text: string) => async (dir: string) => fs.writeFile(path.join(dir, relative), text);

/** Every document of the example cell, held because the cell itself is. */
const EVERYTHING_FROZEN = Object.fromEntries(
  ['ServiceInstall/notes', 'ServiceInstall/files', 'ServiceInstall/calendar', 'ServiceInstall/email', 'ServiceInstall/homepage', 'PeerAccount/alice', 'PeerAccount/bob', 'Connection/vpn-home'].map((k) => [k, 'CellInvalid']),
);

const ROWS: Row[] = [
  { what: 'nothing changed', change: async () => undefined, held: {} },
  {
    what: 'a YAML typo holds the service at its accepted version',
    change: write('services/notes.yaml', 'kind: ServiceInstall\nmetadata: {name: notes\n'),
    held: { 'ServiceInstall/notes': 'ParseError' },
    kept: ['ServiceInstall/notes'],
  },
  {
    what: 'an empty file holds what it declared',
    change: write('services/notes.yaml', '# nothing here any more\n'),
    held: { 'ServiceInstall/notes': 'ParseError' },
    kept: ['ServiceInstall/notes'],
  },
  {
    what: 'a deleted file is an uninstall',
    change: async (dir) => fs.rm(path.join(dir, 'services', 'notes.yaml')),
    // alice and bob list notes: held at what they were, so their other accounts stay.
    held: { 'PeerAccount/alice': 'InvalidSpec', 'PeerAccount/bob': 'InvalidSpec' },
    kept: ['PeerAccount/alice', 'PeerAccount/bob'],
    gone: ['ServiceInstall/notes'],
  },
  {
    what: 'a document taken out of a readable file is gone',
    change: write('services/notes.yaml', '# notes was uninstalled\nfoo: bar\n'),
    held: { 'PeerAccount/alice': 'InvalidSpec', 'PeerAccount/bob': 'InvalidSpec' },
    kept: ['PeerAccount/alice', 'PeerAccount/bob'],
    gone: ['ServiceInstall/notes'],
  },
  {
    what: 'a schema error holds the document',
    change: write('services/files.yaml', 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: files}\nspec: {version: 1.0.0, confgi: {}}\n'),
    held: { 'ServiceInstall/files': 'InvalidSpec' },
    kept: ['ServiceInstall/files'],
  },
  {
    what: 'a config the manifest refuses holds the service',
    change: write('services/notes.yaml', 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: notes}\nspec: {version: 1.0.0, config: {port: nope, language: en}}\n'),
    held: { 'ServiceInstall/notes': 'InvalidSpec' },
    kept: ['ServiceInstall/notes'],
  },
  {
    what: 'a broken catalog package holds its service at the accepted package',
    change: async (dir) => fs.writeFile(path.join(dir, '..', 'store', 'services', 'notes', 'manifest.json'), '{"id": "notes",,}'),
    held: { 'ServiceInstall/notes': 'InvalidSpec' },
    kept: ['ServiceInstall/notes'],
  },
  {
    what: 'a broken peer file holds the peer, so no account is deprovisioned',
    change: write('peers/alice.yaml', 'kind: PeerAccount\nmetadata: {name: alice}\nspec: {services: [notes}\n'),
    held: { 'PeerAccount/alice': 'ParseError' },
    kept: ['PeerAccount/alice'],
  },
  {
    what: 'a peer naming a service that is not installed is held',
    change: write('peers/alice.yaml', 'apiVersion: pic.ngo/v1alpha1\nkind: PeerAccount\nmetadata: {name: alice}\nspec: {services: [notes, nothere]}\n'),
    held: { 'PeerAccount/alice': 'InvalidSpec' },
    kept: ['PeerAccount/alice'],
  },
  {
    what: 'a broken connection file holds the connection',
    change: write('connections/vpn-home.yaml', 'kind: Connection\n  bad indentation: [\n'),
    held: { 'Connection/vpn-home': 'ParseError' },
    kept: ['Connection/vpn-home'],
  },
  {
    what: 'a document moved to another file is not held',
    change: async (dir) => {
      await fs.rename(path.join(dir, 'services', 'notes.yaml'), path.join(dir, 'services', 'my-notes.yaml'));
    },
    held: {},
  },
  {
    what: 'a new document that was never accepted is held with nothing kept',
    change: write('services/webmail.yaml', 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: webmail}\nspec: {version: 1.0.0, confgi: {}}\n'),
    held: { 'ServiceInstall/webmail': 'InvalidSpec' },
  },
  {
    what: 'a broken cell.yaml freezes the whole cell',
    change: write('cell.yaml', 'kind: Cell\nkind: Cell\n'),
    held: EVERYTHING_FROZEN,
    frozen: true,
  },
  {
    what: 'a missing cell.yaml freezes the whole cell, deletions included',
    change: async (dir) => {
      await fs.rm(path.join(dir, 'cell.yaml'));
      await fs.rm(path.join(dir, 'services', 'notes.yaml'));
    },
    held: EVERYTHING_FROZEN,
    frozen: true,
  },
];

describe('holdBrokenDocuments', () => {
  test.each(ROWS.map((r, i) => [r.what, r, i] as const))('%s', async (_what, row, i) => {
    const dir = await copyCell(`row${i}`);
    const first = holdBrokenDocuments(await loadCell(dir), new Map());
    expect(first.cell.held.size).toBe(0);
    expect(first.cell.frozen).toBe(false);
    const accepted = first.records;
    expect([...accepted.keys()]).toEqual(expect.arrayContaining(['ServiceInstall/notes', 'PeerAccount/alice', 'Connection/vpn-home']));

    await row.change(dir);
    const { cell, records } = holdBrokenDocuments(await loadCell(dir), accepted);
    expect(Object.fromEntries([...cell.held.values()].map((h) => [h.key, h.reason]))).toEqual(row.held);
    expect(cell.frozen).toBe(row.frozen ?? false);
    for (const h of cell.held.values()) expect(h.problems.length).toBeGreaterThan(0);

    const inSnapshot = new Set([...cell.docs.services, ...cell.docs.peers, ...cell.docs.connections].map((s) => documentKey(s.doc)));
    for (const key of row.kept ?? []) {
      expect(inSnapshot.has(key)).toBe(true);
      expect(records.get(key)).toBe(accepted.get(key));
      // Held documents carry no problem into the snapshot's checks: what they converge to is valid.
      expect(cell.checked.byDocument.get(key) ?? []).toEqual([]);
      const record = accepted.get(key)!;
      const sourced = [...cell.docs.services, ...cell.docs.peers, ...cell.docs.connections].find((s) => documentKey(s.doc) === key)!;
      expect(sourced.doc).toEqual(record.doc);
      if (key.startsWith('ServiceInstall/')) {
        const name = key.slice('ServiceInstall/'.length);
        expect(cell.catalog?.services.get(name)?.manifest).toEqual(record.package!.manifest);
        expect(cell.checked.configs.get(name)).toEqual(record.config);
      }
    }
    for (const key of row.gone ?? []) {
      expect(inSnapshot.has(key)).toBe(false);
      expect(records.has(key)).toBe(false);
    }
    if (!row.frozen) {
      // Everything valid now is recorded anew; nothing held loses its record.
      for (const key of inSnapshot) expect(records.has(key)).toBe(true);
    } else {
      expect(records).toEqual(accepted);
    }
  });

  test('a record follows the document to its new file', async () => {
    const dir = await copyCell('moved');
    const first = holdBrokenDocuments(await loadCell(dir), new Map());
    await fs.rename(path.join(dir, 'services', 'notes.yaml'), path.join(dir, 'services', 'my-notes.yaml'));
    const second = holdBrokenDocuments(await loadCell(dir), first.records);
    expect(second.records.get('ServiceInstall/notes')?.file).toBe(path.join(dir, 'services', 'my-notes.yaml'));
    // Breaking the new file now holds notes; breaking the old path (gone) would not.
    await fs.writeFile(path.join(dir, 'services', 'my-notes.yaml'), 'kind: [\n');
    const third = holdBrokenDocuments(await loadCell(dir), second.records);
    expect(third.cell.held.get('ServiceInstall/notes')?.reason).toBe('ParseError');
  });

  test('one broken document of a multi-document file holds only what that file declared and is gone', async () => {
    const dir = await copyCell('multi');
    const peers = path.join(dir, 'peers');
    const alice = await fs.readFile(path.join(peers, 'alice.yaml'), 'utf8');
    const bob = await fs.readFile(path.join(peers, 'bob.yaml'), 'utf8');
    await fs.rm(path.join(peers, 'bob.yaml'));
    await fs.writeFile(path.join(peers, 'alice.yaml'), `${alice}\n---\n${bob}`);
    const first = holdBrokenDocuments(await loadCell(dir), new Map());
    expect(first.records.get('PeerAccount/bob')?.file).toBe(path.join(peers, 'alice.yaml'));
    await fs.writeFile(path.join(peers, 'alice.yaml'), `${alice}\n---\nkind: PeerAccount\nmetadata: {name: bob\n`);
    const second = holdBrokenDocuments(await loadCell(dir), first.records);
    expect(second.cell.held.get('PeerAccount/bob')?.reason).toBe('ParseError');
    expect(second.cell.held.has('PeerAccount/alice')).toBe(false);
    expect(second.cell.docs.peers.map((p) => p.doc.metadata.name).sort()).toEqual(['alice', 'bob']);
  });
});

describe('AppliedStore', () => {
  test('keeps the records across processes and writes only when they change', async () => {
    const dir = await copyCell('store');
    const file = path.join(root, 'store', 'state', 'applied.json');
    const { records } = holdBrokenDocuments(await loadCell(dir), new Map());
    const store = new AppliedStore(file);
    expect((await store.load()).size).toBe(0);
    expect(await store.save(records)).toBe(true);
    const stat = await fs.stat(file);
    expect(stat.mode & 0o777).toBe(0o600);
    expect(await store.save(new Map(records))).toBe(false);
    const again = new AppliedStore(file);
    const loaded = await again.load();
    expect([...loaded.keys()].sort()).toEqual([...records.keys()].sort());
    expect(loaded.get('ServiceInstall/notes') as AppliedRecord).toEqual(JSON.parse(JSON.stringify(records.get('ServiceInstall/notes'))));
    expect(await again.save(records)).toBe(false);
  });

  test('a file of another shape is refused, not overwritten', async () => {
    const file = path.join(root, 'odd-applied.json');
    await fs.writeFile(file, '{"documents": 3}');
    await expect(new AppliedStore(file).load()).rejects.toThrow(/not an applied-documents file/);
    expect(await fs.readFile(file, 'utf8')).toBe('{"documents": 3}');
  });
});
