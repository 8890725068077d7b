/**
 * Statuses have one home: a reconcile's outcome → conditions by one rule (conditionsOf, a table),
 * and one writer per kind over the real status store (in a temporary folder).
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { conditionsOf, failed, progressing, ready, refused, unknown, type Outcome } from '../../controllers/outcome.js';
import { StatusWriters } from '../../controllers/status-writers.js';
import { TerminalError } from '../../reconcilers/errors.js';
import type { ConditionsInput } from '../../state/conditions.js';
import { StatusStore } from '../../state/status-store.js';

describe('conditionsOf: one rule from an outcome to conditions', () => {
  const cases: { name: string; outcome: Outcome; expected: ConditionsInput }[] = [
    { name: 'ready', outcome: ready('Converged', '1 container running at 172.20.0.20'), expected: { ready: { status: 'True', reason: 'Converged', message: '1 container running at 172.20.0.20' } } },
    { name: 'no verdict', outcome: unknown('EgressNotManaged', 'no egress'), expected: { ready: { status: 'Unknown', reason: 'EgressNotManaged', message: 'no egress' } } },
    {
      name: 'progressing: Reconciling, Ready False with the same reason',
      outcome: progressing('Pulling', 'pulling x'),
      expected: { ready: { status: 'False', reason: 'Pulling', message: 'pulling x' }, reconciling: { reason: 'Pulling', message: 'pulling x' } },
    },
    {
      name: 'refused: Stalled, Ready False with the same reason',
      outcome: refused('Unsigned', 'not signed'),
      expected: { ready: { status: 'False', reason: 'Unsigned', message: 'not signed' }, stalled: { reason: 'Unsigned', message: 'not signed' } },
    },
    {
      name: 'a terminal error is Stalled with its reason',
      outcome: failed(new TerminalError('bad field', 'InvalidSpec')),
      expected: { ready: { status: 'False', reason: 'InvalidSpec', message: 'bad field' }, stalled: { reason: 'InvalidSpec', message: 'bad field' } },
    },
    {
      name: 'a terminal error without a reason is InvalidSpec',
      outcome: failed(new TerminalError('bad')),
      expected: { ready: { status: 'False', reason: 'InvalidSpec', message: 'bad' }, stalled: { reason: 'InvalidSpec', message: 'bad' } },
    },
    {
      name: 'any other error is retried: Reconciling RetryingAfterError',
      outcome: failed(new Error('connect ECONNREFUSED')),
      expected: { ready: { status: 'False', reason: 'RetryingAfterError', message: 'connect ECONNREFUSED' }, reconciling: { reason: 'RetryingAfterError', message: 'connect ECONNREFUSED' } },
    },
    {
      name: 'a thrown value that is not an Error is retried, its text the message',
      outcome: failed('socket hang up'),
      expected: { ready: { status: 'False', reason: 'RetryingAfterError', message: 'socket hang up' }, reconciling: { reason: 'RetryingAfterError', message: 'socket hang up' } },
    },
  ];
  test.each(cases)('$name', ({ outcome, expected }) => {
    expect(conditionsOf(outcome)).toEqual(expected);
  });
});

describe('one writer per kind', () => {
  let dir: string;
  let store: StatusStore;
  let events: string[];
  let now: Date;
  let writers: StatusWriters;
  const doc = { file: '/cell/services/notes.yaml', generation: 'g1' };

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-status-writers-'));
    store = new StatusStore(dir);
    events = [];
    now = new Date('2024-05-01T10:00:00.000Z');
    writers = new StatusWriters(store, { clock: () => now, event: (key, type, reason) => events.push(`${key} ${type} ${reason}`) });
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  const condition = async (key: string, type: string) => (await new StatusStore(dir).get(key))?.conditions.find((c) => c.type === type);

  test('a writer keeps only its own kinds', async () => {
    await expect(writers.services.write('PeerAccount/alice', doc, ready('Provisioned', 'ok'))).rejects.toThrow(/not a status the ServiceInstall writer keeps/);
    expect(writers.of('Core/dns')).toBe(writers.cell);
    expect(writers.of('Cell/alice')).toBe(writers.cell);
    expect(writers.of('Resource/caddy')).toBe(writers.resources);
    expect(() => writers.of('Accounts/notes')).toThrow(/no status writer/);
  });

  test('a Ready document whose reason flips Converged → InSync is not rewritten', async () => {
    expect(await writers.services.write('ServiceInstall/notes', doc, ready('Converged', 'running'))).toBe(true);
    now = new Date('2024-05-01T10:05:00.000Z');
    expect(await writers.services.write('ServiceInstall/notes', doc, ready('InSync', 'running'))).toBe(false);
    expect((await condition('ServiceInstall/notes', 'Ready'))?.reason).toBe('Converged');
  });

  test('turning Stalled is recorded as a Warning event, once', async () => {
    await writers.services.write('ServiceInstall/notes', doc, refused('Unsigned', 'not signed'));
    await writers.services.write('ServiceInstall/notes', doc, refused('Unsigned', 'not signed'));
    expect(events).toEqual(['ServiceInstall/notes Warning Unsigned']);
  });

  test('the same retry failing again is not news; a fault does not hide a Stalled status', async () => {
    const key = 'ServiceInstall/notes';
    await writers.services.write(key, doc, progressing('ContainersNotRunning', 'cell-notes is exited'), { serviceIp: '172.20.0.20' });
    await writers.services.failed(key, doc, new Error('cell-notes is exited'));
    expect((await condition(key, 'Reconciling'))?.reason).toBe('ContainersNotRunning');
    await writers.services.failed(key, doc, new Error('connect ECONNREFUSED'));
    expect(await condition(key, 'Reconciling')).toMatchObject({ reason: 'RetryingAfterError', message: 'connect ECONNREFUSED' });
    expect((await store.get(key))?.facts).toEqual({ serviceIp: '172.20.0.20' });
    await writers.services.failed(key, doc, new TerminalError('name taken', 'NameConflict'));
    expect((await condition(key, 'Stalled'))?.reason).toBe('NameConflict');
    await writers.services.failed(key, doc, new Error('connect ECONNREFUSED'));
    expect((await condition(key, 'Stalled'))?.reason).toBe('NameConflict');
  });

  test('facts are replaced, or merged over the stored ones', async () => {
    const key = 'Core/dns';
    await writers.cell.write(key, doc, ready('Converged', 'up'), { state: 'running', container: 'cell-dns' });
    await writers.cell.write(key, doc, refused('Unsigned', 'no'), { verification: 'enforce: …' }, 'merge');
    expect((await store.get(key))?.facts).toEqual({ state: 'running', container: 'cell-dns', verification: 'enforce: …' });
    await writers.cell.write(key, doc, refused('UnknownKey', 'no key'));
    expect((await store.get(key))?.facts).toBeUndefined();
  });

  test('a tracked kind drops the statuses of documents gone, and writes none for them again', async () => {
    await writers.peers.write('PeerAccount/alice', doc, ready('Provisioned', 'ok'));
    await writers.peers.write('PeerAccount/bob', doc, ready('Provisioned', 'ok'));
    await writers.connections.write('Connection/vpn', doc, ready('Declared', 'used by no service'));
    await writers.peers.track(new Set(['PeerAccount/alice']));
    expect((await store.keys()).map((k) => k.key).sort()).toEqual(['Connection/vpn', 'PeerAccount/alice']);
    // An accounts pass that started before bob was deleted finishes after.
    expect(await writers.peers.write('PeerAccount/bob', doc, ready('Provisioned', 'ok'))).toBe(false);
    expect(await store.get('PeerAccount/bob')).toBeUndefined();
  });

  test('the Cell status exists only while there is a problem', async () => {
    await writers.cell.cellProblem('Cell/alice', '/cell/cell.yaml', refused('CellInvalid', 'cell.yaml: /spec: bad'));
    expect((await store.get('Cell/alice'))?.phase).toBe('Stalled');
    await writers.cell.cellProblem('Cell/alice', '/cell/cell.yaml', undefined);
    expect(await store.keys()).toEqual([]);
  });

  test('a dry run writes and removes nothing', async () => {
    await writers.resources.write('Resource/caddy', { generation: 'r' }, ready('InSync', '1 route'));
    const dry = new StatusWriters(store, { clock: () => now, event: () => undefined, dryRun: true });
    expect(await dry.resources.write('Resource/caddy', { generation: 'r' }, failed(new Error('down')))).toBe(false);
    expect(await dry.resources.remove('Resource/caddy')).toBe(false);
    await dry.peers.track(new Set());
    expect((await new StatusStore(dir).get('Resource/caddy'))?.phase).toBe('Ready');
  });
});
