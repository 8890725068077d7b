/**
 * The long-lived side of verification: the cache in the state directory, the registry clients
 * (and the tokens they hold), the credentials file. `verify` answers from the cache when this
 * digest verified before with these keys, and asks the registry otherwise.
 */
import path from 'node:path';
import { FileMemo } from '../../state/file-memo.js';
import { VerificationCache } from '../../state/verification-cache.js';
import { dockerCredentials, type CredentialLookup } from './credentials.js';
import { keySetId, readPublicKeySync, type TrustedKey } from './keys.js';
import { parse as parseYaml } from 'yaml';
import { parseImageReference } from '../../crds/image-reference.js';
import { byText } from '../../crds/values.js';
import { repositoryName, type RegistryEndpoint, type RegistrySettings } from './reference.js';
import { RegistryClient } from './registry.js';
import type { Verdict, Verified } from './verdict.js';
import { verifyImage } from './verify.js';

/** One per operator state directory. */
export class ImageVerifier {
  readonly cache: VerificationCache;
  private readonly clients = new Map<string, RegistryClient>();
  /** Registry requests sent, token requests included. */
  requests = 0;
  /**
   * A resync asks for the keys and the images of every service on every pass; reading and
   * parsing them each time would cost more than the rest of a no-op pass. Keys are read again
   * when their file changes, templates are parsed once per text.
   */
  private readonly keyFiles = new FileMemo<TrustedKey>(1000);
  private readonly templates = new Map<string, TemplateContainer[]>();

  constructor(
    stateRoot: string,
    readonly credentials: CredentialLookup = dockerCredentials(),
    private readonly timeoutMs = 10_000,
    /** `dryRun` (`pic plan`): the cache is read, never written; a fresh verdict is not kept. */
    private readonly options: { dryRun?: boolean } = {},
  ) {
    this.cache = new VerificationCache(path.join(stateRoot, 'images', 'verified.json'));
  }

  clientFor = (endpoint: RegistryEndpoint): RegistryClient => {
    const known = this.clients.get(endpoint.baseUrl);
    if (known) return known;
    const client = new RegistryClient(endpoint, { credentials: this.credentials, timeoutMs: this.timeoutMs, onRequest: () => void this.requests++ });
    this.clients.set(endpoint.baseUrl, client);
    return client;
  };

  /** The keys in `files`, in that order; an unreadable file throws an error naming it. */
  keys(files: readonly string[]): TrustedKey[] {
    return files.map((file) => this.keyFiles.get([file], 'public-key', () => readPublicKeySync(file)));
  }

  /** The containers a compose template declares and the image each runs (see templateContainers). */
  containersOf(template: string): readonly TemplateContainer[] {
    let containers = this.templates.get(template);
    if (!containers) {
      containers = templateContainers(template);
      if (this.templates.size >= 5000) this.templates.clear();
      this.templates.set(template, containers);
    }
    return containers;
  }

  /** Verify `reference`, from the cache when this digest verified before with these keys. */
  async verify(reference: string, keys: readonly TrustedKey[], settings: RegistrySettings): Promise<{ verdict: Verdict; cached: boolean }> {
    const image = parseImageReference(reference);
    const keySet = keySetId(keys);
    if (image?.digest && keys.length > 0) {
      const hit = await this.cache.get(repositoryName(image), image.digest, keySet);
      // The key that verified must still be in the set (the set id says so, but be plain about it).
      if (hit && keys.some((k) => k.id === hit.keyId)) {
        return { verdict: { ok: true, reference, digest: hit.digest, keyId: hit.keyId, keyFile: hit.keyFile, format: hit.format as Verified['format'], transparencyLog: hit.transparencyLog }, cached: true };
      }
    }
    const verdict = await verifyImage(reference, { keys, settings, clientFor: this.clientFor });
    if (verdict.ok && image && !this.options.dryRun) {
      await this.cache.put({ repository: repositoryName(image), digest: verdict.digest, keySet, keyId: verdict.keyId, keyFile: verdict.keyFile, format: verdict.format, transparencyLog: verdict.transparencyLog, verifiedAt: new Date().toISOString() });
    }
    return { verdict, cached: false };
  }
}

export interface TemplateContainer {
  /** `container_name`, else the service's key. */
  container: string;
  image: string;
}

/**
 * The containers a compose template declares, with their images, sorted by container. Pure. Read
 * with the options the renderer uses (merge keys and anchors on), so an image declared through a
 * shared block is found too; the gate's `ensurePresent` also refuses, under enforce, any image the
 * rendered containers run that was not verified.
 */
export function templateContainers(template: string): TemplateContainer[] {
  let doc: unknown;
  try {
    doc = parseYaml(template, { merge: true, uniqueKeys: true, strict: true, resolveKnownTags: false, logLevel: 'silent', maxAliasCount: 100 });
  } catch {
    return []; // rendering reports the template's own problems
  }
  const services = (doc as { services?: Record<string, { image?: unknown; container_name?: unknown } | null> } | null)?.services;
  if (!services || typeof services !== 'object') return [];
  return Object.entries(services)
    .filter((e): e is [string, { image: string; container_name?: unknown }] => typeof e[1]?.image === 'string')
    .map(([key, s]) => ({ container: typeof s.container_name === 'string' ? s.container_name : key, image: s.image }))
    .sort(byText((c) => c.container));
}

/** The distinct images of a template, sorted. Pure. */
export function templateImages(template: string): string[] {
  return [...new Set(templateContainers(template).map((c) => c.image))].sort();
}
