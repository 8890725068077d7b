/**
 * Every command of `pic` as an admin types it, through the real executable: --help, a flag it
 * does not take, a state directory that is not there, and each -o format — exit code and first
 * line. Then the honest-result rules: read-only commands create and chmod nothing, a corrupt
 * status file is reported in its row, global flags work before and after the command, and a bug
 * exits 3 saying so.
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { InternalError, type Command } from '../../controllers/cli/command.js';
import { ALL_COMMANDS as COMMAND_SOURCES, loadCommands, runCommandLine } from '../../controllers/cli/main.js';
import { EventLog } from '../../state/events.js';
import { StatusStore } from '../../state/status-store.js';
import type { DocumentStatus } from '../../state/status-types.js';

const execFileAsync = promisify(execFile);
// The registry loads a command's module only when it runs; the tests go through them all.
const ALL_COMMANDS = await loadCommands(COMMAND_SOURCES);
const PIC = path.join(process.cwd(), 'bin', 'pic');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function pic(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Outcome> {
  const env = { ...process.env, ...opts.env };
  if (opts.env?.PIC_STATE_DIR === undefined) delete env.PIC_STATE_DIR;
  try {
    const { stdout, stderr } = await execFileAsync(PIC, args, { cwd: opts.cwd ?? tmp, env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const firstLine = (text: string): string => text.split('\n')[0] ?? '';

let tmp: string;
let stateDir: string;
let cellDir: string;
const missing = () => path.join(tmp, 'no-such-state');

function status(kind: string, name: string, phase: DocumentStatus['phase']): DocumentStatus {
  return {
    key: `${kind}/${name}`,
    kind,
    name,
    observedGeneration: 'sha256:0123456789abcdef',
    phase,
    conditions: [{ type: 'Ready', status: phase === 'Ready' ? 'True' : 'False', reason: 'R', message: `${name} is ${phase}`, lastTransitionTime: '2026-01-01T00:00:00.000Z' }],
    updatedAt: '2026-01-01T00:00:00.000Z',
  };
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-cli-'));
  stateDir = path.join(tmp, 'state');
  await fs.mkdir(stateDir, { mode: 0o755 });
  await fs.chmod(stateDir, 0o755);
  const store = new StatusStore(path.join(stateDir, 'status'));
  await store.put(status('ServiceInstall', 'notes', 'Ready'));
  await store.put(status('PeerAccount', 'alice', 'Ready'));
  await new EventLog(path.join(stateDir, 'events.jsonl')).record({ key: 'ServiceInstall/notes', type: 'Normal', reason: 'Created', message: 'created cell-notes' });
  // A cell folder (examples' documents, the examples' catalog beside it) for the commands that need --cell.
  await fs.cp(path.join(process.cwd(), 'examples', 'store'), path.join(tmp, 'store'), { recursive: true });
  await fs.cp(path.join(process.cwd(), 'examples', 'cell'), path.join(tmp, 'cell'), { recursive: true });
  await fs.rm(path.join(tmp, 'cell', '.pic'), { recursive: true, force: true });
  cellDir = path.join(tmp, 'cell');
});

afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

let inits = 0;

/** Arguments that make each command's call otherwise well formed. */
const BASE: Record<string, () => string[]> = {
  validate: () => [cellDir],
  plan: () => ['--cell', cellDir],
  run: () => ['--cell', cellDir, '--once'],
  get: () => ['--state-dir', stateDir],
  reconcile: () => ['source', '--state-dir', stateDir],
  init: () => [path.join(tmp, `init-${++inits}`), '--domain', 'home.example.org'],
  describe: () => ['ServiceInstall/notes', '--state-dir', stateDir],
  watch: () => ['--state-dir', stateDir],
  credentials: () => ['alice', '--cell', cellDir, '--state-dir', stateDir],
  completion: () => ['bash'],
  ca: () => ['--cell', cellDir],
  catalog: () => ['list', '--cell', cellDir, '--state-dir', stateDir],
  backup: () => ['list', '--cell', cellDir, '--state-dir', stateDir],
  data: () => ['list', '--cell', cellDir, '--state-dir', stateDir],
  fence: () => ['--state-dir', stateDir],
  verify: () => ['127.0.0.1:9/roof/x@sha256:' + '0'.repeat(64), '--key', path.join(process.cwd(), 'examples', 'demo', 'demo-cosign.pub')],
  help: () => [],
  version: () => [],
};

/** Commands that read a state directory and must refuse a missing one. */
const READERS = ['get', 'describe', 'watch', 'credentials'];

/** `-o` per command: exit code and a pattern for the first line (stdout on 0, stderr otherwise). */
const OUTPUTS: Record<string, Record<'json' | 'yaml' | 'name', [number, RegExp]>> = {
  get: { json: [0, /^\{$/], yaml: [0, /^apiVersion: v1$/], name: [0, /^PeerAccount\/alice$/] },
  // watch -o json streams; it is followed below. yaml and name it does not offer.
  watch: { json: [-1, /./], yaml: [2, /^pic watch: -o takes json or nothing, not "yaml"$/], name: [2, /^pic watch: -o takes json or nothing, not "name"$/] },
  credentials: { json: [1, /^pic: no credentials are stored for peer "alice"/], yaml: [2, /^pic credentials: -o takes json, wireguard or nothing/], name: [2, /^pic credentials: -o takes json, wireguard or nothing/] },
  // Nothing answers on 127.0.0.1:9: refused (RegistryUnreachable), the verdict on stdout, nothing on stderr.
  backup: { json: [0, /^\[/], yaml: [2, /^pic backup: -o takes json or nothing/], name: [2, /^pic backup: -o takes json or nothing/] },
  catalog: { json: [0, /^\{$/], yaml: [0, /^apiVersion: v1$/], name: [2, /^pic catalog: -o must be one of table, json, yaml, not "name"$/] },
  data: { json: [0, /^\{/], yaml: [2, /^pic data: -o takes json or nothing/], name: [2, /^pic data: -o takes json or nothing/] },
  verify: { json: [1, /^$/], yaml: [2, /^pic verify: -o takes json or nothing/], name: [2, /^pic verify: -o takes json or nothing/] },
};

describe('every command', () => {
  test('the table covers every registered command', () => {
    expect(Object.keys(BASE).sort()).toEqual(ALL_COMMANDS.map((c) => c.name).sort());
  });

  describe.each(ALL_COMMANDS.map((c) => [c.name, c] as [string, Command]))('pic %s', (name, command) => {
    test.each([['--help'], ['-h']])('%s prints its usage with flags and an example, exit 0', async (flag) => {
      const r = await pic([name, ...BASE[name]!(), flag]);
      expect(r.code).toBe(0);
      expect(firstLine(r.stdout)).toBe(`Usage: pic ${name}${command.flags.length > 0 ? ' [flags]' : ''}${command.args ? ` ${command.args}` : ''}`);
      expect(r.stdout).toMatch(/\nFlags:\n[\s\S]*--help/);
      expect(r.stdout).toMatch(new RegExp(`\\nExamples:\\n  pic ${name}`));
    });

    test('pic help NAME prints the same', async () => {
      const [a, b] = await Promise.all([pic(['help', name]), pic([name, '--help'])]);
      expect(a.code).toBe(0);
      expect(a.stdout).toBe(b.stdout);
    });

    test('a flag it does not take is a usage error naming the command, exit 2', async () => {
      const r = await pic([name, ...BASE[name]!(), '--bogus']);
      expect(r.code).toBe(2);
      expect(firstLine(r.stderr)).toBe(`pic: ${name} has no flag --bogus; it takes ${[...command.flags.map((f) => `--${f.name}${f.short ? `/-${f.short}` : ''}`), '--help/-h'].join(', ')}`);
      expect(r.stderr).toContain(name === 'help' ? 'Run "pic help" for usage.' : `Run "pic help ${name}"`);
    });

    const takesStateDir = command.flags.some((f) => f.name === 'state-dir');
    test(takesStateDir ? '--state-dir "" is a usage error, exit 2' : '--state-dir is refused by name, exit 2', async () => {
      const r = await pic([name, ...BASE[name]!().filter((a, i, all) => a !== '--state-dir' && all[i - 1] !== '--state-dir'), '--state-dir', '']);
      expect(r.code).toBe(2);
      expect(firstLine(r.stderr)).toBe(takesStateDir ? 'pic: --state-dir needs a folder, not an empty string' : `pic: ${name} does not take --state-dir (it uses no state directory); it takes ${[...command.flags.map((f) => `--${f.name}${f.short ? `/-${f.short}` : ''}`), '--help/-h'].join(', ')}`);
    });

    if (READERS.includes(name)) {
      test('a missing state directory is an error (exit 1) and is not created', async () => {
        const args = BASE[name]!().map((a) => (a === stateDir ? missing() : a));
        const r = await pic([name, ...args]);
        expect(r.code).toBe(1);
        expect(firstLine(r.stderr)).toBe(`pic: no state directory at ${missing()} (--state-dir); is the operator running with --state-dir ${missing()}? Give the one it uses with --state-dir DIR, or --cell DIR for the cell it converges`);
        await expect(fs.stat(missing())).rejects.toThrow(/ENOENT/);
      });

      test('a file as state directory is a clear error, exit 1', async () => {
        const file = path.join(tmp, 'a-file');
        await fs.writeFile(file, 'x');
        const r = await pic([name, ...BASE[name]!().map((a) => (a === stateDir ? file : a))]);
        expect(r.code).toBe(1);
        expect(firstLine(r.stderr)).toBe(`pic: ${file} (--state-dir) is a file, not a state directory; --state-dir names the folder the operator keeps its state in`);
      });
    }

    test.each(['json', 'yaml', 'name'] as const)('-o %s', async (format) => {
      const expected = OUTPUTS[name]?.[format];
      if (expected?.[0] === -1) return; // streams: followed in its own test
      const r = await pic([name, ...BASE[name]!(), '-o', format]);
      if (!expected) {
        expect(r.code).toBe(2);
        expect(firstLine(r.stderr)).toMatch(new RegExp(`^pic: ${name} has no flag -o; it takes `));
        return;
      }
      expect(r.code).toBe(expected[0]);
      expect(firstLine(expected[0] === 0 ? r.stdout : r.stderr)).toMatch(expected[1]);
    });
  });
});

describe('the docs and the commands agree', () => {
  /**
   * Flags the docs name that belong to other programs: node's (docs/benchmarks.md explains bin/pic's),
   * and those of build-exits.sh, dnsmasq and openvpn that docs/exits.md describes.
   */
  const NODE_FLAGS = ['--max-semi-space-size', '--heap-growing-percent', '--optimize-for-size', '--pin', '--no-resolv', '--server', '--dev', '--pull-filter', '--up'];

  test('every --flag the docs name is a flag of a pic command, and every command is in the README', async () => {
    const files = ['README.md', ...(await fs.readdir(path.join(process.cwd(), 'docs'))).filter((f) => f.endsWith('.md')).map((f) => path.join('docs', f))];
    const known = new Set(['--help', '--version', ...ALL_COMMANDS.flatMap((c) => c.flags.map((f) => `--${f.name}`))]);
    const unknown: string[] = [];
    for (const file of files) {
      const text = await fs.readFile(path.join(process.cwd(), file), 'utf8');
      for (const m of text.matchAll(/(?:^|[\s`(])(--[a-z][a-z-]+)/gm)) {
        if (!known.has(m[1]!) && !NODE_FLAGS.includes(m[1]!)) unknown.push(`${file}: ${m[1]}`);
      }
    }
    expect(unknown).toEqual([]);
    const readme = await fs.readFile(path.join(process.cwd(), 'README.md'), 'utf8');
    for (const c of ALL_COMMANDS) expect(readme).toMatch(new RegExp(`pic ${c.name}\\b`));
  });
});

describe('honest results', () => {
  test('watch -o json streams each new event as one JSON line and stops on SIGTERM with 0', async () => {
    const child = spawn(PIC, ['watch', '-o', 'json', '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const log = new EventLog(path.join(stateDir, 'events.jsonl'));
    for (let i = 0; i < 200 && !out.includes('streamed'); i++) {
      await log.record({ key: 'ServiceInstall/notes', type: 'Normal', reason: 'Probe', message: 'streamed' });
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(JSON.parse(firstLine(out))).toMatchObject({ key: 'ServiceInstall/notes', reason: 'Probe', message: 'streamed' });
  });

  test('get --watch prints the table, then the row of each document whose status changes', async () => {
    const dir = path.join(tmp, 'watched');
    const store = new StatusStore(path.join(dir, 'status'));
    await store.put(status('ServiceInstall', 'notes', 'Reconciling'));
    await store.put(status('ServiceInstall', 'files', 'Ready'));
    const child = spawn(PIC, ['get', 'si', '--watch', '--state-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 300 && !/notes\s+False\s+Reconciling/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    // The watch is set up after the first table; keep changing notes until a row for it arrives.
    for (let i = 0; i < 100 && !/notes\s+True\s+Ready/.test(out); i++) {
      await store.put({ ...status('ServiceInstall', 'notes', 'Ready'), updatedAt: new Date().toISOString(), observedGeneration: `sha256:${i}` });
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const lines = out.trim().split('\n');
    // No operator writes these statuses: the table says so first, and as of when in each row.
    expect(lines.slice(0, 4)).toEqual([
      'No operator is running for this state directory — statuses may be stale',
      expect.stringMatching(/^KIND\s+NAME\s+READY\s+STATUS\s+UPDATE\s+AGE\s+BACKUP\s+AS OF\s+MESSAGE$/),
      expect.stringMatching(/^ServiceInstall\s+files\s+True\s+Ready/),
      expect.stringMatching(/^ServiceInstall\s+notes\s+False\s+Reconciling/),
    ]);
    // Later lines are rows of notes only (files did not change), without a header.
    expect(lines.slice(4).length).toBeGreaterThan(0);
    for (const line of lines.slice(4)) expect(line).toMatch(/^ServiceInstall\s+notes\s+True\s+Ready/);
  });

  test('credentials escape what a stored value holds, in text and in JSON', async () => {
    const dir = path.join(tmp, 'creds');
    await fs.mkdir(dir, { mode: 0o700 });
    const password = 'pw\u001b[2J\rpassword:  hunter2\u202e\u009b';
    await fs.writeFile(path.join(dir, 'credentials.json'), JSON.stringify({ notes: { alice: { password } } }), { mode: 0o600 });
    // eslint-disable-next-line no-control-regex
    const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e]/u;
    const text = await pic(['credentials', 'alice', '--cell', cellDir, '--state-dir', dir]);
    expect(text.code).toBe(0);
    expect(text.stdout + text.stderr).not.toMatch(RAW);
    expect(text.stdout).toContain('password:  pw\\e[2J\\rpassword:  hunter2\\u{202e}\\x9b');
    const json = await pic(['credentials', 'alice', '--cell', cellDir, '--state-dir', dir, '-o', 'json']);
    expect(json.code).toBe(0);
    expect(json.stdout).not.toMatch(RAW);
    expect((JSON.parse(json.stdout) as { services: { notes: { password: string } } }).services.notes.password).toBe(password);
  });

  test('read-only commands create and chmod nothing in the state directory', async () => {
    const tree = async (dir: string): Promise<string[]> => {
      const out: string[] = [];
      for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
        const p = path.join(e.parentPath, e.name);
        out.push(`${path.relative(dir, p)} ${((await fs.stat(p)).mode & 0o7777).toString(8)}`);
      }
      return out.sort();
    };
    const before = [`. ${((await fs.stat(stateDir)).mode & 0o7777).toString(8)}`, ...(await tree(stateDir))];
    for (const args of [['get'], ['get', '-o', 'wide'], ['describe', 'ServiceInstall/notes'], ['describe', 'peer', 'nobody'], ['credentials', 'alice', '--cell', cellDir]]) {
      await pic([...args, '--state-dir', stateDir]);
    }
    const child = spawn(PIC, ['watch', '--state-dir', stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    for (let i = 0; i < 300 && !out.includes('notes'); i++) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toMatch(/ServiceInstall\s+notes\s+True\s+Ready/);
    const after = [`. ${((await fs.stat(stateDir)).mode & 0o7777).toString(8)}`, ...(await tree(stateDir))];
    expect(after).toEqual(before);
    expect(before[0]).toBe('. 755');
  });

  test('get and describe take the kinds of what pic runs for the cell: Core and Resource', async () => {
    const dir = path.join(tmp, 'core-kinds');
    const store = new StatusStore(path.join(dir, 'status'));
    await store.put(status('Core', 'caddy', 'Ready'));
    await store.put(status('Resource', 'dns', 'Ready'));
    await store.put(status('ServiceInstall', 'notes', 'Ready'));
    for (const [args, want] of [[['get', 'Core'], 'core/caddy'], [['get', 'res', '-o', 'name'], 'resource/dns'], [['get', 'cores', 'caddy', '-o', 'name'], 'core/caddy']] as const) {
      const r = await pic([...args, '-o', 'name', '--state-dir', dir]);
      expect({ args, code: r.code, out: r.stdout.trim().toLowerCase() }).toEqual({ args, code: 0, out: want });
    }
    const d = await pic(['describe', 'Core/caddy', '--state-dir', dir]);
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/^Kind:\s+Core$/m);
  });

  test('one corrupt status file is reported in its row; the others are still listed; exit 1', async () => {
    const dir = path.join(tmp, 'corrupt');
    const store = new StatusStore(path.join(dir, 'status'));
    await store.put(status('ServiceInstall', 'notes', 'Ready'));
    await fs.mkdir(path.join(dir, 'status', 'ServiceInstall'), { recursive: true });
    await fs.writeFile(path.join(dir, 'status', 'ServiceInstall', 'broken.json'), '{"key": "ServiceInstall/broken", ');
    await fs.writeFile(path.join(dir, 'status', 'ServiceInstall', 'other.json'), '["not a status"]');
    const r = await pic(['get', '-o', 'wide', '--state-dir', dir]);
    expect(r.code).toBe(1);
    // The first line says no operator runs (none does here), then the header.
    const rows = r.stdout.trim().split('\n').slice(1);
    expect(rows).toHaveLength(4);
    expect(rows[1]).toMatch(/^ServiceInstall\s+broken\s+Unknown\s+Unreadable\s.*broken\.json: not valid JSON/);
    expect(rows[2]).toMatch(/^ServiceInstall\s+notes\s+True\s+Ready/);
    expect(rows[3]).toMatch(/^ServiceInstall\s+other\s+Unknown\s+Unreadable\s.*not a status of ServiceInstall\/other/);
    expect(r.stderr).toContain('broken.json: not valid JSON');
    const json = await pic(['get', '-o', 'json', '--state-dir', dir]);
    expect(json.code).toBe(1);
    expect((JSON.parse(json.stdout) as { items: { name: string }[] }).items.map((i) => i.name)).toEqual(['notes']);
  });

  test.each([
    [['--state-dir', '<state>', 'get', '-o', 'name']],
    [['get', '--state-dir', '<state>', '-o', 'name']],
    [['get', '-o', 'name', '--state-dir=<state>']],
  ])('global flags before or after the command: %j', async (args) => {
    const r = await pic(args.map((a) => a.replace('<state>', stateDir)));
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('PeerAccount/alice\nServiceInstall/notes\n');
  });

  test('the state directory recorded in a cell folder is found from --cell and from inside the folder', async () => {
    const recordedState = path.join(tmp, 'recorded-state');
    const store = new StatusStore(path.join(recordedState, 'status'));
    await store.put(status('ServiceInstall', 'notes', 'Ready'));
    await fs.chmod(recordedState, 0o700);
    const cell = path.join(tmp, 'recorded-cell');
    await fs.mkdir(path.join(cell, '.pic'), { recursive: true });
    await fs.mkdir(path.join(cell, 'services'), { recursive: true });
    await fs.writeFile(path.join(cell, 'cell.yaml'), 'apiVersion: pic.ngo/v1alpha1\nkind: Cell\n');
    await fs.writeFile(path.join(cell, '.pic', 'state-dir'), `${recordedState}\n`);
    for (const [args, cwd] of [[['get', '-o', 'name', '--cell', cell], tmp], [['get', '-o', 'name'], path.join(cell, 'services')]] as const) {
      const r = await pic([...args], { cwd });
      expect(r.stdout).toBe('ServiceInstall/notes\n');
      expect(r.code).toBe(0);
    }
    // $PIC_STATE_DIR and --state-dir win over the record.
    const env = await pic(['get', '--cell', cell], { env: { PIC_STATE_DIR: missing() } });
    expect(env.code).toBe(1);
    expect(env.stderr).toContain(`no state directory at ${missing()} ($PIC_STATE_DIR)`);
  });

  test.each([
    ['/', 'its mode is 755, not owner-only (700)'],
    ['<tmp>/no-such-state', 'it does not exist'],
    ['<tmp>/open-state', 'its mode is 755, not owner-only (700)'],
    ['<tmp>/bare-state', 'it has no status folder'],
    ['<tmp>/linked-state', 'it is a symbolic link'],
  ])('a record naming %s is not followed, by readers or by the operator', async (target, why) => {
    const dir = target.replace('<tmp>', tmp);
    await fs.mkdir(path.join(tmp, 'open-state', 'status'), { recursive: true });
    await fs.chmod(path.join(tmp, 'open-state'), 0o755);
    await fs.mkdir(path.join(tmp, 'bare-state'), { recursive: true, mode: 0o700 });
    await fs.symlink(path.join(tmp, 'recorded-state'), path.join(tmp, 'linked-state')).catch(() => undefined);
    const cell = await fs.mkdtemp(path.join(tmp, 'hostile-cell-'));
    await fs.mkdir(path.join(cell, '.pic'));
    await fs.writeFile(path.join(cell, 'cell.yaml'), 'apiVersion: pic.ngo/v1alpha1\nkind: Cell\n');
    await fs.writeFile(path.join(cell, '.pic', 'state-dir'), `${dir}\n`);
    const modeBefore = await fs.stat(dir).then((st) => st.mode, () => undefined);
    for (const args of [['get', '--cell', cell], ['run', '--once', '--cell', cell]]) {
      const r = await pic(args);
      expect(r.code).toBe(1);
      expect(firstLine(r.stderr)).toBe(`pic: ${path.join(cell, '.pic', 'state-dir')} names ${dir} as the cell's state directory, but ${why}; give the state directory with --state-dir DIR (pic run --state-dir DIR records it anew), or delete ${path.join(cell, '.pic', 'state-dir')}`);
    }
    expect(await fs.stat(dir).then((st) => st.mode, () => undefined)).toBe(modeBefore);
  });

  test('--version and version print the package version', async () => {
    const { version } = JSON.parse(await fs.readFile(path.join(process.cwd(), 'package.json'), 'utf8')) as { version: string };
    for (const args of [['--version'], ['version']]) {
      const r = await pic(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`pic ${version}\n`);
    }
  });

  test('pic alone prints the overview (exit 2); pic help and --help exit 0; an unknown command exit 2', async () => {
    const [bare, help, dash] = await Promise.all([pic([]), pic(['help']), pic(['--help'])]);
    expect(bare.code).toBe(2);
    expect(help.code).toBe(0);
    expect(dash.code).toBe(0);
    for (const r of [bare, help, dash]) {
      expect(firstLine(r.stdout)).toBe('pic — keeps a self-hosted cell true to what its admin declared');
      for (const c of ALL_COMMANDS) expect(r.stdout).toMatch(new RegExp(`^  ${c.name} `, 'm'));
    }
    const unknown = await pic(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(firstLine(unknown.stderr)).toMatch(/^pic: unknown command "frobnicate"; the commands are validate, /);
  });

  test.each(['bash', 'zsh'])('completion %s lists every command and each command\'s flags', async (shell) => {
    const r = await pic(['completion', shell]);
    expect(r.code).toBe(0);
    for (const c of ALL_COMMANDS) {
      const arm = r.stdout.split('\n').find((l) => l.startsWith(`    ${c.name}) `));
      expect(arm).toBeDefined();
      for (const f of c.flags) expect(arm).toContain(`--${f.name}`);
    }
    if (shell === 'bash') {
      // The script is valid bash and completes a command's flags.
      const script = path.join(tmp, 'completion.bash');
      await fs.writeFile(script, r.stdout);
      const { stdout } = await execFileAsync('bash', ['-c', `source "$1"; COMP_WORDS=(pic get -o ""); COMP_CWORD=3; _pic; echo "\${COMPREPLY[*]}"`, 'bash', script]);
      expect(stdout.trim()).toBe('table wide json yaml name jsonpath=');
    }
  });

  test('an internal error exits 3 and says it is a bug; usage 2; a failure 1', async () => {
    const make = (name: string, fail: () => never): Command => ({ name, summary: '', args: '', description: '', flags: [], examples: [], run: async () => fail() });
    const commands = [
      make('bug', () => {
        throw new TypeError("Cannot read properties of undefined (reading 'spec')");
      }),
      make('fails', () => {
        throw new Error('the engine is not there');
      }),
      make('wrapped', () => {
        throw new InternalError('validating x failed: boom', { cause: new RangeError('Maximum call stack size exceeded') });
      }),
    ];
    const run = async (argv: string[]) => {
      const err: string[] = [];
      const code = await runCommandLine(argv, { out: () => undefined, err: (l) => err.push(l) }, new AbortController().signal, commands);
      return { code, err };
    };
    const bug = await run(['bug']);
    expect(bug.code).toBe(3);
    expect(bug.err[0]).toBe('pic: internal error: this is a bug in pic, not a problem in your files; please report it with this output.');
    expect(bug.err[1]).toMatch(/^TypeError: Cannot read properties/);
    expect(await run(['fails'])).toEqual({ code: 1, err: ['pic: the engine is not there'] });
    expect((await run(['bug', '--nope'])).code).toBe(2);
    const wrapped = await run(['wrapped']);
    expect(wrapped.code).toBe(3);
    expect(wrapped.err.slice(0, 2)).toEqual(['pic: internal error: this is a bug in pic, not a problem in your files; please report it with this output.', 'pic: validating x failed: boom']);
    expect(wrapped.err[2]).toMatch(/^RangeError: Maximum call stack size exceeded/);
  });
});
