/**
 * What a store maintainer runs before publishing (`pic catalog sign`): list the sha256 of every
 * package file in index.json (a signature over the index alone would leave the packages open to
 * tampering), then sign index.json as `cosign sign-blob --key` does (index.json.sig: base64 of an
 * ECDSA/SHA-256 DER signature), so `cosign verify-blob --key cosign.pub --signature index.json.sig
 * index.json` accepts it too.
 */
import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../atomic-write.js';
import { SIGNATURE_FILE } from './refresh.js';

export interface SignResult {
  indexFile: string;
  /** Entries whose hashes were written. */
  services: number;
  signatureFile?: string;
}

const sha256Of = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function readOptional(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** A PEM private key; cosign's own encrypted format is named with what to do instead. */
export function readSigningKey(pem: string, file: string): KeyObject {
  if (pem.includes('ENCRYPTED SIGSTORE PRIVATE KEY') || pem.includes('ENCRYPTED COSIGN PRIVATE KEY')) {
    throw new Error(`${file}: a cosign-encrypted key; run pic catalog sign without --key (it writes the hashes), then cosign sign-blob --key ${file} --output-signature index.json.sig index.json`);
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`${file}: not a PEM private key (${(err as Error).message})`);
  }
}

/** Write the hashes into `dir`/index.json and, with `key`, index.json.sig beside it. Throws naming the file on anything missing. */
export async function signStoreFolder(dir: string, key?: { pem: string; file: string }): Promise<SignResult> {
  const indexFile = path.join(dir, 'index.json');
  let entries: Record<string, unknown>[];
  try {
    entries = JSON.parse(await fs.readFile(indexFile, 'utf8')) as Record<string, unknown>[];
  } catch (err) {
    throw new Error(`${indexFile}: cannot be read as JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(entries)) throw new Error(`${indexFile}: not a JSON array`);
  const signed: Record<string, unknown>[] = [];
  for (const [i, entry] of entries.entries()) {
    const id = entry?.id;
    if (typeof id !== 'string' || !/^[a-z][a-z0-9-]{0,30}$/.test(id)) throw new Error(`${indexFile}: /${i}/id: not a service id`);
    if (typeof entry.package === 'string') {
      const file = path.resolve(dir, entry.package);
      if (!file.startsWith(path.resolve(dir) + path.sep)) throw new Error(`${indexFile}: /${i}/package: not below the store folder`);
      const data = await readOptional(file);
      if (!data) throw new Error(`${file}: missing (named by ${indexFile} /${i}/package)`);
      signed.push({ ...entry, sha256: sha256Of(data) });
      continue;
    }
    const hashes: Record<string, string> = {};
    for (const name of ['manifest.json', 'compose-template.yml', 'install.sh']) {
      const file = path.join(dir, 'services', id, name);
      const data = await readOptional(file);
      if (data) hashes[name] = sha256Of(data);
      else if (name !== 'install.sh') throw new Error(`${file}: missing (service ${id} of ${indexFile})`);
    }
    signed.push({ ...entry, sha256: hashes });
  }
  const text = Buffer.from(`${JSON.stringify(signed, null, 2)}\n`, 'utf8');
  await writeFileAtomic(indexFile, text, 0o644);
  if (!key) return { indexFile, services: signed.length };
  const signature = sign('sha256', text, readSigningKey(key.pem, key.file)).toString('base64');
  const signatureFile = path.join(dir, SIGNATURE_FILE);
  await writeFileAtomic(signatureFile, signature, 0o644);
  return { indexFile, services: signed.length, signatureFile };
}
