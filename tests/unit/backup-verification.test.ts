/**
 * The verdict of a snapshot's test restore: one event per service saying whether *its* archives
 * came back as archived, and the snapshot's verification holding every problem. A problem of one
 * service must never be reported against the next.
 */
import { verificationVerdict } from '../../reconcilers/backup/verification.js';

const AT = new Date('2026-12-01T03:05:00Z');

describe('verificationVerdict', () => {
  test('a bad archive of the first service does not fail the second', () => {
    const verdict = verificationVerdict(
      '20261201-030000-abcd',
      [
        { service: 'files', problems: ['files/data.tar: sha256 differs from the one recorded'] },
        { service: 'notes', problems: [] },
      ],
      AT,
    );
    expect(verdict.notices).toEqual([
      { key: 'ServiceInstall/files', type: 'Warning', reason: 'BackupVerificationFailed', message: 'snapshot 20261201-030000-abcd: files/data.tar: sha256 differs from the one recorded' },
      { key: 'ServiceInstall/notes', type: 'Normal', reason: 'BackupVerified', message: 'snapshot 20261201-030000-abcd: every archive restored into a scratch volume matches what was archived' },
    ]);
    expect(verdict.verification).toEqual({ ok: false, at: '2026-12-01T03:05:00.000Z', problems: ['files/data.tar: sha256 differs from the one recorded'] });
  });

  test('each service is told only its own problems; the snapshot holds them all, in order', () => {
    const verdict = verificationVerdict(
      's',
      [
        { service: 'a', problems: ['a1'] },
        { service: 'b', problems: ['b1', 'b2'] },
      ],
      AT,
    );
    expect(verdict.notices.map((n) => [n.key, n.message])).toEqual([
      ['ServiceInstall/a', 'snapshot s: a1'],
      ['ServiceInstall/b', 'snapshot s: b1; b2'],
    ]);
    expect(verdict.verification.problems).toEqual(['a1', 'b1', 'b2']);
  });

  test('every archive good: ok, no problems field', () => {
    expect(verificationVerdict('s', [{ service: 'a', problems: [] }], AT).verification).toEqual({ ok: true, at: '2026-12-01T03:05:00.000Z' });
  });
});
