/**
 * What a cell does with a verdict (ADR 001): `enforce` runs only verified images, `warn` runs
 * them all and records why one did not verify, `off` does not look. Pure.
 */
import path from 'node:path';
import type { CellSpec, ImageVerificationMode } from '../../crds/types.js';
import { isRecord } from '../../crds/values.js';
import type { RegistrySettings } from './reference.js';
import type { Refused, Verdict } from './verdict.js';

const MODES: readonly ImageVerificationMode[] = ['off', 'warn', 'enforce'];

/**
 * The mode a Cell's `imageVerification` section asks for. Anything that cannot be read as one of
 * the three modes — a missing mode included — is `enforce`: verification fails closed, never
 * silently weakens.
 */
export function effectiveMode(section: unknown): ImageVerificationMode {
  const mode = isRecord(section) ? section.mode : undefined;
  return MODES.includes(mode as ImageVerificationMode) ? (mode as ImageVerificationMode) : 'enforce';
}

/** The key files the Cell trusts, resolved against the cell folder, without repeats. */
export function trustedKeyFiles(section: unknown, cellDir: string): string[] {
  if (!section || typeof section !== 'object') return [];
  const { publicKey, publicKeys } = section as { publicKey?: unknown; publicKeys?: unknown };
  const named = [publicKey, ...(Array.isArray(publicKeys) ? (publicKeys as unknown[]) : [])].filter((k): k is string => typeof k === 'string' && k !== '');
  return [...new Set(named.map((k) => path.resolve(cellDir, k)))];
}

export function registrySettingsOf(spec: Pick<CellSpec, 'registries'>): RegistrySettings {
  return { mirrors: { ...(spec.registries?.mirrors ?? {}) }, insecure: [...(spec.registries?.insecure ?? [])] };
}

export type GateDecision =
  /** Go on; `notes` are refusals `warn` lets through, to be shown in the status. */
  | { proceed: true; notes: Refused[] }
  /** Create nothing. `retry` for a registry that may come back; otherwise the service is Stalled. */
  | { proceed: false; retry: boolean; refused: Refused; message: string };

/** `subject` names what is then not created: "this service", or a core container's key. */
export function decide(mode: ImageVerificationMode, verdicts: readonly Verdict[], subject = 'this service'): GateDecision {
  const refused = verdicts.filter((v): v is Refused => !v.ok);
  if (mode !== 'enforce' || refused.length === 0) return { proceed: true, notes: mode === 'warn' ? refused : [] };
  // A bad artifact outranks an unreachable registry: retrying cannot mend it.
  const first = refused.find((r) => r.reason !== 'RegistryUnreachable') ?? refused[0]!;
  const more = refused.length > 1 ? ` (and ${refused.length - 1} more image${refused.length > 2 ? 's' : ''} refused)` : '';
  return { proceed: false, retry: first.reason === 'RegistryUnreachable', refused: first, message: `${first.message}${more}; image verification is enforce, so nothing of ${subject} is created` };
}
