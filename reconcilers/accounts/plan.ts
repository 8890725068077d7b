/**
 * What to do with one service's accounts (pure): desired are the peers whose PeerAccount lists
 * the service; observed are the accounts the service reports and the peers pic holds credentials
 * for on it. A stored credential is what makes an account pic's own: only those are ever
 * removed. Accounts someone created in the service by other means are left alone.
 */
import type { PeerAccountDocument } from '../../crds/types.js';
import { compareText } from '../../crds/values.js';
import type { InstalledService } from '../shared/types.js';
import { usernameProblem } from './username.js';

export interface ObservedAccounts {
  /** Usernames the service reports. */
  inService: readonly string[];
  /** Peers with stored credentials for this service. */
  credentialed: readonly string[];
}

export type AccountAction =
  | {
      kind: 'provision';
      peer: string;
      /** pic holds a password for it (from an earlier attempt): reuse it, never replace it. */
      hasCredential: boolean;
    }
  | {
      kind: 'deprovision';
      peer: string;
      /** false: the account is already gone from the service; only the credential is left to drop. */
      inService: boolean;
    }
  | {
      /** A desired account pic must not or cannot create: reported, nothing is called. */
      kind: 'refuse';
      peer: string;
      /** not-ours: the service has an account of that name and pic holds no password for it; invalid-name: the name cannot be an account's. */
      why: 'not-ours' | 'invalid-name';
      /** For invalid-name: what is wrong with the name. */
      problem?: string;
    };


/**
 * Actions to converge one service: removals first (sorted by peer), then provisions and refusals
 * (sorted by peer). [] when in sync.
 */
export function planAccounts(desiredPeers: readonly string[], observed: ObservedAccounts): AccountAction[] {
  const desired = new Set(desiredPeers);
  const inService = new Set(observed.inService);
  const credentialed = new Set(observed.credentialed);

  const removals: AccountAction[] = [...credentialed]
    .filter((peer) => !desired.has(peer))
    .sort(compareText)
    .map((peer) => ({ kind: 'deprovision', peer, inService: inService.has(peer) }));

  const provisions: AccountAction[] = [...desired]
    .filter((peer) => !(inService.has(peer) && credentialed.has(peer)))
    .sort(compareText)
    .map((peer): AccountAction => {
      if (inService.has(peer) && !credentialed.has(peer)) return { kind: 'refuse', peer, why: 'not-ours' };
      const problem = usernameProblem(peer);
      if (problem !== undefined) return { kind: 'refuse', peer, why: 'invalid-name', problem };
      return { kind: 'provision', peer, hasCredential: credentialed.has(peer) };
    });

  return [...removals, ...provisions];
}

/**
 * For each installed service that has accounts, the peers whose PeerAccount lists it (sorted);
 * a service nobody lists maps to []. Services a PeerAccount lists that are not installed, or
 * have no accounts, are not keys: the document checks report those.
 */
export function desiredPeersByService(services: readonly InstalledService[], peers: readonly PeerAccountDocument[]): Map<string, string[]> {
  const result = new Map<string, string[]>();
  for (const s of [...services].sort((a, b) => compareText(a.name, b.name))) {
    if (s.manifest.capabilities.has_accounts && s.manifest.accounts !== undefined) result.set(s.name, []);
  }
  for (const peer of peers) {
    for (const service of new Set(peer.spec.services)) result.get(service)?.push(peer.metadata.name);
  }
  for (const list of result.values()) list.sort(compareText);
  return result;
}

/** One line per action, for `pic plan`. Names only: no credential ever appears here. */
export function describeAccountAction(service: string, action: AccountAction): string {
  if (action.kind === 'deprovision') {
    return action.inService
      ? `remove account "${action.peer}" from ${service} and forget its credentials`
      : `forget the credentials of "${action.peer}" on ${service} (the account is already gone)`;
  }
  if (action.kind === 'refuse') {
    return action.why === 'not-ours'
      ? `account "${action.peer}" exists in ${service} but pic has no password for it: cannot provision`
      : `cannot create account "${action.peer}" in ${service}: ${action.problem ?? 'not a valid account name'}`;
  }
  return action.hasCredential
    ? `create account "${action.peer}" in ${service} with its stored password`
    : `create account "${action.peer}" in ${service} with a new password`;
}
