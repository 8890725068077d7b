/**
 * `pic run --metrics-address` scraped by a real Prometheus (Debian's), both on loopback: the
 * operator runs as an admin runs it (bin/pic), Prometheus loads the alert rules printed in
 * docs/admin-guide.md (with a short `for:`), and its HTTP API shows the series and the alert
 * firing for a service the test breaks. Everything is named pictest-metrics-* and removed after.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTestCell, removeStaleTestCells, removeTestCell, waitFor, writeDocumentFile, serviceInstallDocument, type TestCell } from '../support/cell.js';
import { freePort } from '../support/caddy.js';
import { PIC, runPic } from '../support/pic-cli.js';

const PREFIX = 'pictest-metrics-';

let cell: TestCell;
let promDir: string;
let picPort: number;
let promPort: number;
const children: { name: string; child: ChildProcess; output: string[] }[] = [];

/** Start a long-running process and keep the tail of its output for a failure message. */
function start(name: string, command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(String(chunk));
    if (output.length > 50) output.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  // Not installed (deploy/scripts/ensure-host.sh installs Debian's prometheus): said in the failure, not a crash.
  child.on('error', (err) => output.push(`cannot start ${command}: ${err.message}\n`));
  children.push({ name, child, output });
  return child;
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return exited;
}

async function get(port: number, route: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

interface PromResult {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query through Prometheus' HTTP API. */
async function query(expr: string): Promise<PromResult[]> {
  const { status, body } = await get(promPort, `/api/v1/query?query=${encodeURIComponent(expr)}`);
  if (status !== 200) throw new Error(`query ${expr}: HTTP ${status}: ${body}`);
  return (JSON.parse(body) as { data: { result: PromResult[] } }).data.result;
}

async function alerts(): Promise<{ labels: Record<string, string>; state: string }[]> {
  const { body } = await get(promPort, '/api/v1/alerts');
  return (JSON.parse(body) as { data: { alerts: { labels: Record<string, string>; state: string }[] } }).data.alerts;
}

/** The alert rules docs/admin-guide.md prints, with every `for:` made short enough for a test. */
async function documentedRules(): Promise<string> {
  const guide = await fs.readFile(path.join(process.cwd(), 'docs', 'admin-guide.md'), 'utf8');
  const block = /```yaml\n(groups:\n[\s\S]*?)```/.exec(guide)?.[1];
  if (!block) throw new Error('docs/admin-guide.md has no ```yaml block of alert rules (groups:)');
  expect(block).toContain('alert: PicServiceNotReady');
  expect(block).toContain('alert: PicBackupOverdue');
  return block.replace(/^(\s*)for: .*$/gm, '$1for: 2s');
}

beforeAll(async () => {
  await removeStaleTestCells();
  cell = await createTestCell([{ id: 'alpha' }, { id: 'beta' }], { prefix: PREFIX });
  await cell.writeService('alpha');
  await cell.writeService('beta');
  promDir = await fs.mkdtemp(path.join(os.tmpdir(), `${PREFIX}prometheus-`));
  [picPort, promPort] = [await freePort(), await freePort()];
});

afterAll(async () => {
  for (const { child } of children.splice(0)) await stop(child);
  if (cell) await removeTestCell(cell);
  if (promDir) await fs.rm(promDir, { recursive: true, force: true });
});

describe('pic run --metrics-address', () => {
  test('an address other than loopback or a Unix socket is refused before anything starts', async () => {
    for (const address of ['0.0.0.0:9464', '10.0.0.1:9464', 'metrics.example.org:9464', 'unix:metrics.sock']) {
      const r = await runPic(['run', '--cell', cell.cellDir, '--state-dir', cell.stateDir, '--metrics-address', address]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--metrics-address .*(not a loopback address|not an IP address|must be absolute)/);
    }
    await expect(fs.stat(cell.stateDir)).rejects.toThrow(/ENOENT/);
  });

  test('Prometheus scrapes the operator, and the documented alert fires for a service that is not Ready', async () => {
    const pic = start('pic run', PIC, ['run', '--cell', cell.cellDir, '--state-dir', cell.stateDir, '--metrics-address', `127.0.0.1:${picPort}`, '--resync', '5', '--log-format', 'json']);
    const failed = () => `\n${children.map((c) => `--- ${c.name} (exit ${c.child.exitCode}):\n${c.output.join('')}`).join('\n')}`;
    expect(await waitFor(`/healthz of pic${failed()}`, async () => ((await get(picPort, '/healthz')).status === 200 ? true : undefined), 30_000)).toBe(true);
    const ready = await waitFor(`/readyz of pic${failed()}`, async () => {
      const r = await get(picPort, '/readyz');
      return r.status === 200 ? r.body : undefined;
    });
    expect(ready).toMatch(/^ok: the last full pass finished/);

    await fs.writeFile(path.join(promDir, 'pic-alerts.yml'), await documentedRules());
    await fs.writeFile(
      path.join(promDir, 'prometheus.yml'),
      [
        'global: {scrape_interval: 1s, evaluation_interval: 1s}',
        'rule_files: [pic-alerts.yml]',
        'scrape_configs:',
        '  - job_name: pic',
        `    static_configs: [{targets: ['127.0.0.1:${picPort}']}]`,
        '',
      ].join('\n'),
    );
    start('prometheus', 'prometheus', [
      `--config.file=${path.join(promDir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(promDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ]);
    await waitFor(`Prometheus ready${failed()}`, async () => ((await get(promPort, '/-/ready')).status === 200 ? true : undefined), 60_000);

    // Both services Ready, as scraped.
    await waitFor(`pic_document_ready of both services is 1${failed()}`, async () => {
      const rows = await query('pic_document_ready{job="pic",kind="ServiceInstall"}');
      return rows.length === 2 && rows.every((r) => r.value[1] === '1') ? rows : undefined;
    });
    expect((await query('up{job="pic"}'))[0]?.value[1]).toBe('1');
    for (const series of [
      'controller_runtime_reconcile_total{controller="ServiceInstall",result="success"}',
      'controller_runtime_reconcile_errors_total{controller="ServiceInstall"}',
      'controller_runtime_reconcile_time_seconds_count{controller="ServiceInstall"}',
      'workqueue_depth{name="pic"}',
      'workqueue_adds_total{name="pic"}',
      'workqueue_queue_duration_seconds_count{name="pic"}',
      'workqueue_work_duration_seconds_count{name="pic"}',
      'workqueue_retries_total{name="pic"}',
      'pic_last_pass_timestamp_seconds',
      'process_resident_memory_bytes',
    ]) {
      expect({ series, found: (await query(series)).length }).toEqual({ series, found: 1 });
    }
    expect(Number((await query('controller_runtime_reconcile_total{controller="ServiceInstall",result="success"}'))[0]!.value[1])).toBeGreaterThanOrEqual(2);
    expect(await alerts()).toEqual([]);

    // Break beta: a config its manifest refuses. It is held at its last version, and not Ready.
    await writeDocumentFile(path.join(cell.cellDir, 'services', 'beta.yaml'), serviceInstallDocument('beta', { greeting: 42 }));
    const firing = await waitFor(`PicServiceNotReady firing for beta${failed()}`, async () => {
      const list = await alerts();
      return list.find((a) => a.labels.alertname === 'PicServiceNotReady' && a.labels.name === 'beta' && a.state === 'firing');
    });
    expect(firing.labels).toMatchObject({ kind: 'ServiceInstall', severity: 'warning' });
    expect((await alerts()).filter((a) => a.labels.name === 'alpha')).toEqual([]);

    // Fixed, it is Ready again and the alert resolves.
    await cell.writeService('beta');
    await waitFor(`PicServiceNotReady resolved${failed()}`, async () => ((await alerts()).some((a) => a.labels.alertname === 'PicServiceNotReady') ? undefined : true));

    expect(await stop(pic)).toBe(0);
  });
});
