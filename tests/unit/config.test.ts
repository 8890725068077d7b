import { mergeServiceConfig } from '../../crds/config.js';
import type { ConfigField } from '../../crds/types.js';

const schema: Record<string, ConfigField> = {
  port: { type: 'integer', label: 'Port', default: 8080, min: 1024, max: 65535 },
  title: { type: 'string', label: 'Title', default: 'Notes' },
  registration: { type: 'boolean', label: 'Open registration', default: false },
  domain: { type: 'string', label: 'Mail domain', required: true },
};

describe('mergeServiceConfig', () => {
  test.each([
    ['defaults fill what is not given', { domain: 'mail.test' }, { port: 8080, title: 'Notes', registration: false, domain: 'mail.test' }],
    ['given values win over defaults', { domain: 'd', port: 9000, title: 'Mine', registration: true }, { port: 9000, title: 'Mine', registration: true, domain: 'd' }],
    ['bounds are inclusive', { domain: 'd', port: 1024 }, { port: 1024, title: 'Notes', registration: false, domain: 'd' }],
  ])('%s', (_name, given, expected) => {
    const r = mergeServiceConfig(schema, given, 'f.yaml');
    expect(r.problems).toEqual([]);
    expect(r.config).toEqual(expected);
  });

  test.each([
    ['unknown key', { domain: 'd', colour: 'red' }, '/spec/config/colour', 'not a setting'],
    ['required missing', {}, '/spec/config/domain', 'required'],
    ['required empty string', { domain: '' }, '/spec/config/domain', 'must not be empty'],
    ['integer given a string', { domain: 'd', port: '8080' }, '/spec/config/port', 'must be an integer'],
    ['integer given a float', { domain: 'd', port: 80.5 }, '/spec/config/port', 'must be an integer'],
    ['below min', { domain: 'd', port: 80 }, '/spec/config/port', 'at least 1024'],
    ['above max', { domain: 'd', port: 70000 }, '/spec/config/port', 'at most 65535'],
    ['boolean given a string', { domain: 'd', registration: 'yes' }, '/spec/config/registration', 'true or false'],
    ['string given a number', { domain: 5 }, '/spec/config/domain', 'must be a string'],
    ['key with a slash is escaped', { domain: 'd', 'a/b': 1 }, '/spec/config/a~1b', 'not a setting'],
  ])('%s', (_name, given, pointer, fragment) => {
    const r = mergeServiceConfig(schema, given, 'f.yaml');
    expect(r.problems).toEqual([expect.objectContaining({ file: 'f.yaml', pointer, message: expect.stringContaining(fragment) })]);
  });

  test('a service without settings refuses any', () => {
    const r = mergeServiceConfig(undefined, { port: 1 }, 'f.yaml');
    expect(r.problems[0]?.message).toContain('has no configurable settings');
  });
});
