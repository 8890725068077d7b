import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { backupCell, formatAge, operatorLine, renderDescribe, renderGet, renderTable, renderWatchFrame } from '../../controllers/cli/status-views.js';
import type { OperatorPresence } from '../../state/operator-presence.js';
import type { DocumentStatus, OperatorEvent } from '../../state/status-types.js';

/** Golden files hold the exact text; `UPDATE_GOLDEN=1 npm test` rewrites them after a deliberate change. */
const GOLDEN_DIR = path.join(process.cwd(), 'tests', 'golden', 'views');

async function expectGolden(name: string, actual: string): Promise<void> {
  const file = path.join(GOLDEN_DIR, name);
  const text = `${actual}\n`;
  if (process.env.UPDATE_GOLDEN === '1') {
    await fs.mkdir(GOLDEN_DIR, { recursive: true });
    await fs.writeFile(file, text);
  }
  expect(text).toBe(await fs.readFile(file, 'utf8'));
}

const NOW = new Date('2024-05-01T12:00:00.000Z');
const ago = (seconds: number): string => new Date(NOW.getTime() - seconds * 1000).toISOString();

const notes: DocumentStatus = {
  key: 'ServiceInstall/notes',
  kind: 'ServiceInstall',
  name: 'notes',
  observedGeneration: 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
  phase: 'Ready',
  file: 'services/notes.yaml',
  conditions: [
    { type: 'Ready', status: 'True', reason: 'InstallSucceeded', message: 'All 2 containers are running.', lastTransitionTime: ago(3 * 60 + 12) },
  ],
  facts: {
    serviceIp: '172.20.0.20',
    containers: [
      { name: 'cell-notes-db', state: 'running', image: 'git.pic.ngo/roof/postgres:16' },
      { name: 'cell-notes', state: 'running', health: 'healthy', image: 'git.pic.ngo/roof/notes:1.0.0' },
    ],
    images: [
      { container: 'cell-notes', reference: 'git.pic.ngo/roof/notes@sha256:1111111111111111111111111111111111111111111111111111111111111111', verified: true },
      { container: 'cell-notes-db', reference: 'git.pic.ngo/roof/postgres@sha256:2222222222222222222222222222222222222222222222222222222222222222', verified: 'skipped' },
    ],
    notices: ['version 1.1.0 is in the catalog (admitted: 1.0.0); set spec.version to 1.1.0 to upgrade'],
    subdomain: 'notes',
    version: '1.0.0',
    update: { version: '1.1.0', changes: ['~ image: "git.pic.ngo/roof/notes:1.0.0" → "git.pic.ngo/roof/notes:1.1.0"', '+ template services.notes.healthcheck: {"test":["CMD","true"]}'] },
    backup: { lastVerified: { snapshot: '20240501T030000Z-1a2b', at: ago(9 * 3600) }, overdue: false },
  },
  updatedAt: ago(40),
};

const files: DocumentStatus = {
  key: 'ServiceInstall/files',
  kind: 'ServiceInstall',
  name: 'files',
  observedGeneration: '4e07408562bedb8b',
  phase: 'Reconciling',
  file: 'services/files.yaml',
  conditions: [
    { type: 'Ready', status: 'False', reason: 'ContainerNotRunning', message: 'cell-files-web is being created.', lastTransitionTime: ago(5) },
    { type: 'Reconciling', status: 'True', reason: 'PullingImage', message: 'Pulling git.pic.ngo/roof/files-web (42%).', lastTransitionTime: ago(5) },
  ],
  facts: {
    serviceIp: '172.20.0.21',
    containers: [
      { name: 'cell-files', state: 'running', health: 'starting' },
      { name: 'cell-files-web', state: 'created' },
    ],
    backup: { overdue: true, notice: 'backup overdue: no verified snapshot holds this service, and the schedule is hourly' },
  },
  updatedAt: ago(1),
};

const mail: DocumentStatus = {
  key: 'ServiceInstall/mail',
  kind: 'ServiceInstall',
  name: 'mail',
  observedGeneration: 'c0ffee00c0ffee00c0ffee00',
  phase: 'Stalled',
  file: 'services/mail.yaml',
  conditions: [
    { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'The document is not valid; see Stalled.', lastTransitionTime: ago(2 * 3600 + 60) },
    {
      type: 'Stalled',
      status: 'True',
      reason: 'ImageNotPinned',
      message:
        'services/mail.yaml: the manifest image git.pic.ngo/roof/mail:latest is not pinned by @sha256 digest, which imageVerification enforce requires; pin it in the catalog or set mode warn.',
      lastTransitionTime: ago(2 * 3600 + 60),
    },
  ],
  updatedAt: ago(2 * 3600),
};

const alice: DocumentStatus = {
  key: 'PeerAccount/alice',
  kind: 'PeerAccount',
  name: 'alice',
  observedGeneration: 'aa11',
  phase: 'Ready',
  file: 'peers/alice.yaml',
  conditions: [{ type: 'Ready', status: 'True', reason: 'AccountsProvisioned', message: 'Provisioned on notes, files.', lastTransitionTime: ago(4 * 86400 + 7200) }],
  facts: { provisionedServices: ['files', 'notes'] },
  updatedAt: ago(4 * 86400),
};

const vpn: DocumentStatus = {
  key: 'Connection/vpn-home',
  kind: 'Connection',
  name: 'vpn-home',
  observedGeneration: 'bb22',
  phase: 'Failed',
  file: 'connections/vpn-home.yaml',
  conditions: [{ type: 'Ready', status: 'False', reason: 'TunnelDown', message: 'wg-vpn-home has no handshake\nin 3 minutes.', lastTransitionTime: ago(59) }],
  updatedAt: ago(59),
};

const statuses = [vpn, notes, alice, mail, files];

const notesEvents: OperatorEvent[] = [
  { time: ago(400), key: 'ServiceInstall/notes', type: 'Normal', reason: 'IpAllocated', message: 'Allocated 172.20.0.20.' },
  { time: ago(350), key: 'ServiceInstall/notes', type: 'Warning', reason: 'PullFailed', message: 'Pulling git.pic.ngo/roof/notes failed: connection reset.' },
  { time: ago(300), key: 'ServiceInstall/notes', type: 'Warning', reason: 'PullFailed', message: 'Pulling git.pic.ngo/roof/notes failed: connection reset.' },
  { time: ago(240), key: 'ServiceInstall/notes', type: 'Warning', reason: 'PullFailed', message: 'Pulling git.pic.ngo/roof/notes failed: connection reset.' },
  { time: ago(200), key: 'ServiceInstall/notes', type: 'Normal', reason: 'Created', message: 'Created container cell-notes.' },
  // Given out of order: describe sorts by time.
  { time: ago(192), key: 'ServiceInstall/notes', type: 'Normal', reason: 'Started', message: 'Started container cell-notes.' },
  { time: ago(195), key: 'ServiceInstall/notes', type: 'Normal', reason: 'Created', message: 'Created container cell-notes-db.' },
];

describe('status views (golden)', () => {
  test('table', async () => {
    await expectGolden('table.txt', renderTable(statuses, { now: NOW }));
  });

  test('wide', async () => {
    await expectGolden('wide.txt', renderTable(statuses, { now: NOW, wide: true }));
  });

  test('describe with events', async () => {
    await expectGolden('describe.txt', renderDescribe(notes, notesEvents, NOW));
  });

  test('describe of a stalled document without events', async () => {
    await expectGolden('describe-stalled.txt', renderDescribe(mail, [], NOW));
  });

  test('describe of a document of another kind', async () => {
    await expectGolden('describe-peer.txt', renderDescribe(alice, [], NOW));
  });

  test('describe of a Connection, with its tunnel traffic read live or the reason it was not', async () => {
    const vpn: DocumentStatus = { ...alice, kind: 'Connection', name: 'vpn', facts: { instance: '3f2a9c1e', services: ['mail'], containers: [{ name: 'cell-exit-3f2a9c1e', state: 'running', health: 'healthy' }] } };
    const read = renderDescribe(vpn, [], NOW, undefined, { traffic: [{ iface: 'wg0', received: 5 * 1024 * 1024, sent: 1536 }] });
    expect(read).toMatch(/Tunnel traffic \(now, since the exit started\):\n\s+INTERFACE\s+SENT\s+RECEIVED\n\s+wg0\s+1\.5 KiB\s+5\.0 MiB/);
    expect(renderDescribe(vpn, [], NOW, undefined, { traffic: [] })).toMatch(/Tunnel traffic:\s+the exit has no tunnel interface/);
    expect(renderDescribe(vpn, [], NOW, undefined, { problem: 'no such container' })).toMatch(/Tunnel traffic:\s+not read: no such container/);
    expect(renderDescribe(alice, [], NOW)).not.toContain('Tunnel traffic');
  });

  test('empty list', async () => {
    await expectGolden('empty.txt', renderGet([], 'table', NOW, { emptyMessage: 'No documents found in /var/lib/pic/status.' }));
  });

  test('watch frame', async () => {
    await expectGolden('watch.txt', renderWatchFrame(statuses, NOW));
  });

  test('get -o json of a list', async () => {
    await expectGolden('get-list.json', renderGet([notes, alice], 'json', NOW));
  });

  test('get -o yaml of one document', async () => {
    await expectGolden('get-single.yaml', renderGet([alice], 'yaml', NOW, { single: true }));
  });
});

describe('status views (properties)', () => {
  test.each([
    [0, '0s'],
    [59, '59s'],
    [60, '1m'],
    [3599, '59m'],
    [3600, '1h'],
    [86399, '23h'],
    [86400, '1d'],
    [40 * 86400, '40d'],
    [-30, '0s'],
  ])('age of %d seconds is %s', (seconds, text) => {
    expect(formatAge(ago(seconds), NOW)).toBe(text);
  });

  test('age without a time is unknown', () => {
    expect(formatAge(undefined, NOW)).toBe('<unknown>');
    expect(formatAge('not a time', NOW)).toBe('<unknown>');
  });

  test('the table fits 100 columns, rows sorted by kind then name', () => {
    const lines = renderTable(statuses, { now: NOW }).split('\n');
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(100);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2).join('/'))).toEqual([
      'Connection/vpn-home',
      'PeerAccount/alice',
      'ServiceInstall/files',
      'ServiceInstall/mail',
      'ServiceInstall/notes',
    ]);
  });

  test('wide keeps the whole message', () => {
    expect(renderTable([mail], { now: NOW, wide: true })).toContain('pin it in the catalog or set mode warn.');
  });

  test('no line ends in spaces and control characters never reach the terminal', () => {
    const hostile: DocumentStatus = {
      ...vpn,
      conditions: [{ type: 'Ready', status: 'False', reason: 'X', message: 'evil \u001b[2J\u001b]0;title\u0007 text\r\nnext', lastTransitionTime: ago(1) }],
    };
    for (const text of [renderTable([hostile], { now: NOW }), renderDescribe(hostile, [], NOW)]) {
      // eslint-disable-next-line no-control-regex
      expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
      for (const line of text.split('\n')) expect(line).toBe(line.trimEnd());
    }
  });

  test('json and yaml carry the full statuses', () => {
    const list = (items: DocumentStatus[]) => ({ apiVersion: 'v1', kind: 'List', items });
    expect(JSON.parse(renderGet(statuses, 'json', NOW))).toEqual(list([vpn, alice, files, mail, notes]));
    expect(JSON.parse(renderGet([mail], 'json', NOW, { single: true }))).toEqual(mail);
    expect(parseYaml(renderGet(statuses, 'yaml', NOW))).toEqual(list([vpn, alice, files, mail, notes]));
    expect(JSON.parse(renderGet([], 'json', NOW))).toEqual(list([]));
  });

  test('yaml quotes every timestamp, so a YAML 1.1 reader keeps it a string', () => {
    const text = renderGet([notes], 'yaml', NOW, { single: true });
    expect(text).toContain(`updatedAt: "${notes.updatedAt}"`);
    expect(text).toMatch(/lastTransitionTime: "\d{4}-/);
    expect(parseYaml(text, { version: '1.1' })).toEqual(notes);
  });

  test.each([
    ['name', 'Connection/vpn-home\nPeerAccount/alice\nServiceInstall/files\nServiceInstall/mail\nServiceInstall/notes'],
    [{ format: 'jsonpath', template: '{.items[*].name}' }, 'vpn-home alice files mail notes'],
    [{ format: 'jsonpath', template: '{range .items[*]}{.kind}/{.name}={.phase}{"\\n"}{end}' }, 'Connection/vpn-home=Failed\nPeerAccount/alice=Ready\nServiceInstall/files=Reconciling\nServiceInstall/mail=Stalled\nServiceInstall/notes=Ready\n'],
    [{ format: 'jsonpath', template: 'kind={.kind} n={.items.length}' }, 'kind=List n=5'],
  ] as const)('get -o %j', (output, expected) => {
    expect(renderGet(statuses, output as never, NOW)).toBe(expected);
  });

  test('--no-headers leaves out the header line only', () => {
    const withHeader = renderTable(statuses, { now: NOW }).split('\n');
    expect(renderTable(statuses, { now: NOW, noHeaders: true }).split('\n')).toEqual(withHeader.slice(1).map((l) => l));
  });

  test('an unreadable status file is a row of its own, the others still shown', () => {
    const unreadable = [{ key: 'ServiceInstall/broken', kind: 'ServiceInstall', name: 'broken', file: '/s/ServiceInstall/broken.json', message: '/s/ServiceInstall/broken.json: not valid JSON' }];
    const lines = renderGet(statuses, 'table', NOW, { unreadable }).split('\n');
    expect(lines).toHaveLength(statuses.length + 2);
    expect(lines.find((l) => l.includes('broken'))).toMatch(/^ServiceInstall\s+broken\s+Unknown\s+Unreadable\s+<unknown>\s+\/s\/ServiceInstall\/b/);
  });

  test('hostile values are escaped in every output format', () => {
    const evil: DocumentStatus = { ...notes, name: 'x\u001b[2J', conditions: [{ type: 'Ready', status: 'True', reason: 'R', message: 'ok\rReady \u202e\u009b2J', lastTransitionTime: ago(1) }] };
    // eslint-disable-next-line no-control-regex
    const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u200b-\u200f]/u;
    for (const output of ['table', 'wide', 'json', 'yaml', 'name', { format: 'jsonpath', template: '{.items[*].conditions[*].message}' }] as const) {
      expect(renderGet([evil], output as never, NOW)).not.toMatch(raw);
    }
    expect(JSON.parse(renderGet([evil], 'json', NOW, { single: true }))).toEqual(evil);
    expect(parseYaml(renderGet([evil], 'yaml', NOW, { single: true }))).toEqual(evil);
  });

  test('single output needs exactly one status', () => {
    expect(() => renderGet([], 'json', NOW, { single: true })).toThrow(/exactly one/);
  });

  test('watch header counts Ready documents', () => {
    expect(renderWatchFrame(statuses, NOW).split('\n')[0]).toBe('2/5 Ready   2024-05-01 12:00:00 UTC');
    expect(renderWatchFrame([], NOW, { emptyMessage: 'Nothing yet.' })).toBe('0/0 Ready   2024-05-01 12:00:00 UTC\n\nNothing yet.');
  });
});

describe('the BACKUP column', () => {
  const base = { ...notes, facts: {} };
  test.each([
    ['no backup facts (another kind, or before the operator looked)', undefined, ''],
    ['a verified snapshot 9 hours old', { lastVerified: { snapshot: 's', at: ago(9 * 3600) }, overdue: false }, '9h'],
    ['overdue: marked with !', { lastVerified: { snapshot: 's', at: ago(3 * 86400) }, overdue: true }, '3d!'],
    ['never verified', { overdue: false }, 'never'],
    ['never verified and overdue', { overdue: true }, 'never!'],
  ])('%s', (_name, backup, expected) => {
    expect(backupCell({ ...base, facts: backup === undefined ? {} : { backup } }, NOW)).toBe(expected);
  });
});

describe('whether an operator keeps the statuses current', () => {
  const live: OperatorPresence = { running: true, stale: false, pid: 4242, mode: 'run', lastPass: ago(120), lastSeen: ago(120), resyncIntervalSeconds: 600 };
  // Killed two hours ago; its last pass came after mail's and alice's last writes, before files' and notes'.
  const gone: OperatorPresence = { running: false, stale: true, mode: 'run', lastPass: ago(2 * 3600 - 62), lastSeen: ago(2 * 3600 - 62), resyncIntervalSeconds: 600 };
  const once: OperatorPresence = { running: false, stale: true, mode: 'once', lastPass: ago(3 * 86400), lastSeen: ago(3 * 86400 - 1), resyncIntervalSeconds: 600 };
  const stuck: OperatorPresence = { running: true, stale: true, pid: 4242, mode: 'run', lastPass: ago(3600), lastSeen: ago(3600), resyncIntervalSeconds: 600 };
  const never: OperatorPresence = { running: false, stale: true };

  test.each<[string, OperatorPresence, string]>([
    ['running', live, 'operator running (pid 4242), last pass 11:58:00 UTC'],
    ['running, first pass under way', { running: true, stale: false, pid: 7 }, 'operator running (pid 7)'],
    ['pic run --once converging', { running: true, stale: false, pid: 7, mode: 'once' }, 'pic run --once (pid 7) is converging'],
    ['killed or stopped', gone, 'no operator since 10:01:02 UTC — statuses may be stale'],
    ['converged by --once days ago', once, 'no operator running; last converged by pic run --once at 2024-04-28 12:00:00 UTC — statuses may be stale'],
    ['running but no pass for too long', stuck, 'operator (pid 4242) has finished no pass since 11:00:00 UTC — statuses may be stale'],
    ['nothing ever ran', never, 'no operator is running for this state directory — statuses may be stale'],
  ])('%s', (_what, operator, line) => {
    expect(operatorLine(operator, NOW)).toBe(line);
  });

  test('a live operator changes nothing in the table', () => {
    expect(renderGet(statuses, 'table', NOW, { operator: live })).toBe(renderTable(statuses, { now: NOW }));
    expect(renderGet(statuses, 'wide', NOW, { operator: live })).toBe(renderTable(statuses, { now: NOW, wide: true }));
  });

  test('without one, the table says so above its header and each row says as of when', async () => {
    await expectGolden('table-stale.txt', renderGet(statuses, 'table', NOW, { operator: gone }));
    await expectGolden('wide-stale.txt', renderGet(statuses, 'wide', NOW, { operator: gone }));
    const lines = renderGet(statuses, 'table', NOW, { operator: gone }).split('\n');
    expect(lines[0]).toBe('No operator since 10:01:02 UTC — statuses may be stale');
    expect(lines[1]).toMatch(/^KIND\s+NAME\s+READY\s+STATUS\s+UPDATE\s+AGE\s+BACKUP\s+AS OF\s+MESSAGE$/);
    // Each row as of its last write, or the last pass when that came later.
    expect(lines.find((l) => l.includes('notes'))).toMatch(/\s11:59:20\s/);
    expect(lines.find((l) => l.includes('mail'))).toMatch(/\s10:01:02\s/);
  });

  test('--no-headers leaves the notice out with the header (the command prints it on stderr)', () => {
    expect(renderGet(statuses, 'table', NOW, { operator: gone, noHeaders: true }).split('\n')).toHaveLength(statuses.length);
  });

  test('an empty state directory still says no operator runs', () => {
    expect(renderGet([], 'table', NOW, { operator: never, emptyMessage: 'No documents found in /s.' })).toBe(
      'No operator is running for this state directory — statuses may be stale\nNo documents found in /s.',
    );
  });

  test('json and yaml carry it as a top-level `operator`, the items unchanged', () => {
    const list = (items: DocumentStatus[]) => ({ apiVersion: 'v1', kind: 'List', items });
    expect(JSON.parse(renderGet(statuses, 'json', NOW, { operator: gone }))).toEqual({ ...list([vpn, alice, files, mail, notes]), operator: gone });
    expect(JSON.parse(renderGet(statuses, 'json', NOW, { operator: live }))).toEqual({ ...list([vpn, alice, files, mail, notes]), operator: live });
    expect(parseYaml(renderGet(statuses, 'yaml', NOW, { operator: once }))).toEqual({ ...list([vpn, alice, files, mail, notes]), operator: once });
    expect(JSON.parse(renderGet([mail], 'json', NOW, { single: true, operator: never }))).toEqual({ ...mail, operator: never });
    expect(renderGet(statuses, { format: 'jsonpath', template: '{.operator.running} {.operator.stale}' }, NOW, { operator: gone })).toBe('false true');
    expect(renderGet(statuses, 'name', NOW, { operator: gone })).toBe(renderGet(statuses, 'name', NOW));
  });

  test('watch: the header says who keeps the table current', () => {
    expect(renderWatchFrame(statuses, NOW, { operator: live }).split('\n')[0]).toBe('2/5 Ready   2024-05-01 12:00:00 UTC   operator running (pid 4242), last pass 11:58:00 UTC');
    const frame = renderWatchFrame(statuses, NOW, { operator: gone }).split('\n');
    expect(frame[0]).toBe('2/5 Ready   2024-05-01 12:00:00 UTC   no operator since 10:01:02 UTC — statuses may be stale');
    expect(frame[2]).toMatch(/\sAS OF\s/);
    expect(renderWatchFrame(statuses, NOW, { operator: live }).split('\n')[2]).not.toMatch(/AS OF/);
  });

  test('describe: an Operator line first, and as of when when stale', () => {
    const text = renderDescribe(notes, [], NOW, gone).split('\n');
    expect(text[0]).toBe('Operator:             no operator since 10:01:02 UTC — statuses may be stale');
    expect(text).toContain('As of:                11:59:20 UTC; nothing has checked it since');
    const fresh = renderDescribe(notes, [], NOW, live).split('\n');
    expect(fresh[0]).toBe('Operator:             operator running (pid 4242), last pass 11:58:00 UTC');
    expect(fresh.some((l) => l.startsWith('As of:'))).toBe(false);
  });
});
