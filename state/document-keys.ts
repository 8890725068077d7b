/**
 * The key of a document, `<Kind>/<name>` (`ServiceInstall/notes`): it names the document's queue
 * entry and status file, and is the owner label of what pic creates for it (containers, volumes,
 * a VPN address). One builder per kind, here; the keys of what is not a document live with their
 * reconciler (`Core/<name>` in reconcilers/core/spec.ts, `Accounts/<service>` in
 * reconcilers/accounts/index.ts). Pure.
 */
import type { DocumentKind } from '../crds/types.js';

export const SERVICE_KIND = 'ServiceInstall';
export const CONNECTION_KIND = 'Connection';

/** The key of any document. */
export function documentKey(doc: { kind: string; metadata: { name: string } }): string {
  return `${doc.kind}/${doc.metadata.name}`;
}

/** The key a raw document claims, if it says (kind and name are strings), so even a broken document can get a status. */
export function claimedKey(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as { kind?: unknown; metadata?: { name?: unknown } };
  if (typeof v.kind !== 'string' || typeof v.metadata?.name !== 'string') return undefined;
  return documentKey({ kind: v.kind, metadata: { name: v.metadata.name } });
}

/** `ServiceInstall/<name>`: a service's key and the owner label of its containers and volumes. */
export function serviceKey(name: string): string {
  return `${SERVICE_KIND}/${name}`;
}

/** `PeerAccount/<name>`: a peer's key and the owner of its VPN address. */
export function peerKey(name: string): string {
  return `PeerAccount/${name}`;
}

/** `Connection/<name>`: a Connection's key and the owner label of its exit's containers. */
export function connectionKey(name: string): string {
  return `${CONNECTION_KIND}/${name}`;
}

/** `Cell/<name>`: the key of the cell's own status. */
export function cellKey(name: string): string {
  return `Cell/${name}`;
}

/** The name in `key` when it is a key of `kind`; undefined for any other key. */
export function nameInKey(key: string | undefined, kind: DocumentKind): string | undefined {
  return key?.startsWith(`${kind}/`) ? key.slice(kind.length + 1) : undefined;
}

/** Whether `key` is a ServiceInstall's. */
export function isServiceKey(key: string | undefined): key is string {
  return nameInKey(key, SERVICE_KIND) !== undefined;
}
