/**
 * A package's install.sh against the real engine, converged by `pic run --once`: it writes a
 * default config file into the service's volume, which the service then serves; it runs confined
 * (no capabilities, its own PID namespace, a read-only root and package, nothing of the host); a
 * second pass does not run it again; an upgrade runs the new version's; one that tries the
 * network fails, and one that loops is stopped at the time limit, each leaving its service Stalled
 * and not retried.
 *
 * The tests run in order and share the cell. Names start with `ish-`.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { get } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { BACKUP_LABEL } from '../../reconcilers/backup/labels.js';
import { LABEL } from '../../reconcilers/containers/labels.js';
import type { OperatorEvent } from '../../state/status-types.js';
import { createTestCell, removeTestCell, TEST_IMAGE, waitFor, writeDocumentFile, type TestCell } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { runPic } from '../support/pic-cli.js';

const PREFIX = 'ish-';
let cell: TestCell;
let hostMarker = '';

const env = () => ({ PIC_STATE_DIR: cell.stateDir, PIC_INSTALL_SCRIPT_TIMEOUT_SECONDS: '5', PIC_BACKUP_NAME_PREFIX: `${PREFIX}helper` });
const runOnce = () => runPic(['run', '--once', '--cell', cell.cellDir, '--log-format', 'json'], env());

async function serviceStatus(id: string): Promise<{ phase: string; conditions: { type: string; reason: string; message: string }[]; facts?: Record<string, unknown> }> {
  const r = await runPic(['get', 'ServiceInstall', id, '-o', 'json'], env());
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as { phase: string; conditions: { type: string; reason: string; message: string }[]; facts?: Record<string, unknown> };
}

async function events(id: string, reason: string): Promise<OperatorEvent[]> {
  const text = await fs.readFile(path.join(cell.stateDir, 'events.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as OperatorEvent)
    .filter((e) => e.key === `ServiceInstall/${id}` && e.reason === reason);
}

async function execIn(container: string, cmd: string[]): Promise<string> {
  const exec = await docker.getContainer(container).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({});
  const out = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      // Docker's multiplexed frames: an 8-byte header (stream, 0, 0, 0, length) before each part.
      const buf = Buffer.concat(chunks);
      const parts: Buffer[] = [];
      for (let i = 0; i + 8 <= buf.length; ) {
        const len = buf.readUInt32BE(i + 4);
        parts.push(buf.subarray(i + 8, i + 8 + len));
        i += 8 + len;
      }
      resolve(Buffer.concat(parts).toString('utf8'));
    });
    stream.on('error', reject);
  });
  return out;
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
  });
}

async function writePackageFile(id: string, name: string, text: string): Promise<void> {
  await fs.writeFile(path.join(cell.storeDir, 'services', id, name), text);
}

/** The web package serves /data (where install.sh writes its default config). */
async function serveData(): Promise<void> {
  const file = path.join(cell.storeDir, 'services', 'web', 'compose-template.yml');
  const text = await fs.readFile(file, 'utf8');
  const edited = text.replace('httpd -f -p 8080 -h /www', 'httpd -f -p 8080 -h /data');
  if (edited === text) throw new Error('the test template changed shape: no httpd -h /www to replace');
  await fs.writeFile(file, edited);
}

async function setVersion(id: string, version: string): Promise<void> {
  const manifestFile = path.join(cell.storeDir, 'services', id, 'manifest.json');
  const manifest = JSON.parse(await fs.readFile(manifestFile, 'utf8')) as { version: string };
  manifest.version = version;
  await fs.writeFile(manifestFile, JSON.stringify(manifest, null, 2));
  const indexFile = path.join(cell.storeDir, 'index.json');
  const index = JSON.parse(await fs.readFile(indexFile, 'utf8')) as { id: string; version: string }[];
  for (const e of index) if (e.id === id) e.version = version;
  await fs.writeFile(indexFile, JSON.stringify(index));
}

/** Helper containers of this cell still there (none should outlive a run). */
async function helpersLeft(): Promise<string[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL.cell}=${cell.name}`, BACKUP_LABEL.role] } });
  return list.map((c) => c.Names[0] ?? c.Id);
}

beforeAll(async () => {
  cell = await createTestCell([{ id: 'web' }, { id: 'net' }, { id: 'loop' }], { prefix: PREFIX });
  await fs.mkdir(cell.stateDir, { recursive: true, mode: 0o700 });
  hostMarker = path.join(os.tmpdir(), `${PREFIX}host-marker-${randomBytes(4).toString('hex')}`);
  await fs.writeFile(hostMarker, 'on the host\n');
  await serveData();
  // The default config, and what the script can see of where it runs (printed, then checked).
  await writePackageFile('web', 'install.sh', [
    'set -u',
    'printf "greeting=%s\\n" "from-install-1.0.0" > /data/config.txt',
    'echo "caps $(grep CapEff /proc/self/status | tr -d "\\t")"',
    'echo "pid1 $(tr "\\0" " " < /proc/1/cmdline)"',
    `if [ -e ${hostMarker} ]; then echo "host marker visible"; else echo "host marker absent"; fi`,
    'if ls /proc/1/root/ >/dev/null 2>&1; then echo "proc1root $(ls /proc/1/root | tr "\\n" " ")"; fi',
    'if touch /pic/package/x 2>/dev/null; then echo "package writable"; else echo "package read-only"; fi',
    'if touch /rootfs-probe 2>/dev/null; then echo "root writable"; else echo "root read-only"; fi',
    'printf "escape \\033[2J done\\n"',
    'exit 0',
    '',
  ].join('\n'));
  await writePackageFile('loop', 'install.sh', 'echo looping\nwhile true; do sleep 1; done\n');
});

afterAll(async () => {
  if (hostMarker) await fs.rm(hostMarker, { force: true });
  if (cell) await removeTestCell(cell);
});

describe('install.sh, sandboxed', () => {
  test('it writes a default config into the service volume, which the service then serves; confined while it runs', async () => {
    await cell.writeService('web');
    const run = await runOnce();
    expect(run.stdout).toMatch(/web\s+True\s+Ready/);
    const served = await execIn(cell.containerName('web'), ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/config.txt']);
    expect(served).toContain('greeting=from-install-1.0.0');

    const status = await serviceStatus('web');
    expect(status.facts?.installScript).toMatchObject({ version: '1.0.0', result: 'succeeded', exitCode: 0 });
    const [succeeded, ...more] = await events('web', 'InstallScriptSucceeded');
    expect(more).toEqual([]);
    const output = succeeded!.message;
    // No capability at all, its own PID namespace (PID 1 is the script), nothing of the host.
    expect(output).toContain('caps CapEff:0000000000000000');
    expect(output).toContain('pid1 sh /pic/package/install.sh');
    expect(output).toContain('host marker absent');
    expect(output).not.toContain(hostMarker.slice(1));
    expect(output).toContain('package read-only');
    expect(output).toContain('root read-only');
    // The escape sequence the script printed reaches the event escaped.
    expect(output).toContain('escape \\e[2J done');
    expect(output).not.toContain('\u001b');
    expect(await helpersLeft()).toEqual([]);

    const describe = await runPic(['describe', 'ServiceInstall/web'], env());
    expect(describe.stdout).toMatch(/install\.sh:\s+succeeded for version 1\.0\.0 at /);
  });

  test('a second pass does not run it again', async () => {
    const before = (await events('web', 'InstallScriptStarted')).length;
    expect(before).toBe(1);
    // The config is changed by the admin: a second run of the script would overwrite it.
    await execIn(cell.containerName('web'), ['sh', '-c', 'echo greeting=edited > /data/config.txt']);
    const run = await runOnce();
    expect(run.stdout).toMatch(/web\s+True\s+Ready/);
    expect((await events('web', 'InstallScriptStarted')).length).toBe(before);
    expect(await execIn(cell.containerName('web'), ['cat', '/data/config.txt'])).toContain('greeting=edited');
  });

  test('a script that tries the network fails, the service Stalled with its output, not retried', async () => {
    // A server of the test's own on Docker's default bridge, which any container with a network reaches.
    const target = await docker.createContainer({
      name: `${PREFIX}target-${cell.tag}`,
      Image: TEST_IMAGE,
      Cmd: ['sh', '-c', "trap 'exit 0' TERM; mkdir -p /tmp/www && echo reachable > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www & wait"],
      Labels: { [LABEL.cell]: cell.name },
      HostConfig: { NetworkMode: 'bridge' },
    });
    await target.start();
    const targetIp = (await target.inspect()).NetworkSettings.Networks.bridge?.IPAddress ?? '';
    expect(targetIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    // It answers to whoever has a network (here the host, over the bridge).
    expect(await waitFor('the target server', async () => (await httpGet(`http://${targetIp}:8080/`)).includes('reachable') || undefined, 20_000)).toBe(true);
    await writePackageFile('net', 'install.sh', `echo "fetching from ${targetIp}"\nwget -q -O /data/fetched "http://${targetIp}:8080/"\n`);
    await cell.writeService('net');
    await runOnce();
    const status = await serviceStatus('net');
    expect(status.phase).toBe('Stalled');
    const stalled = status.conditions.find((c) => c.type === 'Stalled');
    expect(stalled).toMatchObject({ reason: 'InstallScriptFailed' });
    expect(stalled!.message).toMatch(/install\.sh of version 1\.0\.0 exited with code [1-9]/);
    expect(stalled!.message).toContain(`fetching from ${targetIp}`);
    expect(stalled!.message).toContain('Network is unreachable');
    expect(status.facts?.installScript).toMatchObject({ version: '1.0.0', result: 'failed' });
    expect(await execIn(cell.containerName('net'), ['sh', '-c', 'ls /data/fetched 2>&1 || true'])).not.toMatch(/^\/data\/fetched$/m);

    await runOnce();
    expect((await events('net', 'InstallScriptStarted')).length).toBe(1);
    expect((await serviceStatus('net')).conditions.find((c) => c.type === 'Stalled')).toMatchObject({ reason: 'InstallScriptFailed' });
  });

  test('a script that loops is stopped at the time limit; editing the ServiceInstall retries it', async () => {
    await cell.writeService('loop');
    await runOnce();
    const status = await serviceStatus('loop');
    expect(status.phase).toBe('Stalled');
    const stalled = status.conditions.find((c) => c.type === 'Stalled')!;
    expect(stalled.reason).toBe('InstallScriptFailed');
    expect(stalled.message).toContain('install.sh of version 1.0.0 was stopped at the time limit (5 s)');
    expect(stalled.message).toContain('looping');
    expect(await helpersLeft()).toEqual([]);
    expect((await events('loop', 'InstallScriptStarted')).length).toBe(1);

    // An edit of the document is the admin's retry (the script still loops: stopped again).
    await cell.writeService('loop', { greeting: 'again' });
    await runOnce();
    expect((await events('loop', 'InstallScriptStarted')).length).toBe(2);
    expect((await serviceStatus('loop')).conditions.find((c) => c.type === 'Stalled')).toMatchObject({ reason: 'InstallScriptFailed' });
  });

  test('an upgrade runs the new version\'s script', async () => {
    await writePackageFile('web', 'install.sh', 'printf "greeting=%s\\n" "from-install-1.1.0" > /data/config-1.1.0.txt\necho upgraded\n');
    await setVersion('web', '1.1.0');
    await writeDocumentFile(path.join(cell.cellDir, 'services', 'web.yaml'), 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: web}\nspec:\n  version: 1.1.0\n  config: {}\n  minReadySeconds: 0\n');
    await runOnce();
    let status = await serviceStatus('web');
    if (status.facts?.version === '1.1.0' && status.facts?.installScript === undefined) {
      // The upgrade switched the version in this pass; the script runs on the first pass that sees it running.
      await runOnce();
      status = await serviceStatus('web');
    }
    expect(status).toMatchObject({ phase: 'Ready', facts: { version: '1.1.0', installScript: { version: '1.1.0', result: 'succeeded' } } });
    expect(await execIn(cell.containerName('web'), ['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/config-1.1.0.txt'])).toContain('greeting=from-install-1.1.0');
    expect((await events('web', 'InstallScriptStarted')).length).toBe(2);
    // The data the admin edited stays as it was.
    expect(await execIn(cell.containerName('web'), ['cat', '/data/config.txt'])).toContain('greeting=edited');
  });
});
