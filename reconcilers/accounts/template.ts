/**
 * Fill a manifest's `peer_config_template` (pure): what a peer's device needs to use its account.
 *
 *   {domain}                                   the cell's domain
 *   {peer.username}                            the peer's name, percent-encoded (nothing left unencoded)
 *   {peer.service_credentials.<id>.<field>}    a stored credential of the peer on service <id>
 *   {config.<key>}                             a value of the service's merged config
 *
 * Substitution is one pass: a value that itself contains "{...}" is not expanded again. A token
 * whose value is missing, or that is not one of the four forms, is an error listing every such
 * token, so a peer never receives a half-filled "{...}". Errors name tokens, never values.
 */
import type { ConfigValue } from '../../crds/config.js';
import type { Manifest } from '../../crds/types.js';

export interface PeerConfigInput {
  /** The cell's domain. */
  domain: string;
  /** The peer's name (the PeerAccount's metadata.name). */
  peer: string;
  /** The peer's stored credentials per service: `{ <service>: { <field>: value } }`. */
  credentials: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** The service's merged config. */
  config: Readonly<Record<string, ConfigValue>>;
}

export class PeerConfigError extends Error {
  override readonly name = 'PeerConfigError';
  constructor(
    readonly service: string,
    /** Each token that could not be filled, with why, e.g. `{config.domain}: no such setting`. */
    readonly problems: string[],
  ) {
    super(`peer_config_template of ${service} cannot be filled: ${problems.join('; ')}`);
  }
}

/** A token: braces around a dotted name. Other braces are left as they are. */
const TOKEN = /\{([A-Za-z0-9_.-]+)\}/g;

/**
 * Percent-encode every character outside A-Z a-z 0-9 - _ . ~ (like Python's quote with safe=''):
 * encodeURIComponent leaves ! ' ( ) * alone, so those are encoded too.
 */
export function encodeUsername(name: string): string {
  return encodeURIComponent(name).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

function resolveToken(token: string, input: PeerConfigInput): { value: string } | { problem: string } {
  if (token === 'domain') return input.domain === '' ? { problem: 'the cell has no domain' } : { value: input.domain };
  if (token === 'peer.username') return { value: encodeUsername(input.peer) };
  const cred = /^peer\.service_credentials\.([^.]+)\.([^.]+)$/.exec(token);
  if (cred) {
    const [, service, field] = cred as unknown as [string, string, string];
    const creds = own(input.credentials, service);
    if (creds === undefined) return { problem: `no credentials of ${input.peer} on ${service}` };
    const value = own(creds, field);
    return value === undefined ? { problem: `no credential field "${field}" of ${input.peer} on ${service}` } : { value };
  }
  const config = /^config\.([^.]+)$/.exec(token);
  if (config) {
    const value = own(input.config, config[1] as string);
    return value === undefined ? { problem: 'no such setting in the service config' } : { value: String(value) };
  }
  return { problem: 'not a known token (use {domain}, {peer.username}, {peer.service_credentials.<id>.<field>} or {config.<key>})' };
}

/**
 * The filled template of `manifest` for one peer, keys in the template's order. Without a
 * template, the peer's raw credentials on the service. Throws PeerConfigError when a token
 * cannot be filled.
 */
export function fillPeerConfig(manifest: Pick<Manifest, 'id' | 'peer_config_template'>, input: PeerConfigInput): Record<string, string> {
  const template = manifest.peer_config_template;
  const result: Record<string, string> = {};
  const set = (key: string, value: string) => Object.defineProperty(result, key, { value, enumerable: true, writable: true, configurable: true });
  if (template === undefined) {
    const raw = own(input.credentials, manifest.id);
    if (raw === undefined) throw new PeerConfigError(manifest.id, [`no credentials of ${input.peer} on ${manifest.id}`]);
    for (const [k, v] of Object.entries(raw)) set(k, v);
    return result;
  }
  const problems: string[] = [];
  for (const [key, text] of Object.entries(template)) {
    set(
      key,
      text.replace(TOKEN, (whole, token: string) => {
        const resolved = resolveToken(token, input);
        if ('value' in resolved) return resolved.value;
        problems.push(`${key}: {${token}}: ${resolved.problem}`);
        return whole;
      }),
    );
  }
  if (problems.length > 0) throw new PeerConfigError(manifest.id, problems);
  return result;
}
