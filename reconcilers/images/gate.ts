/**
 * The image gate of a service or a core container: before anything of it is created, every image
 * it runs is checked (observe: cache, registry; decide: policy.ts), and when containers are to be
 * made, missing images are pulled by digest and checked against what was verified (pull.ts).
 *
 * The host is the operator's context, described here by what the gate uses of it, so this room
 * imports nothing from controllers/.
 */
import type Dockerode from 'dockerode';
import type { CellDocument } from '../../crds/types.js';
import { parseImageReference } from '../../crds/image-reference.js';
import type { ResolvedImage } from '../containers/image.js';
import { TerminalError } from '../errors.js';
import type { CredentialLookup } from './credentials.js';
import { digestOf, factOf, factsOf, type ImageFact, type VerificationFacts } from './facts.js';
import type { TrustedKey } from './keys.js';
import { decide, effectiveMode, registrySettingsOf, trustedKeyFiles } from './policy.js';
import { localImageByDigest, pullByDigest } from './pull.js';
import { pullReference, type RegistrySettings } from './reference.js';
import type { Verdict } from './verdict.js';
import { ImageVerifier } from './verifier.js';

/** What the gate needs of the operator (OperatorContext has all of it). */
export interface ImageGateHost {
  docker: Dockerode;
  event(key: string, type: 'Normal' | 'Warning', reason: string, message: string): void;
  logger: { info(message: string, meta?: object): unknown };
  /** The operator's verifier: its cache, registry clients and tokens live as long as the operator. */
  imageVerifier: ImageVerifier;
}

export interface ServiceGateInput {
  /** The document the gate speaks for, in its events: `ServiceInstall/<name>`, `Core/<name>`. */
  key: string;
  cell: CellDocument;
  cellDir: string;
  template: string;
  /** `${INSTANCE_ID}` of a Connection's exit: its containers are named by it in the facts, as they run. */
  instanceId?: string;
  /**
   * Told while an image is pulled (reason Pulling, the layers and bytes so far, at most once a
   * second), for the document's status: the caller writes it through its kind's writer.
   */
  progressing?: (reason: string, message: string) => Promise<void>;
}

/**
 * Why nothing of the subject may be created, for the caller's status: Stalled with `reason` for a
 * bad artifact or key, or, with `retry`, Reconciling for a registry that may come back. `facts`
 * are the verification facts to lay over the stored ones (none for a key that cannot be read).
 */
export interface GateRefusal {
  outcome: 'refused';
  reason: string;
  message: string;
  retry: boolean;
  facts?: VerificationFacts;
}

/** The gate's input for containers pic plans itself (the core stack): their images, named directly. */
export interface ImageGateInput extends Omit<ServiceGateInput, 'template'> {
  /** Each container and the image reference it runs. */
  containers: readonly { container: string; image: string }[];
  /** What a refusal says is not created, e.g. `Core/caddy`; default "this service". */
  subject?: string;
}

/** What the gate let through: the facts for the status, and the pull of what is missing. */
export class ServiceImages {
  constructor(
    readonly facts: VerificationFacts,
    /** Under enforce, the references that verified: nothing else may be created. */
    private readonly enforced: ReadonlySet<string> | undefined,
    private readonly host: ImageGateHost,
    private readonly key: string,
    private readonly settings: RegistrySettings,
    private readonly credentials: CredentialLookup,
    private readonly subject = 'this service',
    /** Told the progress of a pull, for the status (the caller writes it). */
    private readonly progressing?: (reason: string, message: string) => Promise<void>,
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
      if (this.enforced && !this.enforced.has(ref)) {
        const message = `${ref} is to be run but its signature was not verified (the containers run other images than were checked); image verification is enforce, so nothing of ${this.subject} is created`;
        throw new TerminalError(message, 'Unsigned');
      }
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
          const progress = this.pullStatus(pullRef);
          let report;
          try {
            report = await pullByDigest(this.host.docker, pullRef, { progress: (line) => this.host.logger.info(line, { key: this.key }), summary: progress.update }, this.credentials);
          } catch (err) {
            this.host.event(this.key, 'Warning', 'PullFailed', (err as Error).message);
            throw err;
          } finally {
            await progress.settled();
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

  /**
   * The progress of a pull, for `pic watch`: reason Pulling and the layers and bytes so far, told
   * at most once a second, one report after another (the caller writes the status).
   */
  private pullStatus(pullRef: string): { update: (r: { done: number; layers: number; bytes: number }) => void; settled: () => Promise<void> } {
    let last: Promise<void> = Promise.resolve();
    let lastAt = 0;
    const report = this.progressing;
    const write = (message: string): void => {
      lastAt = Date.now();
      if (report) last = last.then(() => report('Pulling', message)).catch(() => undefined);
    };
    write(`pulling ${pullRef}`);
    return {
      update: (r) => {
        if (Date.now() - lastAt < 1000 && r.done < r.layers) return;
        write(`pulling ${pullRef}: ${r.done}/${r.layers} layers, ${r.bytes} bytes`);
      },
      settled: () => last,
    };
  }
}

/**
 * The gate of one service, called before anything of it is created. Under `enforce` a refused
 * image is returned as a refusal (GateRefusal): the caller reports it, creates nothing, and
 * whatever ran before keeps running. The gate writes no status.
 */
export function verifyServiceImages(host: ImageGateHost, input: ServiceGateInput): Promise<ServiceImages | GateRefusal> {
  const { template, instanceId, ...rest } = input;
  const declared = host.imageVerifier.containersOf(template);
  const containers = instanceId === undefined ? declared : declared.map((c) => ({ ...c, container: c.container.split('${INSTANCE_ID}').join(instanceId) }));
  return verifyImages(host, { ...rest, containers });
}

/**
 * The same gate for containers whose images are named directly (the core stack): the same policy,
 * keys, cache, mirrors, statuses and reasons as a service's.
 */
export async function verifyImages(host: ImageGateHost, input: ImageGateInput): Promise<ServiceImages | GateRefusal> {
  const section = input.cell.spec.imageVerification as unknown;
  const mode = effectiveMode(section);
  const settings = registrySettingsOf(input.cell.spec);
  const verifier = host.imageVerifier;
  const containers = input.containers;
  const subject = input.subject ?? 'this service';
  const references = [...new Set(containers.map((c) => c.image))].sort();
  const facts: ImageFact[] = [];
  const verdicts: Verdict[] = [];
  const keyFiles = trustedKeyFiles(section, input.cellDir);
  if (mode === 'off' || (mode === 'warn' && keyFiles.length === 0)) {
    for (const reference of references) facts.push({ reference, ...digestOf(reference), verified: 'skipped', ...(mode === 'warn' ? { reason: 'NoKey' } : {}) });
    return new ServiceImages(factsOf(mode, facts, containers), undefined, host, input.key, settings, verifier.credentials, subject, input.progressing);
  }
  let keys: TrustedKey[];
  try {
    keys = verifier.keys(keyFiles);
  } catch (err) {
    const message = `${(err as Error).message} (spec.imageVerification of ${input.cell.metadata.name})`;
    if (mode === 'enforce') return { outcome: 'refused', reason: 'UnknownKey', message, retry: false };
    keys = [];
  }
  for (const reference of references) {
    const { verdict, cached } = await verifier.verify(reference, keys, settings);
    verdicts.push(verdict);
    facts.push(factOf(verdict));
    if (verdict.ok && !cached) host.event(input.key, 'Normal', 'Verified', `${reference}: signature verified with ${verdict.keyFile} (${verdict.format}${verdict.transparencyLog ? ', with a transparency-log entry' : ''})`);
  }
  const decision = decide(mode, verdicts, subject);
  const gateFacts = factsOf(mode, facts, containers);
  if (!decision.proceed) return { outcome: 'refused', reason: decision.refused.reason, message: decision.message, retry: decision.retry, facts: gateFacts };
  const verified = mode === 'enforce' ? new Set(verdicts.filter((v) => v.ok).map((v) => v.reference)) : undefined;
  return new ServiceImages(gateFacts, verified, host, input.key, settings, verifier.credentials, subject, input.progressing);
}

