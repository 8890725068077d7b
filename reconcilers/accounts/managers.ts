/**
 * The account managers: one small adapter per `accounts.manager` of a manifest, all with the same
 * three calls (account-manager.ts). `http` speaks a store service's `/service-api/accounts`;
 * `email_manager`, `calendar_manager` and `file_manager` run the reference images' account
 * commands through the Docker exec API.
 */
import type Dockerode from 'dockerode';
import type { InstalledService } from '../shared/types.js';
import { AccountRejectedError, type AccountManager, type ManagerOptions } from './account-manager.js';
import { execAccountManager } from './exec-managers.js';
import { httpAccountManager } from './http-manager.js';

/**
 * The manager for `service`'s `accounts.manager`. Throws AccountRejectedError when the service
 * cannot have one (no accounts, an unknown manager, email without a domain): before any call.
 */
export function managerFor(service: InstalledService, docker: Dockerode, cellName: string, options: ManagerOptions = {}): AccountManager {
  const accounts = service.manifest.accounts;
  if (!service.manifest.capabilities.has_accounts || accounts === undefined) {
    throw new AccountRejectedError(`service "${service.name}" has no accounts: its manifest does not set capabilities.has_accounts and accounts`, 'NoAccounts');
  }
  switch (accounts.manager) {
    case 'http':
      return httpAccountManager(service, options);
    case 'email_manager':
    case 'calendar_manager':
    case 'file_manager':
      return execAccountManager(service, docker, cellName, options);
    default:
      throw new AccountRejectedError(
        `service "${service.name}": unknown accounts.manager "${String(accounts.manager)}"; use http, email_manager, calendar_manager or file_manager`,
        'UnknownAccountManager',
      );
  }
}
