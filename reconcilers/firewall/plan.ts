/**
 * Pure: what to do to bring an own chain (and the one jump to it) from what was observed to what
 * is wanted. A chain is always rewritten whole, so the action is the full restore input.
 */
import type { ObservedChain } from './observe.js';
import { jumpRule, renderChainRestore, SERVICES_CHAIN, SERVICES_PARENT } from './render.js';

export interface ChainAction {
  /** `iptables-restore --noflush` input for this chain's table section. */
  restore: string;
  /** The parent chain gets its jump (it had none). */
  addJump: boolean;
  /** Extra copies of the jump that are deleted. */
  removeJumps: number;
}

export interface ChainPlan {
  /** Absent when the chain, its content and its jump are as wanted. */
  action?: ChainAction;
  /** What changes, one line each: `+ rule`, `- rule`, `~ note`. */
  lines: string[];
}

export interface ChainSpec {
  table: string;
  chain: string;
  parent: string;
  /** The whole wanted content, `-A <chain> ...` in the normalised form. */
  rules: readonly string[];
}

export function planChain(spec: ChainSpec, observed: ObservedChain): ChainPlan {
  const lines: string[] = [];
  const where = spec.table === 'filter' ? '' : ` (table ${spec.table})`;
  if (!observed.exists) lines.push(`+ -N ${spec.chain}${where}`);

  const added = multisetMinus(spec.rules, observed.rules);
  const removed = multisetMinus(observed.rules, spec.rules);
  for (const rule of removed) lines.push(`- ${rule}`);
  for (const rule of added) lines.push(`+ ${rule}`);
  const sameContent = added.length === 0 && removed.length === 0;
  if (sameContent && !sameOrder(spec.rules, observed.rules)) lines.push(`~ ${spec.chain}: rules back in order`);

  const addJump = observed.jumps === 0;
  const removeJumps = Math.max(0, observed.jumps - 1);
  if (addJump) lines.push(`+ -I ${spec.parent} 1 -j ${spec.chain}${where}`);
  for (let i = 0; i < removeJumps; i++) lines.push(`- ${jumpRule(spec.parent, spec.chain)}${where} (duplicate)`);

  if (lines.length === 0) return { lines };
  const restore = renderChainRestore({ ...spec, insertJump: addJump, deleteJumps: removeJumps });
  return { action: { restore, addJump, removeJumps }, lines };
}

/** The firewall's plan: `PIC-SERVICES` in the filter table, jumped to from FORWARD. */
export function planFirewall(rules: readonly string[], observed: ObservedChain): ChainPlan {
  return planChain({ table: 'filter', chain: SERVICES_CHAIN, parent: SERVICES_PARENT, rules }, observed);
}

/** Elements of `a` not matched one-for-one by an element of `b`, in `a`'s order. */
function multisetMinus(a: readonly string[], b: readonly string[]): string[] {
  const left = new Map<string, number>();
  for (const x of b) left.set(x, (left.get(x) ?? 0) + 1);
  const out: string[] = [];
  for (const x of a) {
    const n = left.get(x) ?? 0;
    if (n > 0) left.set(x, n - 1);
    else out.push(x);
  }
  return out;
}

function sameOrder(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
