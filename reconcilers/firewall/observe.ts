/**
 * Own iptables chains, and the jumps to them, inside the wireguard container, from one
 * `iptables-save` of all its tables (read from the host through the container's network
 * namespace, or by exec: shared/container-netns.ts). Reading only. A chain the save does not
 * declare does not exist yet; a table it does not list has no chains at all.
 */
import type { ContainerNetworkReader } from '../shared/container-netns.js';
import { jumpRule, SERVICES_CHAIN, SERVICES_PARENT } from './render.js';

export interface ObservedChain {
  exists: boolean;
  /** The chain's rules in order, normalised (`-A <chain> ...`). */
  rules: string[];
  /** How many times the parent chain jumps to this chain with a plain `-j <chain>`. */
  jumps: number;
}

export interface ChainRef {
  table: string;
  chain: string;
  parent: string;
}

/** One table of an `iptables-save`: the chains it declares and its rules in order, normalised. */
export interface SavedTable {
  chains: Set<string>;
  rules: string[];
}

/** Every table of an `iptables-save` output, by name. Pure. */
export function parseIptablesSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let current: SavedTable | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      current = { chains: new Set(), rules: [] };
      tables.set(line.slice(1), current);
    } else if (line === 'COMMIT') {
      current = undefined;
    } else if (current && line.startsWith(':')) {
      current.chains.add(line.slice(1).split(/\s+/)[0] ?? '');
    } else if (current && line.startsWith('-A ')) {
      current.rules.push(normaliseRule(line));
    }
  }
  return tables;
}

/** The chain and the parent's jumps to it, as `iptables -S <chain>` and `-S <parent>` would show them. Pure. */
export function chainOf(tables: ReadonlyMap<string, SavedTable>, ref: ChainRef): ObservedChain {
  const table = tables.get(ref.table);
  const jump = jumpRule(ref.parent, ref.chain);
  const jumps = (table?.rules ?? []).filter((line) => line === jump).length;
  if (!table?.chains.has(ref.chain)) return { exists: false, rules: [], jumps };
  return { exists: true, rules: table.rules.filter((line) => line.startsWith(`-A ${ref.chain} `)), jumps };
}

/** Several chains from one read of every table. */
export async function observeChains(reader: ContainerNetworkReader, refs: readonly ChainRef[]): Promise<ObservedChain[]> {
  const tables = parseIptablesSave(await reader.iptablesSave());
  return refs.map((ref) => chainOf(tables, ref));
}

export const SERVICES_REF: ChainRef = { table: 'filter', chain: SERVICES_CHAIN, parent: SERVICES_PARENT };

/** The lines of `iptables -S` output, each normalised. */
export function parseListing(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map(normaliseRule);
}

/**
 * One rule in a canonical spelling: single spaces between arguments, quoted arguments unquoted
 * and then quoted again only where needed, and a comment always in double quotes (some iptables
 * versions print a one-word comment bare). The rules pic renders are already in this form.
 */
export function normaliseRule(line: string): string {
  const words = splitWords(line);
  return words
    .map((word, i) => (words[i - 1] === '--comment' || /[\s"\\]/.test(word) || word === '' ? quote(word) : word))
    .join(' ');
}

function quote(word: string): string {
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** Split like iptables-save quoting: whitespace separates, double quotes group, backslash escapes inside quotes. */
function splitWords(line: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) current += line[++i];
      else if (ch === '"') quoted = false;
      else current += ch;
    } else if (ch === '"') {
      quoted = true;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(current);
  return words;
}
