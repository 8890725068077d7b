import type { Condition, ConditionStatus, ConditionType, DocumentStatus, Phase } from './status-types.js';

/**
 * kstatus-style conditions: `Ready` is always present (True, False or Unknown); `Reconciling`
 * and `Stalled` are "abnormal-true" conditions that exist only while they hold, so their mere
 * presence is the signal. Pure: the clock comes in as `now`.
 */

export interface ConditionInput {
  status: ConditionStatus;
  reason: string;
  message: string;
}

export interface ConditionsInput {
  ready: ConditionInput;
  /** The operator is still working towards the spec (creating, pulling, retrying). */
  reconciling?: { reason: string; message: string };
  /** The operator cannot make progress without a change from a person (bad spec, refused image). */
  stalled?: { reason: string; message: string };
}

/** The order conditions are listed in, so the same state always serialises the same way. */
export const CONDITION_ORDER: readonly ConditionType[] = ['Ready', 'Reconciling', 'Stalled'];

export function findCondition(conditions: readonly Condition[] | undefined, type: ConditionType): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: ConditionType): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/**
 * The conditions for a document's next status. `lastTransitionTime` records when a condition's
 * *status* changed, so it is carried over from the previous condition of the same type whenever
 * the status is unchanged — a new reason or message alone is not a transition.
 */
export function computeConditions(previous: readonly Condition[] | undefined, next: ConditionsInput, now: string): Condition[] {
  const wanted: [ConditionType, ConditionInput | undefined][] = [
    ['Ready', next.ready],
    ['Reconciling', next.reconciling && { status: 'True', ...next.reconciling }],
    ['Stalled', next.stalled && { status: 'True', ...next.stalled }],
  ];
  const conditions: Condition[] = [];
  for (const [type, input] of wanted) {
    if (!input) continue;
    const before = findCondition(previous, type);
    conditions.push({
      type,
      status: input.status,
      reason: input.reason,
      message: input.message,
      lastTransitionTime: before && before.status === input.status ? before.lastTransitionTime : now,
    });
  }
  return conditions;
}

/**
 * The one-word summary shown in `pic get`. Stalled wins over Reconciling (a person must act),
 * Reconciling over Ready. Ready=False with neither in progress nor stalled is `Failed`: something
 * is wrong and the operator is not currently working on it. No verdict yet is `Pending`.
 * `Removed` is never derived; the controller sets it when a document goes away.
 */
export function phaseOf(conditions: readonly Condition[] | undefined): Phase {
  if (isConditionTrue(conditions, 'Stalled')) return 'Stalled';
  if (isConditionTrue(conditions, 'Reconciling')) return 'Reconciling';
  const ready = findCondition(conditions, 'Ready');
  if (ready?.status === 'True') return 'Ready';
  if (ready?.status === 'False') return 'Failed';
  return 'Pending';
}

/**
 * Whether two statuses say the same thing: deep equality ignoring only `updatedAt`, so that a
 * reconcile which changed nothing leaves the stored status — and its file — untouched. A property
 * whose value is `undefined` counts as absent, as it would after a JSON round trip.
 */
export function statusEquals(a: DocumentStatus | undefined, b: DocumentStatus | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const { updatedAt: _a, ...restA } = a;
  const { updatedAt: _b, ...restB } = b;
  return jsonEqual(restA, restB);
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  const recA = a as Record<string, unknown>;
  const recB = b as Record<string, unknown>;
  const keysA = Object.keys(recA).filter((k) => recA[k] !== undefined);
  const keysB = Object.keys(recB).filter((k) => recB[k] !== undefined);
  if (keysA.length !== keysB.length) return false;
  return keysA.every((k) => Object.prototype.hasOwnProperty.call(recB, k) && jsonEqual(recA[k], recB[k]));
}
