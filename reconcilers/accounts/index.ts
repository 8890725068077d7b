/**
 * Accounts of peers inside the services (DESIGN §5, "accounts"): per service, desired are the
 * peers whose PeerAccount lists it, observed are the service's own account list and the
 * credentials file. `reconcileServiceAccounts` converges one service: observe (observe.ts) →
 * plan (plan.ts, pure) → apply (apply.ts, one call per action). The controller runs it once per
 * installed service with accounts, each under its own queue key `Accounts/<service>`, so a
 * service that is down delays only its own accounts.
 */
import type { InstalledService } from '../shared/types.js';
import { applyAccountActions, type AccountsDeps, type ServiceAccountsResult } from './apply.js';
import { credentialedPeers, observeServiceAccounts, type AccountsReach } from './observe.js';
import { describeAccountAction, planAccounts } from './plan.js';

export {
  accountsError,
  peerStatus,
  type AccountsDeps,
  type PeerAccountResult,
  type PeerAccountState,
  type PeerServiceStatus,
  type PeerStatus,
  type RemovalResult,
  type ServiceAccountsResult,
} from './apply.js';
export { checkUsername, AccountRejectedError, AccountServiceError, type AccountManager, type ManagerOptions } from './account-manager.js';
export { managerFor } from './managers.js';
export type { AccountsReach } from './observe.js';
export { planAccounts, desiredPeersByService, describeAccountAction, type AccountAction, type ObservedAccounts } from './plan.js';
export { fillPeerConfig, encodeUsername, PeerConfigError, type PeerConfigInput } from './template.js';
export { usernameProblem, USERNAME_PATTERN } from './username.js';

/** The queue and status key of one service's accounts. */
export function accountsKey(service: string): string {
  return `Accounts/${service}`;
}

/** Converge one service's accounts to `desiredPeers`. */
export async function reconcileServiceAccounts(service: InstalledService, desiredPeers: readonly string[], deps: AccountsDeps): Promise<ServiceAccountsResult> {
  const desired = [...new Set(desiredPeers)].sort();
  const credentialed = await credentialedPeers(service, deps);
  let seen: Awaited<ReturnType<typeof observeServiceAccounts>>;
  try {
    seen = await observeServiceAccounts(service, credentialed, deps);
  } catch (err) {
    return applyAccountActions(service.name, desired, { unavailable: err, credentialed }, deps);
  }
  return applyAccountActions(service.name, desired, { actions: planAccounts(desired, seen.observed), manager: seen.manager }, deps);
}

/** What `reconcileServiceAccounts` would do, one line per action, without changing anything ([] in sync). */
export async function previewServiceAccounts(service: InstalledService, desiredPeers: readonly string[], reach: AccountsReach): Promise<string[]> {
  const { observed } = await observeServiceAccounts(service, await credentialedPeers(service, reach), reach);
  return planAccounts([...new Set(desiredPeers)], observed).map((a) => describeAccountAction(service.name, a));
}
