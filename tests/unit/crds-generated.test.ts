import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import YAML from 'yaml';
import { renderGeneratedFiles, scalarUnionRule } from '../../crds/crd.js';
import { DOCUMENT_KINDS, type DocumentKind } from '../../crds/types.js';

type Json = Record<string, any>;

const root = process.cwd();
const generated = renderGeneratedFiles();
const read = (p: string): string => readFileSync(path.join(root, p), 'utf8');

describe('generated schema files', () => {
  test.each(generated.map((f) => [f.path, f] as const))('%s is committed exactly as crds/schemas.ts renders it', (_p, file) => {
    let committed: string;
    try {
      committed = read(file.path);
    } catch {
      throw new Error(`${file.path} is missing: run \`npx tsc -p . && node dist/crds/generate.js\``);
    }
    if (committed !== file.content) throw new Error(`${file.path} is out of date: run \`npx tsc -p . && node dist/crds/generate.js\` and commit the result`);
  });

  test('the generated folders hold nothing else', () => {
    const listed = ['crds/schemas', 'crds/k8s'].flatMap((dir) => readdirSync(path.join(root, dir)).map((name) => `${dir}/${name}`)).sort();
    expect(listed).toEqual(generated.map((f) => f.path).sort());
  });
});

// ---------------------------------------------------------------------------------------------
// Validating with a CRD as the API server would: ajv plus the Kubernetes extensions we emit.

/**
 * The meaning of every CEL rule the generator may emit, as a JavaScript predicate. A rule not
 * listed here makes the test fail, so the emulation can never silently pass a rule it ignores.
 */
function celType(v: unknown): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'double';
  return v === null ? 'null_type' : Array.isArray(v) ? 'list' : 'map';
}
const CEL_RULES = new Map<string, (self: any) => boolean>([
  [scalarUnionRule(['string', 'integer', 'boolean']).rule, (self: Json) => Object.values(self).every((v) => ['string', 'int', 'bool'].includes(celType(v)))],
]);

function kubernetesAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
  ajv.addKeyword({ keyword: 'x-kubernetes-preserve-unknown-fields', schemaType: 'boolean' });
  ajv.addKeyword({
    keyword: 'x-kubernetes-list-type',
    schemaType: 'string',
    compile: (listType: string) => {
      if (listType !== 'set') throw new Error(`list type ${listType} is not emulated`);
      return (data: unknown) => !Array.isArray(data) || new Set(data.map((v) => JSON.stringify(v))).size === data.length;
    },
  });
  ajv.addKeyword({
    keyword: 'x-kubernetes-validations',
    schemaType: 'array',
    compile: (rules: { rule: string }[]) => {
      const predicates = rules.map((r) => {
        const predicate = CEL_RULES.get(r.rule);
        if (!predicate) throw new Error(`CEL rule not emulated by the test: ${r.rule}`);
        return predicate;
      });
      return (data: unknown) => predicates.every((p) => p(data));
    },
  });
  return ajv;
}

/**
 * Field validation Strict (kubectl's default) refuses fields the schema does not name; a
 * structural schema cannot say additionalProperties: false, so the emulation adds it back
 * wherever the API server would check (not under x-kubernetes-preserve-unknown-fields, and not
 * in metadata, which the API server checks against ObjectMeta itself).
 */
function strictFields(node: Json, key = ''): Json {
  const out: Json = { ...node };
  if (node.properties) {
    out.properties = Object.fromEntries(Object.entries(node.properties as Json).map(([k, v]) => [k, strictFields(v as Json, k)]));
    if (node.additionalProperties === undefined && !node['x-kubernetes-preserve-unknown-fields'] && key !== 'metadata') out.additionalProperties = false;
  }
  if (node.items) out.items = strictFields(node.items as Json);
  if (node.additionalProperties && typeof node.additionalProperties === 'object') out.additionalProperties = strictFields(node.additionalProperties as Json);
  return out;
}

const FORBIDDEN_IN_STRUCTURAL = ['$ref', '$schema', '$id', 'definitions', 'const', 'oneOf', 'anyOf', 'allOf', 'not', 'if', 'then', 'else', 'propertyNames', 'uniqueItems', 'examples', 'patternProperties', 'dependencies'];

function structuralViolations(node: Json, where: string, level: 'root' | 'metadata' | 'node' = 'node'): string[] {
  const found: string[] = [];
  for (const k of FORBIDDEN_IN_STRUCTURAL) if (k in node) found.push(`${where}: ${k}`);
  if (node.type === undefined && node['x-kubernetes-preserve-unknown-fields'] !== true && node['x-kubernetes-int-or-string'] !== true) found.push(`${where}: no type`);
  if (node.type !== undefined && typeof node.type !== 'string') found.push(`${where}: type is not one string`);
  if (node.properties && node.additionalProperties !== undefined) found.push(`${where}: properties beside additionalProperties`);
  if (level === 'metadata') {
    const names = Object.keys(node.properties ?? {});
    if (names.some((n) => n !== 'name' && n !== 'generateName')) found.push(`${where}: metadata restricts more than name`);
  }
  for (const [k, child] of Object.entries((node.properties ?? {}) as Json)) {
    found.push(...structuralViolations(child as Json, `${where}.${k}`, level === 'root' && k === 'metadata' ? 'metadata' : 'node'));
  }
  if (node.items) found.push(...structuralViolations(node.items as Json, `${where}[]`));
  if (node.additionalProperties && typeof node.additionalProperties === 'object') found.push(...structuralViolations(node.additionalProperties as Json, `${where}{}`));
  return found;
}

const CRD_FILES: Record<DocumentKind, string> = {
  Cell: 'crds/k8s/cells.pic.ngo.yaml',
  ServiceInstall: 'crds/k8s/serviceinstalls.pic.ngo.yaml',
  PeerAccount: 'crds/k8s/peeraccounts.pic.ngo.yaml',
  Connection: 'crds/k8s/connections.pic.ngo.yaml',
};
const SCHEMA_FILES: Record<DocumentKind, string> = {
  Cell: 'crds/schemas/cell.schema.json',
  ServiceInstall: 'crds/schemas/serviceinstall.schema.json',
  PeerAccount: 'crds/schemas/peeraccount.schema.json',
  Connection: 'crds/schemas/connection.schema.json',
};

function loadCrd(kind: DocumentKind): Json {
  return YAML.parse(read(CRD_FILES[kind])) as Json;
}

describe.each(DOCUMENT_KINDS.map((k) => [k]))('the %s CustomResourceDefinition', (kind) => {
  const crd = loadCrd(kind);
  const version = crd.spec.versions[0];

  test('is a v1 CRD of group pic.ngo, namespaced, v1alpha1 served and stored, with a status subresource', () => {
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.kind).toBe('CustomResourceDefinition');
    expect(crd.metadata.name).toBe(`${crd.spec.names.plural}.pic.ngo`);
    expect(crd.spec.group).toBe('pic.ngo');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names.kind).toBe(kind);
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({ name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
  });

  test('reads the same under YAML 1.1, as Kubernetes tooling parses it', () => {
    expect(YAML.parse(read(CRD_FILES[kind]), { version: '1.1' })).toEqual(crd);
  });

  test('has a structural openAPIV3Schema', () => {
    expect(structuralViolations(version.schema.openAPIV3Schema, 'openAPIV3Schema', 'root')).toEqual([]);
  });
});

/** Spec samples per kind; `true` where they are valid. */
const SAMPLES: Record<DocumentKind, [string, unknown, boolean][]> = {
  Cell: [
    ['minimal', { domain: 'alice.pic.ngo', store: { path: './store' } }, true],
    [
      'full',
      {
        domain: 'alice.pic.ngo',
        store: { path: './store' },
        network: { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' },
        imageVerification: { mode: 'warn', publicKey: './cosign.pub' },
        allowedImagePrefix: 'localhost:5000/roof/',
        dataDir: '/srv/pic',
        caddy: { adminAddress: 'localhost:2019', tls: { mode: 'acme', email: 'a@b.cd' } },
        dns: { address: '10.0.0.1', nameservers: ['ns1.alice.pic.ngo', '10.0.0.1'] },
      },
      true,
    ],
    ['partial network', { domain: 'a.b', store: { path: 's' }, network: { name: 'n' } }, true],
    ['no domain', { store: { path: 's' } }, false],
    ['domain in capitals', { domain: 'A.B', store: { path: 's' } }, false],
    ['domain too long', { domain: `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`, store: { path: 's' } }, false],
    ['unknown field', { domain: 'a.b', store: { path: 's' }, extra: 1 }, false],
    ['unknown network field', { domain: 'a.b', store: { path: 's' }, network: { mtu: 1500 } }, false],
    ['bad subnet', { domain: 'a.b', store: { path: 's' }, network: { subnet: '172.20.0.0/40' } }, false],
    ['bad mode', { domain: 'a.b', store: { path: 's' }, imageVerification: { mode: 'strict' } }, false],
    ['relative dataDir', { domain: 'a.b', store: { path: 's' }, dataDir: 'x' }, false],
    ['duplicate name servers', { domain: 'a.b', store: { path: 's' }, dns: { nameservers: ['a.b', 'a.b'] } }, false],
    ['bad TLS mode', { domain: 'a.b', store: { path: 's' }, caddy: { tls: { mode: 'x' } } }, false],
    ['store as string', { domain: 'a.b', store: './store' }, false],
    ['spec as string', 'cell', false],
  ],
  ServiceInstall: [
    ['minimal', { version: '1.0.0' }, true],
    ['config of each scalar type', { version: '1.0.0-rc.1+b', config: { port: 8080, title: 'x', public: true } }, true],
    ['egress', { version: '1.0.0', egress: { connection: 'vpn-home' } }, true],
    ['no version (the catalog version is admitted at the first install)', { config: {} }, true],
    ['an upgrade deadline', { version: '1.0.0', upgrade: { deadlineSeconds: 120 } }, true],
    ['an upgrade deadline below 5 seconds', { version: '1.0.0', upgrade: { deadlineSeconds: 1 } }, false],
    ['version 1.0', { version: '1.0' }, false],
    ['config value mapping', { version: '1.0.0', config: { port: { a: 1 } } }, false],
    ['config value list', { version: '1.0.0', config: { port: [1] } }, false],
    ['config value fractional', { version: '1.0.0', config: { ratio: 0.5 } }, false],
    ['egress without connection', { version: '1.0.0', egress: {} }, false],
    ['egress to a bad name', { version: '1.0.0', egress: { connection: 'Bad' } }, false],
    ['unknown field', { version: '1.0.0', replicas: 2 }, false],
  ],
  PeerAccount: [
    ['two services', { services: ['notes', 'files'] }, true],
    ['no services', { services: [] }, true],
    ['missing services', {}, false],
    ['duplicate service', { services: ['notes', 'notes'] }, false],
    ['bad service id', { services: ['Notes'] }, false],
    ['services as string', { services: 'notes' }, false],
    ['unknown field', { services: [], admin: true }, false],
  ],
  Connection: [
    ['type only', { type: 'tor' }, true],
    ['full', { type: 'wireguard_ext', service: 'exit-wireguard', configFile: '/etc/pic/vpn.conf', config: { mtu: 1380, name: 'x', on: true }, failOpen: true }, true],
    ['no type', { failOpen: true }, false],
    ['type default', { type: 'default' }, false],
    ['an old interface field', { type: 'openvpn', interface: 'tun0' }, false],
    ['failOpen as string', { type: 'proxy', failOpen: 'yes' }, false],
    ['unknown field', { type: 'sshuttle', host: 'x' }, false],
  ],
};

describe.each(DOCUMENT_KINDS.map((k) => [k]))('%s: JSON Schema and CRD agree', (kind) => {
  const jsonValidator: ValidateFunction = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }).compile(JSON.parse(read(SCHEMA_FILES[kind])));
  const crdValidator: ValidateFunction = kubernetesAjv().compile(strictFields(loadCrd(kind).spec.versions[0].schema.openAPIV3Schema));
  const documentValidator: ValidateFunction = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }).compile(JSON.parse(read('crds/schemas/document.schema.json')));

  test.each(SAMPLES[kind])('%s', (_name, spec, valid) => {
    const doc = { apiVersion: 'pic.ngo/v1alpha1', kind, metadata: { name: 'sample' }, spec };
    expect({ jsonSchema: jsonValidator(doc), crd: crdValidator(doc), documentSchema: documentValidator(doc) }).toEqual({ jsonSchema: valid, crd: valid, documentSchema: valid });
  });
});

describe('document.schema.json', () => {
  const validate = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }).compile(JSON.parse(read('crds/schemas/document.schema.json')));

  test('refuses an unknown kind and a wrong apiVersion', () => {
    expect(validate({ apiVersion: 'pic.ngo/v1alpha1', kind: 'Pod', metadata: { name: 'a' }, spec: {} })).toBe(false);
    expect(validate({ apiVersion: 'v1', kind: 'Connection', metadata: { name: 'a' }, spec: { type: 'tor' } })).toBe(false);
  });
});

describe('manifest-v3.schema.json', () => {
  test('compiles and refuses a manifest without capabilities', () => {
    const validate = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }).compile(JSON.parse(read('crds/schemas/manifest-v3.schema.json')));
    expect(validate({ schema_version: 3, kind: 'store', id: 'x', name: 'X', description: 'x', version: '1.0.0', author: 'a', image: 'i', container_name: 'cell-x' })).toBe(false);
    expect(validate.errors?.some((e) => e.keyword === 'required' && (e.params as { missingProperty: string }).missingProperty === 'capabilities')).toBe(true);
  });
});
