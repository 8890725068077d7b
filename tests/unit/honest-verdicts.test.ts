// Verdicts pic validate must not get wrong: tags outside YAML's core schema, duplicate JSON keys,
// containers claimed twice, cell subnets that are not private, files that hold nothing, versions
// the catalog does not offer, and a Cell whose failure must not be blamed on every service.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { validateDocument } from '../../crds/validate-documents.js';
import { formatProblem, type CellObject, type Manifest, type Sourced } from '../../crds/types.js';
import { allProblems, checkDesiredState, type CatalogView } from '../../state/check-desired.js';
import { loadCell } from '../../state/cell.js';
import { loadDocumentFiles, type DesiredDocuments } from '../../state/desired.js';
import { duplicateJsonKey, parseJsonText, parseYamlDocuments, plainDocumentValue } from '../../state/yaml-documents.js';

describe('YAML tags outside the core schema are refused with file and line', () => {
  test.each([
    ['!!binary', 'a: 1\nb: !!binary aGVsbG8=\n', '!!binary', 2],
    ['!!omap', 'a: !!omap [ {x: 1} ]\n', '!!omap', 1],
    ['!!set', 'a: 1\nb: 2\nc: !!set {x: null}\n', '!!set', 3],
    ['!!timestamp', 'a: !!timestamp 2001-12-14\n', '!!timestamp', 1],
    ['!!pairs', 'a: !!pairs [ {x: 1} ]\n', '!!pairs', 1],
    ['!!js/function', 'a: !!js/function "function () {}"\n', '!!js/function', 1],
    ['!!js/undefined', 'a: !!js/undefined ""\n', '!!js/undefined', 1],
    ['a custom tag', 'kind: Cell\nspec: !secret value\n', '!secret', 2],
    ['a tag in a flow list', 'a: [1, !x 2]\n', '!x', 1],
    ['a %TAG directive', '%TAG ! tag:example.com,2000:\n---\na: !foo x\n', 'tag:example.com,2000:foo', 3],
  ])('%s', (_name, text, tag, line) => {
    const r = parseYamlDocuments(text, 'doc.yaml');
    expect(r.documents).toEqual([]);
    expect(r.problems).toEqual([expect.objectContaining({ file: 'doc.yaml', message: expect.stringContaining(`the tag ${tag} at line ${line}`) })]);
  });

  test.each([
    ['!!str', 'a: !!str 1\n', { a: '1' }],
    ['!!int', 'a: !!int "7"\n', { a: 7 }],
    ['!!bool', 'a: !!bool "true"\n', { a: true }],
    ['!!null', 'a: !!null ""\n', { a: null }],
    ['!!map and !!seq', 'a: !!map {b: !!seq [1]}\n', { a: { b: [1] } }],
  ])('the core tag %s is read', (_name, text, value) => {
    expect(parseYamlDocuments(text, 'doc.yaml')).toEqual({ documents: [{ label: 'doc.yaml', index: 0, value }], problems: [], notices: [] });
  });

  test.each([['a: !!binary aGVsbG8=\n'], ['a: !x b\n'], ['a: [!x b]\n'], ['a: {b: !!set c}\n'], ['a:\n  b: !!omap x\n']])('the fast reader leaves %j to yaml', (text) => {
    expect(plainDocumentValue(text)).toBeUndefined();
    expect(parseYamlDocuments(text, 'doc.yaml').problems).toEqual([expect.objectContaining({ message: expect.stringContaining('is not accepted') })]);
  });

  test('the message is one line and never a code frame of the file', () => {
    const text = `a: 1\nsecret: hunter2-${'x'.repeat(300)}\nb: [\n`;
    for (const p of parseYamlDocuments(text, 'doc.yaml').problems) {
      expect(p.message).not.toContain('\n');
      expect(p.message).not.toContain('hunter2');
      expect(p.message.length).toBeLessThan(300);
    }
  });
});

describe('duplicate keys in JSON are refused like duplicate YAML keys', () => {
  test.each([
    ['at the top', '{\n  "id": "notes",\n  "id": "evil"\n}', 'id', 3],
    ['nested', '{"a": {"b": 1,\n "c": {"d": 1, "d": 2}}}', 'd', 2],
    ['in an object inside a list', '[{"id": "a"}, {"id": "b",\n\n "id": "c"}]', 'id', 3],
    ['spelt with an escape', '{"image": 1, "im\\u0061ge": 2}', 'image', 1],
  ])('%s', (_name, text, key, line) => {
    const r = parseJsonText(text, 'manifest.json');
    expect(r.value).toBeUndefined();
    expect(r.problems).toEqual([{ file: 'manifest.json', pointer: '', message: expect.stringContaining(`the key "${key}" appears twice in one object (line ${line})`) }]);
  });

  test.each([
    ['equal keys in different objects', '{"a": {"id": 1}, "b": {"id": 2}}'],
    ['equal strings as values', '{"a": "id", "b": "id"}'],
    ['a key holding a colon and quotes', '{"a:\\"b": 1, "a": 2}'],
    ['list items', '["id", "id"]'],
  ])('%s are fine', (_name, text) => {
    expect(duplicateJsonKey(text)).toBeUndefined();
    expect(parseJsonText(text, 'x.json').problems).toEqual([]);
  });

  test('JSON over the size limit is refused before parsing, also given directly', () => {
    const r = parseJsonText(`{"a": "${'x'.repeat(1024 * 1024)}"}`, 'manifest.json');
    expect(r.problems).toEqual([expect.objectContaining({ file: 'manifest.json', message: expect.stringContaining('larger than') })]);
  });

  test('a syntax error never quotes the file', () => {
    const r = parseJsonText('{"password": "hunter2" oops}', 'manifest.json');
    expect(r.problems[0]!.message).toMatch(/^not valid JSON at line 1, column \d+/);
    expect(r.problems[0]!.message).not.toContain('hunter2');
  });
});

describe('a file that holds no document is a notice, not silence and not an error', () => {
  test.each([
    ['empty', ''],
    ['comments only', '# notes is not installed for now\n# apiVersion: pic.ngo/v1alpha1\n'],
    ['a lone document marker', '---\n'],
    ['blank lines', '\n\n  \n'],
  ])('%s', (_name, text) => {
    const r = parseYamlDocuments(text, 'services/notes.yaml');
    expect(r.documents).toEqual([]);
    expect(r.problems).toEqual([]);
    expect(r.notices).toEqual([{ file: 'services/notes.yaml', pointer: '', message: expect.stringContaining('holds no document') }]);
  });

  test('a broken directive in a file of no document is a problem, not a notice', () => {
    const r = parseYamlDocuments('%TAG !x\n', 'services/notes.yaml');
    expect(r.notices).toEqual([]);
    expect(r.problems).toEqual([expect.objectContaining({ file: 'services/notes.yaml', message: expect.stringContaining('not valid YAML at line 1') })]);
  });

  test('the notice reaches the loaded documents and the checked state', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-empty-'));
    try {
      const file = path.join(dir, 'notes.yaml');
      await fs.writeFile(file, '# nothing yet\n');
      const docs = await loadDocumentFiles([file]);
      expect(docs.notices).toEqual([expect.objectContaining({ file })]);
      const checked = checkDesiredState(docs);
      expect(allProblems(checked)).toEqual([]);
      expect(checked.generalNotices).toEqual([expect.objectContaining({ file, message: expect.stringContaining('holds no document') })]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Cross-document checks.

function manifest(id: string, over: Partial<Manifest> = {}): Manifest {
  return {
    schema_version: 3,
    kind: 'store',
    id,
    name: id,
    description: `${id} service`,
    version: '1.0.0',
    author: 'test',
    capabilities: { has_subdomain: true, has_accounts: false, has_admin_config: false, has_storage: false, has_egress: false, has_api_hooks: false },
    subdomain: id,
    backend: `cell-${id}:80`,
    image: `git.pic.ngo/roof/pic-${id}@sha256:${'a'.repeat(64)}`,
    container_name: `cell-${id}`,
    ...over,
  };
}

const catalog: CatalogView = {
  location: 'store',
  manifests: new Map([
    ['notes', manifest('notes')],
    ['wiki', manifest('wiki', { container_name: 'cell-notes' })],
    ['vpn', manifest('vpn', { container_name: 'cell-wireguard' })],
    ['api', manifest('api', { container_name: 'cell-api' })],
    ['sidecar', manifest('sidecar', { containers: ['cell-sidecar', 'cell-dns'] })],
    ['thief', manifest('thief', { containers: ['cell-thief', 'cell-notes'] })],
    ['proxy', manifest('proxy', { container_name: 'cell-caddy' })],
    ['mail', manifest('mail')],
    ['relay', manifest('relay')],
    ['newer', manifest('newer', { version: '2.0.0' })],
  ]),
  invalid: new Map(),
};

let fileNo = 0;
function src(doc: CellObject): Sourced<CellObject> {
  fileNo += 1;
  return { file: `f${fileNo}.yaml`, index: 0, doc };
}
const cellSpec = { domain: 'c.test', store: { path: 'store' }, network: { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' } };
const cellDoc = (spec: Record<string, unknown> = {}) => src({ apiVersion: 'pic.ngo/v1alpha1', kind: 'Cell', metadata: { name: 'c' }, spec: { ...cellSpec, ...spec } } as CellObject);
const svc = (name: string, version = '1.0.0', spec: Record<string, unknown> = {}) => src({ apiVersion: 'pic.ngo/v1alpha1', kind: 'ServiceInstall', metadata: { name }, spec: { version, ...spec } });

function docs(...items: Sourced<CellObject>[]): DesiredDocuments {
  const d: DesiredDocuments = { dir: 'cell', cells: [], services: [], peers: [], connections: [], rejected: [], problems: [], notices: [], unreadable: [], files: [] };
  for (const i of items) {
    if (i.doc.kind === 'Cell') d.cells.push(i as never);
    if (i.doc.kind === 'ServiceInstall') d.services.push(i as never);
  }
  return d;
}

describe('cross-document verdicts', () => {
  test.each([
    ['two services claim one container name', () => docs(cellDoc(), svc('notes'), svc('wiki')), 'ServiceInstall/wiki', 'container name "cell-notes" (in the manifest\'s container_name or containers) is already taken by ServiceInstall/notes'],
    ['a service lists another service\'s container in "containers"', () => docs(cellDoc(), svc('notes'), svc('thief')), 'ServiceInstall/thief', 'container name "cell-notes" (in the manifest\'s container_name or containers) is already taken by ServiceInstall/notes'],
    ['a service lists the core DNS container in "containers"', () => docs(cellDoc(), svc('sidecar')), 'ServiceInstall/sidecar', 'container name "cell-dns" (in the manifest\'s container_name or containers) is already taken by the cell\'s core DNS server'],
    ['a service claims the core Caddy\'s name, even with no Caddy run by pic', () => docs(cellDoc(), svc('proxy')), 'ServiceInstall/proxy', 'is already taken by the cell\'s core Caddy'],
    ['a service claims the name the Cell gives its Caddy', () => docs(cellDoc({ caddy: { run: { image: 'git.pic.ngo/roof/caddy:1', address: '172.20.0.2', container: 'cell-api' } } }), svc('api')), 'ServiceInstall/api', "taken by the Cell's Caddy container (spec.caddy.run.container)"],
    ['two services publish one host port', () => docs(cellDoc(), svc('mail', '1.0.0', { publish: ['25/tcp'] }), svc('relay', '1.0.0', { publish: ['587/tcp', '25/tcp'] })), 'ServiceInstall/relay', 'host port 25/tcp is already published by ServiceInstall/mail'],
    ["a service claims the Cell's WireGuard container", () => docs(cellDoc(), svc('vpn')), 'ServiceInstall/vpn', "taken by the Cell's WireGuard container"],
    [
      'a service claims a WireGuard container the Cell names',
      () => docs(cellDoc({ wireguard: { container: 'cell-notes' } }), svc('notes')),
      'ServiceInstall/notes',
      "taken by the Cell's WireGuard container",
    ],
    [
      'a service claims the container of a core site',
      () => docs(cellDoc({ caddy: { sites: [{ subdomain: 'api', backend: 'cell-api:8000' }] } }), svc('api')),
      'ServiceInstall/api',
      'taken by the Cell\'s core site "api"',
    ],
    ['a version lower than the catalog offers', () => docs(cellDoc(), svc('newer', '1.0.0')), 'ServiceInstall/newer', 'version "1.0.0" is not in the catalog, which offers 2.0.0'],
    ['a version higher than the catalog offers', () => docs(cellDoc(), svc('notes', '1.0.1')), 'ServiceInstall/notes', 'version "1.0.1" is not in the catalog, which offers 1.0.0'],
  ])('%s', (_name, build, key, fragment) => {
    // Checked as the operator checks: with its record of what was admitted (here: nothing yet).
    const r = checkDesiredState(build(), { ...catalog, admitted: new Map() });
    expect(r.byDocument.get(key)).toEqual(expect.arrayContaining([expect.objectContaining({ message: expect.stringContaining(fragment) })]));
  });

  test('the same version as the catalog, a distinct container name: no problem', () => {
    const r = checkDesiredState(docs(cellDoc(), svc('notes'), svc('newer', '2.0.0')), catalog);
    expect(allProblems(r)).toEqual([]);
  });

  test('without a valid Cell, no ServiceInstall is said to be missing from the catalog', () => {
    const empty: CatalogView = { location: '(no catalog: the Cell document is missing or invalid)', manifests: new Map(), invalid: new Map() };
    const r = checkDesiredState(docs(svc('notes'), svc('wiki'), svc('files')), empty);
    expect(allProblems(r).map(formatProblem).filter((line) => line.includes('in the catalog'))).toEqual([]);
    expect(r.generalNotices).toEqual([expect.objectContaining({ file: 'cell/cell.yaml', message: expect.stringContaining('3 ServiceInstall documents were not checked against the catalog') })]);
  });

  test('the same through loadCell: a broken cell.yaml yields its own problem, not one per service', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-badcell-'));
    try {
      await fs.mkdir(path.join(dir, 'services'));
      await fs.writeFile(path.join(dir, 'cell.yaml'), 'apiVersion: pic.ngo/v1alpha1\nkind: Cell\nmetadata: {name: c}\nspec: {domain: "not a domain", store: {path: ./store}}\n');
      for (const name of ['notes', 'files', 'email']) {
        await fs.writeFile(path.join(dir, 'services', `${name}.yaml`), `apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: ${name}}\nspec: {version: 1.0.0}\n`);
      }
      const cell = await loadCell(dir);
      const lines = allProblems(cell.checked).map(formatProblem);
      expect(lines.filter((l) => l.includes('cell.yaml'))).not.toEqual([]);
      expect(lines.filter((l) => l.includes('services/'))).toEqual([]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the Cell network lies in a private range, off Docker\'s default bridge', () => {
  const cell = (network: Record<string, unknown>) => ({ apiVersion: 'pic.ngo/v1alpha1', kind: 'Cell', metadata: { name: 'c' }, spec: { domain: 'c.test', store: { path: 's' }, network } });
  test.each([
    ['a public range', { subnet: '8.8.0.0/16', servicePool: '8.8.0.20-8.8.0.254' }, 'not inside a private range'],
    ['a range spanning private and public', { subnet: '172.0.0.0/8', servicePool: '172.20.0.20-172.20.0.254' }, 'not inside a private range'],
    ['the whole address space', { subnet: '0.0.0.0/0', servicePool: '172.20.0.20-172.20.0.254' }, 'not inside a private range'],
    ["Docker's default bridge", { subnet: '172.17.0.0/16', servicePool: '172.17.0.20-172.17.0.254' }, "overlaps 172.17.0.0/16, Docker's default bridge"],
    ['a range holding the default bridge', { subnet: '172.16.0.0/12', servicePool: '172.20.0.20-172.20.0.254' }, "overlaps 172.17.0.0/16, Docker's default bridge"],
    ['a part of the default bridge', { subnet: '172.17.5.0/24', servicePool: '172.17.5.20-172.17.5.200' }, "overlaps 172.17.0.0/16, Docker's default bridge"],
  ])('%s is refused', (_name, network, fragment) => {
    expect(validateDocument(cell(network), 'cell.yaml')).toEqual([{ file: 'cell.yaml', pointer: '/spec/network/subnet', message: expect.stringContaining(fragment) }]);
  });

  test.each([
    ['10/8', { subnet: '10.0.0.0/8', servicePool: '10.0.0.20-10.0.0.254' }],
    ['a /24 of 192.168/16', { subnet: '192.168.7.0/24', servicePool: '192.168.7.20-192.168.7.200' }],
    ['172.20/16', { subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' }],
    ['the top of 172.16/12', { subnet: '172.31.0.0/16', servicePool: '172.31.0.20-172.31.0.254' }],
    ['the defaults', {}],
  ])('%s is accepted', (_name, network) => {
    expect(validateDocument(cell(network), 'cell.yaml')).toEqual([]);
  });

  test('the service pool must lie inside the subnet', () => {
    expect(validateDocument(cell({ subnet: '10.1.0.0/16', servicePool: '10.2.0.20-10.2.0.254' }), 'cell.yaml')).toEqual([
      { file: 'cell.yaml', pointer: '/spec/network/servicePool', message: expect.stringContaining('is not inside subnet 10.1.0.0/16') },
    ]);
  });
});
