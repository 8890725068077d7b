/**
 * The reference services' account managers (`email_manager`, `calendar_manager`,
 * `file_manager`): the account command of the service's image, run in the container the manifest
 * names (`container_name`: cell-mail, cell-calendar, cell-files) through the Docker exec API with
 * an argument array. The password goes on stdin, never into the argument list, so no process
 * listing shows it. The container is the service's own: the name is resolved once per manager
 * and checked to carry the service's owner label (`ServiceInstall/<name>`) and the cell's, and
 * every command runs in that id.
 *
 *   mail-account  add USER DOMAIN | del USER DOMAIN | list DOMAIN
 *   cal-account   add USER        | del USER        | list
 *   files-account add USER        | del USER        | list
 *
 * Exit status: 0 ok, 1 error, 2 usage (an invalid name), 3 already exists, 4 not found.
 */
import type Dockerode from 'dockerode';
import { serviceKey } from '../../state/document-keys.js';
import type { InstalledService } from '../shared/types.js';
import { ContainerUnavailableError, execInContainer, type ExecResult } from '../shared/exec.js';
import { ContainerNotOwnedError, resolveOwnedContainer, type ContainerClaim, type OwnedContainer } from '../shared/owned-container.js';
import {
  AccountRejectedError,
  AccountServiceError,
  checkPassword,
  checkUsername,
  serviceText,
  type AccountManager,
  type ManagerOptions,
} from './account-manager.js';

export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;

const COMMANDS = {
  email_manager: 'mail-account',
  calendar_manager: 'cal-account',
  file_manager: 'files-account',
} as const;

type ExecManagerName = keyof typeof COMMANDS;

/**
 * The trailing arguments every call of the service's command takes: the mail domain for email
 * (from the service's merged config; without one there is nothing to call, so this throws first).
 */
function scopeOf(service: InstalledService, manager: ExecManagerName): string[] {
  if (manager !== 'email_manager') return [];
  const domain = service.config.domain;
  if (typeof domain !== 'string' || domain.trim() === '') {
    throw new AccountRejectedError(
      `service "${service.name}" has no mail domain: set spec.config.domain in its ServiceInstall (the part of each address after the @)`,
      'MissingMailDomain',
    );
  }
  return [domain];
}

export function execAccountManager(service: InstalledService, docker: Dockerode, cellName: string, options: ManagerOptions = {}): AccountManager {
  const manager = service.manifest.accounts?.manager;
  if (manager === undefined || !(manager in COMMANDS)) {
    throw new AccountRejectedError(`service "${service.name}": accounts.manager "${String(manager)}" is not run in a container`, 'UnknownAccountManager');
  }
  const command = COMMANDS[manager as ExecManagerName];
  const scope = scopeOf(service, manager as ExecManagerName);
  const container = service.manifest.container_name;
  const timeoutMs = options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const name = service.name;
  const claim: ContainerClaim = { name: container, owner: serviceKey(name), cell: cellName, createdBy: 'pic', role: `pic's ${name} service`, use: 'exec into' };
  let owned: Promise<OwnedContainer> | undefined;

  async function run(args: string[], stdin?: string): Promise<ExecResult> {
    const argv = [command, ...args, ...scope];
    const what = `${name}: ${command} ${args[0]} in ${container}`;
    try {
      owned ??= resolveOwnedContainer(docker, claim);
      return await execInContainer(docker, await owned, argv, { ...(stdin === undefined ? {} : { stdin }), timeoutMs });
    } catch (err) {
      // Another container holds the name: nothing ran, and nothing will until it is gone.
      if (err instanceof ContainerNotOwnedError) throw err;
      // The container is missing or stopped: the command never ran.
      if (err instanceof ContainerUnavailableError) throw new AccountServiceError(`${what}: ${serviceText(err.message)}`, false, true);
      // A timeout or a broken exec stream: the command may have run.
      throw new AccountServiceError(`${what}: ${serviceText((err as Error).message ?? String(err))}`, true, true);
    }
  }

  function failure(args: string[], result: ExecResult): Error {
    const detail = serviceText(result.stderr) || serviceText(result.stdout);
    const message = `${name}: ${command} ${args.join(' ')} in ${container} exited ${result.exitCode}${detail ? ` (${detail})` : ''}`;
    switch (result.exitCode) {
      case 2:
        return new AccountRejectedError(message);
      case 126:
      case 127:
        return new AccountRejectedError(`${message}; the container's image has no usable ${command} command`, 'NoAccountCommand');
      case 1:
        // The commands fail before they replace their account file: nothing was changed.
        return new AccountServiceError(message, false, false);
      default:
        return new AccountServiceError(message, true, false);
    }
  }

  function checkName(username: string): void {
    checkUsername(name, username);
    // The address is USER@DOMAIN: an "@" in USER would make it another address.
    if (manager === 'email_manager' && username.includes('@')) {
      throw new AccountRejectedError(`${name}: "${username}" cannot be a mailbox name: it may not contain "@"`, 'InvalidUsername');
    }
  }

  return {
    async list() {
      const args = ['list'];
      const result = await run(args);
      if (result.exitCode !== 0) throw failure(args, result);
      return result.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '');
    },

    async create(username, password) {
      checkName(username);
      checkPassword(name, password);
      const args = ['add', username];
      const result = await run(args, `${password}\n`);
      if (result.exitCode === 0) return 'created';
      if (result.exitCode === 3) return 'exists';
      throw failure(args, result);
    },

    async remove(username) {
      checkName(username);
      const args = ['del', username];
      const result = await run(args);
      if (result.exitCode === 0) return 'removed';
      if (result.exitCode === 4) return 'absent';
      throw failure(args, result);
    },
  };
}
