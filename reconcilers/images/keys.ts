/**
 * The public keys a cell trusts. Loading them reads files (an adapter); naming and fingerprinting
 * them is pure.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';

export interface TrustedKey {
  /** sha256 of the key's SubjectPublicKeyInfo DER, hex: the same id cosign's bundles hint at. */
  id: string;
  file: string;
  key: KeyObject;
}

/** Parse one PEM public key; throws an error naming the file on anything else. */
export function parsePublicKey(pem: string, file: string): TrustedKey {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`${file}: not a PEM public key (${(err as Error).message})`);
  }
  if (key.type !== 'public') throw new Error(`${file}: holds a ${key.type} key; give the public key only`);
  const der = key.export({ type: 'spki', format: 'der' });
  return { id: createHash('sha256').update(der).digest('hex'), file, key };
}

function unreadable(file: string, err: unknown): Error {
  return new Error(`${file}: cannot read the public key (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
}

export async function loadPublicKeys(files: readonly string[]): Promise<TrustedKey[]> {
  const keys: TrustedKey[] = [];
  for (const file of files) {
    let pem: string;
    try {
      pem = await fs.readFile(file, 'utf8');
    } catch (err) {
      throw unreadable(file, err);
    }
    keys.push(parsePublicKey(pem, file));
  }
  return keys;
}

/** The same, for one file, synchronously (for a memo that reads only what changed). */
export function readPublicKeySync(file: string): TrustedKey {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw unreadable(file, err);
  }
  return parsePublicKey(pem, file);
}

/** One id for a set of keys, whatever their order: a verification cached under it is void once the set changes. */
export function keySetId(keys: readonly TrustedKey[]): string {
  const ids = [...new Set(keys.map((k) => k.id))].sort();
  return createHash('sha256').update(ids.join('\n')).digest('hex').slice(0, 32);
}
