/**
 * The pure parts of the operator's backups: the next slot of a schedule, a service's backup facts
 * from the snapshots in the store, and those facts merged into its status.
 */
import { withBackupFacts } from '../../controllers/backup-status.js';
import { backupFactsOf, nextSlot } from '../../reconcilers/backup/schedule.js';
import type { DocumentStatus } from '../../state/status-types.js';

const at = (iso: string) => new Date(iso);

describe('nextSlot', () => {
  test.each([
    ['hourly at :15, before the quarter', { every: 'hourly' as const, at: '00:15' }, '2026-12-01T10:05:00Z', '2026-12-01T10:15:00.000Z'],
    ['hourly at :15, after it', { every: 'hourly' as const, at: '00:15' }, '2026-12-01T10:20:00Z', '2026-12-01T11:15:00.000Z'],
    ['daily at 03:00, in the evening', { every: 'daily' as const, at: '03:00' }, '2026-12-01T22:00:00Z', '2026-12-02T03:00:00.000Z'],
    ['daily at 03:00, at night', { every: 'daily' as const, at: '03:00' }, '2026-12-01T01:00:00Z', '2026-12-01T03:00:00.000Z'],
    ['weekly on sunday (2026-12-06)', { every: 'weekly' as const, at: '03:00', weekday: 'sunday' as const }, '2026-12-01T22:00:00Z', '2026-12-06T03:00:00.000Z'],
  ])('%s', (_name, schedule, now, expected) => {
    expect(nextSlot(schedule, at(now)).toISOString()).toBe(expected);
  });
});

const snap = (id: string, createdAt: string, services: string[], ok?: boolean) => ({ id, createdAt, services: services.map((service) => ({ service })), ...(ok === undefined ? {} : { verification: { ok } }) });

describe('backupFactsOf', () => {
  const daily = { every: 'daily' as const, at: '03:00' };
  const now = at('2026-12-01T22:00:00Z');
  test.each([
    ['no snapshot, no schedule: nothing overdue', [], undefined, { overdue: false }],
    [
      'the newest verified one holding the service, a newer unverified one as last',
      [snap('a', '2026-11-30T03:00:00Z', ['notes'], true), snap('b', '2026-12-01T03:00:00Z', ['notes'], false), snap('c', '2026-12-01T04:00:00Z', ['files'], true)],
      daily,
      { overdue: false, lastVerified: { snapshot: 'a', at: '2026-11-30T03:00:00Z' }, last: { snapshot: 'b', at: '2026-12-01T03:00:00Z', verified: false } },
    ],
    [
      'older than one slot plus one interval: overdue, with a notice',
      [snap('a', '2026-11-29T03:00:00Z', ['notes'], true)],
      daily,
      {
        overdue: true,
        lastVerified: { snapshot: 'a', at: '2026-11-29T03:00:00Z' },
        last: { snapshot: 'a', at: '2026-11-29T03:00:00Z', verified: true },
        notice: 'backup overdue: the last verified snapshot (a) is older than the schedule (daily at 03:00 UTC) allows',
      },
    ],
    ['a schedule and no snapshot: overdue', [snap('c', '2026-12-01T04:00:00Z', ['files'], true)], { every: 'hourly' as const }, { overdue: true, notice: 'backup overdue: no verified snapshot holds this service, and the schedule is hourly' }],
  ])('%s', (_name, snapshots, schedule, expected) => {
    expect(backupFactsOf('notes', snapshots, schedule, now)).toEqual(expected);
  });
});

describe('withBackupFacts', () => {
  const status: DocumentStatus = {
    key: 'ServiceInstall/notes',
    kind: 'ServiceInstall',
    name: 'notes',
    observedGeneration: 'g',
    phase: 'Ready',
    conditions: [],
    facts: { serviceIp: '172.20.0.20', notices: ['the catalog offers 1.1.0', 'backup overdue: an old line'] },
    updatedAt: 't',
  };
  test('an overdue notice replaces the one before; the others stay', () => {
    expect(withBackupFacts(status, { overdue: true, notice: 'backup overdue: new' }).facts).toEqual({ serviceIp: '172.20.0.20', notices: ['the catalog offers 1.1.0', 'backup overdue: new'], backup: { overdue: true } });
  });
  test('no longer overdue: the notice goes', () => {
    expect(withBackupFacts(status, { overdue: false, lastVerified: { snapshot: 's', at: 'x' } }).facts).toEqual({ serviceIp: '172.20.0.20', notices: ['the catalog offers 1.1.0'], backup: { overdue: false, lastVerified: { snapshot: 's', at: 'x' } } });
  });
  test('facts gone (the cell takes no backups any more): the backup fact and its notice go', () => {
    const before = withBackupFacts(status, { overdue: true, notice: 'backup overdue: new' });
    expect(withBackupFacts(before, undefined).facts).toEqual({ serviceIp: '172.20.0.20', notices: ['the catalog offers 1.1.0'] });
  });
  test('other kinds, and services without facts yet, are left as they are', () => {
    expect(withBackupFacts({ ...status, kind: 'PeerAccount', key: 'PeerAccount/notes' }, { overdue: true })).toEqual({ ...status, kind: 'PeerAccount', key: 'PeerAccount/notes' });
    expect(withBackupFacts(status, undefined)).toBe(status);
  });
});
