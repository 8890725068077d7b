/**
 * The metrics endpoint's pure parts: which --metrics-address is accepted, when /readyz says
 * ready, the expiry read from Caddy's CA answer; and the series a registry holds after a queue
 * ran a few keys, computed from a source like the operator's.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { Registry } from 'prom-client';
import { controllerOf, OperatorMetrics, readyValue, type MetricsSource } from '../../controllers/metrics.js';
import { MetricsAddressError, parseMetricsAddress, readinessOf } from '../../controllers/metrics-server.js';
import { WorkQueue } from '../../controllers/queue.js';
import { caExpiriesOf } from '../../reconcilers/caddy/ca-expiry.js';
import { TerminalError } from '../../reconcilers/errors.js';
import type { DocumentStatus } from '../../state/status-types.js';

describe('parseMetricsAddress', () => {
  test.each([
    ['127.0.0.1:9464', { kind: 'tcp', host: '127.0.0.1', port: 9464 }],
    ['127.8.9.10:1', { kind: 'tcp', host: '127.8.9.10', port: 1 }],
    ['[::1]:65535', { kind: 'tcp', host: '::1', port: 65535 }],
    ['localhost:9464', { kind: 'tcp', host: '127.0.0.1', port: 9464 }],
    ['unix:/run/pic/metrics.sock', { kind: 'unix', path: '/run/pic/metrics.sock' }],
  ])('%s is accepted', (text, expected) => {
    expect(parseMetricsAddress(text)).toEqual(expected);
  });

  test.each([
    ['0.0.0.0:9464', /not a loopback address/],
    ['192.168.1.10:9464', /not a loopback address/],
    ['[::]:9464', /not a loopback address/],
    ['[fe80::1]:9464', /not a loopback address/],
    [':9464', /names no host, which would listen on every address/],
    ['127.0.0.1', /expected a loopback HOST:PORT/],
    ['127.0.0.1:0', /port must be between 1 and 65535/],
    ['127.0.0.1:65536', /port must be between 1 and 65535/],
    ['127.0.0.1:000009464', /port must be between 1 and 65535/],
    ['::1:9464', /expected a loopback HOST:PORT/],
    ['[127.0.0.1]:9464', /not an IP address.*brackets/],
    ['metrics.example.org:9464', /not an IP address/],
    ['127.1:9464', /not an IP address/],
    ['http://127.0.0.1:9464', /expected a loopback HOST:PORT/],
    ['unix:metrics.sock', /must be absolute/],
    ['unix:', /must be absolute/],
    ['unix:/run/../tmp/m.sock', /plain absolute file path/],
    ['unix:/run/pic/', /plain absolute file path/],
    [`unix:/${'a'.repeat(120)}`, /at most 107 bytes/],
  ])('%s is refused: %s', (text, why) => {
    expect(() => parseMetricsAddress(text)).toThrow(MetricsAddressError);
    expect(() => parseMetricsAddress(text)).toThrow(why);
  });
});

describe('readinessOf', () => {
  const interval = 600_000;
  test.each([
    [undefined, 0, false, /first pass .* not finished/],
    [1_000_000, 1_000_000 + 5_000, true, /finished 5s ago/],
    [1_000_000, 1_000_000 + 2 * interval + 60_000, true, /finished 1260s ago/],
    [1_000_000, 1_000_000 + 2 * interval + 60_001, false, /longer than 1260s .*may be stuck/],
  ])('last pass at %s, now %s: ready %s', (lastPassAt, now, ready, message) => {
    const r = readinessOf(lastPassAt, interval, now);
    expect(r.ready).toBe(ready);
    expect(r.message).toMatch(message);
  });
});

describe('caExpiriesOf', () => {
  test("reads the root and the intermediate of Caddy's answer to GET /pki/ca/local", async () => {
    const dir = path.join(process.cwd(), 'tests', 'fixtures', 'caddy-ca');
    const [root, intermediate] = await Promise.all(['root.crt', 'intermediate.crt'].map((f) => fs.readFile(path.join(dir, f), 'utf8')));
    const answer = { id: 'local', name: 'Caddy Local Authority', root_certificate: root, intermediate_certificate: intermediate };
    expect(caExpiriesOf(answer).map((e) => [e.certificate, e.notAfter.toISOString()])).toEqual([
      ['root', '2036-12-04T16:16:00.000Z'],
      ['intermediate', '2026-12-14T16:16:00.000Z'],
    ]);
  });

  test.each([[null], ['text'], [{}], [{ root_certificate: 'not a certificate', intermediate_certificate: 7 }]])('nothing from %j', (answer) => {
    expect(caExpiriesOf(answer)).toEqual([]);
  });
});

function statusOf(key: string, ready: 'True' | 'False' | 'Unknown', facts?: DocumentStatus['facts']): DocumentStatus {
  const [kind = '', name = ''] = key.split('/');
  return {
    key,
    kind,
    name,
    observedGeneration: 'g',
    phase: ready === 'True' ? 'Ready' : 'Reconciling',
    conditions: [{ type: 'Ready', status: ready, reason: 'R', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z' }],
    ...(facts ? { facts } : {}),
    updatedAt: '2026-01-01T00:00:00Z',
  };
}

/** The value of one sample in Prometheus' text format, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('OperatorMetrics', () => {
  test('controllerOf names the kind of a key', () => {
    expect(['ServiceInstall/notes', 'Core/caddy', 'Resource/dns', 'Accounts/notes', 'resync'].map(controllerOf)).toEqual(['ServiceInstall', 'Core', 'Resource', 'Accounts', 'resync']);
    expect(readyValue(statusOf('Connection/vpn', 'Unknown'))).toBe(0);
  });

  test('reconciles, errors, the queue and the documents show as series', async () => {
    const registry = new Registry();
    const metrics = new OperatorMetrics(registry, { processMetrics: false, now: () => 5_000_000 });
    const queue = new WorkQueue({
      observer: metrics,
      jitter: 0,
      baseDelayMs: 60_000,
      handler: async (key) => {
        if (key === 'ServiceInstall/broken') throw new TerminalError('spec.config.port: not an integer');
        if (key === 'Resource/dns') throw new Error('rndc reload failed');
      },
    });
    let caAsked = 0;
    const source: MetricsSource = {
      statuses: async () => [
        statusOf('ServiceInstall/notes', 'True', { backup: { lastVerified: { snapshot: 's1', at: '2026-01-02T03:04:05Z' }, overdue: false } }),
        statusOf('ServiceInstall/files', 'False', { backup: { overdue: true } }),
        statusOf('PeerAccount/alice', 'True'),
      ],
      queueDepth: () => queue.depth,
      runningSince: () => new Map([['ServiceInstall/slow', 4_990_000]]),
      lastPassAt: () => 4_000_000,
      caddyAdminAddress: () => 'unix//state/caddy-admin/admin.sock',
      fetchCaExpiries: async () => {
        caAsked++;
        return [{ certificate: 'root', notAfter: new Date('2036-12-04T16:16:00Z') }];
      },
    };
    metrics.attach(source);
    for (const key of ['ServiceInstall/notes', 'ServiceInstall/broken', 'Resource/dns']) queue.add(key);
    queue.add('ServiceInstall/notes'); // coalesced: not a second add
    await queue.whenIdle(1000);
    const text = await registry.metrics();
    expect(sample(text, 'controller_runtime_reconcile_total{controller="ServiceInstall",result="success"}')).toBe(1);
    expect(sample(text, 'controller_runtime_reconcile_total{controller="ServiceInstall",result="error"}')).toBe(1);
    expect(sample(text, 'controller_runtime_reconcile_errors_total{controller="Resource"}')).toBe(1);
    expect(sample(text, 'controller_runtime_terminal_reconcile_errors_total{controller="ServiceInstall"}')).toBe(1);
    expect(sample(text, 'controller_runtime_terminal_reconcile_errors_total{controller="Resource"}')).toBe(0);
    expect(sample(text, 'controller_runtime_reconcile_time_seconds_count{controller="ServiceInstall"}')).toBe(2);
    expect(sample(text, 'workqueue_adds_total{name="pic"}')).toBe(3);
    expect(sample(text, 'workqueue_retries_total{name="pic"}')).toBe(1);
    expect(sample(text, 'workqueue_queue_duration_seconds_count{name="pic"}')).toBe(3);
    expect(sample(text, 'workqueue_work_duration_seconds_count{name="pic"}')).toBe(3);
    expect(sample(text, 'workqueue_depth{name="pic"}')).toBe(0);
    expect(sample(text, 'workqueue_longest_running_processor_seconds{name="pic"}')).toBe(10);
    expect(sample(text, 'controller_runtime_active_workers{controller="ServiceInstall"}')).toBe(1);
    expect(sample(text, 'pic_document_ready{kind="ServiceInstall",name="notes"}')).toBe(1);
    expect(sample(text, 'pic_document_ready{kind="ServiceInstall",name="files"}')).toBe(0);
    expect(sample(text, 'pic_document_ready{kind="PeerAccount",name="alice"}')).toBe(1);
    expect(sample(text, 'pic_backup_last_verified_timestamp_seconds{service="notes"}')).toBe(Date.parse('2026-01-02T03:04:05Z') / 1000);
    expect(sample(text, 'pic_backup_last_verified_timestamp_seconds{service="files"}')).toBeUndefined();
    expect(sample(text, 'pic_backup_overdue{service="files"}')).toBe(1);
    expect(sample(text, 'pic_backup_overdue{service="notes"}')).toBe(0);
    expect(sample(text, 'pic_certificate_expiry_timestamp_seconds{ca="local",certificate="root"}')).toBe(Date.parse('2036-12-04T16:16:00Z') / 1000);
    expect(sample(text, 'pic_last_pass_timestamp_seconds')).toBe(4000);
    await registry.metrics();
    expect(caAsked).toBe(1); // asked again only when an hour old
    await queue.shutdown();
  });
});
