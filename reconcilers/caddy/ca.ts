/**
 * The root certificate of Caddy's internal CA (`tls internal`, the cell's default): what a peer
 * must trust to open the cell's HTTPS pages.
 *
 * The admin's own Caddy is asked through its admin API (`GET /pki/ca/local`, which answers with
 * the PEM Caddy keeps in its data directory). The Caddy pic runs has its admin API on a socket in
 * the state directory only; its root is read from its data volume through Docker instead, so the
 * command needs neither that socket nor the state directory.
 */
import type Dockerode from 'dockerode';
import tar from 'tar-stream';
import { CADDY_ROOT_CERT } from '../core/desired.js';
import type { OwnedContainer } from '../shared/owned-container.js';
import { adminRequest } from './observe.js';

export async function fetchRootCertificate(adminAddress: string, timeoutMs = 5000): Promise<string> {
  const res = await adminRequest(adminAddress, '/pki/ca/local', { timeoutMs });
  if (res.status !== 200) throw new Error(`Caddy at ${adminAddress} answered GET /pki/ca/local with HTTP ${res.status}: ${res.text.trim().slice(0, 200)}`);
  let pem: unknown;
  try {
    pem = (JSON.parse(res.text) as { root_certificate?: unknown }).root_certificate;
  } catch {
    pem = undefined;
  }
  return checkedPem(pem, `Caddy at ${adminAddress}`);
}

/**
 * The root of the internal CA of the Caddy container pic runs, from its data directory: read by
 * id from the container resolved and checked to be pic's (a certificate another container offers
 * under Caddy's name is never handed to peers).
 */
export async function readRootCertificate(docker: Dockerode, owned: OwnedContainer, maxBytes = 64 * 1024): Promise<string> {
  const container = owned.name;
  let archive: NodeJS.ReadableStream;
  try {
    archive = await docker.getContainer(owned.id).getArchive({ path: CADDY_ROOT_CERT });
  } catch (err) {
    const code = (err as { statusCode?: number }).statusCode;
    if (code === 404) return checkedPem(undefined, `Caddy (${container})`);
    throw new Error(`cannot read ${CADDY_ROOT_CERT} of ${container}: ${(err as Error).message}`);
  }
  const pem = await new Promise<string>((resolve, reject) => {
    const extract = tar.extract();
    const chunks: Buffer[] = [];
    let size = 0;
    extract.on('entry', (header, stream, next) => {
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (header.type === 'file' && size <= maxBytes) chunks.push(chunk);
      });
      stream.on('end', () => next());
      stream.on('error', reject);
    });
    extract.on('finish', () => (size > maxBytes ? reject(new Error(`${CADDY_ROOT_CERT} of ${container} is longer than ${maxBytes} bytes`)) : resolve(Buffer.concat(chunks).toString('utf8'))));
    extract.on('error', reject);
    archive.on('error', reject);
    archive.pipe(extract);
  });
  return checkedPem(pem, `Caddy (${container})`);
}

function checkedPem(pem: unknown, who: string): string {
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new Error(`${who} has no root certificate of its local CA yet (it makes one when a site first uses tls internal)`);
  }
  return pem;
}
