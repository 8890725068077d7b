/**
 * Writes signatures into a registry exactly as cosign does, for tests: the legacy
 * `sha256-<hex>.sig` tag with simple-signing payload layers, and sigstore bundles v0.3 as OCI
 * artifacts whose `subject` is the image, listed in the referrers tag schema's `sha256-<hex>`
 * index (distribution 2.8 has no referrers API), with or without `artifactType` on the entries
 * (clients before OCI 1.1 was final left it out).
 *
 * Byte layouts follow cosign: the payload is `{"critical":{"identity":{"docker-reference":…},
 * "image":{"docker-manifest-digest":…},"type":"cosign container image signature"},"optional":null}`;
 * the signature is ECDSA P-256 / SHA-256, ASN.1 DER, base64 in the layer annotation; the bundle's
 * DSSE envelope signs the PAE of an in-toto v1 statement with predicate
 * https://sigstore.dev/cosign/sign/v1.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { digestOf, getManifest, pushBlob, pushManifest } from './registry.js';

export interface TestKey {
  privateKey: KeyObject;
  publicKeyPem: string;
  /** sha256 of the public key's DER, hex. */
  id: string;
}

export function generateTestKey(): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return { privateKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), id: createHash('sha256').update(der).digest('hex') };
}

export async function writePublicKey(dir: string, name: string, key: TestKey): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, key.publicKeyPem);
  return file;
}

export function simpleSigningPayload(dockerReference: string, digest: string): Buffer {
  return Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' }, optional: null }));
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
const EMPTY_CONFIG = 'application/vnd.oci.empty.v1+json';

export interface LegacyOptions {
  /** What the payload claims (default: the image's own repository and digest). */
  dockerReference?: string;
  claimedDigest?: string;
  /** Sign these bytes but store `payload` (a tampered payload). */
  signedPayload?: Buffer;
  /** Replace the annotation's value (a malformed signature). */
  signatureText?: string;
}

/**
 * `cosign sign --key` (legacy format): append a payload layer to the image's `.sig` manifest.
 * `repository` is the path in the registry; `dockerReference` the name the payload names.
 */
export async function signLegacy(host: string, repository: string, dockerReference: string, digest: string, key: TestKey, options: LegacyOptions = {}): Promise<void> {
  const payload = simpleSigningPayload(options.dockerReference ?? dockerReference, options.claimedDigest ?? digest);
  const signature = options.signatureText ?? sign('sha256', options.signedPayload ?? payload, key.privateKey).toString('base64');
  const layer = await pushBlob(host, repository, payload);
  const tag = `${digest.replace(':', '-')}.sig`;
  const existing = await getManifest(host, repository, tag);
  const layers = existing ? ((JSON.parse(existing.bytes.toString()) as { layers: unknown[] }).layers ?? []) : [];
  layers.push({ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', ...layer, annotations: { 'dev.cosignproject.cosign/signature': signature } });
  const diffIds = (layers as { digest: string }[]).map((l) => l.digest);
  const config = await pushBlob(host, repository, Buffer.from(JSON.stringify({ architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: diffIds }, config: {} })));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers }));
  await pushManifest(host, repository, tag, manifest, OCI_MANIFEST);
}

export interface BundleOptions {
  /** Subject digest the statement names (default: the image's). */
  claimedDigest?: string;
  /** Entries of the fallback index without artifactType, as older clients wrote them. */
  withoutArtifactType?: boolean;
  /** Sign this statement but store another (tampering). */
  tamper?: boolean;
  /** Store these bytes as the bundle instead (a malformed bundle). */
  bundleText?: string;
}

function pae(type: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `), payload]);
}

export function cosignBundle(dockerReference: string, digest: string, key: TestKey, options: BundleOptions = {}): Buffer {
  const statement = (d: string) => Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: dockerReference, digest: { sha256: d.slice('sha256:'.length) } }], predicateType: 'https://sigstore.dev/cosign/sign/v1', predicate: {} }));
  const signed = statement(options.claimedDigest ?? digest);
  const stored = options.tamper ? statement(`sha256:${'0'.repeat(64)}`) : signed;
  const type = 'application/vnd.in-toto+json';
  const sig = sign('sha256', pae(type, signed), key.privateKey).toString('base64');
  return Buffer.from(
    JSON.stringify({
      mediaType: BUNDLE,
      verificationMaterial: { publicKey: { hint: Buffer.from(key.id, 'hex').toString('base64') }, tlogEntries: [] },
      dsseEnvelope: { payload: stored.toString('base64'), payloadType: type, signatures: [{ sig }] },
    }),
  );
}

/** `cosign sign --key --new-bundle-format` against a registry without the referrers API. */
export async function signBundle(host: string, repository: string, dockerReference: string, subject: { digest: string; size: number; mediaType: string }, key: TestKey, options: BundleOptions = {}): Promise<string> {
  const bytes = options.bundleText !== undefined ? Buffer.from(options.bundleText) : cosignBundle(dockerReference, subject.digest, key, options);
  const layer = await pushBlob(host, repository, bytes);
  const empty = await pushBlob(host, repository, Buffer.from('{}'));
  const annotations = { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1', 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' };
  const artifact = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: BUNDLE, config: { mediaType: EMPTY_CONFIG, ...empty }, layers: [{ mediaType: BUNDLE, ...layer }], subject, annotations }));
  const artifactDigest = await pushManifest(host, repository, digestOf(artifact), artifact, OCI_MANIFEST);
  const tag = subject.digest.replace(':', '-');
  const existing = await getManifest(host, repository, tag);
  const manifests = existing ? ((JSON.parse(existing.bytes.toString()) as { manifests: unknown[] }).manifests ?? []) : [];
  manifests.push({ mediaType: OCI_MANIFEST, digest: artifactDigest, size: artifact.length, ...(options.withoutArtifactType ? {} : { artifactType: BUNDLE }), annotations });
  await pushManifest(host, repository, tag, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })), OCI_INDEX);
  return artifactDigest;
}
