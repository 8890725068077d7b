// Every parser of input a person, a catalog or a managed component controls, tried on generated
// input: it never throws (bad input comes back as problem values or as nothing), and it keeps up
// with its input: a megabyte built to make a backtracking or recursive reader stall (a run of one
// unit, an unclosed opener, one endless line) finishes, where quadratic work would not.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { DEFAULT_MANIFEST_POLICY, validateManifest } from '../../crds/validate-manifest.js';
import { validateDocument } from '../../crds/validate-documents.js';
import type { Manifest, Problem } from '../../crds/types.js';
import { liveRoutes, errorText } from '../../reconcilers/caddy/observe.js';
import { checkServicePackage } from '../../reconcilers/containers/check-package.js';
import { parseZoneSerial } from '../../reconcilers/dns/render.js';
import { nextSerial } from '../../reconcilers/dns/serial.js';
import { parseIpRules, parseRoutes } from '../../reconcilers/egress/observe.js';
import { normaliseRule, parseListing } from '../../reconcilers/firewall/observe.js';
import { duplicateJsonKey, parseJsonText, parseYamlDocuments, yamlNestingTooDeep } from '../../state/yaml-documents.js';
import { readComposeTemplate } from '../../state/compose-template.js';

const MB = 1024 * 1024;
const policy = { ...DEFAULT_MANIFEST_POLICY, imageVerification: 'warn' as const };

/** A list of problems, each naming one of `files` (any file when none is given), none a stack trace. */
function isProblemList(value: unknown, ...files: string[]): boolean {
  return (
    Array.isArray(value) &&
    value.every(
      (p: Problem) =>
        typeof p.file === 'string' &&
        (files.length === 0 || files.some((f) => p.file.startsWith(f))) &&
        typeof p.pointer === 'string' &&
        typeof p.message === 'string' &&
        !/\n\s+at /.test(p.message),
    )
  );
}

/** Text that looks like YAML or JSON often enough to reach deep into a parser. */
const structuredText = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'abc:-[]{},#&*!|>\'"%@`? \n\t0123.'.split('')), maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.json({ maxDepth: 6 }),
  fc.anything({ maxDepth: 4 }).map((v) => {
    try {
      return JSON.stringify(v) ?? '';
    } catch {
      return '';
    }
  }),
);

/** A megabyte of each shape that stalls a careless reader: runs, unclosed openers, long words. */
function adversarial(unit: string, bytes = MB): string {
  return unit.repeat(Math.max(1, Math.floor(bytes / unit.length)));
}

describe('documents (state/yaml-documents.ts)', () => {
  test('parseYamlDocuments never throws and every problem names the file', () => {
    fc.assert(
      fc.property(structuredText, (text) => {
        const r = parseYamlDocuments(text, 'f.yaml');
        return isProblemList(r.problems, 'f.yaml') && isProblemList(r.notices, 'f.yaml') && Array.isArray(r.documents);
      }),
      { numRuns: 2000 },
    );
  });

  test('every document it returns passes the validators without a throw', () => {
    fc.assert(
      fc.property(structuredText, (text) => {
        for (const d of parseYamlDocuments(text, 'f.yaml').documents) {
          if (!isProblemList(validateDocument(d.value, d.label), 'f.yaml')) return false;
        }
        return true;
      }),
      { numRuns: 1000 },
    );
  });

  test.each([
    ['['], ['{'], ['- '], ['? '], ['a: '], [' '], ['#'], ['"'], ["'"], ['\\'], ['&a '], ['*a '], ['!'], ['a:\n  '], ['k: v\n'], ['[a, '], ['"\\u'], ['%YAML 1.2\n'], ['---\n'],
  ])('128 KB of %j finishes with a bounded report', (unit) => {
    // The yaml package spends up to ~30 µs a byte on such text (linear, measured up to 1 MB): an
    // eighth of the file limit keeps this test short and still far past where quadratic work stalls.
    const r = parseYamlDocuments(adversarial(unit, MB / 8), 'big.yaml');
    expect(r.problems.length).toBeLessThanOrEqual(301);
    expect(isProblemList(r.problems, 'big.yaml')).toBe(true);
  });

  test('the nesting pre-scan refuses deep input at once and lets long shallow input through', () => {
    expect(yamlNestingTooDeep(adversarial('[', MB))).toBe(1);
    expect(yamlNestingTooDeep(adversarial('[]', MB))).toBeUndefined();
    expect(yamlNestingTooDeep(adversarial('a: [b]\n', MB))).toBeUndefined();
  });
});

describe('JSON (manifests, catalog indexes)', () => {
  test('parseJsonText never throws; a value comes with no problem, a problem with no value', () => {
    fc.assert(
      fc.property(structuredText, (text) => {
        const r = parseJsonText(text, 'm.json');
        return isProblemList(r.problems, 'm.json') && (r.value === undefined) === r.problems.length > 0;
      }),
      { numRuns: 2000 },
    );
  });

  test('duplicate keys are found exactly when an object repeats a key', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'a\\"', 'd:e'), fc.json({ maxDepth: 2 })), { maxLength: 6 }), (pairs) => {
        const text = `{${pairs.map(([k, v]) => `"${k}": ${v}`).join(', ')}}`;
        const repeated = new Set(pairs.map(([k]) => k)).size < pairs.length;
        // fc.json's values come from JSON.stringify, so their own objects never repeat a key.
        return (duplicateJsonKey(text) !== undefined) === repeated;
      }),
      { numRuns: 1000 },
    );
  });

  test.each([['['], ['{"a":'], ['"'], ['\\'], ['{"a":1,'], [' '], ['"a":1,']])('a megabyte of %j finishes', (unit) => {
    const r = parseJsonText(adversarial(unit, MB - 16), 'm.json');
    expect(isProblemList(r.problems, 'm.json')).toBe(true);
  });
});

describe('manifests (crds/validate-manifest.ts)', () => {
  const example = JSON.parse(readFileSync(path.resolve('examples/store/services/notes/manifest.json'), 'utf8')) as Record<string, unknown>;

  test('validateManifest never throws on any value', () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 5 }), (value) => isProblemList(validateManifest(value, 'manifest.json', policy), 'manifest.json')),
      { numRuns: 1000 },
    );
  });

  test('nor on the example manifest with any field replaced by anything', () => {
    const fields = Object.keys(example);
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.anything({ maxDepth: 4, withNullPrototype: true }), (field, value) => {
        return isProblemList(validateManifest({ ...example, [field]: value }, 'manifest.json', policy), 'manifest.json');
      }),
      { numRuns: 1500 },
    );
  });

  test.each([
    ['env value of "${"', { env: [{ key: 'A', value: adversarial('${', MB / 2) }] }],
    ['peer template of "{"', { peer_config_template: { u: adversarial('{', MB / 2) } }],
    ['peer template of "{peer."', { peer_config_template: { u: adversarial('{peer.service_credentials.', MB / 2) } }],
    ['image of "/"', { image: adversarial('a/', MB / 2) }],
    ['image of "@:"', { image: adversarial('@:', MB / 2) }],
    ['mount of "/.."', { volumes: [{ name: 'v', mount: adversarial('/..', MB / 2) }] }],
    ['backend of ":"', { backend: adversarial('a:', MB / 2) }],
    ['version of "1."', { version: adversarial('1.', MB / 2) }],
  ])('a megabyte %s finishes with short messages', (_name, over) => {
    const problems = validateManifest({ ...example, ...over }, 'manifest.json', policy);
    expect(isProblemList(problems, 'manifest.json')).toBe(true);
    for (const p of problems) expect(p.message.length).toBeLessThanOrEqual(600);
  });
});

describe('the compose subset (render, read, check through checkServicePackage)', () => {
  const dir = path.resolve('examples/store/services/notes');
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
  const template = readFileSync(path.join(dir, 'compose-template.yml'), 'utf8');
  const where = { manifestFile: 'manifest.json', templateFile: 'compose-template.yml', policy };
  const lines = template.split('\n');

  test('the example package renders clean', () => {
    expect(checkServicePackage(manifest, readComposeTemplate(template, where.templateFile), where)).toEqual([]);
  });

  test('any line of the template replaced by generated text yields a problem list, never a throw', () => {
    const replacement = fc.oneof(
      fc.string({ unit: fc.constantFrom(...'abc:-[]{},#&*!|>\'"$%@ \t0123./'.split('')), maxLength: 80 }),
      fc.constantFrom('    privileged: true', '    network_mode: host', '    cap_add: [SYS_ADMIN]', '    volumes: ["/:/host"]', '    image: ${PIC_NOPE}', '    pid: host', '  <<: *x', '    devices: ["/dev/mem"]'),
    );
    fc.assert(
      fc.property(fc.nat({ max: lines.length - 1 }), replacement, (at, text) => {
        const mutated = [...lines.slice(0, at), text, ...lines.slice(at + 1)].join('\n');
        return isProblemList(checkServicePackage(manifest, readComposeTemplate(mutated, where.templateFile), where), 'compose-template.yml', 'manifest.json');
      }),
      { numRuns: 800 },
    );
  });

  test('any template text at all yields a problem list, never a throw', () => {
    fc.assert(
      fc.property(structuredText, (text) => isProblemList(checkServicePackage(manifest, readComposeTemplate(text, where.templateFile), where), 'compose-template.yml', 'manifest.json')),
      { numRuns: 800 },
    );
  });

  test.each([['${'], ['$'], ['${PIC_CFG_'], ['"'], ['a: '], [' '], ['#']])('a long template of %j finishes', (unit) => {
    const text = `${template}\nx-junk: "${adversarial(unit, 100_000).replace(/"/g, "'")}"\n`;
    expect(isProblemList(checkServicePackage(manifest, readComposeTemplate(text, where.templateFile), where), 'compose-template.yml', 'manifest.json')).toBe(true);
  });
});

describe('firewall listings (reconcilers/firewall/observe.ts)', () => {
  test('parseListing and normaliseRule never throw, and normalising is idempotent', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'-A ab"\\\' \t\n'.split('')), maxLength: 200 }), (text) => {
        const rules = parseListing(text);
        return rules.every((r) => normaliseRule(r) === r);
      }),
      { numRuns: 3000 },
    );
  });

  test.each([['"'], ['\\'], [' '], ['"\\'], ['-A x '], ['\t']])('a megabyte of %j finishes', (unit) => {
    expect(Array.isArray(parseListing(adversarial(unit)))).toBe(true);
  });
});

describe('routing listings (reconcilers/egress/observe.ts)', () => {
  test('the ip parsers never throw on any text', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'0123456789: abfromtlkupwg@<>,UP\t\n'.split('')), maxLength: 300 }), (text) => {
        return Array.isArray(parseIpRules(text)) && Array.isArray(parseRoutes(text));
      }),
      { numRuns: 3000 },
    );
  });

  test.each([['1:'], ['1: '], ['1:' + ' '.repeat(100)], [' '], ['table '], ['1: a'], ['1: a@'], ['1: a: <'], ['\t']])('a megabyte of %j finishes', (unit) => {
    const text = adversarial(unit);
    expect(Array.isArray(parseIpRules(text))).toBe(true);
    expect(Array.isArray(parseRoutes(text))).toBe(true);
    // One long line without a newline, the worst case of a per-line regular expression.
    const line = unit.split('\n')[0]! + ' '.repeat(MB);
    expect(Array.isArray(parseIpRules(line))).toBe(true);
    expect(Array.isArray(parseRoutes(line))).toBe(true);
  });
});

describe("Caddy's running config (reconcilers/caddy/observe.ts)", () => {
  test('liveRoutes never throws on any value', () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 6 }), (value) => liveRoutes(value).hosts instanceof Map),
      { numRuns: 2000 },
    );
  });

  test('nor on a config nested 100,000 levels deep', () => {
    let handle: unknown = { dial: 'cell-notes:80' };
    for (let i = 0; i < 100_000; i++) handle = { routes: [{ handle: [handle] }] };
    const config = { apps: { http: { servers: { s: { routes: [{ match: [{ host: ['a.test'] }], handle: [handle] }] } } } } };
    expect(liveRoutes(config).hosts.get('a.test')).toEqual(['cell-notes:80']);
  });

  test('errorText keeps an answer short', () => {
    fc.assert(fc.property(fc.string({ maxLength: 2000 }), (body) => errorText(body).length <= 500));
  });
});

describe('zone serials (reconcilers/dns)', () => {
  const day = fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10).replace(/-/g, ''));
  const previous = fc.oneof(fc.constant(undefined), fc.nat({ max: 0xffffffff }), fc.integer(), fc.double());

  test('nextSerial always gives a 32-bit serial after the previous one (RFC 1982 order)', () => {
    fc.assert(
      fc.property(previous, day, (prev, today) => {
        const next = nextSerial(prev, today);
        if (!Number.isInteger(next) || next < 0 || next > 0xffffffff) return false;
        if (prev === undefined || !Number.isInteger(prev) || prev < 0 || prev > 0xffffffff) return true;
        const diff = (next - prev + 2 ** 32) % 2 ** 32;
        return diff > 0 && diff < 2 ** 31;
      }),
      { numRuns: 5000 },
    );
  });

  test('parseZoneSerial never throws and reads only 32-bit serials', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'@ IN SOA ns1. host. ( 2026120101 3600 )\n;'.split('')), maxLength: 300 }), (text) => {
        const serial = parseZoneSerial(text);
        return serial === undefined || (Number.isInteger(serial) && serial >= 0 && serial <= 0xffffffff);
      }),
      { numRuns: 3000 },
    );
  });

  test.each([['a '], ['@ IN '], [' '], ['a\n'], ['@ 1 '], ['@ IN SOA a ']])('a megabyte of %j finishes', (unit) => {
    const s = parseZoneSerial(adversarial(unit));
    expect(s === undefined || Number.isInteger(s)).toBe(true);
  });
});
