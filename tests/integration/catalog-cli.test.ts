/**
 * `pic catalog list|show` as an admin runs them, through bin/pic, against a copy of the examples
 * (examples/store is the catalog, examples/cell the cell that names it). Each test edits its own
 * copy: a template that publishes a port, the install's consent to it, a hostile description, a
 * broken package, an install.sh.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_MANIFEST_POLICY } from '../../crds/validate-manifest.js';
import { loadCatalog } from '../../state/catalog.js';
import { PackageStore } from '../../state/packages.js';
import { runPic } from '../support/pic-cli.js';

let root: string;
let copies = 0;

interface Copy {
  store: string;
  cell: string;
  state: string;
}

/** A fresh copy of examples/store and examples/cell (no recorded state directory) and an empty state directory. */
async function copyExamples(): Promise<Copy> {
  const dir = path.join(root, `copy-${++copies}`);
  const copy = { store: path.join(dir, 'store'), cell: path.join(dir, 'cell'), state: path.join(dir, 'state') };
  await fs.cp(path.join(process.cwd(), 'examples', 'store'), copy.store, { recursive: true });
  await fs.cp(path.join(process.cwd(), 'examples', 'cell'), copy.cell, { recursive: true });
  await fs.rm(path.join(copy.cell, '.pic'), { recursive: true, force: true });
  await fs.mkdir(copy.state, { mode: 0o700 });
  return copy;
}

/** bin/pic with no state directory from the environment: only what the test names counts. */
const pic = (args: string[]) => runPic(args, { PIC_STATE_DIR: '' });

async function editFile(file: string, edit: (text: string) => string): Promise<void> {
  const before = await fs.readFile(file, 'utf8');
  const after = edit(before);
  if (after === before) throw new Error(`the edit of ${file} changed nothing`);
  await fs.writeFile(file, after);
}

/** The notes template publishing host port 2525 on the container's 8080. */
const publishPort = (copy: Copy) => editFile(path.join(copy.store, 'services', 'notes', 'compose-template.yml'), (t) => t.replace('    restart: unless-stopped\n', '    restart: unless-stopped\n    ports: ["2525:8080"]\n'));

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-catalog-cli-'));
});

afterAll(async () => {
  if (root) await fs.rm(root, { recursive: true, force: true });
});

describe('pic catalog list', () => {
  test('a table of the cell\'s catalog: every example installed, nothing admitted without a state directory', async () => {
    const copy = await copyExamples();
    const r = await pic(['catalog', 'list', '--cell', copy.cell]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID +NAME +CATALOG VERSION +INSTALLED +ADMITTED +UPDATE +PROBLEM$/);
    expect(lines.slice(1).map((l) => l.split(/ {2,}/))).toEqual([
      ['calendar', 'Calendar', '1.0.0', 'yes', '-', '-'],
      ['email', 'Email', '2.0.0', 'yes', '-', '-'],
      // The exits run as Connections, which the example cell has none of.
      ['exit-openvpn', 'OpenVPN exit', '1.0.0', 'no', '-', '-'],
      ['exit-proxy', 'Proxy exit', '1.0.0', 'no', '-', '-'],
      ['exit-sshuttle', 'sshuttle exit', '1.0.0', 'no', '-', '-'],
      ['exit-tor', 'Tor exit', '1.0.0', 'no', '-', '-'],
      ['exit-wireguard', 'WireGuard exit', '1.0.0', 'no', '-', '-'],
      ['files', 'Files', '1.0.0', 'yes', '-', '-'],
      ['homepage', 'Homepage', '1.0.0', 'yes', '-', '-'],
      ['notes', 'Notes', '1.0.0', 'yes', '-', '-'],
    ]);
  });

  test('-o json with a state directory: the admitted version and the update the catalog offers', async () => {
    const copy = await copyExamples();
    const catalog = await loadCatalog(copy.store, DEFAULT_MANIFEST_POLICY);
    const notes = catalog.services.get('notes')!;
    await new PackageStore(copy.state).admit('notes', { ...notes, manifest: { ...notes.manifest, version: '0.9.0' } }, new Date('2026-01-01T00:00:00Z'));
    await new PackageStore(copy.state).admit('files', catalog.services.get('files')!, new Date('2026-01-01T00:00:00Z'));
    const r = await pic(['catalog', 'list', '--cell', copy.cell, '--state-dir', copy.state, '-o', 'json']);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { kind: string; items: { id: string; installed: boolean; admitted: string | null; update: boolean | null }[] };
    expect(list.kind).toBe('List');
    expect(list.items.map((i) => [i.id, i.installed, i.admitted, i.update])).toEqual([
      ['calendar', true, null, null],
      ['email', true, null, null],
      ['exit-openvpn', false, null, null],
      ['exit-proxy', false, null, null],
      ['exit-sshuttle', false, null, null],
      ['exit-tor', false, null, null],
      ['exit-wireguard', false, null, null],
      ['files', true, '1.0.0', false],
      ['homepage', true, null, null],
      ['notes', true, '0.9.0', true],
    ]);
  });

  test('--store alone: installed is not known; a broken package is listed with its first problem, the rest as usual', async () => {
    const copy = await copyExamples();
    await editFile(path.join(copy.store, 'services', 'email', 'manifest.json'), (t) => t.replace('"version": "2.0.0"', '"version": "one"'));
    await fs.rm(path.join(copy.cell, 'services', 'homepage.yaml'));
    const r = await pic(['catalog', 'list', '--store', copy.store]);
    expect(r.code).toBe(0);
    const rows = r.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/ {2,}/));
    expect(rows.map((row) => row[0])).toEqual(['calendar', 'email', 'exit-openvpn', 'exit-proxy', 'exit-sshuttle', 'exit-tor', 'exit-wireguard', 'files', 'homepage', 'notes']);
    expect(rows[1]!.slice(0, 6)).toEqual(['email', '-', '-', '-', '-', '-']);
    expect(rows[1]![6]).toMatch(/^services\/email\/manifest\.json: \/version: /);
    expect(rows[9]).toEqual(['notes', 'Notes', '1.0.0', '-', '-', '-']);
  });
});

describe('pic catalog show', () => {
  test('notes: its host name under the domain, the peer port of its firewall rule, its accounts', async () => {
    const copy = await copyExamples();
    const r = await pic(['catalog', 'show', 'notes', '--cell', copy.cell]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Installed:          yes\n');
    expect(r.stdout).toContain('Subdomains:\n  notes.demo.pic.test  (primary, to cell-notes:8080)\n');
    expect(r.stdout).toContain('Host ports:         none\n');
    expect(r.stdout).toContain('Peer ports:         8080/tcp');
    expect(r.stdout).toContain('Egress:             default, wireguard_ext, tor (default default)\n');
    expect(r.stdout).toContain('Accounts:           http manager; hands out password; peers get url, username, password\n');
    expect(r.stdout).toContain('notes-data (template; Docker volume pic-demo-notes-notes-data)');
    expect(r.stdout).toContain('install.sh:         no\n');
    expect(r.stdout).toContain('Problems:           none');
  });

  test('-o json holds the same facts', async () => {
    const copy = await copyExamples();
    const r = await pic(['catalog', 'show', 'notes', '--cell', copy.cell, '-o', 'json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id: 'notes', installed: true, subdomains: [{ host: 'notes.demo.pic.test' }], hostPorts: [], peerPorts: ['8080/tcp'], accounts: { manager: 'http', credentials: ['password'] }, installScript: false, problems: [] });
  });

  test('a template that publishes a port: needs the install\'s consent, then it is consented', async () => {
    const copy = await copyExamples();
    await publishPort(copy);
    const without = await pic(['catalog', 'show', 'notes', '--cell', copy.cell]);
    expect(without.code).toBe(0);
    expect(without.stdout).toContain('Host ports:\n  2525/tcp -> cell-notes:8080  needs spec.publish: ["2525/tcp"] in ServiceInstall/notes\n');
    expect(without.stdout).toMatch(/Problems:\n {2}services\/notes\/compose-template\.yml: .*host port 2525\/tcp is published only with the admin's consent/);

    await editFile(path.join(copy.cell, 'services', 'notes.yaml'), (t) => `${t.trimEnd()}\n  publish: ["2525/tcp"]\n`);
    const consented = await pic(['catalog', 'show', 'notes', '--cell', copy.cell]);
    expect(consented.code).toBe(0);
    expect(consented.stdout).toContain('Host ports:\n  2525/tcp -> cell-notes:8080  consented\n');
    expect(consented.stdout).toContain('Problems:           none');
  });

  test('a template that publishes a core port: refused, whatever the install says', async () => {
    const copy = await copyExamples();
    await editFile(path.join(copy.store, 'services', 'notes', 'compose-template.yml'), (t) => t.replace('    restart: unless-stopped\n', '    restart: unless-stopped\n    ports: ["53:8080/udp"]\n'));
    await editFile(path.join(copy.cell, 'services', 'notes.yaml'), (t) => `${t.trimEnd()}\n  publish: ["53/udp"]\n`);
    const r = await pic(['catalog', 'show', 'notes', '--cell', copy.cell]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('  53/udp -> cell-notes:8080  refused: a core port (DNS)\n');
    expect(r.stdout).toMatch(/host port 53\/udp is refused: the core stack uses it/);
  });

  test('--store alone: subdomains without a domain, every published port needs consent, install.sh said', async () => {
    const copy = await copyExamples();
    await publishPort(copy);
    await fs.writeFile(path.join(copy.store, 'services', 'notes', 'install.sh'), '#!/bin/sh\n');
    const r = await pic(['catalog', 'show', 'notes', '--store', copy.store]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Installed:          - (no cell given)\n');
    expect(r.stdout).toContain('Subdomains:\n  notes  (primary, to cell-notes:8080)\n');
    expect(r.stdout).toContain('  2525/tcp -> cell-notes:8080  needs spec.publish: ["2525/tcp"] in ServiceInstall/notes\n');
    expect(r.stdout).toContain('install.sh:         yes (run once per admitted version in a sandboxed helper: no network, no capabilities, time limit)\n');
    // Checked as a package (no install to ask): consent is the install's question, not a problem.
    expect(r.stdout).toContain('Problems:           none');
  });

  test('an id the catalog does not have: exit 1, naming the catalog and the ids it offers', async () => {
    const copy = await copyExamples();
    const r = await pic(['catalog', 'show', 'nope', '--cell', copy.cell]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd()).toBe(`pic: no service "nope" in the catalog ${path.join(copy.cell, '..', 'store')}; it offers calendar, email, exit-openvpn, exit-proxy, exit-sshuttle, exit-tor, exit-wireguard, files, homepage, notes`);
  });

  test('a control character in a description is printed escaped, in the text and in JSON', async () => {
    const copy = await copyExamples();
    await editFile(path.join(copy.store, 'services', 'homepage', 'manifest.json'), (t) => t.replace(/"description": "[^"]*"/, '"description": "Home\\u001b[2J\\rReady\\u202e"'));
    const show = await pic(['catalog', 'show', 'homepage', '--cell', copy.cell]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('Description:        Home\\e[2J\\rReady\\u{202e}\n');
    const json = await pic(['catalog', 'show', 'homepage', '--cell', copy.cell, '-o', 'json']);
    expect(JSON.parse(json.stdout).description).toBe('Home\u001b[2J\rReady\u202e');
    // eslint-disable-next-line no-control-regex
    for (const out of [show.stdout, json.stdout]) expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u202e]/);
  });

  test('usage errors: no catalog named, no id, an -o it does not offer (exit 2)', async () => {
    const copy = await copyExamples();
    for (const args of [['catalog', 'list'], ['catalog', 'show', '--cell', copy.cell], ['catalog', 'list', '--cell', copy.cell, '-o', 'wide'], ['catalog']]) {
      const r = await pic(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^pic( catalog)?[: ]/);
    }
  });
});
