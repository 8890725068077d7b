/**
 * Registry credentials from the Docker client's credentials file, the same one `docker login`
 * writes: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Only inline `auths`
 * entries are read; credential helpers (`credsStore`, `credHelpers`) are external programs this
 * operator does not run.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileSignature, sameSignature, type FileSignature } from '../../state/atomic-write.js';

export interface RegistryCredential {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`identitytoken`), exchanged for an access token. */
  identityToken?: string;
}

export type CredentialLookup = (host: string) => Promise<RegistryCredential | undefined>;

export function dockerConfigFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
}

/** Parse a config.json's text; entries that cannot be read are skipped. Pure. */
export function credentialsFromDockerConfig(text: string): Map<string, RegistryCredential> {
  const out = new Map<string, RegistryCredential>();
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    return out;
  }
  const auths = (config as { auths?: unknown })?.auths;
  if (!auths || typeof auths !== 'object') return out;
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (!entry || typeof entry !== 'object') continue;
    const host = key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    const e = entry as { auth?: unknown; identitytoken?: unknown; username?: unknown; password?: unknown };
    const credential: RegistryCredential = {};
    if (typeof e.auth === 'string' && e.auth !== '') {
      const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        credential.username = decoded.slice(0, colon);
        credential.password = decoded.slice(colon + 1);
      }
    } else if (typeof e.username === 'string' && typeof e.password === 'string') {
      credential.username = e.username;
      credential.password = e.password;
    }
    if (typeof e.identitytoken === 'string' && e.identitytoken !== '') credential.identityToken = e.identitytoken;
    if (credential.username !== undefined || credential.identityToken !== undefined) out.set(host === 'index.docker.io' ? 'registry-1.docker.io' : host, credential);
  }
  return out;
}

/** Look credentials up in the Docker credentials file, read again whenever it changed (one stat a look-up). */
export function dockerCredentials(file = dockerConfigFile()): CredentialLookup {
  let known: { signature: FileSignature | undefined; credentials: Map<string, RegistryCredential> } | undefined;
  return async (host) => {
    const signature = await fileSignature(file).catch(() => undefined);
    if (!known || !sameSignature(known.signature, signature)) {
      const text = signature ? await fs.readFile(file, 'utf8').catch(() => '') : '';
      known = { signature, credentials: credentialsFromDockerConfig(text) };
    }
    return known.credentials.get(host);
  };
}
