/**
 * The certificates of direct subdomains. A service that clients reach at a direct subdomain
 * (manifest `direct_subdomains`: IMAP and SMTP at mail.<domain>) terminates TLS itself, so it
 * needs a certificate of that name that chains to the root `pic ca` prints. Caddy's internal CA
 * (`tls internal`, the default where pic runs Caddy) issues one for every site, the direct ones
 * included (they keep their site), keeps it in Caddy's data volume and renews it there. This
 * resource copies the chain and key of each direct host into the service's container, at
 * `/etc/pic/tls/<subdomain>/cert.pem` and `key.pem` (0600), whenever they differ from what the
 * container holds; the image takes a new pair up by itself (examples/images/mail/rootfs/app/start.sh).
 *
 * Each pass reads both sides (two archive reads per direct subdomain), so a certificate Caddy
 * renewed reaches the service on the next pass. Nothing to do where no installed service has a
 * direct subdomain, and nothing can be done where the admin runs Caddy (its storage is not pic's).
 *
 * observe (read both sides) → plan (pure) → apply (one archive put per copy).
 */
import type Dockerode from 'dockerode';
import tar from 'tar-stream';
import { CADDY_DATA_DIR } from '../core/desired.js';
import { coreComponents, coreContainerClaim } from '../core/spec.js';
import { serviceKey } from '../../state/document-keys.js';
import { resolveOwnedContainer, type OwnedContainer } from '../shared/owned-container.js';
import type { CellRouting, ResourceContext, ResourceOutcome, ResourceReconciler } from '../shared/types.js';

export const CERTIFICATES_KEY = 'Resource/certificates';
/** Where a service finds the certificate of its direct subdomain `<sub>`: `<dir>/<sub>/cert.pem` and `key.pem`. */
export const SERVICE_TLS_DIR = '/etc/pic/tls';
const MAX_PEM_BYTES = 64 * 1024;

/** One direct subdomain of an installed service: the host Caddy holds a certificate of, and the container it goes to. */
export interface DirectHost {
  service: string;
  subdomain: string;
  host: string;
  container: string;
}

export interface KeyPair {
  cert: string;
  key: string;
}

/** What was read for one direct host: Caddy's pair (absent until Caddy issued it) and the container's. */
export interface HostObservation {
  target: DirectHost;
  caddy?: KeyPair;
  service?: KeyPair;
}

export type CertificateStep = { kind: 'copy'; target: DirectHost; pair: KeyPair; first: boolean } | { kind: 'wait'; target: DirectHost };

/** The direct hosts of the installed services, sorted by host. Pure. */
export function directHosts(input: CellRouting): DirectHost[] {
  const domain = input.cell.spec.domain;
  const hosts: DirectHost[] = [];
  for (const s of input.services) {
    const container = s.manifest.container_name;
    if (!s.manifest.capabilities?.has_subdomain || typeof container !== 'string') continue;
    for (const subdomain of new Set(s.manifest.direct_subdomains ?? [])) hosts.push({ service: s.name, subdomain, host: `${subdomain}.${domain}`, container });
  }
  return hosts.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
}

/** Which pairs to copy (Caddy's differs from the container's) and which hosts Caddy has no certificate of yet. Pure. */
export function planCertificates(observed: readonly HostObservation[]): CertificateStep[] {
  const steps: CertificateStep[] = [];
  for (const o of observed) {
    if (!o.caddy) steps.push({ kind: 'wait', target: o.target });
    else if (o.service?.cert !== o.caddy.cert || o.service?.key !== o.caddy.key) steps.push({ kind: 'copy', target: o.target, pair: o.caddy, first: o.service === undefined });
  }
  return steps;
}

/** The file at `file` in `container`, or undefined when it is not there. */
async function readFile(docker: Dockerode, container: OwnedContainer, file: string): Promise<string | undefined> {
  let archive: NodeJS.ReadableStream;
  try {
    archive = await docker.getContainer(container.id).getArchive({ path: file });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw new Error(`cannot read ${file} of ${container.name}: ${(err as Error).message}`);
  }
  return new Promise<string>((resolve, reject) => {
    const extract = tar.extract();
    const chunks: Buffer[] = [];
    let size = 0;
    extract.on('entry', (header, stream, next) => {
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (header.type === 'file' && size <= MAX_PEM_BYTES) chunks.push(chunk);
      });
      stream.on('end', () => next());
      stream.on('error', reject);
    });
    extract.on('finish', () => (size > MAX_PEM_BYTES ? reject(new Error(`${file} of ${container.name} is longer than ${MAX_PEM_BYTES} bytes`)) : resolve(Buffer.concat(chunks).toString('utf8'))));
    extract.on('error', reject);
    archive.on('error', reject);
    archive.pipe(extract);
  });
}

async function readPair(docker: Dockerode, container: OwnedContainer, cert: string, key: string): Promise<KeyPair | undefined> {
  const [c, k] = [await readFile(docker, container, cert), await readFile(docker, container, key)];
  return c !== undefined && k !== undefined && c.includes('-----BEGIN CERTIFICATE-----') && k.includes('PRIVATE KEY-----') ? { cert: c, key: k } : undefined;
}

/** Caddy's storage of the certificate of `host` issued by its internal CA (`local`). */
export function caddyPairPaths(host: string): { cert: string; key: string } {
  const dir = `${CADDY_DATA_DIR}/caddy/certificates/local/${host}`;
  return { cert: `${dir}/${host}.crt`, key: `${dir}/${host}.key` };
}

export function servicePairPaths(subdomain: string): { cert: string; key: string } {
  return { cert: `${SERVICE_TLS_DIR}/${subdomain}/cert.pem`, key: `${SERVICE_TLS_DIR}/${subdomain}/key.pem` };
}

/** Writes the pair into the container in one archive: the folders, the chain (0644) and the key (0600), owned by root. */
async function putPair(docker: Dockerode, container: OwnedContainer, subdomain: string, pair: KeyPair): Promise<void> {
  const pack = tar.pack();
  const base = SERVICE_TLS_DIR.replace(/^\/etc\//, '');
  const entries: [{ name: string; type?: string; mode: number }, string?][] = [
    [{ name: `${base.split('/')[0]}/`, type: 'directory', mode: 0o755 }],
    [{ name: `${base}/`, type: 'directory', mode: 0o755 }],
    [{ name: `${base}/${subdomain}/`, type: 'directory', mode: 0o700 }],
    [{ name: `${base}/${subdomain}/cert.pem`, mode: 0o644 }, pair.cert],
    [{ name: `${base}/${subdomain}/key.pem`, mode: 0o600 }, pair.key],
  ];
  for (const [header, body] of entries) pack.entry({ uid: 0, gid: 0, mtime: new Date(0), ...header }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  await docker.getContainer(container.id).putArchive(Buffer.concat(chunks), { path: '/etc' });
}

interface Observed {
  hosts: HostObservation[];
  containers: Map<string, OwnedContainer>;
}

async function observe(input: CellRouting, ctx: ResourceContext, targets: DirectHost[]): Promise<Observed> {
  const cellName = input.cell.metadata.name;
  const caddy = await resolveOwnedContainer(ctx.docker, coreContainerClaim(input.cell, 'caddy', 'read from'));
  const containers = new Map<string, OwnedContainer>();
  const hosts: HostObservation[] = [];
  for (const target of targets) {
    let owned = containers.get(target.container);
    if (!owned) {
      owned = await resolveOwnedContainer(ctx.docker, { name: target.container, owner: serviceKey(target.service), cell: cellName, createdBy: 'pic', role: `pic's ${target.service} service`, use: 'copy into' });
      containers.set(target.container, owned);
    }
    const fromCaddy = caddyPairPaths(target.host);
    const inService = servicePairPaths(target.subdomain);
    const caddyPair = await readPair(ctx.docker, caddy, fromCaddy.cert, fromCaddy.key);
    const servicePair = await readPair(ctx.docker, owned, inService.cert, inService.key);
    hosts.push({ target, ...(caddyPair ? { caddy: caddyPair } : {}), ...(servicePair ? { service: servicePair } : {}) });
  }
  return { hosts, containers };
}

function describe(step: CertificateStep): string {
  return step.kind === 'copy'
    ? `${step.first ? 'place' : 'renew'} the certificate of ${step.target.host} in ${step.target.container}:${SERVICE_TLS_DIR}/${step.target.subdomain}/`
    : `wait for Caddy to issue the certificate of ${step.target.host} (for ${step.target.container})`;
}

/** Where the copies can be made: pic runs Caddy with its internal CA. Otherwise why not, for the status. */
function unsupported(input: CellRouting): string | undefined {
  if (!coreComponents(input.cell).some((c) => c.name === 'caddy')) return "the admin runs Caddy, whose certificate storage pic does not read: place each direct subdomain's certificate in its service yourself";
  if (input.cell.spec.caddy?.tls?.mode !== 'internal') return `Caddy's TLS mode is ${input.cell.spec.caddy?.tls?.mode ?? 'acme'}, not internal: its certificates are not the cell CA's`;
  return undefined;
}

export const certificatesReconciler: ResourceReconciler = {
  key: CERTIFICATES_KEY,

  async plan(input, ctx) {
    const targets = directHosts(input);
    if (targets.length === 0 || unsupported(input)) return [];
    return planCertificates((await observe(input, ctx, targets)).hosts).map(describe);
  },

  async reconcile(input, ctx): Promise<ResourceOutcome> {
    const targets = directHosts(input);
    if (targets.length === 0) return { changed: false, summary: 'no direct subdomain: no certificate to place', facts: { hosts: [] } };
    const why = unsupported(input);
    if (why) return { changed: false, summary: `${targets.length} direct subdomain(s); ${why}`, facts: { hosts: targets.map((t) => t.host) } };
    const observed = await observe(input, ctx, targets);
    const steps = planCertificates(observed.hosts);
    for (const step of steps) {
      if (step.kind !== 'copy') continue;
      await putPair(ctx.docker, observed.containers.get(step.target.container)!, step.target.subdomain, step.pair);
      ctx.event('CertificatePlaced', describe(step));
    }
    const waiting = steps.filter((s) => s.kind === 'wait');
    // Caddy issues a new site's certificate shortly after loading it: fail the pass, to be retried.
    if (waiting.length > 0) throw new Error(waiting.map(describe).join('; '));
    const copied = steps.length;
    return {
      changed: copied > 0,
      summary: `${targets.length} direct subdomain certificate(s) in place${copied > 0 ? `, ${copied} copied` : ', unchanged'}`,
      facts: { hosts: targets.map((t) => t.host) },
    };
  },
};
