/**
 * Read an own iptables chain, and the jumps to it, inside the wireguard container. Reading only:
 * `iptables -S <chain>` and `iptables -S <parent>`, and, when the first fails, the table's full
 * listing to tell a missing chain (nothing there yet) from a real failure.
 */
import type Dockerode from 'dockerode';
import { execInContainer } from '../shared/exec.js';
import type { OwnedContainer } from '../shared/owned-container.js';
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

export async function observeChain(docker: Dockerode, container: OwnedContainer, ref: ChainRef): Promise<ObservedChain> {
  const iptables = (...args: string[]) => execInContainer(docker, container, ['iptables', '-t', ref.table, ...args]);

  const parent = await iptables('-S', ref.parent);
  if (parent.exitCode !== 0) throw listingFailed(container.name, ref.table, ref.parent, parent.stderr);
  const jump = jumpRule(ref.parent, ref.chain);
  const jumps = parseListing(parent.stdout).filter((line) => line === jump).length;

  const own = await iptables('-S', ref.chain);
  if (own.exitCode === 0) {
    return { exists: true, rules: parseListing(own.stdout).filter((line) => line.startsWith(`-A ${ref.chain} `)), jumps };
  }
  // iptables words "no such chain" differently across versions and backends: look it up instead.
  const all = await iptables('-S');
  if (all.exitCode !== 0) throw listingFailed(container.name, ref.table, '', all.stderr);
  if (!parseListing(all.stdout).includes(`-N ${ref.chain}`)) return { exists: false, rules: [], jumps };
  throw listingFailed(container.name, ref.table, ref.chain, own.stderr);
}

/** `PIC-SERVICES` in the filter table and the jumps to it from FORWARD. */
export function observeServicesChain(docker: Dockerode, container: OwnedContainer): Promise<ObservedChain> {
  return observeChain(docker, container, { table: 'filter', chain: SERVICES_CHAIN, parent: SERVICES_PARENT });
}

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

function listingFailed(container: string, table: string, chain: string, stderr: string): Error {
  const what = chain ? `chain ${chain} of table ${table}` : `table ${table}`;
  return new Error(`cannot list ${what} in container ${container}: ${stderr.trim() || 'iptables failed'}`);
}
