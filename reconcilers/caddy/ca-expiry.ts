/**
 * When the certificates of Caddy's internal CA (`tls internal`, the cell's default) expire, from
 * its admin API: `GET /pki/ca/local` answers with the root peers trust and the intermediate that
 * signs the sites' certificates (Caddy renews the intermediate itself; a root that expires needs
 * every peer to trust a new one).
 */
import { X509Certificate } from 'node:crypto';
import { adminRequest } from './observe.js';

export interface CertificateExpiry {
  certificate: 'root' | 'intermediate';
  notAfter: Date;
}

/** The expiries in an answer of `GET /pki/ca/local`; a certificate that is absent or unreadable is left out. Pure. */
export function caExpiriesOf(answer: unknown): CertificateExpiry[] {
  if (typeof answer !== 'object' || answer === null) return [];
  const fields = answer as Record<string, unknown>;
  const expiries: CertificateExpiry[] = [];
  for (const [certificate, field] of [['root', 'root_certificate'], ['intermediate', 'intermediate_certificate']] as const) {
    const pem = fields[field];
    if (typeof pem !== 'string') continue;
    let notAfter: Date;
    try {
      notAfter = new Date(new X509Certificate(pem).validTo);
    } catch {
      continue;
    }
    if (!Number.isNaN(notAfter.getTime())) expiries.push({ certificate, notAfter });
  }
  return expiries;
}

/** Ask Caddy at `adminAddress` (`unix//path` or host:port) for its local CA's expiries. */
export async function fetchCaExpiries(adminAddress: string, timeoutMs: number): Promise<CertificateExpiry[]> {
  const res = await adminRequest(adminAddress, '/pki/ca/local', { timeoutMs });
  if (res.status !== 200) throw new Error(`Caddy at ${adminAddress} answered GET /pki/ca/local with HTTP ${res.status}`);
  return caExpiriesOf(JSON.parse(res.text) as unknown);
}
