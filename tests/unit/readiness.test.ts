import { judgeReadiness, parseUptime, type ContainerForReadiness } from '../../reconcilers/containers/readiness.js';

const up = (name: string, upSeconds: number, extra: Partial<ContainerForReadiness> = {}): ContainerForReadiness => ({ name, state: 'running', upSeconds, ...extra });

describe('the one readiness rule', () => {
  test.each<[string, ContainerForReadiness[], number, number | undefined, 'ready' | 'waiting' | 'failed', RegExp | undefined]>([
    ['running past the window, no health check', [up('a', 12)], 10, undefined, 'ready', undefined],
    ['running exactly the window', [up('a', 10)], 10, undefined, 'ready', undefined],
    ['healthy past the window', [up('a', 30, { health: 'healthy' })], 10, undefined, 'ready', undefined],
    ['a window of 0 takes a container just started', [up('a', 0)], 0, undefined, 'ready', undefined],
    ['running, younger than the window: waited on', [up('a', 3)], 10, undefined, 'waiting', /a \(up 3 s of the 10 s it must stay up\)/],
    ['uptime unknown counts as just started', [{ name: 'a', state: 'running' }], 2, undefined, 'waiting', /up 0 s/],
    ['health starting', [up('a', 30, { health: 'starting' })], 10, undefined, 'waiting', /health: starting/],
    ['unhealthy fails at once', [up('a', 30, { health: 'unhealthy' })], 10, undefined, 'failed', /unhealthy/],
    ['exited (died at start, no restart policy) fails at once', [{ name: 'a', state: 'exited' }], 10, 60_000, 'failed', /a exited instead of running/],
    ['dead fails', [{ name: 'a', state: 'dead' }], 10, undefined, 'failed', /dead/],
    ['restarting (a crash loop) fails at once', [{ name: 'a', state: 'restarting' }], 10, 60_000, 'failed', /restarting/],
    ['running again after restarts fails at once', [up('a', 1, { restarts: 2 })], 10, 60_000, 'failed', /restarted 2 times since it was created/],
    ['paused is not up', [{ name: 'a', state: 'paused', upSeconds: 100 }], 10, undefined, 'waiting', /a \(paused\)/],
    ['created is not up', [{ name: 'a', state: 'created' }], 10, undefined, 'waiting', /a \(created\)/],
    ['absent is waited on', [], 10, 60_000, 'waiting', /a \(absent\)/],
    ['waiting past the deadline fails', [up('a', 3)], 10, 0, 'failed', /when the deadline passed/],
    ['one of two young: waiting', [up('a', 30), up('b', 1)], 10, undefined, 'waiting', /b \(up 1 s/],
    ['one of two exited: failed, whatever the other', [up('a', 30), { name: 'b', state: 'exited' }], 10, undefined, 'failed', /b exited/],
  ])('%s', (_name, observed, windowSeconds, remainingMs, state, reason) => {
    const names = observed.length === 0 ? ['a'] : observed.map((o) => o.name);
    const verdict = judgeReadiness(names, observed, windowSeconds, remainingMs);
    expect(verdict.state).toBe(state);
    if (reason && verdict.state !== 'ready') expect(verdict.reason).toMatch(reason);
  });

  test('a young container is looked at again when its window has run out, never sooner than a second', () => {
    expect(judgeReadiness(['a'], [up('a', 3)], 10)).toMatchObject({ state: 'waiting', retryAfterMs: 7000, cause: 'window' });
    expect(judgeReadiness(['a'], [up('a', 9)], 10)).toMatchObject({ retryAfterMs: 1000 });
    // Never after the deadline.
    expect(judgeReadiness(['a'], [up('a', 3)], 10, 2500)).toMatchObject({ state: 'waiting', retryAfterMs: 2500 });
  });

  test('the weightiest cause is reported: absent before stopped before health before the window', () => {
    expect(judgeReadiness(['a', 'b'], [up('a', 1), up('b', 30, { health: 'starting' })], 10)).toMatchObject({ cause: 'health' });
    expect(judgeReadiness(['a', 'b'], [up('a', 1)], 10)).toMatchObject({ cause: 'absent' });
  });
});

describe('uptime from the status text of Docker\'s listing', () => {
  test.each<[string, number | undefined]>([
    ['Up Less than a second', 0],
    ['Up 1 second', 1],
    ['Up 5 seconds', 5],
    ['Up 59 seconds (health: starting)', 59],
    ['Up About a minute', 60],
    ['Up 3 minutes (healthy)', 180],
    ['Up About an hour', 3600],
    ['Up 2 hours (Paused)', 7200],
    ['Up 3 days', 259_200],
    ['Up 2 weeks', 1_209_600],
    ['Exited (3) 2 seconds ago', undefined],
    ['Restarting (1) Less than a second ago', undefined],
    ['Created', undefined],
    ['', undefined],
  ])('%s → %s', (status, seconds) => {
    expect(parseUptime(status)).toBe(seconds);
  });
});
