import { heartbeatDue, heartbeatStaleAfterMs, judgeOperator, type Heartbeat, type OperatorObservation, type OperatorPresence } from '../../state/operator-presence.js';

const NOW = new Date('2024-05-01T12:00:00.000Z');
const ago = (seconds: number): string => new Date(NOW.getTime() - seconds * 1000).toISOString();

/** An operator with the default 10-minute resync: stale after 2 × 600 s + 60 s = 1260 s. */
const beat = (over: Partial<Heartbeat> = {}): Heartbeat => ({ pid: 4242, procStart: '1000', mode: 'run', resyncIntervalSeconds: 600, startedAt: ago(3600), ...over });
const lock = (over: Partial<NonNullable<OperatorObservation['lock']>> = {}) => ({ pid: 4242, alive: true, procStart: '1000', ...over });

describe('judgeOperator: is an operator converging this state directory, and are its statuses current', () => {
  test.each<[string, OperatorObservation, OperatorPresence]>([
    [
      'lock held by a live process, heartbeat fresh',
      { lock: lock(), heartbeat: beat({ lastPassAt: ago(300) }), sameProcessView: true },
      { running: true, stale: false, pid: 4242, mode: 'run', lastPass: ago(300), lastSeen: ago(300), resyncIntervalSeconds: 600 },
    ],
    [
      'lock held, heartbeat just inside 2 intervals + 1 minute',
      { lock: lock(), heartbeat: beat({ lastPassAt: ago(1260) }), sameProcessView: true },
      { running: true, stale: false, pid: 4242, mode: 'run', lastPass: ago(1260), lastSeen: ago(1260), resyncIntervalSeconds: 600 },
    ],
    [
      'lock held, but no pass for longer than 2 intervals + 1 minute: the loop is stuck',
      { lock: lock(), heartbeat: beat({ lastPassAt: ago(1261) }), sameProcessView: true },
      { running: true, stale: true, pid: 4242, mode: 'run', lastPass: ago(1261), lastSeen: ago(1261), resyncIntervalSeconds: 600 },
    ],
    [
      'lock held, first pass under way (only the start recorded)',
      { lock: lock(), heartbeat: beat({ startedAt: ago(20) }), sameProcessView: true },
      { running: true, stale: false, pid: 4242, mode: 'run', lastSeen: ago(20), resyncIntervalSeconds: 600 },
    ],
    [
      'a short --resync makes the same age stale',
      { lock: lock(), heartbeat: beat({ resyncIntervalSeconds: 5, lastPassAt: ago(71) }), sameProcessView: true },
      { running: true, stale: true, pid: 4242, mode: 'run', lastPass: ago(71), lastSeen: ago(71), resyncIntervalSeconds: 5 },
    ],
    [
      'lock held by a live process that has written no heartbeat yet (starting, or an older pic)',
      { lock: lock({ pid: 77 }), heartbeat: beat({ lastPassAt: ago(9000), stoppedAt: ago(8000) }), sameProcessView: true },
      { running: true, stale: false, pid: 77 },
    ],
    [
      'lock held, no heartbeat file at all',
      { lock: lock(), sameProcessView: true },
      { running: true, stale: false, pid: 4242 },
    ],
    [
      'no lock (stopped cleanly): no operator since it stopped',
      { heartbeat: beat({ lastPassAt: ago(700), stoppedAt: ago(600) }), sameProcessView: true },
      { running: false, stale: true, mode: 'run', lastPass: ago(700), lastSeen: ago(600), resyncIntervalSeconds: 600 },
    ],
    [
      'lock left by a killed operator (its pid is gone): no operator since its last pass',
      { lock: lock({ alive: false, procStart: undefined }), heartbeat: beat({ lastPassAt: ago(30) }), sameProcessView: true },
      { running: false, stale: true, mode: 'run', lastPass: ago(30), lastSeen: ago(30), resyncIntervalSeconds: 600 },
    ],
    [
      'lock left by a killed operator whose pid now belongs to another process (start time differs)',
      { lock: lock({ procStart: '5555' }), heartbeat: beat({ lastPassAt: ago(30) }), sameProcessView: true },
      { running: false, stale: true, mode: 'run', lastPass: ago(30), lastSeen: ago(30), resyncIntervalSeconds: 600 },
    ],
    [
      'pic run --once converged and exited',
      { heartbeat: beat({ mode: 'once', startedAt: ago(65), lastPassAt: ago(62), stoppedAt: ago(61) }), sameProcessView: true },
      { running: false, stale: true, mode: 'once', lastPass: ago(62), lastSeen: ago(61), resyncIntervalSeconds: 600 },
    ],
    [
      'pic run --once converging now',
      { lock: lock(), heartbeat: beat({ mode: 'once', startedAt: ago(5) }), sameProcessView: true },
      { running: true, stale: false, pid: 4242, mode: 'once', lastSeen: ago(5), resyncIntervalSeconds: 600 },
    ],
    ['nothing ever ran here', { sameProcessView: true }, { running: false, stale: true }],
    [
      'written in another pid namespace (the operator in a container), fresh: its age alone says it runs',
      { lock: lock({ pid: 1, alive: true, procStart: '9' }), heartbeat: beat({ pid: 1, lastPassAt: ago(60) }), sameProcessView: false },
      { running: true, stale: false, pid: 1, mode: 'run', lastPass: ago(60), lastSeen: ago(60), resyncIntervalSeconds: 600 },
    ],
    [
      'written in another pid namespace, old',
      { lock: lock({ pid: 1, alive: true }), heartbeat: beat({ pid: 1, startedAt: ago(9000), lastPassAt: ago(5000) }), sameProcessView: false },
      { running: false, stale: true, mode: 'run', lastPass: ago(5000), lastSeen: ago(5000), resyncIntervalSeconds: 600 },
    ],
  ])('%s', (_what, observed, expected) => {
    expect(judgeOperator(observed, NOW)).toEqual(expected);
  });

  test('the stale limit is the /readyz limit: two intervals and a minute', () => {
    expect(heartbeatStaleAfterMs(600_000)).toBe(1_260_000);
  });
});

describe('heartbeatDue: a pass rewrites the heartbeat only when it is older than half a resync interval', () => {
  test.each<[string, Date | undefined, boolean]>([
    ['never written', undefined, true],
    ['written a second ago', new Date(NOW.getTime() - 1000), false],
    ['written just under half an interval ago', new Date(NOW.getTime() - 299_999), false],
    ['written half an interval ago', new Date(NOW.getTime() - 300_000), true],
  ])('%s', (_what, lastWritten, due) => {
    expect(heartbeatDue(lastWritten, NOW, 600_000)).toBe(due);
  });
});
