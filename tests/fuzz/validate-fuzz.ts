/**
 * A seeded fuzzer of `pic validate` over the example catalog and cell. Each case copies nothing:
 * it mutates one or more files of a working copy of examples/store and examples/cell (flipped
 * bytes, truncation, duplicated keys, deep nesting, YAML tags, huge numbers and strings, control
 * characters, symbolic links, removed files), validates both folders in-process through the
 * loaders `pic validate` calls (state/catalog.ts, state/cell.ts, state/desired.ts,
 * state/check-desired.ts and the trial render of reconcilers/containers/check-package.ts), and
 * restores the files. A case fails when validation throws, when a message carries stack-trace
 * text, when a problem names no file of the working copy, or when one file yields an unbounded
 * report. The same seed gives the same cases, so a failure is replayed by its seed and number.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAX_MESSAGE_LENGTH, MAX_PROBLEMS_PER_FILE } from '../../crds/problem-limit.js';
import { DEFAULT_MANIFEST_POLICY, validateManifest, type ManifestPolicy } from '../../crds/validate-manifest.js';
import { formatProblem, type Problem } from '../../crds/types.js';
import { parseDocument, stringify } from 'yaml';
import { cellTemplateProblems } from '../../controllers/cli/validate.js';
import { checkServicePackage } from '../../reconcilers/containers/check-package.js';
import { loadCatalog, readManifestFile, type CatalogService } from '../../state/catalog.js';
import { loadCell } from '../../state/cell.js';
import { allProblems, checkDesiredState } from '../../state/check-desired.js';
import { loadDocumentFiles } from '../../state/desired.js';

export const DEFAULT_FUZZ_SEED = 0x5eed_2026;

export interface FuzzOptions {
  seed?: number;
  cases: number;
  /** The examples folder to mutate (a copy is made); examples/ of the repository by default. */
  examples?: string;
}

export interface FuzzFailure {
  case: number;
  mutations: string[];
  why: string;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  /** Cases whose validation threw. */
  crashes: number;
  /** Messages that carried stack-trace text. */
  stackTraces: number;
  /** Problems naming no file of the working copy. */
  unnamed: number;
  /** Files with more problems than the bound, or messages longer than the cut. */
  unbounded: number;
  /** Cases whose only mutations were escapes from the service (issue 18) and that validated. */
  escapesAccepted: number;
  /** Cases validation called valid (a mutation can leave a file valid: a flipped comment byte). */
  valid: number;
  problems: number;
  /** How often each mutation was applied. */
  mutations: Record<string, number>;
  failures: FuzzFailure[];
}

// ---------------------------------------------------------------------------------------------
// A small deterministic generator (mulberry32): the same seed, the same cases, on every machine.

export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(max: number): number {
    return Math.floor(this.next() * max);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations of one file's text. Each returns the new bytes, or a symbolic link / removal.

/** `escape`: the text now asks for something outside its service, which validation must refuse. */
type Mutated = { text: Buffer; escape?: true } | { link: string } | { remove: true };
type Mutation = (text: Buffer, rnd: Random, file: string, outside: string) => Mutated;

const TAGS = ['!!binary aGVsbG8=', '!!omap [ {a: 1} ]', '!!set {a: null}', '!!timestamp 2001-12-14', '!!js/function "f(){}"', '!!js/regexp /x/', '!custom x', '!!python/object:os.system x', '!<tag:x.com,2000:y> z'];
const HUGE_NUMBERS = ['1e400', '-1e400', '99999999999999999999999999', '0x7fffffffffffffff', '-0', '.nan', '.inf', '1.7976931348623157e309', '4294967296', '-9007199254740993'];
const CONTROL = ['\u0000', '\u001b[31m', '\u001b]0;pwned\u0007', '\r', '\u2028', '\ufeff', '\u0008\u0008\u0008', '\u202e', '\t', '\u0085'];

function lines(text: Buffer): string[] {
  return text.toString('utf8').split('\n');
}

function insertAt(text: string, at: number, piece: string): string {
  return text.slice(0, at) + piece + text.slice(at);
}

/** The position of a value on a random line: just after its first `: ` or `": `, else the line end. */
function valuePosition(text: string, rnd: Random): { start: number; end: number } {
  const all = text.split('\n');
  const i = rnd.int(all.length);
  const offset = all.slice(0, i).reduce((n, l) => n + l.length + 1, 0);
  const line = all[i]!;
  const colon = line.indexOf(': ');
  const start = offset + (colon === -1 ? line.length : colon + 2);
  let end = offset + line.length;
  if (line.endsWith(',')) end--;
  return { start, end: Math.max(start, end) };
}

const MUTATIONS: Record<string, Mutation> = {
  byteFlip: (text, rnd) => {
    const out = Buffer.from(text);
    for (let n = 1 + rnd.int(8); n > 0 && out.length > 0; n--) {
      const at = rnd.int(out.length);
      out[at] = out[at]! ^ (1 << rnd.int(8));
    }
    return { text: out };
  },
  truncate: (text, rnd) => ({ text: text.subarray(0, rnd.int(text.length + 1)) }),
  duplicateKey: (text, rnd, file) => {
    const s = text.toString('utf8');
    if (file.endsWith('.json')) {
      const keys = [...s.matchAll(/"([a-z_]+)":/g)];
      if (keys.length === 0) return { text };
      const key = rnd.pick(keys);
      return { text: Buffer.from(insertAt(s, key.index, `"${key[1]}": ${rnd.pick(['"x"', '1', 'null', '[]', '{}'])}, `)) };
    }
    const all = lines(text);
    const i = rnd.int(all.length);
    all.splice(i, 0, all[i]!);
    return { text: Buffer.from(all.join('\n')) };
  },
  deepNesting: (text, rnd) => {
    const s = text.toString('utf8');
    const depth = rnd.pick([65, 200, 1000, 10_000, 100_000]);
    const [open, close] = rnd.pick([['[', ']'], ['{"a":', '}'], ['{a: ', '}'], ['- ', '']] as const);
    const { start, end } = valuePosition(s, rnd);
    const closed = rnd.next() < 0.7;
    return { text: Buffer.from(s.slice(0, start) + open.repeat(depth) + (closed ? '1' + close.repeat(depth) : '') + s.slice(end)) };
  },
  tag: (text, rnd) => {
    const s = text.toString('utf8');
    const { start, end } = valuePosition(s, rnd);
    return { text: Buffer.from(s.slice(0, start) + rnd.pick(TAGS) + s.slice(end)) };
  },
  hugeNumber: (text, rnd) => {
    const s = text.toString('utf8');
    const numbers = [...s.matchAll(/\b\d+(\.\d+)*\b/g)];
    if (numbers.length === 0) return { text };
    const n = rnd.pick(numbers);
    return { text: Buffer.from(s.slice(0, n.index) + rnd.pick(HUGE_NUMBERS) + s.slice(n.index + n[0].length)) };
  },
  hugeString: (text, rnd) => {
    const s = text.toString('utf8');
    const { start, end } = valuePosition(s, rnd);
    const unit = rnd.pick(['x', '${', '{', '/..', 'a:', '\\', "'", 'é', '\u0000']);
    const value = unit.repeat(Math.floor(rnd.pick([1000, 20_000, 100_000]) / unit.length));
    return { text: Buffer.from(s.slice(0, start) + JSON.stringify(value) + s.slice(end)) };
  },
  manyEntries: (text, rnd, file) => {
    const s = text.toString('utf8');
    if (file.endsWith('.json')) {
      // Past the ~120,000 problems at which an unbounded report once overflowed the stack.
      const count = rnd.pick([1000, 20_000, 130_000]);
      const at = s.indexOf('[');
      if (at === -1) return { text };
      return { text: Buffer.from(insertAt(s, at + 1, '1,'.repeat(count))) };
    }
    // YAML costs the yaml package ~10 µs a byte: tests/unit/bounded-input.test.ts reads 200,000 entries once.
    const count = rnd.pick([1000, 20_000]);
    const { start, end } = valuePosition(s, rnd);
    return { text: Buffer.from(s.slice(0, start) + `[${'X,'.repeat(count)}X]` + s.slice(end)) };
  },
  controlCharacters: (text, rnd) => {
    let s = text.toString('utf8');
    for (let n = 1 + rnd.int(4); n > 0; n--) s = insertAt(s, rnd.int(s.length + 1), rnd.pick(CONTROL));
    return { text: Buffer.from(s) };
  },
  aliasBomb: (text) => {
    const bomb = ['x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 9; i++) bomb.push(`x-${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
    return { text: Buffer.from(`${text.toString('utf8')}\n${bomb.join('\n')}\n`) };
  },
  escape: (text, rnd, file) => {
    // A package that reaches outside its service (issue 18): each must be refused.
    let doc: Record<string, any>;
    try {
      doc = parseDocument(text.toString('utf8')).toJSON() as Record<string, any>;
    } catch {
      return { text };
    }
    if (doc === null || typeof doc !== 'object') return { text };
    if (file.endsWith('compose-template.yml')) {
      const service = doc.services && typeof doc.services === 'object' ? Object.values(doc.services)[0] as Record<string, any> | undefined : undefined;
      if (!service || typeof service !== 'object') return { text };
      const own = path.basename(path.dirname(file));
      rnd.pick(TEMPLATE_ESCAPES)(service, doc, own === 'notes' ? 'files' : 'notes');
      return { text: Buffer.from(stringify(doc)), escape: true };
    }
    if (file.endsWith('manifest.json')) {
      rnd.pick(MANIFEST_ESCAPES)(doc);
      return { text: Buffer.from(JSON.stringify(doc, null, 2)), escape: true };
    }
    if (file.includes(`${path.sep}services${path.sep}`) && doc.kind === 'ServiceInstall' && doc.spec) {
      doc.spec.publish = [rnd.pick(['443/tcp', '80/tcp', '53/udp', '51820/udp', '25/tcp', '70000/tcp', 'x', '25'])];
      return { text: Buffer.from(stringify(doc)) };
    }
    return { text };
  },
  symlink: (_text, rnd, file, outside) => ({ link: rnd.pick([outside, '/etc/passwd', '/dev/zero', path.basename(file), '../' + path.basename(file), '/nonexistent']) }),
  empty: () => ({ text: Buffer.alloc(0) }),
  remove: () => ({ remove: true }),
};

export const MUTATION_NAMES = Object.keys(MUTATIONS);

/** The escapes get the package's own id, so that "another service" is never the package itself. */
type Escape = (service: Record<string, any>, doc: Record<string, any>, other: string) => void;
const netOf = (service: Record<string, any>): Record<string, any> => {
  if (!service.networks || Array.isArray(service.networks)) service.networks = { 'cell-network': {} };
  service.networks['cell-network'] ??= {};
  return service.networks['cell-network'] as Record<string, any>;
};
const TEMPLATE_ESCAPES: Escape[] = [
  (s, _d, other) => { s.volumes = [...(Array.isArray(s.volumes) ? s.volumes : []), `\${PIC_DATA_DIR}/${other}/accounts:/steal`]; },
  (s) => { s.volumes = [...(Array.isArray(s.volumes) ? s.volumes : []), '${PIC_DATA_DIR}:/all']; },
  (_s, d) => { d.services.sidecar = { image: 'git.pic.ngo/roof/pic-notes:1', container_name: 'cell-dns', networks: ['cell-network'] }; },
  (s) => { s.container_name = 'cell-wireguard'; },
  (s) => { netOf(s).aliases = ['cell-caddy']; },
  (s, _d, other) => { netOf(s).aliases = [`cell-${other}`]; },
  (s) => { netOf(s).ipv4_address = '172.20.0.2'; },
  (_s, d) => { d.volumes = { ...(d.volumes ?? {}), stolen: { name: 'demo-caddy-data' } }; },
  (s) => { s.ports = ['443:8080']; },
  (s) => { s.ports = ['25:25']; },
  (s) => { s.ports = ['8080']; },
  (s) => { s.stop_grace_period = '300h'; },
];
const MANIFEST_ESCAPES: ((m: Record<string, any>) => void)[] = [
  (m) => { m.backup = { volumes: [], ...(m.backup ?? {}), config_paths: ['config/other'] }; },
  (m) => { m.containers = [m.container_name, 'cell-caddy']; },
  (m) => { m.containers = [m.container_name, 'cell-wireguard']; },
];

// ---------------------------------------------------------------------------------------------

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(p)));
    else if (entry.isFile() && !entry.name.endsWith('.md')) out.push(p);
  }
  return out.sort();
}

const STACK_RE = /\n\s*at\s|\bat [\w.<>]+ \(.*:\d+:\d+\)|node:internal|\.js:\d+:\d+/;

/** Everything `pic validate STORE CELL` reports, by the functions it calls, plus a mutated file given alone. */
async function validateAll(store: string, cell: string, mutated: string[]): Promise<Problem[]> {
  const policy: ManifestPolicy = { ...DEFAULT_MANIFEST_POLICY };
  const problems: Problem[] = [];
  const trial = (service: CatalogService, p: ManifestPolicy) =>
    checkServicePackage(service.manifest, service.composeTemplate, { manifestFile: service.manifestFile, templateFile: service.templateFile, policy: p });
  const catalog = await loadCatalog(store, policy);
  problems.push(...catalog.problems);
  for (const service of catalog.services.values()) problems.push(...trial(service, policy));
  const loaded = await loadCell(cell);
  problems.push(...allProblems(loaded.checked), ...loaded.checked.generalNotices);
  // As pic validate renders a cell's packages: each installed one as its ServiceInstall asks.
  problems.push(...cellTemplateProblems(loaded, new Set()));
  for (const file of mutated) {
    if (file.endsWith('manifest.json')) {
      const read = readManifestFile(file);
      problems.push(...read.problems);
      if (read.value !== undefined) problems.push(...validateManifest(read.value, file, policy));
    } else if (/\.ya?ml$/.test(file) && !file.endsWith('compose-template.yml')) {
      const docs = await loadDocumentFiles([file]);
      const checked = checkDesiredState(docs);
      problems.push(...allProblems(checked), ...checked.generalNotices);
    }
  }
  return problems;
}

/** The failures of one case's problems, if any. */
function judge(problems: Problem[], root: string): string | undefined {
  const perFile = new Map<string, number>();
  for (const p of problems) {
    const line = formatProblem(p);
    if (STACK_RE.test(p.message)) return `stack trace in a message: ${line.slice(0, 300)}`;
    if (typeof p.file !== 'string' || !p.file.startsWith(root)) return `a problem names no file of the cell or catalog: ${line.slice(0, 300)}`;
    if (p.message.length > MAX_MESSAGE_LENGTH + 1 || p.pointer.length > MAX_MESSAGE_LENGTH + 1) return `an unbounded message (${p.message.length} characters): ${line.slice(0, 300)}`;
    perFile.set(p.file, (perFile.get(p.file) ?? 0) + 1);
  }
  for (const [file, count] of perFile) {
    // A file's problems can come from several checks (its own, the trial render, the cell's), each bounded.
    if (count > 4 * (MAX_PROBLEMS_PER_FILE + 1)) return `${count} problems for ${file}: the report is not bounded`;
  }
  return undefined;
}

/**
 * The text a second mutation of one file in a case starts from: the first mutation's bytes, or
 * the original when the first one left a link or removed the file. (Reading through the link would
 * follow it: a link to /dev/zero never ends, and the harness grew to 24 GB doing that.)
 */
async function mutatedText(file: string, original: Buffer): Promise<Buffer> {
  const stat = await fs.lstat(file).catch(() => undefined);
  return stat?.isFile() ? fs.readFile(file) : original;
}

/** Run `cases` seeded cases; never throws for a failing case (it is counted and described). */
export async function runValidateFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const seed = options.seed ?? DEFAULT_FUZZ_SEED;
  const rnd = new Random(seed);
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-fuzz-'));
  const examples = options.examples ?? path.resolve('examples');
  const store = path.join(root, 'store');
  const cell = path.join(root, 'cell');
  await fs.cp(path.join(examples, 'store'), store, { recursive: true });
  await fs.cp(path.join(examples, 'cell'), cell, { recursive: true });
  // What a followed link would leak: it must never appear in a message.
  const outside = path.join(root, 'outside.json');
  await fs.writeFile(outside, '{"id": "notes", "secret": "FUZZ-SECRET-DO-NOT-QUOTE"}\n');
  const files = [...(await listFiles(store)), ...(await listFiles(cell))];
  const originals = new Map(await Promise.all(files.map(async (f) => [f, await fs.readFile(f)] as const)));
  const report: FuzzReport = { seed, cases: 0, crashes: 0, stackTraces: 0, unnamed: 0, unbounded: 0, escapesAccepted: 0, valid: 0, problems: 0, mutations: {}, failures: [] };
  try {
    for (let n = 0; n < options.cases; n++) {
      const applied: string[] = [];
      const touched = new Set<string>();
      let onlyEscapes = true;
      for (let m = 1 + (rnd.next() < 0.25 ? 1 : 0); m > 0; m--) {
        const file = rnd.pick(files);
        const name = rnd.pick(MUTATION_NAMES);
        const current = touched.has(file) ? await mutatedText(file, originals.get(file)!) : originals.get(file)!;
        const result = MUTATIONS[name]!(current, rnd, file, outside);
        await fs.rm(file, { force: true });
        if (!('text' in result && result.escape)) onlyEscapes = false;
        if ('text' in result) await fs.writeFile(file, result.text);
        else if ('link' in result) await fs.symlink(result.link, file);
        touched.add(file);
        applied.push(`${name} ${path.relative(root, file)}`);
        report.mutations[name] = (report.mutations[name] ?? 0) + 1;
      }
      report.cases++;
      // PIC_FUZZ_TRACE=1 names each case before it runs: the last one printed is the one that hangs.
      if (process.env.PIC_FUZZ_TRACE) process.stderr.write(`case ${n}: ${applied.join(', ')}\n`);
      let why: string | undefined;
      try {
        const problems = await validateAll(store, cell, [...touched]);
        report.problems += problems.length;
        if (problems.length === 0) report.valid++;
        why = judge(problems, root);
        if (why?.startsWith('stack')) report.stackTraces++;
        else if (why?.startsWith('a problem names')) report.unnamed++;
        else if (why) report.unbounded++;
        if (!why && onlyEscapes && problems.length === 0) {
          why = 'a package reaching outside its service validated';
          report.escapesAccepted++;
        }
        if (!why && problems.some((p) => p.message.includes('FUZZ-SECRET'))) {
          why = 'a message quotes a file outside the catalog';
          report.unbounded++;
        }
      } catch (err) {
        report.crashes++;
        why = `threw: ${String((err as Error)?.stack ?? err).slice(0, 500)}`;
      }
      if (why && report.failures.length < 20) report.failures.push({ case: n, mutations: applied, why });
      for (const file of touched) {
        await fs.rm(file, { force: true });
        await fs.writeFile(file, originals.get(file)!);
      }
    }
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
  return report;
}
