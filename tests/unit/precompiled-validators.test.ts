/**
 * The validators pic runs are ajv's standalone code for crds/validator-schemas.ts, generated into
 * crds/generated/. They must be current, be the ones pic uses, and answer exactly as validators
 * compiled at run time would: same verdict, same errors in the same order with the same fields.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Ajv, type ValidateFunction } from 'ajv';
import fc from 'fast-check';
import * as checkValidators from '../../crds/generated/check-validators.js';
import * as defaultValidators from '../../crds/generated/default-validators.js';
import { renderValidatorModules } from '../../crds/render-validators.js';
import { compiledSchema, compiledSchemaWithDefaults, precompiledValidators } from '../../crds/schema-problems.js';
import type { JsonSchema } from '../../crds/schemas.js';
import { AJV_OPTIONS, CHECKED_SCHEMAS, DEFAULTED_SCHEMAS, schemaFingerprint } from '../../crds/validator-schemas.js';

type Json = Record<string, any>;
type Generated = { SCHEMA_FINGERPRINT: string } & Record<string, unknown>;

const root = process.cwd();
const DIGEST = `sha256:${'ab'.repeat(32)}`;

const SAMPLES: Record<string, Json> = {
  manifest: {
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
    config_schema: { port: { type: 'integer', label: 'Port', default: 8080, min: 1, max: 65535 }, title: { type: 'string', label: 'Title' } },
    peer_config_template: { url: 'https://notes.{domain}/', password: '{peer.service_credentials.notes.password}' },
    accounts: { manager: 'http', credentials: ['password'] },
    compose: null,
    backup: { volumes: [{ container: 'cell-notes', path: '/data', name: 'data' }], config_paths: ['config/notes'] },
    storage: { primary_path: 'data/notes', quota_mb: 100 },
    egress: { default: 'default', allowed: ['default', 'tor'] },
    image: `git.pic.ngo/roof/notes@${DIGEST}`,
    container_name: 'cell-notes',
    volumes: [{ name: 'notes-data', mount: '/data' }],
    env: [{ key: 'S', value: '${PIC_SECRET_S}' }],
    iptables_rules: [{ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: 8080, proto: 'tcp' }],
    caddy_route: { subdomain: 'notes' },
  },
  Cell: {
    apiVersion: 'pic.ngo/v1alpha1',
    kind: 'Cell',
    metadata: { name: 'alice' },
    spec: { domain: 'alice.pic.ngo', store: { path: './store' }, network: { subnet: '172.20.0.0/16' }, imageVerification: { mode: 'warn' } },
  },
  ServiceInstall: { apiVersion: 'pic.ngo/v1alpha1', kind: 'ServiceInstall', metadata: { name: 'notes' }, spec: { version: '1.0.0', config: { port: 8080, title: 'x' }, egress: { connection: 'vpn' } } },
  PeerAccount: { apiVersion: 'pic.ngo/v1alpha1', kind: 'PeerAccount', metadata: { name: 'alice' }, spec: { services: ['notes', 'files'] } },
  Connection: { apiVersion: 'pic.ngo/v1alpha1', kind: 'Connection', metadata: { name: 'vpn' }, spec: { type: 'tor' } },
};
SAMPLES.envelope = SAMPLES.PeerAccount!;

/** Every path (as keys) inside a JSON value, the root excluded. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => [[...prefix, i], ...paths(v, [...prefix, i])]);
  if (typeof value === 'object' && value !== null) return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...paths(v, [...prefix, k])]);
  return [];
}

/** A copy of `base` with the value at each path replaced, removed (undefined) or given a sibling. */
function mutate(base: unknown, edits: { path: (string | number)[]; value: unknown; extra: boolean }[]): unknown {
  const copy = structuredClone(base) as Json;
  for (const { path: at, value, extra } of edits) {
    let node: any = copy;
    for (const key of at.slice(0, -1)) {
      if (typeof node !== 'object' || node === null) break;
      node = node[key];
    }
    if (typeof node !== 'object' || node === null) continue;
    const last = at[at.length - 1]!;
    if (extra && !Array.isArray(node)) node[`${String(last)}x`] = structuredClone(value);
    else if (value === undefined) {
      if (Array.isArray(node) && typeof last === 'number') node.splice(last, 1);
      else delete node[last];
    } else node[last] = structuredClone(value);
  }
  return copy;
}

const plausible = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom('', 'api', 'tor', 'default', 'notes', 'x'.repeat(70), 'cell-x:0', '172.20.0.0/33', '1.0', '😀', 'ACCEPT', 'http', 'enforce'),
  fc.constantFrom(0, -1, 3, 65536, 1.5, true, false, null, [], {}, ['a', 'a'], { a: 1 }),
  fc.constant(undefined),
);

function inputsFor(name: string): fc.Arbitrary<unknown> {
  const base = SAMPLES[name]!;
  const edits = fc.array(fc.record({ path: fc.constantFrom(...paths(base)), value: plausible, extra: fc.boolean() }), { minLength: 0, maxLength: 5 });
  return fc.oneof({ weight: 5, arbitrary: edits.map((e) => mutate(base, e)) }, { weight: 1, arbitrary: fc.jsonValue() });
}

describe('precompiled validators', () => {
  const rendered = renderValidatorModules();

  test.each(rendered.map((f) => [f.path, f] as const))('%s is committed exactly as crds/validator-schemas.ts renders it', (_p, file) => {
    let committed: string;
    try {
      committed = readFileSync(path.join(root, file.path), 'utf8');
    } catch {
      throw new Error(`${file.path} is missing: run \`npx tsc -p . && node dist/crds/generate.js\``);
    }
    if (committed !== file.content) throw new Error(`${file.path} is out of date: run \`npx tsc -p . && node dist/crds/generate.js\` and commit the result`);
  });

  test('crds/generated holds nothing else', () => {
    expect(readdirSync(path.join(root, 'crds', 'generated')).map((n) => `crds/generated/${n}`).sort()).toEqual(rendered.map((f) => f.path).sort());
  });

  test('are the validators pic runs', () => {
    for (const [name, schema] of Object.entries(CHECKED_SCHEMAS)) expect(compiledSchema(schema)).toBe((checkValidators as unknown as Generated)[name]);
    for (const [name, schema] of Object.entries(DEFAULTED_SCHEMAS)) expect(compiledSchemaWithDefaults(schema)).toBe((defaultValidators as unknown as Generated)[name]);
  });

  test('a module generated from other schemas or options is not used', () => {
    const generated = checkValidators as unknown as Generated;
    expect(precompiledValidators(generated, CHECKED_SCHEMAS, false).size).toBe(Object.keys(CHECKED_SCHEMAS).length);
    expect(precompiledValidators(generated, CHECKED_SCHEMAS, true).size).toBe(0);
    expect(precompiledValidators({ ...generated, SCHEMA_FINGERPRINT: schemaFingerprint({ ...CHECKED_SCHEMAS, manifest: {} }, false) }, CHECKED_SCHEMAS, false).size).toBe(0);
  });

  test('a schema without a precompiled validator is compiled at run time', () => {
    const schema: JsonSchema = { type: 'object', properties: { n: { type: 'integer', default: 1 } }, additionalProperties: false };
    const check = compiledSchema(schema);
    expect(check({ n: 2 })).toBe(true);
    expect(check({ m: 2 })).toBe(false);
    expect(compiledSchema(schema)).toBe(check);
    const filled: Json = {};
    compiledSchemaWithDefaults(schema)(filled);
    expect(filled).toEqual({ n: 1 });
  });

  describe.each(Object.keys(CHECKED_SCHEMAS))('%s', (name) => {
    const schema = CHECKED_SCHEMAS[name] as JsonSchema;
    const atRunTime: ValidateFunction = new Ajv({ ...AJV_OPTIONS }).compile(schema);
    const precompiled = (checkValidators as unknown as Record<string, ValidateFunction>)[name]!;

    test('gives the same verdict and the very same errors as a validator compiled at run time', () => {
      expect(precompiled(SAMPLES[name])).toBe(true);
      fc.assert(
        fc.property(inputsFor(name), (value) => {
          const verdict = atRunTime(value);
          // ajv gives each call a new errors array, so this one outlives the next call.
          const errors = atRunTime.errors;
          return precompiled(value) === verdict && isDeepStrictEqual(precompiled.errors, errors);
        }),
        { numRuns: 400 },
      );
    });

    if (name in DEFAULTED_SCHEMAS) {
      const defaultsAtRunTime: ValidateFunction = new Ajv({ ...AJV_OPTIONS, useDefaults: true }).compile(schema);
      const precompiledDefaults = (defaultValidators as unknown as Record<string, ValidateFunction>)[name]!;

      test('fills in the same defaults as a validator compiled at run time', () => {
        fc.assert(
          fc.property(inputsFor(name), (value) => {
            const a = structuredClone(value);
            const b = structuredClone(value);
            const verdict = defaultsAtRunTime(a);
            return precompiledDefaults(b) === verdict && isDeepStrictEqual(a, b) && isDeepStrictEqual(precompiledDefaults.errors, defaultsAtRunTime.errors);
          }),
          { numRuns: 300 },
        );
      });
    }
  });
});
