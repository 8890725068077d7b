/**
 * The peer credentials file: `{ <service>: { <peer>: { password, ...other fields } } }` in
 * `<stateRoot>/credentials.json`, mode 0600.
 *
 * Passwords are kept in plain text on purpose: `pic credentials PEER` hands them to the peer
 * verbatim for a one-time client setup, and a service cannot tell them back. An entry here also
 * means "pic created this account": the accounts reconciler removes from a service only the
 * accounts it finds here, and leaves every other account alone.
 *
 * Nothing in this module puts a credential value into an error message: a corrupt file is
 * reported by its path and a position, never by a quote of its content.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { isRecord } from '../crds/values.js';
import { writeFileAtomic, serialiseOnFile } from './atomic-write.js';

/** The credential fields of one peer on one service; `password` is always there. */
export type ServiceCredentials = { password: string } & Record<string, string>;
export type CredentialsFile = Record<string, Record<string, ServiceCredentials>>;

/** 16 random bytes as URL-safe base64 (22 characters), like the reference `token_urlsafe(16)`. */
export function generatePassword(): string {
  return randomBytes(16).toString('base64url');
}

function isCredentialsFile(value: unknown): value is CredentialsFile {
  if (!isRecord(value)) return false;
  return Object.values(value).every(
    (peers) =>
      isRecord(peers) &&
      Object.values(peers).every(
        (fields) => isRecord(fields) && typeof fields.password === 'string' && Object.values(fields).every((v) => typeof v === 'string'),
      ),
  );
}

function has(target: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(target, key);
}

/** Define an own property, so a key such as "__proto__" is stored like any other name. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

function sortedCopy(all: CredentialsFile): CredentialsFile {
  const out: CredentialsFile = {};
  for (const service of Object.keys(all).sort()) {
    const peers: Record<string, ServiceCredentials> = {};
    const source = all[service] as Record<string, ServiceCredentials>;
    for (const peer of Object.keys(source).sort()) {
      const fields: Record<string, string> = {};
      const creds = source[peer] as ServiceCredentials;
      for (const name of Object.keys(creds).sort()) setOwn(fields, name, creds[name]);
      setOwn(peers, peer, fields);
    }
    setOwn(out, service, peers);
  }
  return out;
}

function sameFields(a: Record<string, string> | undefined, b: Record<string, string>): boolean {
  if (a === undefined) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => has(b, k) && a[k] === b[k]);
}

export class CredentialsStore {
  constructor(readonly file: string) {}

  /** The stored credentials of `peer` on `service`, or undefined. */
  get(service: string, peer: string): Promise<ServiceCredentials | undefined> {
    return this.serialise(async () => {
      const peers = entry(await this.read(), service);
      return peers && has(peers, peer) ? { ...(peers[peer] as ServiceCredentials) } : undefined;
    });
  }

  /**
   * Store the credentials of `peer` on `service`, replacing what was there, and return them. A
   * password is generated when `creds` has none. The file is written only when this changes it.
   */
  set(service: string, peer: string, creds: Record<string, string> = {}): Promise<ServiceCredentials> {
    const fields: Record<string, string> = {};
    for (const [name, value] of Object.entries(creds)) {
      if (typeof value !== 'string') return Promise.reject(new Error(`credential field "${name}" of ${peer} on ${service} must be a string`));
      setOwn(fields, name, value);
    }
    if (!has(fields, 'password') || fields.password === '') setOwn(fields, 'password', generatePassword());
    const stored = fields as ServiceCredentials;
    return this.serialise(async () => {
      const all = await this.read();
      const peers = entry(all, service) ?? {};
      if (sameFields(has(peers, peer) ? peers[peer] : undefined, stored)) return { ...stored };
      setOwn(peers, peer, stored);
      setOwn(all, service, peers);
      await this.write(all);
      return { ...stored };
    });
  }

  /** Forget `peer` on `service`; a service left without peers is dropped. Returns whether anything was removed. */
  remove(service: string, peer: string): Promise<boolean> {
    return this.serialise(async () => {
      const all = await this.read();
      const peers = entry(all, service);
      if (!peers || !has(peers, peer)) return false;
      delete peers[peer];
      if (Object.keys(peers).length === 0) delete all[service];
      await this.write(all);
      return true;
    });
  }

  /** Peers with stored credentials on `service`, sorted. */
  peersOf(service: string): Promise<string[]> {
    return this.serialise(async () => Object.keys(entry(await this.read(), service) ?? {}).sort());
  }

  /** Services on which `peer` has stored credentials, sorted. */
  servicesOf(peer: string): Promise<string[]> {
    return this.serialise(async () => {
      const all = await this.read();
      return Object.keys(all)
        .filter((service) => has(all[service] as object, peer))
        .sort();
    });
  }

  /** A copy of the whole file (sorted); `{}` when there is none. */
  all(): Promise<CredentialsFile> {
    return this.serialise(async () => sortedCopy(await this.read()));
  }

  private serialise<T>(task: () => Promise<T>): Promise<T> {
    return serialiseOnFile(this.file, task);
  }

  private async read(): Promise<CredentialsFile> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new Error(`cannot read the credentials file ${this.file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      // JSON.parse's own message quotes the text around the fault, which may be a password.
      throw new Error(`${this.file}: not valid JSON; refusing to overwrite it — fix it or move it aside (pic then forgets every stored password)`);
    }
    if (!isCredentialsFile(data)) {
      throw new Error(`${this.file}: expected { "<service>": { "<peer>": { "password": "…" } } } with string values; refusing to overwrite it — fix it or move it aside`);
    }
    return data;
  }

  private async write(all: CredentialsFile): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify(sortedCopy(all), null, 2)}\n`, 0o600);
  }
}

function entry(all: CredentialsFile, service: string): Record<string, ServiceCredentials> | undefined {
  return has(all, service) ? all[service] : undefined;
}
