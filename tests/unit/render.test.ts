import fc from 'fast-check';
import { MAX_TEMPLATE_BYTES, renderComposeText, templateSecretNames, type RenderContext } from '../../reconcilers/containers/render.js';
import { readComposeTemplate } from '../../state/compose-template.js';

const FILE = 'store/services/notes/compose-template.yml';

const ctx: RenderContext = {
  domain: 'alice.pic.ngo',
  cellName: 'alice',
  dataDir: '/srv/pic/data',
  serviceId: 'notes',
  config: { port: 8080, allow_signup: true, title: 'My notes', maxUsers: 5 },
  secrets: { DB_PASSWORD: 'Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3Jh', api_key: 'a-b_c' },
  serviceIp: '172.20.0.20',
  instanceId: 'i7',
};

/** Render a one-value template and return the rendered value of `v`. */
function renderValue(scalarYaml: string, context: RenderContext = ctx) {
  const result = renderComposeText(`v: ${scalarYaml}\n`, context, FILE);
  return { value: result.compose?.v, problems: result.problems };
}

describe('renderComposeTemplate: variables', () => {
  test.each([
    ['${PIC_DOMAIN}', 'alice.pic.ngo'],
    ['${PIC_CELL_NAME}', 'alice'],
    ['${PIC_DATA_DIR}', '/srv/pic/data'],
    ['${PIC_SERVICE_ID}', 'notes'],
    ['${PIC_CFG_PORT}', '8080'],
    ['${PIC_CFG_ALLOW_SIGNUP}', 'true'],
    ['"${PIC_CFG_TITLE}"', 'My notes'],
    ['${PIC_CFG_MAXUSERS}', '5'],
    ['${PIC_SECRET_DB_PASSWORD}', 'Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3Jh'],
    ['${PIC_SECRET_api_key}', 'a-b_c'],
    ['${SERVICE_IP}', '172.20.0.20'],
    ['${INSTANCE_ID}', 'i7'],
    ['$PIC_DOMAIN', 'alice.pic.ngo'],
    ['https://${PIC_SERVICE_ID}.${PIC_DOMAIN}:${PIC_CFG_PORT}/x', 'https://notes.alice.pic.ngo:8080/x'],
    ['"$${NOT_SUBSTITUTED}"', '${NOT_SUBSTITUTED}'],
    ['"$${PIC_DOMAIN}"', '${PIC_DOMAIN}'],
    ['"cost: 5$$"', 'cost: 5$'],
    ['"a $ b"', 'a $ b'],
    ['"ends with $"', 'ends with $'],
    ['"$1 and $-"', '$1 and $-'],
    ['plain', 'plain'],
  ])('%s renders as %j', (yamlScalar, expected) => {
    const { value, problems } = renderValue(yamlScalar);
    expect(problems).toEqual([]);
    expect(value).toBe(expected);
  });

  test('non-string scalars are kept as they are', () => {
    const result = renderComposeText('a: 1\nb: true\nc: null\nd: 1.5\n', ctx, FILE);
    expect(result.problems).toEqual([]);
    expect(result.compose).toEqual({ a: 1, b: true, c: null, d: 1.5 });
  });

  test('mapping keys are rendered too', () => {
    const result = renderComposeText('labels:\n  "ngo.example/${PIC_SERVICE_ID}": "${PIC_DOMAIN}"\n', ctx, FILE);
    expect(result.problems).toEqual([]);
    expect(result.compose).toEqual({ labels: { 'ngo.example/notes': 'alice.pic.ngo' } });
  });

  test('a value holding YAML syntax stays one string: no injection', () => {
    const evil: RenderContext = { ...ctx, config: { title: 'x\nprivileged: true\nimage: evil: "1"\n- [a' } };
    const result = renderComposeText('services:\n  a:\n    environment:\n      TITLE: ${PIC_CFG_TITLE}\n', evil, FILE);
    expect(result.problems).toEqual([]);
    expect(result.compose).toEqual({ services: { a: { environment: { TITLE: evil.config.title } } } });
  });

  test('substituted values are not scanned again', () => {
    const tricky: RenderContext = { ...ctx, config: { title: '${PIC_SECRET_DB_PASSWORD} $$' } };
    expect(renderValue('${PIC_CFG_TITLE}', tricky)).toEqual({ value: '${PIC_SECRET_DB_PASSWORD} $$', problems: [] });
  });

  test('anchors and merge keys work within the alias limit', () => {
    const template = 'x-base: &base\n  restart: always\nservices:\n  a:\n    <<: *base\n    image: "${PIC_DOMAIN}"\n  b:\n    <<: *base\n';
    const result = renderComposeText(template, ctx, FILE);
    expect(result.problems).toEqual([]);
    expect(result.compose?.services).toEqual({ a: { restart: 'always', image: 'alice.pic.ngo' }, b: { restart: 'always' } });
  });

  test('a "__proto__" key is an ordinary key, not the prototype', () => {
    const result = renderComposeText('"__proto__":\n  polluted: "${PIC_DOMAIN}"\n', ctx, FILE);
    expect(result.problems).toEqual([]);
    expect(Object.keys(result.compose ?? {})).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(result.compose)).toBe(Object.prototype);
  });
});

describe('renderComposeTemplate: problems', () => {
  test.each<[string, string, RegExp, RenderContext | null]>([
    ['unknown config key', '${PIC_CFG_COLOR}', /config key "color".*not in the service's config_schema.*PIC_CFG_PORT/, null],
    ['empty config key', '${PIC_CFG_}', /config key ""/, null],
    ['config key with no schema', '${PIC_CFG_PORT}', /declares no config_schema/, { ...ctx, config: {} }],
    ['unknown PIC_ variable', '${PIC_FOO}', /\$\{PIC_FOO\} is not a pic variable; known:/, null],
    ['misspelt PIC_ variable, unbraced', '$PIC_DOMIAN', /\$\{PIC_DOMIAN\} is not a pic variable/, null],
    ['missing secret', '${PIC_SECRET_API_TOKEN}', /secret "API_TOKEN" has not been generated/, null],
    ['secret name is case-sensitive', '${PIC_SECRET_db_password}', /secret "db_password" has not been generated/, null],
    ['empty secret name', '${PIC_SECRET_}', /names no secret/, null],
    ['INSTANCE_ID without an instance', '${INSTANCE_ID}', /only set for instanceable connectivity services/, { ...ctx, instanceId: undefined }],
    ['SERVICE_IP without an allocation', '${SERVICE_IP}', /no service IP has been allocated/, { ...ctx, serviceIp: '' }],
    ['host environment, braced', '${HOME}', /\$\{HOME\} is not a pic variable: Compose would read it from the host environment.*"\$\$\{HOME\}"/, null],
    ['host environment, unbraced', '"echo $USER"', /\$\{USER\} is not a pic variable: Compose would read it from the host environment/, null],
    ['default modifier', '${PIC_DOMAIN:-example.org}', /modifiers .* are not supported by pic/, null],
    ['required modifier', '${PIC_DOMAIN?missing}', /modifiers .* are not supported by pic/, null],
    ['empty braces', '"${}"', /"\$\{\}" is not a valid variable reference/, null],
    ['invalid name', '"${1ABC}"', /not a valid variable reference/, null],
    ['unterminated', '"${PIC_DOMAIN"', /never closes it/, null],
  ])('%s', (_name, yamlScalar, message, context) => {
    const { value, problems } = renderValue(yamlScalar, context ?? ctx);
    expect(value).toBeUndefined();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: FILE, pointer: '/v' });
    expect(problems[0]?.message).toMatch(message);
  });

  test('every problem is collected, each with the JSON pointer of its scalar', () => {
    const template = [
      'services:',
      '  app:',
      '    environment:',
      '      - A=${PIC_FOO}',
      '      - B=${PIC_CFG_NOPE} ${HOME}',
      '    labels:',
      '      "a/b~c": ${PIC_SECRET_X}',
      '      "${PIC_BAR}": fine',
      '',
    ].join('\n');
    const { compose, problems } = renderComposeText(template, ctx, FILE);
    expect(compose).toBeUndefined();
    expect(problems.map((p) => [p.pointer, p.message.slice(0, 20)])).toEqual([
      ['/services/app/environment/0', '${PIC_FOO} is not a '],
      ['/services/app/environment/1', '${PIC_CFG_NOPE} refe'],
      ['/services/app/environment/1', '${HOME} is not a pic'],
      ['/services/app/labels/a~1b~0c', '${PIC_SECRET_X}: sec'],
      ['/services/app/labels/${PIC_BAR}', '${PIC_BAR} is not a '],
    ]);
    expect(problems.every((p) => p.file === FILE)).toBe(true);
  });

  test('two keys rendering to the same key', () => {
    const { problems } = renderComposeText('a:\n  "${PIC_SERVICE_ID}": 1\n  notes: 2\n', ctx, FILE);
    expect(problems).toEqual([{ file: FILE, pointer: '/a/notes', message: expect.stringMatching(/another key of the same mapping/) }]);
  });

  test.each([
    ['invalid YAML', 'services: [a\n', /not valid YAML/],
    ['duplicate keys', 'a: 1\na: 2\n', /not valid YAML.*[Uu]nique/],
    ['several documents', 'a: 1\n---\nb: 2\n', /holds 2 YAML documents/],
    ['a list at the top', '- a\n', /must be a mapping/],
    ['a scalar at the top', 'hello\n', /must be a mapping/],
    ['an empty file', '', /must be a mapping/],
    ['an unknown tag', 'a: !!binary aGVsbG8=\n', /YAML/],
  ])('%s is a problem, not an exception', (_name, template, message) => {
    const { compose, problems } = renderComposeText(template, ctx, FILE);
    expect(compose).toBeUndefined();
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]?.file).toBe(FILE);
    expect(problems.map((p) => p.message).join('\n')).toMatch(message);
  });

  test('an alias bomb is refused', () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i += 1) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const { compose, problems } = renderComposeText(`${lines.join('\n')}\n`, ctx, FILE);
    expect(compose).toBeUndefined();
    expect(problems).toEqual([{ file: FILE, pointer: '', message: expect.stringMatching(/alias/) }]);
  });

  test('a template over 1 MiB is refused before parsing', () => {
    const big = `a: "${'x'.repeat(MAX_TEMPLATE_BYTES)}"\n`;
    const { compose, problems } = renderComposeText(big, ctx, FILE);
    expect(compose).toBeUndefined();
    expect(problems).toEqual([{ file: FILE, pointer: '', message: expect.stringMatching(/over the 1048576-byte limit/) }]);
  });
});

describe('templateSecretNames', () => {
  test.each<[string, string, string[]]>([
    ['none', 'a: ${PIC_DOMAIN}\n', []],
    ['sorted and unique', 'a: ${PIC_SECRET_ZED} ${PIC_SECRET_ALPHA}\nb: ${PIC_SECRET_ZED}\n', ['ALPHA', 'ZED']],
    ['unbraced', 'a: "$PIC_SECRET_TOKEN"\n', ['TOKEN']],
    ['in keys', '"${PIC_SECRET_KEY}": 1\n', ['KEY']],
    ['in lists', 'a: [x, "${PIC_SECRET_IN_LIST}"]\n', ['IN_LIST']],
    ['escaped ones do not count', 'a: "$${PIC_SECRET_NOT}"\n', []],
    ['comments do not count', '# ${PIC_SECRET_COMMENT}\na: 1\n', []],
    ['case is kept', 'a: ${PIC_SECRET_db_Pass}\n', ['db_Pass']],
    ['an empty name is not a secret', 'a: ${PIC_SECRET_}\n', []],
    ['an unparsable template has none', 'a: [${PIC_SECRET_X}\n', []],
  ])('%s', (_name, template, expected) => {
    expect(templateSecretNames(readComposeTemplate(template, FILE))).toEqual(expected);
  });

  test('names returned are exactly what rendering needs', () => {
    const template = 'a: ${PIC_SECRET_ONE}\nb: "${PIC_SECRET_TWO}"\n';
    const secrets = Object.fromEntries(templateSecretNames(readComposeTemplate(template, FILE)).map((n) => [n, `value-of-${n}`]));
    expect(renderComposeText(template, { ...ctx, secrets }, FILE)).toEqual({
      compose: { a: 'value-of-ONE', b: 'value-of-TWO' },
      problems: [],
    });
  });
});

describe('renderComposeTemplate: properties', () => {
  const fragments = fc.constantFrom(
    '$', '$$', '${', '}', '${PIC_DOMAIN}', '${PIC_CFG_PORT}', '${PIC_SECRET_X}', '${PIC_', '$HOME', '${A:-b}',
    ': ', '\n', '  ', '- ', '&a ', '*a', '<<: ', '[', ']', '{', '}', '"', "'", '#', '!!', '? ', '|', '>', '---', 'key', 'x',
  );
  const templates = fc.oneof(fc.string(), fc.array(fragments, { maxLength: 40 }).map((parts) => parts.join('')));

  test('rendering never throws, whatever the template', () => {
    fc.assert(
      fc.property(templates, (template) => {
        const result = renderComposeText(template, ctx, FILE);
        expect(Array.isArray(result.problems)).toBe(true);
        if (result.compose === undefined) expect(result.problems.length).toBeGreaterThan(0);
        else expect(result.problems).toEqual([]);
        expect(() => templateSecretNames(readComposeTemplate(template, FILE))).not.toThrow();
      }),
      { numRuns: 2000 },
    );
  });

  test('any config value comes out verbatim as one string', () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        const result = renderComposeText('services:\n  a:\n    environment:\n      V: ${PIC_CFG_V}\n', { ...ctx, config: { v: value } }, FILE);
        expect(result.problems).toEqual([]);
        expect(result.compose).toEqual({ services: { a: { environment: { V: value } } } });
      }),
    );
  });
});
