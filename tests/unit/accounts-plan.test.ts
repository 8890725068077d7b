/**
 * The accounts plan, the desired peers per service, and the status summaries: pure functions,
 * table-driven.
 */
import type { Manifest, PeerAccountDocument } from '../../crds/types.js';
import { accountsError, peerStatus, type ServiceAccountsResult } from '../../reconcilers/accounts/apply.js';
import { isTerminal } from '../../reconcilers/errors.js';
import { describeAccountAction, desiredPeersByService, planAccounts, type AccountAction, type ObservedAccounts } from '../../reconcilers/accounts/plan.js';
import type { InstalledService } from '../../reconcilers/shared/types.js';

interface PlanCase {
  name: string;
  desired: string[];
  observed: ObservedAccounts;
  expected: AccountAction[];
}

const cases: PlanCase[] = [
  { name: 'nothing desired, nothing there', desired: [], observed: { inService: [], credentialed: [] }, expected: [] },
  {
    name: 'in sync: every desired peer has its account and a stored credential',
    desired: ['alice', 'bob'],
    observed: { inService: ['bob', 'alice'], credentialed: ['alice', 'bob'] },
    expected: [],
  },
  {
    name: 'a new peer is provisioned with a new password',
    desired: ['alice', 'bob'],
    observed: { inService: ['alice'], credentialed: ['alice'] },
    expected: [{ kind: 'provision', peer: 'bob', hasCredential: false }],
  },
  {
    name: 'an account gone from the service is created again with the stored password',
    desired: ['alice'],
    observed: { inService: [], credentialed: ['alice'] },
    expected: [{ kind: 'provision', peer: 'alice', hasCredential: true }],
  },
  {
    name: 'an account in the service without a stored credential is a conflict to report',
    desired: ['alice'],
    observed: { inService: ['alice'], credentialed: [] },
    expected: [{ kind: 'refuse', peer: 'alice', why: 'not-ours' }],
  },
  {
    name: 'a peer whose name cannot be an account name is refused before the service is asked',
    desired: ['-bob'],
    observed: { inService: [], credentialed: [] },
    expected: [{ kind: 'refuse', peer: '-bob', why: 'invalid-name', problem: '"-bob" is not a valid account name: it may not start with "." or "-"' }],
  },
  {
    name: 'a service removed from a peer list is deprovisioned',
    desired: ['alice'],
    observed: { inService: ['alice', 'bob'], credentialed: ['alice', 'bob'] },
    expected: [{ kind: 'deprovision', peer: 'bob', inService: true }],
  },
  {
    name: 'a deleted PeerAccount (no longer desired anywhere) is deprovisioned',
    desired: [],
    observed: { inService: ['carol'], credentialed: ['carol'] },
    expected: [{ kind: 'deprovision', peer: 'carol', inService: true }],
  },
  {
    name: 'a stored credential whose account is already gone only needs forgetting',
    desired: [],
    observed: { inService: [], credentialed: ['dave'] },
    expected: [{ kind: 'deprovision', peer: 'dave', inService: false }],
  },
  {
    name: 'accounts pic never created are left alone',
    desired: ['alice'],
    observed: { inService: ['alice', 'admin', 'guest'], credentialed: ['alice'] },
    expected: [],
  },
  {
    name: 'removals first, then provisions, each sorted by peer, whatever the input order',
    desired: ['zoe', 'bob', 'amy', 'bob'],
    observed: { inService: ['yann', 'amy', 'xavier'], credentialed: ['yann', 'xavier', 'amy'] },
    expected: [
      { kind: 'deprovision', peer: 'xavier', inService: true },
      { kind: 'deprovision', peer: 'yann', inService: true },
      { kind: 'provision', peer: 'bob', hasCredential: false },
      { kind: 'provision', peer: 'zoe', hasCredential: false },
    ],
  },
];

describe('planAccounts', () => {
  test.each(cases)('$name', ({ desired, observed, expected }) => {
    expect(planAccounts(desired, observed)).toEqual(expected);
  });

  test('is deterministic: shuffled inputs give the same plan', () => {
    const desired = ['d', 'a', 'c'];
    const observed = { inService: ['e', 'a', 'x'], credentialed: ['e', 'a', 'f'] };
    const first = planAccounts(desired, observed);
    const second = planAccounts([...desired].reverse(), { inService: [...observed.inService].reverse(), credentialed: [...observed.credentialed].reverse() });
    expect(second).toEqual(first);
  });

  test('describes actions by name only', () => {
    const lines = planAccounts(['bob'], { inService: ['alice'], credentialed: ['alice'] }).map((a) => describeAccountAction('notes', a));
    expect(lines).toEqual(['remove account "alice" from notes and forget its credentials', 'create account "bob" in notes with a new password']);
    expect(planAccounts(['carol'], { inService: ['carol'], credentialed: [] }).map((a) => describeAccountAction('notes', a))).toEqual([
      'account "carol" exists in notes but pic has no password for it: cannot provision',
    ]);
  });
});

function service(name: string, hasAccounts: boolean): InstalledService {
  const manifest = {
    id: name,
    capabilities: { has_accounts: hasAccounts },
    ...(hasAccounts ? { accounts: { manager: 'http', credentials: ['password'] } } : {}),
  } as unknown as Manifest;
  return { name, manifest, config: {}, serviceIp: '172.20.0.20', egress: { connection: 'default', type: 'default', failOpen: false } };
}

function peer(name: string, services: string[]): PeerAccountDocument {
  return { apiVersion: 'pic.ngo/v1alpha1', kind: 'PeerAccount', metadata: { name }, spec: { services } };
}

describe('desiredPeersByService', () => {
  test('maps each installed service with accounts to the peers listing it, sorted', () => {
    const result = desiredPeersByService(
      [service('notes', true), service('homepage', false), service('files', true), service('calendar', true)],
      [peer('bob', ['notes', 'files']), peer('alice', ['notes', 'notes', 'homepage', 'absent'])],
    );
    expect([...result.entries()]).toEqual([
      ['calendar', []],
      ['files', ['bob']],
      ['notes', ['alice', 'bob']],
    ]);
  });
});

function result(service: string, peers: ServiceAccountsResult['peers'], removals: ServiceAccountsResult['removals'] = []): ServiceAccountsResult {
  return { service, peers, removals, changed: false };
}

describe('peerStatus', () => {
  test('provisioned everywhere', () => {
    const status = peerStatus('alice', new Map([
      ['notes', result('notes', [{ peer: 'alice', state: 'provisioned' }, { peer: 'bob', state: 'failed', reason: 'x' }])],
      ['files', result('files', [{ peer: 'alice', state: 'provisioned' }])],
    ]));
    expect(status).toEqual({
      state: 'provisioned',
      services: { files: { state: 'provisioned' }, notes: { state: 'provisioned' } },
      message: 'provisioned on files, notes',
    });
  });

  test('a failure anywhere makes the peer failed, with the reason per service', () => {
    const status = peerStatus(
      'alice',
      new Map([
        ['notes', result('notes', [{ peer: 'alice', state: 'failed', reason: 'notes: cannot reach it', retryable: true }])],
        ['files', result('files', [{ peer: 'alice', state: 'provisioned' }])],
      ]),
      ['notes', 'files', 'calendar'],
    );
    expect(status.state).toBe('failed');
    expect(status.services).toEqual({
      calendar: { state: 'pending', reason: 'calendar has not been reconciled yet' },
      files: { state: 'provisioned' },
      notes: { state: 'failed', reason: 'notes: cannot reach it' },
    });
    expect(status.message).toBe('calendar: pending (calendar has not been reconciled yet); files: provisioned; notes: failed (notes: cannot reach it)');
  });

  test('pending without failures is pending', () => {
    expect(peerStatus('alice', new Map([['notes', result('notes', [{ peer: 'alice', state: 'pending', reason: 'not attempted' }])]])).state).toBe('pending');
  });

  test('a failed removal of an account the peer no longer lists shows on that service', () => {
    const status = peerStatus('bob', new Map([['files', result('files', [], [{ peer: 'bob', state: 'failed', reason: 'files: down', retryable: true }])]]));
    expect(status.services.files).toEqual({ state: 'failed', reason: 'could not remove the account: files: down', removing: true });
  });

  test('no services at all', () => {
    expect(peerStatus('alice', new Map())).toEqual({ state: 'provisioned', services: {}, message: 'no services with accounts listed' });
  });
});

describe('accountsError', () => {
  test('none when converged', () => {
    expect(accountsError(result('notes', [{ peer: 'alice', state: 'provisioned' }], [{ peer: 'bob', state: 'removed' }]))).toBeUndefined();
  });

  test('retryable when any failure may pass or any account is pending', () => {
    const err = accountsError(result('notes', [{ peer: 'alice', state: 'failed', reason: 'notes: down', retryable: true }, { peer: 'bob', state: 'failed', reason: 'conflict', retryable: false }]));
    expect(err).toBeInstanceOf(Error);
    expect(isTerminal(err)).toBe(false);
    expect(err?.message).toBe('2 accounts of notes not converged: notes: down; conflict');
    expect(isTerminal(accountsError(result('notes', [{ peer: 'alice', state: 'pending', reason: 'later' }])))).toBe(false);
  });

  test('terminal when every failure needs someone to act', () => {
    expect(isTerminal(accountsError(result('notes', [{ peer: 'alice', state: 'failed', reason: 'conflict', retryable: false }])))).toBe(true);
  });
});
