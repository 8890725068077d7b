/**
 * The service secrets file: `{ <serviceId>: { <NAME>: <value> } }`, mode 0600.
 *
 * A secret named in a compose template as `${PIC_SECRET_<NAME>}` is generated the first time a
 * service needs it and then kept for good: databases and accounts are initialised with it, so a
 * silent rotation would lock the service out of its own data.
 */
import { randomBytes } from 'node:crypto';
import { isRecord } from '../crds/values.js';
import { CachedJsonFile, serialiseOnFile } from './atomic-write.js';

export type SecretsFile = Record<string, Record<string, string>>;

/** Names as they follow `PIC_SECRET_` in a template. */
export const SECRET_NAME_PATTERN = /^[A-Za-z0-9_]+$/;

/** 24 random bytes are 32 URL-safe base64 characters, as the reference implementation makes them. */
export function generateSecret(): string {
  return randomBytes(24).toString('base64url');
}

function isSecretsFile(value: unknown): value is SecretsFile {
  return isRecord(value) && Object.values(value).every((entry) => isRecord(entry) && Object.values(entry).every((v) => typeof v === 'string'));
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

export class SecretsStore {
  private readonly store: CachedJsonFile<unknown>;
  /** The last content found well-formed, so an unchanged file is not checked again. */
  private checked: unknown;

  constructor(readonly file: string) {
    this.store = new CachedJsonFile<unknown>(file, {});
  }

  /**
   * Return the secrets `names` of `serviceId`, generating the missing ones. The file is written
   * only when something was generated; existing secrets are never changed.
   */
  ensure(serviceId: string, names: readonly string[]): Promise<Record<string, string>> {
    for (const name of names) {
      if (!SECRET_NAME_PATTERN.test(name)) {
        return Promise.reject(new Error(`secret name "${name}" of service "${serviceId}" must match ${SECRET_NAME_PATTERN.source}`));
      }
    }
    return this.serialise(async () => {
      const all = await this.read();
      const own = Object.prototype.hasOwnProperty.call(all, serviceId) ? (all[serviceId] as Record<string, string>) : undefined;
      const service: Record<string, string> = { ...(own ?? {}) };
      let generated = false;
      for (const name of names) {
        if (!Object.prototype.hasOwnProperty.call(service, name)) {
          setOwn(service, name, generateSecret());
          generated = true;
        }
      }
      if (generated) {
        const next = { ...all };
        setOwn(next, serviceId, service);
        await this.write(next);
      }
      const result: Record<string, string> = {};
      for (const name of names) setOwn(result, name, service[name]);
      return result;
    });
  }

  /** The stored secrets of `serviceId` (empty when none), without generating anything. */
  get(serviceId: string): Promise<Record<string, string>> {
    return this.serialise(async () => {
      const all = await this.read();
      return { ...(Object.prototype.hasOwnProperty.call(all, serviceId) ? all[serviceId] : {}) };
    });
  }

  /**
   * Drop every secret of `serviceId`. Uninstalling a service does NOT call this: its volumes are
   * kept on uninstall, and a reinstall must find the same secrets to open its own data again.
   * Only an explicit purge should. Returns whether anything was removed (and written).
   */
  forget(serviceId: string): Promise<boolean> {
    return this.serialise(async () => {
      const all = await this.read();
      if (!Object.prototype.hasOwnProperty.call(all, serviceId)) return false;
      const next = { ...all };
      delete next[serviceId];
      await this.write(next);
      return true;
    });
  }

  private serialise<T>(task: () => Promise<T>): Promise<T> {
    return serialiseOnFile(this.file, task);
  }

  /** The file's content, shared with later reads: copy before changing. */
  private async read(): Promise<Readonly<SecretsFile>> {
    const data = await this.store.read();
    if (data === this.checked) return data;
    if (!isSecretsFile(data)) {
      throw new Error(`${this.file}: expected { "<service>": { "<NAME>": "<secret>" } }; refusing to overwrite it — fix or move it aside`);
    }
    this.checked = data;
    return data;
  }

  private async write(all: SecretsFile): Promise<void> {
    const sorted: SecretsFile = {};
    for (const id of Object.keys(all).sort()) {
      const entry: Record<string, string> = {};
      const service = all[id] as Record<string, string>;
      for (const name of Object.keys(service).sort()) setOwn(entry, name, service[name]);
      setOwn(sorted, id, entry);
    }
    await this.store.write(sorted, `${JSON.stringify(sorted, null, 2)}\n`, 0o600);
  }
}
