import type { Problem } from '../crds/types.js';

/**
 * A failure caused by the input (a document, a manifest, a template): retrying cannot help until
 * someone changes it, so the queue does not retry it and the document is marked Stalled.
 * Any other error is taken as a fault that may pass (Docker restarting, a registry hiccup) and
 * is retried with back-off.
 */
export class TerminalError extends Error {
  override readonly name = 'TerminalError';
  constructor(
    message: string,
    /** A short CamelCase reason for the Stalled condition, e.g. "InvalidSpec". */
    readonly reason = 'InvalidSpec',
    /** The problems the message sums up, each with its file and field (`pic plan` lists them all). */
    readonly problems: readonly Problem[] = [],
  ) {
    super(message);
  }
}

export function isTerminal(err: unknown): err is TerminalError {
  return err instanceof TerminalError;
}
