/**
 * What a reconcile of one document found, as a value, and the one rule that turns it into the
 * conditions of its status. A reconcile returns an `Outcome` (or throws, which is the outcome
 * `failed`); the writer of the document's kind (status-writers.ts) stores what `conditionsOf`
 * makes of it. Pure.
 */
import { isTerminal } from '../reconcilers/errors.js';
import type { ConditionsInput } from '../state/conditions.js';

export type Outcome =
  /** Converged: `reason` says how (Converged, InSync, Provisioned, Declared). */
  | { state: 'ready'; reason: string; message: string }
  /** Still working towards the spec (creating, pulling, settling, waiting on accounts). */
  | { state: 'progressing'; reason: string; message: string }
  /** The reconcile failed with `error`: a TerminalError is a refusal, any other error a fault that is retried. */
  | { state: 'failed'; error: unknown }
  /** Cannot make progress until a person changes something (bad input, a refused image, a failed upgrade). */
  | { state: 'refused'; reason: string; message: string }
  /** The operator has no verdict to give (a kind it only validates here). */
  | { state: 'unknown'; reason: string; message: string };

export const ready = (reason: string, message: string): Outcome => ({ state: 'ready', reason, message });
export const progressing = (reason: string, message: string): Outcome => ({ state: 'progressing', reason, message });
export const failed = (error: unknown): Outcome => ({ state: 'failed', error });
export const refused = (reason: string, message: string): Outcome => ({ state: 'refused', reason, message });
export const unknown = (reason: string, message: string): Outcome => ({ state: 'unknown', reason, message });

/** The reason a retried fault is reported with. */
export const RETRYING = 'RetryingAfterError';

/**
 * The conditions an outcome gives (kstatus): Ready always; Reconciling while the operator works
 * or retries; Stalled while a person must act. A failure follows the one rule: a terminal error
 * (bad input, a refusal) is Stalled with its reason and is not retried; any other error is
 * Reconciling (`RetryingAfterError`), retried with back-off. Ready=False carries the reason and
 * message of whichever of the two holds.
 */
export function conditionsOf(outcome: Outcome): ConditionsInput {
  switch (outcome.state) {
    case 'ready':
      return { ready: { status: 'True', reason: outcome.reason, message: outcome.message } };
    case 'unknown':
      return { ready: { status: 'Unknown', reason: outcome.reason, message: outcome.message } };
    case 'progressing': {
      const { reason, message } = outcome;
      return { ready: { status: 'False', reason, message }, reconciling: { reason, message } };
    }
    case 'refused': {
      const { reason, message } = outcome;
      return { ready: { status: 'False', reason, message }, stalled: { reason, message } };
    }
    case 'failed': {
      const { error } = outcome;
      const message = error instanceof Error ? error.message : String(error);
      return conditionsOf(isTerminal(error) ? refused(error.reason, message) : progressing(RETRYING, message));
    }
  }
}
