/**
 * Everything crds/generate.ts writes, rendered in memory from crds/schemas.ts: the JSON Schema
 * files for editors and the Kubernetes CustomResourceDefinitions of the four document kinds.
 * Pure and deterministic, so a test can regenerate and compare with the committed files.
 *
 * A CRD's openAPIV3Schema must be *structural*: one plain `type` per node, no `$ref`, `const`,
 * `if`/`then`, `propertyNames` or type unions, `additionalProperties` never beside `properties`,
 * `uniqueItems` replaced by `x-kubernetes-list-type: set`. toStructuralSchema converts the
 * subset of JSON Schema our document schemas use and refuses anything else, so a new keyword in
 * schemas.ts cannot silently vanish from the CRDs.
 *
 * About unknown fields: where JSON Schema says `additionalProperties: false`, the API server
 * prunes unknown fields, and with field validation Strict (kubectl's default) refuses them.
 */
import YAML from 'yaml';
import { DOCUMENT_SCHEMA, DOCUMENT_SCHEMAS, DNS_LABEL_PATTERN, MANIFEST_SCHEMA, type JsonSchema } from './schemas.js';
import { API_VERSION, DOCUMENT_KINDS, type DocumentKind } from './types.js';
import { isRecord } from './values.js';

export const CRD_GROUP = API_VERSION.split('/')[0]!;
export const CRD_VERSION = API_VERSION.split('/')[1]!;

export interface GeneratedFile {
  /** Path relative to the repository root. */
  path: string;
  content: string;
}

const COPIED_KEYWORDS = new Set(['title', 'description', 'pattern', 'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'required', 'enum', 'default', 'format', 'nullable']);
const DROPPED_KEYWORDS = new Set(['$schema', '$id', '$comment', 'examples']);
const CEL_TYPES: Record<string, string> = { string: 'string', integer: 'int', boolean: 'bool', number: 'double' };

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** The CEL rule that stands in for a union of scalar types on the values of a map. */
export function scalarUnionRule(types: readonly string[]): { rule: string; message: string } {
  const test = types.map((t) => `type(self[k]) == ${CEL_TYPES[t]}`).join(' || ');
  const words = types.map((t) => (t === 'integer' ? 'an integer' : `a ${t}`));
  return { rule: `self.all(k, ${test})`, message: `each value must be ${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}` };
}

function scalarUnion(node: JsonSchema): string[] | undefined {
  if (!Array.isArray(node.type)) return undefined;
  const types = node.type.filter((t): t is string => typeof t === 'string' && t !== 'null');
  return types.length > 1 && types.every((t) => t in CEL_TYPES) ? types : undefined;
}

/** Convert one JSON Schema node (and its children) to a Kubernetes structural schema node. */
export function toStructuralSchema(node: JsonSchema, where = '#'): JsonSchema {
  const out: JsonSchema = {};
  const type = node.type;
  if (Array.isArray(type)) {
    const nonNull = type.filter((t) => t !== 'null');
    if (nonNull.length === 1 && type.includes('null')) {
      out.type = nonNull[0];
      out.nullable = true;
    } else {
      throw new Error(`${where}: a union of types cannot be written in a structural schema`);
    }
  } else if (typeof type === 'string') {
    out.type = type;
  } else if ('const' in node) {
    out.type = jsonType(node.const);
  }

  for (const [keyword, value] of Object.entries(node)) {
    if (keyword === 'type' || DROPPED_KEYWORDS.has(keyword)) continue;
    if (keyword === 'const') out.enum = [clone(value)];
    else if (keyword === 'uniqueItems') {
      if (value === true) out['x-kubernetes-list-type'] = 'set';
    } else if (keyword === 'properties' && isRecord(value)) {
      out.properties = Object.fromEntries(Object.entries(value).map(([name, child]) => [name, toStructuralSchema(child as JsonSchema, `${where}/properties/${name}`)]));
    } else if (keyword === 'items' && isRecord(value)) {
      out.items = toStructuralSchema(value, `${where}/items`);
    } else if (keyword === 'additionalProperties') {
      if (value === false) {
        if (!isRecord(node.properties)) throw new Error(`${where}: additionalProperties false without properties has no structural form`);
      } else if (isRecord(value)) {
        const union = scalarUnion(value);
        if (union) {
          // Values of several scalar types: kept untyped, and a CEL rule on the map checks them.
          const values: JsonSchema = {};
          if (typeof value.title === 'string') values.title = value.title;
          if (typeof value.description === 'string') values.description = value.description;
          values['x-kubernetes-preserve-unknown-fields'] = true;
          out.additionalProperties = values;
          out['x-kubernetes-validations'] = [scalarUnionRule(union)];
        } else {
          out.additionalProperties = toStructuralSchema(value, `${where}/additionalProperties`);
        }
      } else {
        throw new Error(`${where}: additionalProperties must be false or a schema`);
      }
    } else if (COPIED_KEYWORDS.has(keyword)) {
      out[keyword] = clone(value);
    } else {
      throw new Error(`${where}: the keyword "${keyword}" has no structural form; convert it in crds/crd.ts`);
    }
  }
  if (out.type === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true) throw new Error(`${where}: a structural schema needs a type on every node`);
  return out;
}

interface KindNames {
  plural: string;
  singular: string;
  shortNames: string[];
  columns: { name: string; type: string; jsonPath: string; description: string }[];
}

const READY_COLUMN = { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'Whether the document has converged.' };
const AGE_COLUMN = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'When the object was created.' };

const KIND_NAMES: Record<DocumentKind, KindNames> = {
  Cell: { plural: 'cells', singular: 'cell', shortNames: [], columns: [{ name: 'Domain', type: 'string', jsonPath: '.spec.domain', description: 'Domain of the cell.' }] },
  ServiceInstall: { plural: 'serviceinstalls', singular: 'serviceinstall', shortNames: ['svcinstall'], columns: [{ name: 'Version', type: 'string', jsonPath: '.spec.version', description: 'Admitted catalog version.' }] },
  PeerAccount: { plural: 'peeraccounts', singular: 'peeraccount', shortNames: ['peer'], columns: [] },
  Connection: { plural: 'connections', singular: 'connection', shortNames: ['conn'], columns: [{ name: 'Type', type: 'string', jsonPath: '.spec.type', description: 'Kind of exit.' }] },
};

/** The openAPIV3Schema of a kind: its spec converted, the envelope left to the API server. */
export function openApiV3Schema(kind: DocumentKind): JsonSchema {
  const schema = DOCUMENT_SCHEMAS[kind];
  const properties = schema.properties as Record<string, JsonSchema>;
  return {
    type: 'object',
    description: schema.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: `${API_VERSION}; checked by the API server.` },
      kind: { type: 'string', description: `${kind}; checked by the API server.` },
      metadata: {
        type: 'object',
        properties: { name: { type: 'string', maxLength: 63, pattern: DNS_LABEL_PATTERN } },
      },
      spec: toStructuralSchema(properties.spec!, `${kind}/spec`),
      status: {
        type: 'object',
        description: 'Written by the operator: observedGeneration, phase, conditions and facts of the kind.',
        'x-kubernetes-preserve-unknown-fields': true,
      },
    },
  };
}

export function customResourceDefinition(kind: DocumentKind): JsonSchema {
  const names = KIND_NAMES[kind];
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.${CRD_GROUP}` },
    spec: {
      group: CRD_GROUP,
      scope: 'Namespaced',
      names: {
        kind,
        listKind: `${kind}List`,
        plural: names.plural,
        singular: names.singular,
        ...(names.shortNames.length > 0 ? { shortNames: names.shortNames } : {}),
        categories: ['pic'],
      },
      versions: [
        {
          name: CRD_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...names.columns, READY_COLUMN, AGE_COLUMN],
          schema: { openAPIV3Schema: openApiV3Schema(kind) },
        },
      ],
    },
  };
}

const GENERATED_NOTE = 'Generated by crds/generate.ts from crds/schemas.ts; edit those, then run `node dist/crds/generate.js`.';

function jsonFile(path: string, schema: JsonSchema): GeneratedFile {
  return { path, content: `${JSON.stringify({ $comment: GENERATED_NOTE, ...schema }, null, 2)}\n` };
}

function yamlFile(path: string, value: JsonSchema): GeneratedFile {
  // YAML 1.1 rules, as Kubernetes tooling reads them: words like off, on, yes and no get quoted.
  const doc = new YAML.Document(value, { aliasDuplicateObjects: false, version: '1.1' });
  doc.commentBefore = ` ${GENERATED_NOTE}`;
  return { path, content: doc.toString({ lineWidth: 0 }) };
}

export const SCHEMA_FILE_NAMES: Record<DocumentKind, string> = {
  Cell: 'cell.schema.json',
  ServiceInstall: 'serviceinstall.schema.json',
  PeerAccount: 'peeraccount.schema.json',
  Connection: 'connection.schema.json',
};

/** Every generated file, in a fixed order. */
export function renderGeneratedFiles(): GeneratedFile[] {
  return [
    jsonFile('crds/schemas/manifest-v3.schema.json', MANIFEST_SCHEMA),
    ...DOCUMENT_KINDS.map((kind) => jsonFile(`crds/schemas/${SCHEMA_FILE_NAMES[kind]}`, DOCUMENT_SCHEMAS[kind])),
    jsonFile('crds/schemas/document.schema.json', DOCUMENT_SCHEMA),
    ...DOCUMENT_KINDS.map((kind) => yamlFile(`crds/k8s/${KIND_NAMES[kind].plural}.${CRD_GROUP}.yaml`, customResourceDefinition(kind))),
  ];
}
