/**
 * What every account manager is (the same three calls) and what it may throw; the managers
 * themselves are http-manager.ts and exec-managers.ts, chosen by managers.ts.
 *
 * Failures are values a person can act on, and never carry a password:
 * - `AccountRejectedError` (a TerminalError): the service refused the request as invalid, or the
 *   manifest/config cannot work. Nothing changed; retrying cannot help until someone edits.
 * - `AccountServiceError`: the service could not be asked or failed (down, timeout, 5xx). Retry.
 *   `mayHaveApplied` says whether the request may have reached it (a timeout after sending), so
 *   the caller knows whether an account may now exist.
 */
import { redact } from '../../state/events.js';
import { TerminalError } from '../errors.js';
import { printable, usernameProblem } from './username.js';

export interface AccountManager {
  /** Usernames the service has, as it reports them. */
  list(): Promise<string[]>;
  /** Create `username` with `password`; 'exists' when the service already has that name. */
  create(username: string, password: string): Promise<'created' | 'exists'>;
  /** Remove `username`; 'absent' when the service has no such account. */
  remove(username: string): Promise<'removed' | 'absent'>;
}

export interface ManagerOptions {
  /** Time limit of one call to the service (default 5 s for HTTP, 30 s for an exec). */
  timeoutMs?: number;
}

export class AccountRejectedError extends TerminalError {
  constructor(message: string, reason = 'AccountRejected') {
    super(message, reason);
  }
}

export class AccountServiceError extends Error {
  override readonly name = 'AccountServiceError';
  constructor(
    message: string,
    /** The request may have reached the service and been carried out (a timeout, a reset, a 5xx). */
    readonly mayHaveApplied: boolean,
    /** The service could not be reached at all (down, refused, timed out), so later calls this pass would fail too. */
    readonly unreachable: boolean,
  ) {
    super(message);
  }
}

export function checkUsername(service: string, username: string): void {
  const problem = usernameProblem(username);
  if (problem !== undefined) throw new AccountRejectedError(`${service}: ${problem}`, 'InvalidUsername');
}

/** Passwords travel as one line of stdin or one JSON string: 1-1024 characters, no control characters. */
export function checkPassword(service: string, password: string): void {
  // eslint-disable-next-line no-control-regex
  if (password.length < 1 || password.length > 1024 || /[\u0000-\u001f\u007f]/.test(password)) {
    throw new AccountRejectedError(`${service}: the password must be 1-1024 characters without control characters`, 'InvalidPassword');
  }
}

/**
 * A short, single-line, redacted excerpt of text a service sent back (an error body, stderr), fit
 * to go into a status message.
 */
export function serviceText(text: string): string {
  const line =
    text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .find((l) => l !== '') ?? '';
  const clean = printable(line);
  return redact(clean.length > 300 ? `${clean.slice(0, 300)}…` : clean);
}
