import { pointerOf } from './json-pointer.js';
import { cut, quoted } from './problem-limit.js';
import type { ConfigField, Problem } from './types.js';

export type ConfigValue = string | number | boolean;

/**
 * Check a ServiceInstall's `spec.config` against its manifest's `config_schema` and fill in the
 * defaults. Every problem names the field under `pointerBase` (normally `/spec/config`).
 */
export function mergeServiceConfig(
  schema: Record<string, ConfigField> | undefined,
  given: Record<string, unknown> | undefined,
  file: string,
  pointerBase = '/spec/config',
): { config: Record<string, ConfigValue>; problems: Problem[] } {
  const problems: Problem[] = [];
  const config: Record<string, ConfigValue> = {};
  const fields = schema ?? {};
  const values = given ?? {};
  const at = (key: string) => `${pointerBase}${pointerOf(key)}`;

  for (const key of Object.keys(values).sort()) {
    if (!Object.prototype.hasOwnProperty.call(fields, key)) {
      const known = Object.keys(fields).sort();
      problems.push({
        file,
        pointer: at(key),
        message: known.length
          ? `${quoted(key)} is not a setting of this service; it accepts: ${known.join(', ')}`
          : `${quoted(key)} is not a setting of this service; it has no configurable settings`,
      });
    }
  }

  for (const key of Object.keys(fields).sort()) {
    const field = fields[key]!;
    const has = Object.prototype.hasOwnProperty.call(values, key) && values[key] !== null && values[key] !== undefined;
    const value = has ? values[key] : field.default;
    if (value === undefined || value === null) {
      if (field.required) problems.push({ file, pointer: at(key), message: `${quoted(key)} (${field.label}) is required and has no default; set it` });
      continue;
    }
    const problem = checkConfigValue(field, value);
    if (problem) {
      problems.push({ file, pointer: has ? at(key) : at(key), message: has ? problem : `default of ${quoted(key)}: ${problem}` });
      continue;
    }
    if (field.required && field.type === 'string' && value === '') {
      problems.push({ file, pointer: at(key), message: `${quoted(key)} (${field.label}) is required and must not be empty` });
      continue;
    }
    config[key] = value as ConfigValue;
  }
  return { config, problems };
}

function checkConfigValue(field: ConfigField, value: unknown): string | undefined {
  switch (field.type) {
    case 'string':
      return typeof value === 'string' ? undefined : `must be a string, got ${describe(value)}`;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `must be true or false, got ${describe(value)}`;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) return `must be an integer, got ${describe(value)}`;
      if (field.min !== undefined && value < field.min) return `must be at least ${field.min}, got ${value}`;
      if (field.max !== undefined && value > field.max) return `must be at most ${field.max}, got ${value}`;
      return undefined;
    default:
      return `has an unknown type in the manifest's config_schema`;
  }
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'string') return `the string ${quoted(value)}`;
  if (typeof value === 'object') return 'a mapping';
  // Objects, null and strings are described above: what is left is a number, a boolean or undefined.
  const scalar = value as number | boolean | undefined;
  return `${typeof value} ${cut(String(scalar))}`;
}
