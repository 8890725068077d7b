import { boundOutput, decideInstallScript, installTimeoutMs, lastLine, type InstallDecision } from '../../controllers/install-script.js';
import { installTargetOf } from '../../reconcilers/containers/install-script.js';
import type { ServicePlan } from '../../reconcilers/containers/types.js';
import type { InstallScriptRecord } from '../../state/packages.js';

const record = (over: Partial<InstallScriptRecord>): InstallScriptRecord => ({ formatVersion: 1, version: '1.0.0', generation: 'g1', result: 'succeeded', at: '2026-01-01T00:00:00.000Z', exitCode: 0, output: '', ...over });

describe('decideInstallScript', () => {
  const cases: [string, Parameters<typeof decideInstallScript>[0], InstallDecision['kind'], string | null][] = [
    ['no script: nothing to run', { hasScript: false, version: '1.0.0', generation: 'g1', record: undefined }, 'none', null],
    ['no script, an old record: still nothing', { hasScript: false, version: '1.0.0', generation: 'g1', record: record({ result: 'failed' }) }, 'none', null],
    ['never run: runs', { hasScript: true, version: '1.0.0', generation: 'g1', record: undefined }, 'run', 'first'],
    ['succeeded with this version: not again', { hasScript: true, version: '1.0.0', generation: 'g2', record: record({}) }, 'done', null],
    ['succeeded with an older version: runs after the upgrade', { hasScript: true, version: '1.1.0', generation: 'g1', record: record({}) }, 'run', 'upgrade'],
    ['failed with this version and document: not retried', { hasScript: true, version: '1.0.0', generation: 'g1', record: record({ result: 'failed', exitCode: 1 }) }, 'failed', null],
    ['failed, the document edited since: retried', { hasScript: true, version: '1.0.0', generation: 'g2', record: record({ result: 'failed', exitCode: 1 }) }, 'run', 'retry'],
    ['failed with an older version: a new version runs it', { hasScript: true, version: '2.0.0', generation: 'g1', record: record({ result: 'failed', exitCode: 1 }) }, 'run', 'upgrade'],
  ];
  test.each(cases)('%s', (_what, input, kind, why) => {
    const d = decideInstallScript(input);
    expect(d.kind).toBe(kind);
    if (why !== null) expect(d).toEqual({ kind: 'run', why });
  });
});

describe('boundOutput', () => {
  const cases: [string, string, number, string][] = [
    ['short text as it is, trailing newline dropped', 'wrote /data/config\n', 4096, 'wrote /data/config'],
    ['control characters escaped, newlines kept', 'a\x1b[2Jb\rc\nd', 4096, 'a\\e[2Jb\\rc\nd'],
    ['bidi override escaped', 'x\u202ey', 4096, 'x\\u{202e}y'],
    ['long text: its end, marked', 'abcdefghij', 4, '…ghij'],
    ['never cut inside a character', 'aé€', 4, '…€'],
    ['empty stays empty', '', 10, ''],
  ];
  test.each(cases)('%s', (_what, text, max, expected) => {
    expect(boundOutput(text, max)).toBe(expected);
  });

  test('a flood is bounded to the limit', () => {
    const out = boundOutput('y\n'.repeat(100_000) + 'last');
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(4096 + Buffer.byteLength('…'));
    expect(out.endsWith('y\nlast')).toBe(true);
  });
});

describe('lastLine and the time limit', () => {
  test.each([
    ['one\ntwo\n\n', 'two'],
    ['', '(no output)'],
  ])('lastLine(%j)', (text, expected) => expect(lastLine(text)).toBe(expected));

  test.each([
    [{}, 120_000],
    [{ PIC_INSTALL_SCRIPT_TIMEOUT_SECONDS: '3' }, 3000],
    [{ PIC_INSTALL_SCRIPT_TIMEOUT_SECONDS: '0' }, 120_000],
    [{ PIC_INSTALL_SCRIPT_TIMEOUT_SECONDS: '-5' }, 120_000],
    [{ PIC_INSTALL_SCRIPT_TIMEOUT_SECONDS: '2s' }, 120_000],
  ])('installTimeoutMs(%j)', (env, expected) => expect(installTimeoutMs(env)).toBe(expected));
});

describe('installTargetOf', () => {
  const plan: ServicePlan = {
    containers: [
      { name: 'cell-db', create: { Image: 'db:1', HostConfig: { Mounts: [{ Type: 'volume', Source: 'x_db', Target: '/db' }] } }, dependsOn: [], specHash: 'a' },
      {
        name: 'cell-web',
        create: {
          Image: 'web:1',
          User: '1000:1000',
          HostConfig: {
            Mounts: [
              { Type: 'volume', Source: 'x_data', Target: '/data' },
              { Type: 'volume', Source: 'x_conf', Target: '/etc/web', ReadOnly: true },
              { Type: 'bind', Source: '/var/lib/pic/x', Target: '/run/x', ReadOnly: true },
              { Type: 'tmpfs', Source: '', Target: '/tmp' },
            ],
          },
        },
        dependsOn: ['cell-db'],
        specHash: 'b',
      },
    ],
    volumes: [],
  };
  test('the manifest container: its image, user and named volumes only', () => {
    expect(installTargetOf(plan, 'cell-web')).toEqual({
      container: 'cell-web',
      image: 'web:1',
      user: '1000:1000',
      volumes: [
        { type: 'volume', source: 'x_data', target: '/data', readOnly: false },
        { type: 'volume', source: 'x_conf', target: '/etc/web', readOnly: true },
      ],
    });
  });
  test('a container the plan does not have', () => {
    expect(installTargetOf(plan, 'cell-other')).toBeUndefined();
  });
});
