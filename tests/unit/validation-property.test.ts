import fc from 'fast-check';
import { validateManifest, type ManifestPolicy } from '../../crds/validate-manifest.js';
import { applyDocumentDefaults, validateDocument } from '../../crds/validate-documents.js';
import type { Problem } from '../../crds/types.js';

type Json = Record<string, any>;

const FILE = 'under/test.yaml';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

const VALID_MANIFEST: Json = {
  schema_version: 3,
  id: 'notes',
  name: 'Notes',
  description: 'Notes.',
  version: '1.0.0',
  author: 'acme',
  kind: 'store',
  capabilities: { has_subdomain: true, has_accounts: true, has_admin_config: true, has_storage: true, has_egress: true, has_api_hooks: false },
  subdomain: 'notes',
  extra_subdomains: ['memo'],
  backend: 'cell-notes:8080',
  extra_backends: { dav: 'cell-dav:8081' },
  containers: ['cell-notes'],
  config_schema: { port: { type: 'integer', label: 'Port', default: 8080, min: 1, max: 65535 } },
  peer_config_template: { url: 'https://notes.{domain}:{config.port}/', password: '{peer.service_credentials.notes.password}' },
  accounts: { manager: 'http', credentials: ['password'] },
  compose: null,
  backup: { volumes: [{ container: 'cell-notes', path: '/data', name: 'data' }], config_paths: ['notes/config'] },
  storage: { primary_path: 'data/notes', quota_mb: 100 },
  egress: { default: 'default', allowed: ['default', 'tor'] },
  image: `git.pic.ngo/roof/notes@${DIGEST}`,
  container_name: 'cell-notes',
  volumes: [{ name: 'notes-data', mount: '/data' }],
  env: [{ key: 'S', value: '${PIC_SECRET_S} ${PIC_CFG_PORT}' }],
  iptables_rules: [{ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: 8080, proto: 'tcp' }],
  caddy_route: { subdomain: 'notes' },
};

const VALID_DOCUMENTS: Json[] = [
  {
    apiVersion: 'pic.ngo/v1alpha1',
    kind: 'Cell',
    metadata: { name: 'alice' },
    spec: {
      domain: 'alice.pic.ngo',
      store: { path: './store' },
      network: { name: 'cell-network', subnet: '172.20.0.0/16', servicePool: '172.20.0.20-172.20.0.254' },
      imageVerification: { mode: 'enforce', publicKey: './cosign.pub' },
      caddy: { tls: { mode: 'internal' } },
      dns: { address: '10.0.0.1', nameservers: ['ns1.alice.pic.ngo'] },
    },
  },
  { apiVersion: 'pic.ngo/v1alpha1', kind: 'ServiceInstall', metadata: { name: 'notes' }, spec: { version: '1.0.0', config: { port: 8080 }, egress: { connection: 'vpn' } } },
  { apiVersion: 'pic.ngo/v1alpha1', kind: 'PeerAccount', metadata: { name: 'alice' }, spec: { services: ['notes'] } },
  { apiVersion: 'pic.ngo/v1alpha1', kind: 'Connection', metadata: { name: 'vpn' }, spec: { type: 'tor', failOpen: true } },
];

const POINTER_RE = /^(\/([^~/]|~[01])*)*$/;

function assertWellFormed(problems: unknown, file: string, prefix = ''): void {
  if (!Array.isArray(problems)) throw new Error('not an array');
  for (const p of problems as Problem[]) {
    if (typeof p !== 'object' || p === null) throw new Error(`not an object: ${String(p)}`);
    const keys = Object.keys(p).sort().join(',');
    if (keys !== 'file,message,pointer') throw new Error(`unexpected keys ${keys}`);
    if (p.file !== file) throw new Error(`file ${p.file}`);
    if (typeof p.pointer !== 'string' || !POINTER_RE.test(p.pointer)) throw new Error(`bad pointer ${String(p.pointer)}`);
    if (!(p.pointer === prefix || p.pointer.startsWith(`${prefix}/`))) throw new Error(`pointer ${p.pointer} outside ${prefix}`);
    if (typeof p.message !== 'string' || p.message.trim() === '') throw new Error(`empty message at ${p.pointer}`);
  }
}

/** Every path (as keys) inside a JSON value, the root excluded. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => [[...prefix, i], ...paths(v, [...prefix, i])]);
  if (typeof value === 'object' && value !== null) return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...paths(v, [...prefix, k])]);
  return [];
}

/** A copy of `base` with the value at each path replaced (or removed when the new value is undefined). */
function mutate(base: unknown, edits: { path: (string | number)[]; value: unknown }[]): unknown {
  const copy = JSON.parse(JSON.stringify(base)) as Json;
  for (const { path, value } of edits) {
    let node: any = copy;
    for (const key of path.slice(0, -1)) {
      if (typeof node !== 'object' || node === null) break;
      node = node[key];
    }
    if (typeof node !== 'object' || node === null) continue;
    const last = path[path.length - 1]!;
    if (value === undefined) {
      if (Array.isArray(node) && typeof last === 'number') node.splice(last, 1);
      else delete node[last];
    } else {
      node[last] = structuredClone(value);
    }
  }
  return copy;
}

/** Values that look like what authors write, plus anything at all. */
const plausible = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom('', '..', '/', '/etc', '//etc/', 'a/../../b', '${SERVICE_IP}', '${PIC_CFG_X}', '{domain}', '{', 'api', 'cell-x:0', 'git.pic.ngo/roof/', 'a@sha256:xyz', 'tor', 'default'),
  fc.constantFrom(0, -1, 65536, 1.5, true, false, null, [], {}),
  fc.constant(undefined),
);

function editsOf(base: unknown) {
  const all = paths(base);
  return fc.array(fc.record({ path: fc.constantFrom(...all), value: plausible }), { minLength: 1, maxLength: 6 });
}

const policies = fc.record({
  allowedImagePrefix: fc.oneof(fc.constantFrom('git.pic.ngo/roof/', 'git.pic.ngo/roof', 'localhost:5000/', ''), fc.string()),
  imageVerification: fc.constantFrom('off', 'warn', 'enforce'),
  projectRoot: fc.option(fc.constantFrom('/opt/pic', '/', '/srv/x/'), { nil: undefined }),
}) as fc.Arbitrary<ManifestPolicy>;

const anything = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withNullPrototype: true,
  withObjectString: true,
  withSet: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
});

const RUNS = { numRuns: 300 };

describe('validateManifest never throws and always returns well-formed problems', () => {
  test('the valid manifest has no problem', () => {
    expect(validateManifest(VALID_MANIFEST, FILE, { allowedImagePrefix: 'git.pic.ngo/roof/', imageVerification: 'enforce' })).toEqual([]);
  });

  test('on anything', () => {
    fc.assert(fc.property(anything, policies, (value, policy) => assertWellFormed(validateManifest(value, FILE, policy), FILE)), RUNS);
  });

  test('on any JSON value', () => {
    fc.assert(fc.property(fc.jsonValue(), policies, (value, policy) => assertWellFormed(validateManifest(value, FILE, policy), FILE)), RUNS);
  });

  test('on mutated valid manifests, the same way twice', () => {
    fc.assert(
      fc.property(editsOf(VALID_MANIFEST), policies, (edits, policy) => {
        const value = mutate(VALID_MANIFEST, edits);
        const first = validateManifest(value, FILE, policy);
        assertWellFormed(first, FILE);
        expect(validateManifest(value, FILE, policy)).toEqual(first);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('cyclic input, as YAML aliases can produce', () => {
  test('neither validator nor applyDocumentDefaults loops or throws', () => {
    const doc: Json = JSON.parse(JSON.stringify(VALID_DOCUMENTS[0]));
    doc.spec.store.self = doc;
    doc.metadata.labels = doc.metadata;
    assertWellFormed(validateDocument(doc, FILE), FILE);
    const filled = applyDocumentDefaults(doc);
    expect(filled.spec.store.self).toBe(filled);
    const manifest: Json = JSON.parse(JSON.stringify(VALID_MANIFEST));
    manifest.capabilities.loop = manifest;
    manifest.env.push(manifest.env);
    assertWellFormed(validateManifest(manifest, FILE, { allowedImagePrefix: 'git.pic.ngo/roof/', imageVerification: 'enforce' }), FILE);
  });
});

describe('validateDocument never throws and always returns well-formed problems', () => {
  test('the valid documents have no problem', () => {
    for (const d of VALID_DOCUMENTS) expect(validateDocument(d, FILE)).toEqual([]);
  });

  test('on anything', () => {
    fc.assert(
      fc.property(anything, fc.constantFrom('', '/0', '/12'), (value, prefix) => {
        assertWellFormed(validateDocument(value, FILE, prefix), FILE, prefix);
        applyDocumentDefaults(value);
      }),
      RUNS,
    );
  });

  test('on any JSON value', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => assertWellFormed(validateDocument(value, FILE), FILE)), RUNS);
  });

  test('on documents of a known kind with an arbitrary spec', () => {
    fc.assert(
      fc.property(fc.constantFrom('Cell', 'ServiceInstall', 'PeerAccount', 'Connection'), fc.jsonValue(), (kind, spec) => {
        const d = { apiVersion: 'pic.ngo/v1alpha1', kind, metadata: { name: 'x' }, spec };
        assertWellFormed(validateDocument(d, FILE), FILE);
        assertWellFormed(validateDocument(applyDocumentDefaults(d), FILE), FILE);
      }),
      RUNS,
    );
  });

  test('on mutated valid documents, without changing them', () => {
    fc.assert(
      fc.property(fc.constantFrom(...VALID_DOCUMENTS).chain((d) => fc.tuple(fc.constant(d), editsOf(d))), ([d, edits]) => {
        const value = mutate(d, edits);
        const before = JSON.stringify(value);
        assertWellFormed(validateDocument(value, FILE, '/1'), FILE, '/1');
        applyDocumentDefaults(value);
        expect(JSON.stringify(value)).toBe(before);
      }),
      { numRuns: 1000 },
    );
  });
});
