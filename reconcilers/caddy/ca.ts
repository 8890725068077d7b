/**
 * The root certificate of Caddy's internal CA (`tls internal`, the cell's default): what a peer
 * must trust to open the cell's HTTPS pages. Read from Caddy's admin API (`GET /pki/ca/local`),
 * which answers with the PEM Caddy keeps in its data directory.
 */
import { httpRequest } from '../shared/http.js';
import { adminUrl } from './observe.js';

export async function fetchRootCertificate(adminAddress: string, timeoutMs = 5000): Promise<string> {
  const res = await httpRequest(`${adminUrl(adminAddress)}/pki/ca/local`, { timeoutMs });
  if (res.status !== 200) throw new Error(`Caddy at ${adminAddress} answered GET /pki/ca/local with HTTP ${res.status}: ${res.text.trim().slice(0, 200)}`);
  let pem: unknown;
  try {
    pem = (JSON.parse(res.text) as { root_certificate?: unknown }).root_certificate;
  } catch {
    pem = undefined;
  }
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new Error(`Caddy at ${adminAddress} has no root certificate of its local CA yet (it makes one when a site first uses tls internal)`);
  }
  return pem;
}
