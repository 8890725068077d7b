/**
 * Accounts of peers inside the services (DESIGN §5, "accounts"): per service, desired are the
 * peers whose PeerAccount lists it, observed are the service's own account list and the
 * credentials file. `reconcileServiceAccounts` converges one service; the controller runs it
 * once per installed service with accounts, under the key `Accounts/<service>`.
 */
export {
  reconcileServiceAccounts,
  previewServiceAccounts,
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
export {
  usernameProblem,
  checkUsername,
  USERNAME_PATTERN,
  AccountRejectedError,
  AccountServiceError,
  type AccountManager,
  type ManagerOptions,
} from './account-manager.js';
export { managerFor } from './managers.js';
export { planAccounts, desiredPeersByService, describeAccountAction, type AccountAction, type ObservedAccounts } from './plan.js';
export { fillPeerConfig, encodeUsername, PeerConfigError, type PeerConfigInput } from './template.js';

/** The queue and status key of one service's accounts. */
export function accountsKey(service: string): string {
  return `Accounts/${service}`;
}
