/**
 * Which keys a full pass reconciles, and the share of the pass's one container listing each is
 * handed: for the operator's resync and for `pic plan` alike. Pure.
 */
import type { ObservedContainer } from '../reconcilers/containers/types.js';
import { coreComponents, isCoreKey } from '../reconcilers/core/spec.js';
import type { LoadedCell } from '../state/cell.js';
import { CONNECTION_KIND, documentKey, isServiceKey, nameInKey } from '../state/document-keys.js';
import type { HeldCell } from '../state/hold.js';

/** Keys of documents that own containers: ServiceInstalls, and Connections (their exits). */
export function isContainerOwnerKey(key: string): boolean {
  return isServiceKey(key) || nameInKey(key, CONNECTION_KIND) !== undefined;
}

/** Keys of every document that owns containers the snapshot declares, valid, refused or held; sorted. */
export function ownerKeys(cell: HeldCell): string[] {
  const keys = new Set<string>();
  for (const s of cell.docs.services) keys.add(documentKey(s.doc));
  for (const c of cell.docs.connections) keys.add(documentKey(c.doc));
  for (const r of cell.docs.rejected) if (r.key && isContainerOwnerKey(r.key)) keys.add(r.key);
  for (const key of cell.held.keys()) if (isContainerOwnerKey(key)) keys.add(key);
  return [...keys].sort();
}

/** `Core/<name>` of every core container the Cell asks pic to run. */
export function coreKeys(cell: LoadedCell): string[] {
  return cell.cell ? coreComponents(cell.cell).map((c) => c.key) : [];
}

/**
 * The owners a full pass converges, each with its share of the one listing: every document that
 * owns containers and every core component the snapshot declares (documents first, sorted), then
 * every other such owner that `listing` (containers) or `known` (statuses, addresses) still
 * names — its document went while the operator was down, so it is converged to absent.
 */
export function ownersOfPass(cell: HeldCell, listing: readonly ObservedContainer[], known: Iterable<string>): Map<string, ObservedContainer[]> {
  const byOwner = new Map<string, ObservedContainer[]>();
  for (const key of [...ownerKeys(cell), ...coreKeys(cell)]) byOwner.set(key, []);
  for (const c of listing) {
    if (!isContainerOwnerKey(c.owner) && !isCoreKey(c.owner)) continue;
    const own = byOwner.get(c.owner);
    if (own) own.push(c);
    else byOwner.set(c.owner, [c]);
  }
  for (const key of known) if ((isContainerOwnerKey(key) || isCoreKey(key)) && !byOwner.has(key)) byOwner.set(key, []);
  return byOwner;
}
