import { nextUpgradeAction } from '../../reconcilers/upgrade/plan.js';
import type { VersionDecision } from '../../state/admission.js';
import type { UpgradeProgress } from '../../state/packages.js';

const progress = (step: UpgradeProgress['step'], extra: Partial<UpgradeProgress> = {}): UpgradeProgress => ({
  formatVersion: 1, service: 'notes', from: '1.0.0', to: '2.0.0', generation: 'g', step, startedAt: '2026-12-01T00:00:00Z', deadlineMs: 60_000, ...extra,
});
const upgrade: VersionDecision = { kind: 'upgrade', from: '1.0.0', to: '2.0.0' };
const admitted: VersionDecision = { kind: 'admitted', version: '1.0.0', update: '2.0.0' };

describe('upgrade steps', () => {
  test.each([
    ['nothing asked, nothing recorded', admitted, undefined, 'none'],
    ['asked, nothing recorded: begin', upgrade, undefined, 'begin'],
    ['snapshot recorded and still asked: take it', upgrade, progress('snapshot'), 'snapshot'],
    ['snapshot recorded, document changed back: abandon (nothing switched)', admitted, progress('snapshot'), 'abandon'],
    ['switch recorded and still asked: resume waiting', upgrade, progress('switch', { snapshot: 's' }), 'switch'],
    ['switch recorded, document changed back: roll back', admitted, progress('switch', { snapshot: 's' }), 'rollback'],
    ['switch recorded, catalog moved to another version: roll back', { kind: 'upgrade', from: '1.0.0', to: '3.0.0' }, progress('switch'), 'rollback'],
    ['rollback recorded: finish it whatever is asked', upgrade, progress('rollback', { reason: 'x' }), 'rollback'],
  ] as const)('%s', (_n, decision, p, type) => {
    expect(nextUpgradeAction(decision, p).type).toBe(type);
  });
});
