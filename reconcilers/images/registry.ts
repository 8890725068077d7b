/**
 * A client of the OCI distribution API, enough to verify signatures: manifests by tag or digest,
 * blobs, tag lists and the referrers API, with the bearer-token dance a registry starts by
 * answering 401 with `WWW-Authenticate`.
 *
 * Every answer a digest names is checked against it, so a registry (or a mirror) cannot hand
 * over other bytes than the ones asked for.
 */
import { createHash } from 'node:crypto';
import type { CredentialLookup } from './credentials.js';
import type { RegistryEndpoint } from './reference.js';
import { rawRequest, TransportError, type RawAnswer } from './transport.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const MANIFEST_ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(', ');

/** The registry could not be asked, or answered with a fault (5xx, refused credentials). Retry. */
export class RegistryUnreachableError extends Error {
  override readonly name = 'RegistryUnreachableError';
}

/** The registry answered, but with something that is not what the protocol promises. */
export class RegistryProtocolError extends Error {
  override readonly name = 'RegistryProtocolError';
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  manifest: Manifest;
}

export interface RegistryClientOptions {
  credentials?: CredentialLookup;
  timeoutMs?: number;
  /** Called once per HTTP request sent, token requests included (benchmarks and tests count them). */
  onRequest?: (url: string) => void;
}

const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;
const BLOB_MAX_BYTES = 16 * 1024 * 1024;

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** `Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"` → its parts. Pure. */
export function parseAuthenticate(header: string): Challenge | undefined {
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g;
  for (let m = re.exec(match[2] ?? ''); m; m = re.exec(match[2] ?? '')) params[(m[1] as string).toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: (match[1] as string).toLowerCase(), params };
}

export class RegistryClient {
  private readonly authorization = new Map<string, string>();
  private readonly timeoutMs: number;

  constructor(
    readonly endpoint: RegistryEndpoint,
    private readonly options: RegistryClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 15_000;
  }

  /** A manifest by tag or digest; undefined when the registry has none by that name. */
  async manifest(repository: string, reference: string): Promise<FetchedManifest | undefined> {
    const answer = await this.get(repository, `/v2/${repository}/manifests/${reference}`, MANIFEST_ACCEPT, MANIFEST_MAX_BYTES);
    if (answer.status === 404) return undefined;
    this.expectOk(answer, `manifest ${repository}:${reference}`);
    const digest = sha256Digest(answer.body);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new RegistryProtocolError(`${this.endpoint.host} answered ${repository}@${reference} with a manifest whose digest is ${digest}`);
    }
    const manifest = parseJsonObject(answer.body, `manifest ${repository}:${reference}`) as Manifest;
    const mediaType = manifest.mediaType ?? String(answer.headers['content-type'] ?? '').split(';')[0] ?? '';
    return { digest, mediaType, bytes: answer.body, manifest };
  }

  /** A blob's bytes, checked against its digest; undefined when the registry has none. */
  async blob(repository: string, digest: string, maxBytes = BLOB_MAX_BYTES): Promise<Buffer | undefined> {
    const answer = await this.get(repository, `/v2/${repository}/blobs/${digest}`, '*/*', maxBytes);
    if (answer.status === 404) return undefined;
    this.expectOk(answer, `blob ${repository}@${digest}`);
    const got = sha256Digest(answer.body);
    if (got !== digest) throw new RegistryProtocolError(`${this.endpoint.host} answered blob ${digest} of ${repository} with bytes whose digest is ${got}`);
    return answer.body;
  }

  async tags(repository: string): Promise<string[]> {
    const answer = await this.get(repository, `/v2/${repository}/tags/list`, 'application/json', MANIFEST_MAX_BYTES);
    if (answer.status === 404) return [];
    this.expectOk(answer, `tags of ${repository}`);
    const tags = (parseJsonObject(answer.body, `tags of ${repository}`) as { tags?: unknown }).tags;
    return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
  }

  /**
   * The referrers of a manifest through the referrers API (OCI distribution 1.1), or undefined
   * when the registry has no such API (it answers 404, as distribution 2.8 does): the caller then
   * reads the `sha256-<hex>` tag the referrers tag schema keeps instead.
   */
  async referrers(repository: string, digest: string, artifactType?: string): Promise<Descriptor[] | undefined> {
    const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
    const answer = await this.get(repository, `/v2/${repository}/referrers/${digest}${query}`, OCI_INDEX, MANIFEST_MAX_BYTES);
    // Registries without the API answer it in several ways (distribution 2.8: 404; others 400, 405, 501).
    if ([400, 404, 405, 406, 501].includes(answer.status)) return undefined;
    this.expectOk(answer, `referrers of ${repository}@${digest}`);
    const contentType = String(answer.headers['content-type'] ?? '').split(';')[0];
    if (contentType !== OCI_INDEX) return undefined; // not the referrers API, whatever it is
    return descriptorsOf(parseJsonObject(answer.body, `referrers of ${repository}@${digest}`));
  }

  private expectOk(answer: RawAnswer, what: string): void {
    if (answer.status >= 200 && answer.status < 300) return;
    const detail = answer.body.toString('utf8').slice(0, 200).trim();
    const message = `${this.endpoint.host} answered ${answer.status} for ${what}${detail ? `: ${detail}` : ''}`;
    if (answer.status >= 500 || answer.status === 401 || answer.status === 403 || answer.status === 429) throw new RegistryUnreachableError(message);
    throw new RegistryProtocolError(message);
  }

  private async get(repository: string, path: string, accept: string, maxBytes: number): Promise<RawAnswer> {
    const scope = `repository:${repository}:pull`;
    const url = `${this.endpoint.baseUrl}${path}`;
    let answer = await this.send(url, accept, maxBytes, this.authorization.get(scope));
    if (answer.status === 401) {
      const challenge = parseAuthenticate(String(answer.headers['www-authenticate'] ?? ''));
      const authorization = challenge ? await this.authorize(challenge, scope) : undefined;
      if (authorization) {
        this.authorization.set(scope, authorization);
        answer = await this.send(url, accept, maxBytes, authorization);
      }
    }
    return answer;
  }

  private async send(url: string, accept: string, maxBytes: number, authorization?: string): Promise<RawAnswer> {
    this.options.onRequest?.(url);
    try {
      return await rawRequest(url, { headers: { accept, 'user-agent': 'pic', ...(authorization ? { authorization } : {}) }, timeoutMs: this.timeoutMs, maxBytes });
    } catch (err) {
      if (err instanceof TransportError && err.code !== 'ETOOLARGE') throw new RegistryUnreachableError(`cannot reach the registry ${this.endpoint.host}: ${err.message}`);
      throw new RegistryProtocolError((err as Error).message);
    }
  }

  /** The Authorization header a challenge asks for, from the Docker credentials if any. */
  private async authorize(challenge: Challenge, scope: string): Promise<string | undefined> {
    const credential = await this.options.credentials?.(this.endpoint.host);
    const basic = credential?.username !== undefined ? `Basic ${Buffer.from(`${credential.username}:${credential.password ?? ''}`).toString('base64')}` : undefined;
    if (challenge.scheme === 'basic') return basic;
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) return undefined;
    const realm = new URL(challenge.params.realm);
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && this.endpoint.baseUrl.startsWith('http:'))) {
      throw new RegistryUnreachableError(`${this.endpoint.host} sends credentials to ${realm.origin} over plain HTTP; refusing`);
    }
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', challenge.params.scope ?? scope);
    this.options.onRequest?.(realm.href);
    let answer: RawAnswer;
    try {
      answer = await rawRequest(realm.href, { headers: { accept: 'application/json', 'user-agent': 'pic', ...(basic ? { authorization: basic } : {}) }, timeoutMs: this.timeoutMs, maxBytes: 1024 * 1024 });
    } catch (err) {
      throw new RegistryUnreachableError(`cannot get a token from ${realm.origin} for ${this.endpoint.host}: ${(err as Error).message}`);
    }
    if (answer.status !== 200) throw new RegistryUnreachableError(`${realm.origin} refused a token for ${scope} on ${this.endpoint.host} (${answer.status})${credential ? '' : '; no credentials for it in the Docker credentials file'}`);
    const body = parseJsonObject(answer.body, `token from ${realm.origin}`) as { token?: unknown; access_token?: unknown };
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new RegistryProtocolError(`${realm.origin} answered without a token`);
    return `Bearer ${token}`;
  }
}

function parseJsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new RegistryProtocolError(`${what} is not JSON: ${(err as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new RegistryProtocolError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** The well-formed descriptors of an index; others are dropped. */
export function descriptorsOf(index: Manifest): Descriptor[] {
  const list = Array.isArray(index.manifests) ? index.manifests : [];
  return list.filter((d): d is Descriptor => !!d && typeof d === 'object' && typeof d.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(d.digest) && typeof d.mediaType === 'string');
}
