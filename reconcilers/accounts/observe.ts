/**
 * A service's accounts as they are: the names the service reports (one list call through its
 * manager) and the peers pic holds credentials for on it. An adapter: the manager talks HTTP or
 * Docker exec, the credentials are a file.
 */
import type Dockerode from 'dockerode';
import type { CredentialsStore } from '../../state/credentials.js';
import type { InstalledService } from '../shared/types.js';
import type { AccountManager } from './account-manager.js';
import { managerFor } from './managers.js';
import type { ObservedAccounts } from './plan.js';

export interface AccountsReach {
  docker: Dockerode;
  /** The cell's name: an exec manager runs only in a container carrying this cell's label. */
  cellName: string;
  credentials: CredentialsStore;
  /** Time limit of each call to the service; the managers' defaults otherwise. */
  timeoutMs?: number;
}

/** The peers pic holds credentials for on `service`. */
export function credentialedPeers(service: InstalledService, reach: Pick<AccountsReach, 'credentials'>): Promise<string[]> {
  return reach.credentials.peersOf(service.name);
}

/**
 * The service's manager and the accounts it reports. Throws what the manager throws: an
 * AccountRejectedError when the service cannot have one, an AccountServiceError when it cannot be asked.
 */
export async function observeServiceAccounts(service: InstalledService, credentialed: readonly string[], reach: AccountsReach): Promise<{ manager: AccountManager; observed: ObservedAccounts }> {
  const manager = managerFor(service, reach.docker, reach.cellName, reach.timeoutMs === undefined ? {} : { timeoutMs: reach.timeoutMs });
  const inService = await manager.list();
  return { manager, observed: { inService, credentialed } };
}
