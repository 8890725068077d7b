/**
 * The documentation's own example lines, run as printed: every `pic …` / `bin/pic …` line of a
 * ```sh block in README.md and docs/*.md, after the `bin/pic` lines of the Makefile's demo target
 * (what `make demo` runs). A doc change is tested by this file without editing it.
 *
 * They run against a throwaway copy of the example cell (tests/support/example-cell.ts renames
 * every container and the Cell, so nothing of the demo cell is touched): `examples/cell`,
 * `.demo/cell` (the demo's signed copy) and `my-cell/` become its folder, `examples/store` and
 * `.demo/store` its catalog, `$(DEMO_STATE)` its state directory.
 * No PIC_STATE_DIR and no --state-dir beyond the Makefile's: the later lines find the state the
 * way a newcomer's would, through the record `pic run` leaves in the cell folder.
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createExampleCell, removeExampleCell, removeStaleExampleCells, type ExampleCell } from '../support/example-cell.js';
import { waitFor } from '../support/cell.js';

const execFileAsync = promisify(execFile);
const ROOT = process.cwd();
const PIC = path.join(ROOT, 'bin', 'pic');

/** Shell words of one example line: quotes group, `#` after a blank starts a comment. No shell runs it. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === '\\' && quote === '"' && i + 1 < line.length) word = (word ?? '') + line[++i];
      else word = (word ?? '') + ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      word = word ?? '';
    } else if (/\s/.test(ch)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (ch === '#' && word === undefined) {
      break;
    } else {
      word = (word ?? '') + ch;
    }
  }
  if (quote) throw new Error(`unclosed ${quote} in ${line}`);
  if (word !== undefined) words.push(word);
  return words;
}

interface Example {
  source: string;
  line: string;
  args: string[];
}

/** `pic` lines of the ```sh blocks of a Markdown file. */
function markdownExamples(file: string, text: string): Example[] {
  const out: Example[] = [];
  // Only ```sh blocks hold lines to run as printed; ```text blocks show forms with placeholders.
  let inBlock = false;
  let runnable = false;
  text.split('\n').forEach((line, i) => {
    if (/^```/.test(line)) {
      inBlock = !inBlock;
      runnable = inBlock && /^```(sh|bash|shell)\s*$/.test(line);
      return;
    }
    if (!runnable) return;
    if (inBlock && /^(bin\/)?pic\s/.test(line)) out.push({ source: `${file}:${i + 1}`, line, args: shellWords(line).slice(1) });
  });
  return out;
}

/** The `bin/pic` lines of the Makefile's demo target, up to any `&&`. */
function makefileDemoLines(text: string): Example[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^demo:/.test(l));
  const out: Example[] = [];
  for (let i = start + 1; i < lines.length && lines[i]!.startsWith('\t'); i++) {
    const recipe = lines[i]!.trim().replace(/^@/, '').split('&&')[0]!.trim();
    if (recipe.startsWith('bin/pic ')) out.push({ source: `Makefile:${i + 1}`, line: recipe, args: shellWords(recipe).slice(1) });
  }
  return out;
}

let cell: ExampleCell | undefined;
const examples: Example[] = [];
let demo: Example[] = [];

beforeAll(async () => {
  await removeStaleExampleCells();
  cell = await createExampleCell(['notes']);
  await cell.writeService('notes');
  await cell.writePeer('alice', ['notes']);
  demo = makefileDemoLines(await fs.readFile(path.join(ROOT, 'Makefile'), 'utf8'));
  const docs = ['README.md', ...(await fs.readdir(path.join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  for (const file of docs) examples.push(...markdownExamples(file, await fs.readFile(path.join(ROOT, file), 'utf8')));
}, 300_000);

afterAll(async () => {
  await removeExampleCell(cell);
});

/** The example's arguments on the throwaway cell. */
function localise(args: string[]): string[] {
  const c = cell!;
  return args.map((a) => {
    if (a === '$(DEMO_STATE)') return c.stateDir;
    // The demo runs the example cell as .demo/cell (its signed copy): here both are the throwaway cell.
    return a
      .replace(/^(?:examples|\$\(DEMO_DIR\)|\.demo)\/cell(\/|$)/, `${c.cellDir}$1`)
      .replace(/^(?:examples|\$\(DEMO_DIR\)|\.demo)\/store(\/|$)/, `${c.storeDir}$1`)
      .replace(/^my-cell\/?$/, `${c.cellDir}/`);
  });
}

function environment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.PIC_STATE_DIR;
  return env;
}

/** Runs forever until stopped: the operator without --once, watch, get --watch. */
function followsForever(args: string[]): boolean {
  const [command] = args;
  return (command === 'run' && !args.includes('--once')) || command === 'watch' || (command === 'get' && (args.includes('--watch') || args.includes('-w')));
}

async function runExample(example: Example): Promise<void> {
  const args = localise(example.args);
  if (followsForever(args)) {
    const child = spawn(PIC, args, { cwd: ROOT, env: environment(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (out += String(d)));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const sign = args[0] === 'run' ? /pic is converging/ : /ServiceInstall\s+notes\s/;
    try {
      await waitFor(`${example.source} (${example.line}) to show ${sign}`, async () => (sign.test(out) ? true : child.exitCode !== null ? Promise.reject(new Error(`exited ${child.exitCode}: ${out}`)) : undefined), 120_000);
    } finally {
      child.kill('SIGTERM');
    }
    expect([example.source, await exited, out]).toEqual([example.source, 0, expect.anything()]);
    return;
  }
  let code = 0;
  let stdout = '';
  let stderr = '';
  try {
    ({ stdout, stderr } = await execFileAsync(PIC, args, { cwd: ROOT, env: environment(), timeout: 600_000 }));
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    ({ code, stdout, stderr } = e);
  }
  const allowed = args[0] === 'plan' ? [0, 2] : [0];
  if (!allowed.includes(code)) throw new Error(`${example.source}: "${example.line}" exited ${code}\nstdout: ${stdout}\nstderr: ${stderr}`);
}

describe('documented examples', () => {
  test('the docs show every command a newcomer needs; the demo target validates, runs and lists', () => {
    const commands = new Set(examples.map((e) => e.args[0]));
    for (const c of ['validate', 'plan', 'run', 'get', 'describe', 'watch', 'credentials']) expect(commands).toContain(c);
    expect(demo.map((d) => d.args[0])).toEqual(expect.arrayContaining(['validate', 'run', 'get']));
  });

  test('after the Makefile demo lines, every example line of README.md and docs/*.md works as printed', async () => {
    for (const example of demo) await runExample(example);
    // make demo left the record a newcomer's later commands rely on.
    expect((await fs.readFile(path.join(cell!.cellDir, '.pic', 'state-dir'), 'utf8')).trim()).toBe(cell!.stateDir);
    for (const example of examples) await runExample(example);
  }, 1_200_000);
});

describe('shellWords', () => {
  test.each([
    ['bin/pic get -o wide   # a comment', ['bin/pic', 'get', '-o', 'wide']],
    ["pic get si -o jsonpath='{.items[*].name}' --cell my-cell/   # x", ['pic', 'get', 'si', '-o', 'jsonpath={.items[*].name}', '--cell', 'my-cell/']],
    ['pic describe "Service Install/notes"', ['pic', 'describe', 'Service Install/notes']],
    ['pic a#b', ['pic', 'a#b']],
  ])('%s', (line, words) => {
    expect(shellWords(line)).toEqual(words);
  });
});
