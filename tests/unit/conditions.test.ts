import { computeConditions, phaseOf, statusEquals, type ConditionsInput } from '../../state/conditions.js';
import type { Condition, DocumentStatus, Phase } from '../../state/status-types.js';

const T0 = '2024-05-01T10:00:00.000Z';
const NOW = '2024-05-01T12:00:00.000Z';

const readyTrue: ConditionsInput['ready'] = { status: 'True', reason: 'InstallSucceeded', message: 'All containers are running.' };
const readyFalse: ConditionsInput['ready'] = { status: 'False', reason: 'ContainerNotRunning', message: 'cell-notes exited.' };

function condition(type: Condition['type'], status: Condition['status'], lastTransitionTime = T0, reason = 'R', message = 'm'): Condition {
  return { type, status, reason, message, lastTransitionTime };
}

describe('computeConditions', () => {
  const cases: {
    name: string;
    previous: Condition[] | undefined;
    next: ConditionsInput;
    expected: [Condition['type'], Condition['status'], string][];
  }[] = [
    {
      name: 'first status: Ready only, transition now',
      previous: undefined,
      next: { ready: readyTrue },
      expected: [['Ready', 'True', NOW]],
    },
    {
      name: 'Ready unchanged keeps its transition time even when reason and message change',
      previous: [condition('Ready', 'True', T0, 'Old', 'old message')],
      next: { ready: readyTrue },
      expected: [['Ready', 'True', T0]],
    },
    {
      name: 'Ready flips to False: transition now',
      previous: [condition('Ready', 'True')],
      next: { ready: readyFalse },
      expected: [['Ready', 'False', NOW]],
    },
    {
      name: 'Reconciling appears: new transition; Ready Unknown from Unknown keeps time',
      previous: [condition('Ready', 'Unknown')],
      next: { ready: { status: 'Unknown', reason: 'Progressing', message: 'Pulling image.' }, reconciling: { reason: 'Pulling', message: 'Pulling image.' } },
      expected: [
        ['Ready', 'Unknown', T0],
        ['Reconciling', 'True', NOW],
      ],
    },
    {
      name: 'Reconciling still true keeps its time',
      previous: [condition('Ready', 'False'), condition('Reconciling', 'True')],
      next: { ready: readyFalse, reconciling: { reason: 'Retrying', message: 'Retrying in 4s.' } },
      expected: [
        ['Ready', 'False', T0],
        ['Reconciling', 'True', T0],
      ],
    },
    {
      name: 'Reconciling and Stalled disappear once resolved',
      previous: [condition('Ready', 'False'), condition('Reconciling', 'True'), condition('Stalled', 'True')],
      next: { ready: readyTrue },
      expected: [['Ready', 'True', NOW]],
    },
    {
      name: 'Stalled appears after Reconciling; order is Ready, Reconciling, Stalled',
      previous: [condition('Ready', 'False'), condition('Reconciling', 'True')],
      next: { ready: readyFalse, stalled: { reason: 'InvalidSpec', message: 'spec.config.port: must be at most 65535.' }, reconciling: { reason: 'X', message: 'y' } },
      expected: [
        ['Ready', 'False', T0],
        ['Reconciling', 'True', T0],
        ['Stalled', 'True', NOW],
      ],
    },
    {
      name: 'a previous condition recorded as False does not lend its time to a True one',
      previous: [condition('Ready', 'False'), condition('Stalled', 'False')],
      next: { ready: readyFalse, stalled: { reason: 'InvalidSpec', message: 'bad' } },
      expected: [
        ['Ready', 'False', T0],
        ['Stalled', 'True', NOW],
      ],
    },
  ];

  test.each(cases)('$name', ({ previous, next, expected }) => {
    const result = computeConditions(previous, next, NOW);
    expect(result.map((c) => [c.type, c.status, c.lastTransitionTime])).toEqual(expected);
  });

  test('reason and message come from the input', () => {
    const [ready, stalled] = computeConditions(undefined, { ready: readyFalse, stalled: { reason: 'InvalidSpec', message: 'fix it' } }, NOW);
    expect(ready).toEqual({ type: 'Ready', ...readyFalse, lastTransitionTime: NOW });
    expect(stalled).toEqual({ type: 'Stalled', status: 'True', reason: 'InvalidSpec', message: 'fix it', lastTransitionTime: NOW });
  });
});

describe('phaseOf', () => {
  const cases: { name: string; conditions: Condition[] | undefined; phase: Phase }[] = [
    { name: 'no conditions', conditions: undefined, phase: 'Pending' },
    { name: 'empty', conditions: [], phase: 'Pending' },
    { name: 'Ready Unknown', conditions: [condition('Ready', 'Unknown')], phase: 'Pending' },
    { name: 'Ready True', conditions: [condition('Ready', 'True')], phase: 'Ready' },
    { name: 'Ready False, nothing in progress', conditions: [condition('Ready', 'False')], phase: 'Failed' },
    { name: 'Reconciling', conditions: [condition('Ready', 'False'), condition('Reconciling', 'True')], phase: 'Reconciling' },
    { name: 'Reconciling while Ready True (an update)', conditions: [condition('Ready', 'True'), condition('Reconciling', 'True')], phase: 'Reconciling' },
    {
      name: 'Stalled wins over Reconciling',
      conditions: [condition('Ready', 'False'), condition('Reconciling', 'True'), condition('Stalled', 'True')],
      phase: 'Stalled',
    },
    { name: 'Stalled False is not stalled', conditions: [condition('Ready', 'True'), condition('Stalled', 'False')], phase: 'Ready' },
  ];
  test.each(cases)('$name → $phase', ({ conditions, phase }) => {
    expect(phaseOf(conditions)).toBe(phase);
  });
});

describe('statusEquals', () => {
  const base: DocumentStatus = {
    key: 'ServiceInstall/notes',
    kind: 'ServiceInstall',
    name: 'notes',
    observedGeneration: 'abc123',
    phase: 'Ready',
    conditions: [condition('Ready', 'True')],
    file: 'services/notes.yaml',
    facts: { serviceIp: '172.20.0.20', containers: [{ name: 'cell-notes', state: 'running', health: 'healthy' }] },
    updatedAt: T0,
  };
  const with_ = (patch: Partial<DocumentStatus>): DocumentStatus => ({ ...structuredClone(base), ...patch });

  const cases: { name: string; a: DocumentStatus | undefined; b: DocumentStatus | undefined; equal: boolean }[] = [
    { name: 'identical', a: base, b: structuredClone(base), equal: true },
    { name: 'only updatedAt differs', a: base, b: with_({ updatedAt: NOW }), equal: true },
    { name: 'key order does not matter', a: base, b: Object.fromEntries(Object.entries(base).reverse()) as unknown as DocumentStatus, equal: true },
    { name: 'an undefined property counts as absent', a: with_({ file: undefined }), b: (({ file: _f, ...rest }) => rest)(base), equal: true },
    { name: 'phase differs', a: base, b: with_({ phase: 'Failed' }), equal: false },
    { name: 'generation differs', a: base, b: with_({ observedGeneration: 'def456' }), equal: false },
    { name: 'condition time differs', a: base, b: with_({ conditions: [condition('Ready', 'True', NOW)] }), equal: false },
    { name: 'condition message differs', a: base, b: with_({ conditions: [condition('Ready', 'True', T0, 'R', 'other')] }), equal: false },
    {
      name: 'nested fact differs',
      a: base,
      b: with_({ facts: { serviceIp: '172.20.0.20', containers: [{ name: 'cell-notes', state: 'exited', health: 'healthy' }] } }),
      equal: false,
    },
    { name: 'extra fact', a: base, b: with_({ facts: { ...base.facts, notices: ['x'] } }), equal: false },
    { name: 'array order matters', a: with_({ facts: { notices: ['a', 'b'] } }), b: with_({ facts: { notices: ['b', 'a'] } }), equal: false },
    { name: 'one missing', a: base, b: undefined, equal: false },
    { name: 'both missing', a: undefined, b: undefined, equal: true },
  ];
  test.each(cases)('$name → $equal', ({ a, b, equal }) => {
    expect(statusEquals(a, b)).toBe(equal);
    expect(statusEquals(b, a)).toBe(equal);
  });
});
