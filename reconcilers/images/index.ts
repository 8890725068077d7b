/**
 * The image gate of a service: before anything of it is created, every image its template runs
 * is checked (observe: cache, registry; decide: policy.ts), and when containers are to be made,
 * missing images are pulled by digest and checked against what was verified (pull.ts).
 *
 * The host is the operator's context, described here by what the gate uses of it, so this room
 * imports nothing from controllers/.
 */
import path from 'node:path';
import type Dockerode from 'dockerode';
import { parse as parseYaml } from 'yaml';
import type { CellDocument, ImageVerificationMode } from '../../crds/types.js';
import { VerificationCache } from '../../state/verification-cache.js';
import type { ResolvedImage } from '../containers/image.js';
import { TerminalError } from '../errors.js';
import { dockerCredentials, type CredentialLookup } from './credentials.js';
import { keySetId, loadPublicKeys, type TrustedKey } from './keys.js';
import { decide, effectiveMode, registrySettingsOf, trustedKeyFiles } from './policy.js';
import { localImageByDigest, pullByDigest } from './pull.js';
import { parseImageReference, pullReference, repositoryName, type RegistryEndpoint, type RegistrySettings } from './reference.js';
import { RegistryClient } from './registry.js';
import { verifyImage } from './verify.js';
import type { Refused, Verdict, Verified } from './verdict.js';

export { verifyImage } from './verify.js';
export type { Verdict, Verified, Refused, RefusalReason, SignatureFormat } from './verdict.js';

interface StatusWriteLike {
  file?: string;
  generation: string;
  ready: boolean;
  reconciling?: { reason: string; message: string };
  stalled?: { reason: string; message: string };
  facts?: Record<string, unknown>;
}

/** What the gate needs of the operator (OperatorContext has all of it). */
export interface ImageGateHost {
  docker: Dockerode;
  status: { dir: string; lastKnown(key: string): Promise<{ facts?: Record<string, unknown> } | undefined> };
  event(key: string, type: 'Normal' | 'Warning', reason: string, message: string): void;
  writeStatus(key: string, update: StatusWriteLike): Promise<void>;
  logger: { info(message: string, meta?: object): unknown };
}

/**
 * Long-lived pieces of the gate, one per operator state directory: the verification cache, the
 * registry clients (their tokens), the credentials file. Created on first use.
 */
export class ImageVerifier {
  readonly cache: VerificationCache;
  private readonly clients = new Map<string, RegistryClient>();
  /** Registry requests sent, token requests included. */
  requests = 0;

  constructor(
    stateRoot: string,
    readonly credentials: CredentialLookup = dockerCredentials(),
    private readonly timeoutMs = 10_000,
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
    if (verdict.ok && image) {
      await this.cache.put({ repository: repositoryName(image), digest: verdict.digest, keySet, keyId: verdict.keyId, keyFile: verdict.keyFile, format: verdict.format, transparencyLog: verdict.transparencyLog, verifiedAt: new Date().toISOString() });
    }
    return { verdict, cached: false };
  }
}

const verifiers = new WeakMap<object, ImageVerifier>();

/** The verifier of this operator (keyed by its status store, whose folder sits in the state directory). */
export function imageVerifierOf(host: ImageGateHost): ImageVerifier {
  let verifier = verifiers.get(host.status);
  if (!verifier) {
    verifier = new ImageVerifier(path.dirname(host.status.dir));
    verifiers.set(host.status, verifier);
  }
  return verifier;
}

/** The images a compose template runs, as declared (`services.<name>.image`). */
export function templateImages(template: string): string[] {
  let doc: unknown;
  try {
    doc = parseYaml(template);
  } catch {
    return []; // rendering reports the template's own problems
  }
  const services = (doc as { services?: Record<string, { image?: unknown } | null> } | null)?.services;
  if (!services || typeof services !== 'object') return [];
  return [...new Set(Object.values(services).map((s) => s?.image).filter((i): i is string => typeof i === 'string'))].sort();
}

export interface ImageFact {
  reference: string;
  digest?: string;
  verified: boolean | 'skipped';
  key?: string;
  keyId?: string;
  format?: string;
  transparencyLog?: boolean;
  reason?: string;
}

/** The status facts of the gate: a line people read (`pic describe`) and the detail for -o json. */
export interface VerificationFacts {
  verification: string;
  signatures: ImageFact[];
}

/** `enforce: <ref> verified with <key file> (key <id>, <format>)`, one clause per image. Pure. */
export function describeVerification(mode: ImageVerificationMode, images: readonly ImageFact[]): string {
  if (mode === 'off') return 'off: signatures not checked';
  if (images.length === 0) return `${mode}: no images`;
  const clause = (i: ImageFact): string => {
    const name = i.digest ? `${i.reference.slice(0, i.reference.indexOf('@'))}@${i.digest.slice(0, 19)}…` : i.reference;
    if (i.verified === true) return `${name} verified with ${i.key} (key ${i.keyId}, ${i.format}${i.transparencyLog ? ', transparency-log entry present, not checked' : ''})`;
    if (i.verified === 'skipped') return `${name} not verified (${i.reason === 'NoKey' ? 'no public key configured' : 'skipped'})`;
    return `${name} NOT verified: ${i.reason}`;
  };
  return `${mode}: ${images.map(clause).join('; ')}`;
}

export interface ServiceGateInput {
  key: string;
  file?: string;
  generation: string;
  cell: CellDocument;
  cellDir: string;
  template: string;
}

/** What the gate let through: the facts for the status, and the pull of what is missing. */
export class ServiceImages {
  constructor(
    readonly facts: VerificationFacts,
    private readonly host: ImageGateHost,
    private readonly key: string,
    private readonly settings: RegistrySettings,
    private readonly credentials: CredentialLookup,
  ) {}

  /**
   * Before containers are created: every pinned image the plan runs is made present (pulled by
   * digest, through the mirror), and each container is given the local image Id, so the
   * container runs exactly the image that was verified. `images` (reference → what Docker holds)
   * is completed so the container planner sees them present.
   */
  async ensurePresent(plan: { containers: { create: { Image?: string } }[] }, images: Map<string, ResolvedImage>): Promise<void> {
    for (const container of plan.containers) {
      const ref = String(container.create.Image ?? '');
      const image = parseImageReference(ref);
      // Only what is about to be created: the caller resolved exactly those references.
      if (!image?.digest || !images.has(ref)) continue;
      const known = images.get(ref);
      let id = known?.present ? known.id : undefined;
      if (!id) {
        const pullRef = pullReference(image, this.settings);
        id = await localImageByDigest(this.host.docker, pullRef);
        if (!id) {
          this.host.event(this.key, 'Normal', 'Pulling', `pulling ${pullRef}`);
          let report;
          try {
            report = await pullByDigest(this.host.docker, pullRef, { progress: (line) => this.host.logger.info(line, { key: this.key }) }, this.credentials);
          } catch (err) {
            this.host.event(this.key, 'Warning', 'PullFailed', (err as Error).message);
            throw err;
          }
          id = await localImageByDigest(this.host.docker, pullRef);
          if (!id) {
            const message = `after pulling ${pullRef}, Docker holds no image with that digest among its RepoDigests; refusing to run what was not verified`;
            this.host.event(this.key, 'Warning', 'DigestMismatch', message);
            throw new TerminalError(message, 'DigestMismatch');
          }
          this.host.event(this.key, 'Normal', 'Pulled', `pulled ${pullRef}: ${report.layers} layer${report.layers === 1 ? '' : 's'}, ${report.bytes} bytes`);
        }
      }
      const resolved = { present: true, id };
      images.set(ref, resolved);
      images.set(id, resolved);
      container.create.Image = id;
    }
  }
}

/**
 * The gate of one service, called before anything of it is created. Under `enforce` a refused
 * image writes the status (Stalled for a bad artifact, Reconciling for an unreachable registry)
 * and throws (a TerminalError, or a plain error to be retried): the caller then creates nothing
 * and whatever ran before keeps running.
 */
export async function verifyServiceImages(host: ImageGateHost, input: ServiceGateInput): Promise<ServiceImages> {
  const section = input.cell.spec.imageVerification as unknown;
  const mode = effectiveMode(section);
  const settings = registrySettingsOf(input.cell.spec);
  const verifier = imageVerifierOf(host);
  const references = templateImages(input.template);
  const facts: ImageFact[] = [];
  const verdicts: Verdict[] = [];
  const keyFiles = trustedKeyFiles(section, input.cellDir);
  if (mode === 'off' || (mode === 'warn' && keyFiles.length === 0)) {
    for (const reference of references) facts.push({ reference, ...digestOf(reference), verified: 'skipped', ...(mode === 'warn' ? { reason: 'NoKey' } : {}) });
    return new ServiceImages(factsOf(mode, facts), host, input.key, settings, verifier.credentials);
  }
  let keys: TrustedKey[];
  try {
    keys = await loadPublicKeys(keyFiles);
  } catch (err) {
    const message = `${(err as Error).message} (spec.imageVerification of ${input.cell.metadata.name})`;
    if (mode === 'enforce') {
      await host.writeStatus(input.key, { file: input.file, generation: input.generation, ready: false, stalled: { reason: 'UnknownKey', message } });
      throw new TerminalError(message, 'UnknownKey');
    }
    keys = [];
  }
  for (const reference of references) {
    const { verdict, cached } = await verifier.verify(reference, keys, settings);
    verdicts.push(verdict);
    facts.push(factOf(verdict));
    if (verdict.ok && !cached) host.event(input.key, 'Normal', 'Verified', `${reference}: signature verified with ${verdict.keyFile} (${verdict.format}${verdict.transparencyLog ? ', with a transparency-log entry' : ''})`);
  }
  const decision = decide(mode, verdicts);
  const gateFacts = factsOf(mode, facts);
  if (!decision.proceed) {
    const previous = await host.status.lastKnown(input.key);
    const update = { file: input.file, generation: input.generation, ready: false, facts: { ...(previous?.facts ?? {}), ...gateFacts } };
    if (decision.retry) {
      await host.writeStatus(input.key, { ...update, reconciling: { reason: decision.refused.reason, message: decision.message } });
      throw new Error(decision.message);
    }
    await host.writeStatus(input.key, { ...update, stalled: { reason: decision.refused.reason, message: decision.message } });
    throw new TerminalError(decision.message, decision.refused.reason);
  }
  return new ServiceImages(gateFacts, host, input.key, settings, verifier.credentials);
}

function factsOf(mode: ImageVerificationMode, images: ImageFact[]): VerificationFacts {
  return { verification: describeVerification(mode, images), signatures: images };
}

function digestOf(reference: string): { digest?: string } {
  const digest = parseImageReference(reference)?.digest;
  return digest ? { digest } : {};
}

function factOf(verdict: Verdict): ImageFact {
  if (verdict.ok) return { reference: verdict.reference, digest: verdict.digest, verified: true, key: verdict.keyFile, keyId: verdict.keyId.slice(0, 16), format: verdict.format, transparencyLog: verdict.transparencyLog };
  return { reference: verdict.reference, ...(verdict.digest ? { digest: verdict.digest } : {}), verified: false, reason: verdict.reason };
}

export type { Refused as RefusedImage };
