/**
 * Apply one service's account plan: one call per action (index.ts observes and plans first).
 *
 * Order of writes, chosen so that a crash at any point leaves pic able to carry on:
 * - provision: the password is stored FIRST, then the account is created. A crash (or a lost
 *   answer) after the service created it still leaves pic holding its password; the next pass
 *   sees the account and the credential and is in sync. If the create fails and the failure shows
 *   that nothing was created (refused connection, a 4xx, a command that exited 1 or 2), a password
 *   generated in this pass is dropped again; if the account may exist (timeout, reset, 5xx) it is
 *   kept, and the next pass creates the account with that same password or finds it there.
 * - deprovision: the account is removed in the service, THEN its credential is dropped; a failed
 *   removal keeps the credential, so the account is still known to be pic's and is retried.
 *
 * Nothing here writes a password into an event, a result, or an error.
 */
import { compareText } from '../../crds/values.js';
import { generatePassword } from '../../state/credentials.js';
import { redact } from '../../state/events.js';
import { isTerminal, TerminalError } from '../errors.js';
import { AccountServiceError, type AccountManager } from './account-manager.js';
import type { AccountsReach } from './observe.js';
import type { AccountAction } from './plan.js';

export type PeerAccountState = 'provisioned' | 'pending' | 'failed';

export interface PeerAccountResult {
  peer: string;
  state: PeerAccountState;
  /** Why it is not provisioned: names the service and what to do; never a credential. */
  reason?: string;
  /** For 'failed': whether a later attempt may succeed without anyone changing anything. */
  retryable?: boolean;
}

export interface RemovalResult {
  peer: string;
  state: 'removed' | 'failed';
  reason?: string;
  retryable?: boolean;
}

export interface ServiceAccountsResult {
  service: string;
  /** One entry per desired peer, sorted by peer. */
  peers: PeerAccountResult[];
  /** One entry per account pic had to remove (its peer no longer lists the service), sorted by peer. */
  removals: RemovalResult[];
  /** Whether anything was changed: an account created or removed, a credential stored or dropped. */
  changed: boolean;
}

export interface AccountsDeps extends AccountsReach {
  /** Record an event about this service's accounts (also logged). */
  event: (reason: string, message: string, type?: 'Normal' | 'Warning') => void;
}

interface Failure {
  reason: string;
  retryable: boolean;
  /** The service could not be reached: later calls this pass would fail the same way. */
  unreachable: boolean;
  mayHaveApplied: boolean;
}

function failureOf(err: unknown): Failure {
  const message = redact((err as Error)?.message ?? String(err));
  if (err instanceof AccountServiceError) return { reason: message, retryable: true, unreachable: err.unreachable, mayHaveApplied: err.mayHaveApplied };
  if (isTerminal(err)) return { reason: message, retryable: false, unreachable: false, mayHaveApplied: false };
  return { reason: message, retryable: true, unreachable: false, mayHaveApplied: true };
}

function conflictReason(service: string, peer: string): string {
  return (
    `account "${peer}" exists in ${service} but pic has no password for it (pic did not create it, or its stored credentials were lost); ` +
    `remove that account in the service to let pic create it, or take ${service} out of PeerAccount ${peer}`
  );
}

function byPeer<T extends { peer: string }>(a: T, b: T): number {
  return compareText(a.peer, b.peer);
}

/**
 * Carry out the plan for one service with its manager, in order. Once the service stops answering,
 * the remaining actions are not attempted this pass (pending, or a failed removal to retry).
 * `credentialed` (what was observed) names the removals that fail with the rest when `unavailable`
 * says the service could not even be read.
 */
export async function applyAccountActions(
  service: string,
  desired: readonly string[],
  plan: { actions: readonly AccountAction[]; manager: AccountManager } | { unavailable: unknown; credentialed: readonly string[] },
  deps: AccountsDeps,
): Promise<ServiceAccountsResult> {
  if ('unavailable' in plan) {
    const failure = failureOf(plan.unavailable);
    deps.event('AccountsUnavailable', `cannot read the accounts of ${service}: ${failure.reason}`, 'Warning');
    return {
      service,
      peers: desired.map((peer) => ({ peer, state: 'failed' as const, reason: failure.reason, retryable: failure.retryable })),
      removals: plan.credentialed
        .filter((peer) => !desired.includes(peer))
        .map((peer) => ({ peer, state: 'failed' as const, reason: failure.reason, retryable: failure.retryable })),
      changed: false,
    };
  }
  const { actions, manager } = plan;
  const peers = new Map<string, PeerAccountResult>(desired.map((peer) => [peer, { peer, state: 'provisioned' }]));
  const removals: RemovalResult[] = [];
  let changed = false;
  /** Set once the service stops answering: the remaining actions wait for the next pass. */
  let down: Failure | undefined;

  for (const action of actions) {
    if (down !== undefined) {
      const reason = `not attempted: ${down.reason}`;
      if (action.kind === 'deprovision') removals.push({ peer: action.peer, state: 'failed', reason, retryable: true });
      else peers.set(action.peer, { peer: action.peer, state: 'pending', reason });
      continue;
    }
    if (action.kind === 'refuse') {
      peers.set(action.peer, refuse(service, action, deps));
    } else if (action.kind === 'deprovision') {
      const outcome = await deprovision(service, manager, action, deps);
      changed ||= outcome.changed;
      removals.push(outcome.result);
      if (outcome.failure?.unreachable) down = outcome.failure;
    } else {
      const outcome = await provision(service, manager, action, deps);
      changed ||= outcome.changed;
      peers.set(action.peer, outcome.result);
      if (outcome.failure?.unreachable) down = outcome.failure;
    }
  }

  return { service, peers: [...peers.values()].sort(byPeer), removals: removals.sort(byPeer), changed };
}

function refuse(service: string, action: Extract<AccountAction, { kind: 'refuse' }>, deps: AccountsDeps): PeerAccountResult {
  const reason = action.why === 'not-ours' ? conflictReason(service, action.peer) : `${service}: ${action.problem ?? 'not a valid account name'}`;
  deps.event('AccountFailed', `account "${action.peer}" on ${service}: ${reason}`, 'Warning');
  return { peer: action.peer, state: 'failed', reason, retryable: false };
}

async function provision(
  service: string,
  manager: AccountManager,
  action: Extract<AccountAction, { kind: 'provision' }>,
  deps: AccountsDeps,
): Promise<{ result: PeerAccountResult; changed: boolean; failure?: Failure }> {
  const { peer } = action;
  const failed = (failure: Failure, changed: boolean) => {
    deps.event('AccountFailed', `account "${peer}" on ${service}: ${failure.reason}`, 'Warning');
    return { result: { peer, state: 'failed' as const, reason: failure.reason, retryable: failure.retryable }, changed, failure };
  };

  let password: string;
  let changed = false;
  if (action.hasCredential) {
    const stored = await deps.credentials.get(service, peer);
    if (stored === undefined) throw new Error(`the credentials of "${peer}" on ${service} vanished while its accounts were reconciled`);
    password = stored.password;
  } else {
    password = (await deps.credentials.set(service, peer, { password: generatePassword() })).password;
    changed = true;
  }

  let answer: 'created' | 'exists';
  try {
    answer = await manager.create(peer, password);
  } catch (err) {
    const failure = failureOf(err);
    if (!action.hasCredential && !failure.mayHaveApplied) {
      await deps.credentials.remove(service, peer);
      changed = false;
    }
    return failed(failure, changed);
  }

  if (answer === 'created') {
    deps.event('AccountCreated', `created account "${peer}" in ${service}`);
    return { result: { peer, state: 'provisioned' }, changed: true };
  }
  if (action.hasCredential) {
    // Created by an earlier attempt whose answer was lost, with the password pic still holds.
    return { result: { peer, state: 'provisioned' }, changed };
  }
  // Someone else created it between the list and now: the password just stored is not its password.
  await deps.credentials.remove(service, peer);
  return failed({ reason: conflictReason(service, peer), retryable: false, unreachable: false, mayHaveApplied: false }, false);
}

async function deprovision(
  service: string,
  manager: AccountManager,
  action: Extract<AccountAction, { kind: 'deprovision' }>,
  deps: AccountsDeps,
): Promise<{ result: RemovalResult; changed: boolean; failure?: Failure }> {
  const { peer } = action;
  let removed = false;
  if (action.inService) {
    try {
      removed = (await manager.remove(peer)) === 'removed';
    } catch (err) {
      const failure = failureOf(err);
      deps.event('AccountRemovalFailed', `account "${peer}" on ${service}: ${failure.reason}`, 'Warning');
      return { result: { peer, state: 'failed', reason: failure.reason, retryable: failure.retryable }, changed: false, failure };
    }
  }
  await deps.credentials.remove(service, peer);
  deps.event(
    'AccountRemoved',
    removed
      ? `removed account "${peer}" from ${service} (its data in the service is kept) and forgot its credentials`
      : `forgot the credentials of "${peer}" on ${service} (the account was already gone)`,
  );
  return { result: { peer, state: 'removed' }, changed: true };
}

/**
 * The error a controller should raise for a result, so the queue retries or stalls the key:
 * undefined when everything converged; a TerminalError when every failure needs someone to
 * change something; a plain Error (retry with back-off) when any failure may pass by itself, or
 * when some accounts are still pending.
 */
export function accountsError(result: ServiceAccountsResult): Error | undefined {
  const problems = [
    ...result.peers.filter((p) => p.state !== 'provisioned').map((p) => ({ ...p, retryable: p.state === 'pending' || p.retryable !== false })),
    ...result.removals.filter((r) => r.state === 'failed').map((r) => ({ ...r, retryable: r.retryable !== false })),
  ];
  if (problems.length === 0) return undefined;
  const reasons = [...new Set(problems.map((p) => p.reason ?? 'unknown failure'))];
  const message = `${problems.length} account${problems.length === 1 ? '' : 's'} of ${result.service} not converged: ${reasons.join('; ')}`;
  return problems.some((p) => p.retryable) ? new Error(message) : new TerminalError(message, 'AccountsFailed');
}

export interface PeerServiceStatus {
  state: PeerAccountState;
  reason?: string;
  /** The entry is about removing an account the peer no longer lists. */
  removing?: boolean;
}

export interface PeerStatus {
  /** failed if any service failed, else pending if any is pending, else provisioned. */
  state: PeerAccountState;
  /** Per service, sorted by service. */
  services: Record<string, PeerServiceStatus>;
  /** One line for the PeerAccount's status. */
  message: string;
}

/**
 * A PeerAccount's status across services, from the latest result of each service's reconcile.
 * `wanted` (the services its spec lists) makes a service without a result yet show as pending.
 */
export function peerStatus(peer: string, results: ReadonlyMap<string, ServiceAccountsResult>, wanted: readonly string[] = []): PeerStatus {
  const entries = new Map<string, PeerServiceStatus>();
  for (const service of wanted) entries.set(service, { state: 'pending', reason: `${service} has not been reconciled yet` });
  for (const [service, result] of results) {
    const mine = result.peers.find((p) => p.peer === peer);
    if (mine) {
      entries.set(service, { state: mine.state, ...(mine.reason === undefined ? {} : { reason: mine.reason }) });
      continue;
    }
    const removal = result.removals.find((r) => r.peer === peer && r.state === 'failed');
    if (removal) entries.set(service, { state: 'failed', reason: `could not remove the account: ${removal.reason ?? 'unknown failure'}`, removing: true });
  }
  const names = [...entries.keys()].sort();
  const services: Record<string, PeerServiceStatus> = {};
  for (const n of names) Object.defineProperty(services, n, { value: entries.get(n), enumerable: true, writable: true, configurable: true });
  const states = names.map((n) => entries.get(n)!.state);
  const state: PeerAccountState = states.includes('failed') ? 'failed' : states.includes('pending') ? 'pending' : 'provisioned';
  let message: string;
  if (names.length === 0) message = 'no services with accounts listed';
  else if (state === 'provisioned') message = `provisioned on ${names.join(', ')}`;
  else {
    message = names
      .map((n) => {
        const e = entries.get(n)!;
        return e.reason === undefined ? `${n}: ${e.state}` : `${n}: ${e.state} (${e.reason})`;
      })
      .join('; ');
  }
  return { state, services, message };
}
