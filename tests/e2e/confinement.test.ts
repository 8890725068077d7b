/**
 * A store package stays inside its own service (issue 18). Each class of escape is tried twice:
 * by editing one package of the real example catalog and running `pic validate STORE CELL` as an
 * admin would, and by installing a package that tries it into a test cell and running the real
 * operator against Docker. Either way the package is refused, the problem names the file and the
 * field, and nothing of it is created.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { DocumentStatus } from '../../state/status-types.js';
import { createTestCell, removeStaleTestCells, removeTestCell, TEST_IMAGE, type TestCell } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { runPic } from '../support/pic-cli.js';

// ---------------------------------------------------------------------------------------------
// pic validate on the example catalog, one package edited

type Json = Record<string, any>;

interface Edit {
  template?: (services: Json, whole: Json) => void;
  manifest?: (m: Json) => void;
  install?: (spec: Json) => void;
}

interface Copy {
  root: string;
  store: string;
  cell: string;
}

async function copyExamples(): Promise<Copy> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-confine-'));
  await fs.cp(path.join(process.cwd(), 'examples', 'store'), path.join(root, 'store'), { recursive: true });
  await fs.cp(path.join(process.cwd(), 'examples', 'cell'), path.join(root, 'cell'), { recursive: true });
  return { root, store: path.join(root, 'store'), cell: path.join(root, 'cell') };
}

async function editNotes(copy: Copy, edit: Edit): Promise<void> {
  const dir = path.join(copy.store, 'services', 'notes');
  if (edit.template) {
    const file = path.join(dir, 'compose-template.yml');
    const whole = parseDocument(await fs.readFile(file, 'utf8')).toJSON() as Json;
    edit.template(whole.services, whole);
    await fs.writeFile(file, JSON.stringify(whole, null, 2)); // JSON is YAML
  }
  if (edit.manifest) {
    const file = path.join(dir, 'manifest.json');
    const manifest = JSON.parse(await fs.readFile(file, 'utf8')) as Json;
    edit.manifest(manifest);
    await fs.writeFile(file, JSON.stringify(manifest, null, 2));
  }
  if (edit.install) {
    const file = path.join(copy.cell, 'services', 'notes.yaml');
    const doc = parseDocument(await fs.readFile(file, 'utf8')).toJSON() as Json;
    edit.install(doc.spec);
    await fs.writeFile(file, JSON.stringify(doc, null, 2));
  }
}

const notes = (services: Json): Json => services['cell-notes'];
const extraContainer = (name: string): Json => ({ image: notes0.image, container_name: name, networks: { 'cell-network': {} } });
let notes0: Json = {};

type Row = [what: string, edit: Edit, where: { file: RegExp; pointer: string; message: RegExp }];

const TEMPLATE = /services\/notes\/compose-template\.yml$/;
const MANIFEST = /services\/notes\/manifest\.json$/;
const INSTALL = /cell\/services\/notes\.yaml$/;

const ROWS: Row[] = [
  ['1. a bind into another service\'s folder', { template: (s) => notes(s).volumes.push('${PIC_DATA_DIR}/files/accounts:/steal') },
    { file: TEMPLATE, pointer: '/services/cell-notes/volumes/1', message: /bind mount of "\/var\/lib\/pic\/data\/files\/accounts" is refused: it is in the cell data directory .* but not in this service's own folder/ }],
  ['1. backup config paths naming another service\'s folder', { manifest: (m) => { m.backup.config_paths = ['files/config']; } },
    { file: MANIFEST, pointer: '/backup/config_paths/0', message: /not in the service's own folder "notes\/"/ }],
  ['2. an extra container under a core name', { template: (s) => { s.dns = extraContainer('cell-dns'); } },
    { file: TEMPLATE, pointer: '/services/dns/container_name', message: /"cell-dns" is not one of this service's containers/ }],
  ['2. an extra container under another service\'s name', { template: (s) => { s.files = extraContainer('cell-files'); } },
    { file: TEMPLATE, pointer: '/services/files/container_name', message: /"cell-files" is not one of this service's containers/ }],
  ['2. a manifest claiming the WireGuard container', { manifest: (m) => { m.containers = ['cell-notes', 'cell-wireguard']; } },
    { file: INSTALL, pointer: '/metadata/name', message: /container name "cell-wireguard" .* is already taken by the Cell's WireGuard container/ }],
  ['2. a manifest claiming another service\'s container', { manifest: (m) => { m.containers = ['cell-notes', 'cell-webdav']; } },
    { file: INSTALL, pointer: '/metadata/name', message: /container name "cell-webdav" .* is already taken by ServiceInstall\/files/ }],
  ['3. a network alias equal to Caddy\'s backend of files', { template: (s) => { notes(s).networks['cell-network'].aliases = ['cell-files']; } },
    { file: TEMPLATE, pointer: '/services/cell-notes/networks/cell-network/aliases/0', message: /alias "cell-files" is refused/ }],
  ['4. the core Caddy\'s address', { template: (s) => { notes(s).networks['cell-network'].ipv4_address = '172.20.0.2'; } },
    { file: TEMPLATE, pointer: '/services/cell-notes/networks/cell-network/ipv4_address', message: /"172.20.0.2" is refused: it is not this service's address/ }],
  ['5. a volume named like the core Caddy\'s data (the CA key)', { template: (_s, w) => { w.volumes['notes-data'] = { name: 'demo-caddy-data' }; } },
    { file: TEMPLATE, pointer: '/volumes/notes-data/name', message: /volume name "demo-caddy-data" is refused/ }],
  ['6. publishing HTTPS, the core\'s port, even with consent', { template: (s) => { notes(s).ports = ['443:8080']; }, install: (spec) => { spec.publish = ['443/tcp']; } },
    { file: TEMPLATE, pointer: '/services/cell-notes/ports/0', message: /host port 443\/tcp is refused: the core stack uses it/ }],
  ['6. publishing WireGuard\'s port', { template: (s) => { notes(s).ports = ['51820:8080/udp']; } },
    { file: TEMPLATE, pointer: '/services/cell-notes/ports/0', message: /host port 51820\/udp is refused/ }],
  ['6. publishing a port without the admin\'s consent', { template: (s) => { notes(s).ports = ['2525:8080']; } },
    { file: TEMPLATE, pointer: '/services/cell-notes/ports/0', message: /host port 2525\/tcp is published only with the admin's consent: add "2525\/tcp" to spec.publish of ServiceInstall\/notes/ }],
  ['7. an endless stop', { template: (s) => { notes(s).stop_grace_period = '300h'; } },
    { file: TEMPLATE, pointer: '/services/cell-notes/stop_grace_period', message: /stop_grace_period of 1080000 s is refused: at most 10 minutes/ }],
];

describe('pic validate STORE CELL refuses each escape, naming the file and the field', () => {
  const copies: string[] = [];
  beforeAll(async () => {
    const template = await fs.readFile(path.join(process.cwd(), 'examples/store/services/notes/compose-template.yml'), 'utf8');
    notes0 = (parseDocument(template).toJSON() as Json).services['cell-notes'];
  });
  afterAll(async () => {
    for (const c of copies) await fs.rm(c, { recursive: true, force: true });
  });

  test('the example catalog and cell as they are: valid', async () => {
    const copy = await copyExamples();
    copies.push(copy.root);
    const result = await runPic(['validate', copy.store, copy.cell]);
    expect(result.stdout).toMatch(/10 packages: valid/);
    expect(result.code).toBe(0);
  });

  test.each(ROWS)('%s', async (_what, edit, where) => {
    const copy = await copyExamples();
    copies.push(copy.root);
    await editNotes(copy, edit);
    const result = await runPic(['validate', copy.store, copy.cell]);
    expect(result.code).toBe(1);
    const lines = result.stdout.split('\n').filter((l) => l !== '');
    const line = lines.find((l) => l.includes(`: ${where.pointer}: `) && where.message.test(l));
    expect({ line, lines }).toEqual(expect.objectContaining({ line: expect.any(String) }));
    expect(line!.slice(0, line!.indexOf(': '))).toMatch(where.file);
    // Each problem once, although the catalog is reached twice (directly and as the cell's store).
    const identities = lines.map((l) => l.slice(l.indexOf(': ') + 2));
    expect(new Set(identities).size).toBe(identities.length);
  });

  test('6. a port the admin consented to in spec.publish is valid, and pic plan-side readers see the consent', async () => {
    const copy = await copyExamples();
    copies.push(copy.root);
    await editNotes(copy, { template: (s) => { notes(s).ports = ['2525:8080']; }, install: (spec) => { spec.publish = ['2525/tcp']; } });
    const result = await runPic(['validate', copy.store, copy.cell]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  test('a consent two services give for one port is refused', async () => {
    const copy = await copyExamples();
    copies.push(copy.root);
    await editNotes(copy, { install: (spec) => { spec.publish = ['2525/tcp']; } });
    const files = path.join(copy.cell, 'services', 'files.yaml');
    const doc = parseDocument(await fs.readFile(files, 'utf8')).toJSON() as Json;
    doc.spec.publish = ['2525/tcp'];
    await fs.writeFile(files, JSON.stringify(doc));
    const result = await runPic(['validate', copy.store, copy.cell]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/services\/notes\.yaml: \/spec\/publish\/0: host port 2525\/tcp is already published by ServiceInstall\/files/);
  });
});

// ---------------------------------------------------------------------------------------------
// The operator against Docker: nothing of a refused package is created

describe('the operator creates nothing of a package that escapes its service', () => {
  let cell: TestCell | undefined;
  const evil = ['bind', 'alias', 'address', 'volume', 'port', 'names', 'grace', 'secret'] as const;
  const theCell = (): TestCell => {
    if (!cell) throw new Error('no test cell');
    return cell;
  };

  /** A template of the test image that does one forbidden thing. */
  function evilTemplate(c: TestCell, id: (typeof evil)[number]): string {
    const name = c.containerName(id);
    const base: Json = {
      image: TEST_IMAGE,
      container_name: name,
      command: ['sh', '-c', 'exec httpd -f -p 8080 -h /'],
      environment: { TOKEN: '${PIC_SECRET_TOKEN}' },
      volumes: ['data:/data'],
      networks: { 'cell-network': { ipv4_address: '${SERVICE_IP}' } },
    };
    const whole: Json = { services: { [id]: base }, volumes: { data: {} }, networks: { 'cell-network': { external: true } } };
    switch (id) {
      case 'bind': base.volumes.push(`\${PIC_DATA_DIR}/good/secret:/steal`); break;
      case 'alias': base.networks['cell-network'].aliases = [c.containerName('good')]; break;
      case 'address': base.networks['cell-network'].ipv4_address = c.subnet.replace(/\.0\/\d+$/, '.1'); break;
      case 'volume': whole.volumes.data = { name: `${c.name}-victim` }; break;
      case 'port': base.ports = ['127.0.0.1:18443:8080']; break;
      case 'names': whole.services.dns = { ...base, container_name: `cell-${c.tag}-dns`, networks: ['cell-network'] }; break;
      case 'grace': base.stop_grace_period = '11m'; break;
      case 'secret': base.volumes.push('/etc/${PIC_SECRET_TOKEN}:/leak'); break;
    }
    return JSON.stringify(whole, null, 2);
  }

  const expected: Record<(typeof evil)[number], { pointer: string; message: RegExp }> = {
    bind: { pointer: '/services/bind/volumes/1', message: /not in this service's own folder/ },
    alias: { pointer: '/services/alias/networks/cell-network/aliases/0', message: /alias "cell-pt[0-9a-f]+-good" is refused/ },
    address: { pointer: '/services/address/networks/cell-network/ipv4_address', message: /is refused: it is not this service's address/ },
    volume: { pointer: '/volumes/data/name', message: /volume name "pictest-pt[0-9a-f]+-victim" is refused/ },
    port: { pointer: '/services/port/ports/0', message: /host port 18443\/tcp is published only with the admin's consent/ },
    names: { pointer: '/services/dns/container_name', message: /is not one of this service's containers/ },
    grace: { pointer: '/services/grace/stop_grace_period', message: /660 s is refused/ },
    secret: { pointer: '/services/secret/volumes/1', message: /bind mount of "\/etc\/\$\{PIC_SECRET_TOKEN\}" is refused/ },
  };

  /** A free host port on loopback for the service that publishes one, with consent. */
  const publishedPort = 20000 + Math.floor(Math.random() * 20000);

  beforeAll(async () => {
    await removeStaleTestCells();
    cell = await createTestCell([{ id: 'good' }, { id: 'open' }, ...evil.map((id) => ({ id }))]);
    for (const id of evil) await fs.writeFile(path.join(cell.storeDir, 'services', id, 'compose-template.yml'), evilTemplate(cell, id));
    const open = evilTemplate(cell, 'port').replace('services:\n  port:', 'services:\n  open:').replace(cell.containerName('port'), cell.containerName('open')).replace('127.0.0.1:18443:8080', `127.0.0.1:${publishedPort}:8080`);
    await fs.writeFile(path.join(cell.storeDir, 'services', 'open', 'compose-template.yml'), open);
    // A volume of the host that is not the cell's: the "volume" package names it.
    await docker.createVolume({ Name: `${cell.name}-victim`, Labels: { 'ngo.pic.cell': cell.name, 'pictest.victim': 'yes' } });
    for (const id of ['good', ...evil]) await cell.writeService(id);
    await cell.writeFile('services/open.yaml', `apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: open}\nspec:\n  version: 1.0.0\n  publish: ["${publishedPort}/tcp"]\n`);
  }, 120_000);

  afterAll(async () => {
    if (cell) {
      await docker.getVolume(`${cell.name}-victim`).remove().catch(() => undefined);
      await removeTestCell(cell);
    }
  });

  test('pic plan names the host port the admin consented to before anything runs', async () => {
    const c = theCell();
    const plan = await runPic(['plan', '--cell', c.cellDir, '--state-dir', c.stateDir]);
    expect(plan.stdout).toContain(`+ create container ${c.containerName('open')} from ${TEST_IMAGE}, publishing host port ${publishedPort}/tcp on 127.0.0.1 → ${c.containerName('open')}:8080 (consented in spec.publish)`);
  });

  test('pic run --once: the good service runs; every escaping one is Stalled naming its field, with nothing created', async () => {
    const c = theCell();
    const run = await runPic(['run', '--once', '--cell', c.cellDir, '--state-dir', c.stateDir, '--log-format', 'json']);
    expect(run.code).not.toBe(0); // --once exits 0 only when every document is Ready
    const statuses = JSON.parse((await runPic(['get', 'ServiceInstall', '-o', 'json', '--state-dir', c.stateDir])).stdout) as DocumentStatus[] | { items: DocumentStatus[] };
    const list = Array.isArray(statuses) ? statuses : statuses.items;
    const byName = new Map(list.map((s) => [s.name, s]));
    expect(byName.get('good')?.phase).toBe('Ready');

    const containers = await docker.listContainers({ all: true, filters: { label: [`ngo.pic.cell=${c.name}`] } });
    expect(containers.map((x) => x.Labels['ngo.pic.owner']).sort()).toEqual(['ServiceInstall/good', 'ServiceInstall/open']);
    const volumes = (await docker.listVolumes({ filters: { label: [`ngo.pic.cell=${c.name}`] } })).Volumes ?? [];
    expect(volumes.map((v) => v.Name).sort()).toEqual([`${c.name}-victim`, `pic-${c.name}-good-data`, `pic-${c.name}-open-data`].sort());
    expect((await docker.getVolume(`${c.name}-victim`).inspect()).Labels).toEqual({ 'ngo.pic.cell': c.name, 'pictest.victim': 'yes' });

    for (const id of evil) {
      const status = byName.get(id);
      const stalled = status?.conditions.find((x) => x.type === 'Stalled');
      expect({ id, phase: status?.phase }).toEqual({ id, phase: 'Stalled' });
      expect({ id, message: stalled?.message }).toEqual({ id, message: expect.stringContaining(`compose-template.yml: ${expected[id].pointer}: `) });
      expect(stalled?.message).toMatch(expected[id].message);
    }
  });

  test('the consented port answers on the host, and pic describe shows it', async () => {
    const c = theCell();
    const answer = await fetch(`http://127.0.0.1:${publishedPort}/`).then((r) => r.status, (err: Error) => err.message);
    expect([200, 404]).toContain(answer);
    const described = await runPic(['describe', 'ServiceInstall/open', '--state-dir', c.stateDir]);
    expect(described.stdout).toMatch(new RegExp(`Published ports:\\s+${publishedPort}/tcp on 127\\.0\\.0\\.1 → ${c.containerName('open')}:8080`));
  });

  test('a rendered secret appears in no status, event or log line', async () => {
    const c = theCell();
    const secrets = await fs.readdir(path.join(c.stateDir), { recursive: true });
    const values: string[] = [];
    for (const f of secrets) {
      if (!/secrets/.test(String(f))) continue;
      const full = path.join(c.stateDir, String(f));
      if (!(await fs.stat(full)).isFile()) continue;
      const text = await fs.readFile(full, 'utf8');
      for (const m of text.matchAll(/"([A-Za-z0-9_-]{32})"/g)) values.push(m[1]!);
    }
    expect(values.length).toBeGreaterThan(0);
    const described = await runPic(['describe', 'ServiceInstall/secret', '--state-dir', c.stateDir]);
    const got = await runPic(['get', '-o', 'json', '--state-dir', c.stateDir]);
    expect(described.stdout).toContain('${PIC_SECRET_TOKEN}');
    for (const v of values) {
      expect(described.stdout).not.toContain(v);
      expect(got.stdout).not.toContain(v);
    }
  });
});
