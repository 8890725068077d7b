/** An error in how pic was called, as opposed to a problem in what it was given. */
export class UsageError extends Error {}

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}
