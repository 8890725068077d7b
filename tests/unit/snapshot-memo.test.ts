/** The snapshot's memo (state/snapshot-memo.ts): what a pass derives, kept with the snapshot it came from. */
import { describe, expect, test } from '@jest/globals';
import { SnapshotMemo } from '../../state/snapshot-memo.js';
import { templateSecretNames } from '../../reconcilers/containers/render.js';
import { readComposeTemplate } from '../../state/compose-template.js';

describe('SnapshotMemo', () => {
  test('computes once per key and variant; another variant or table computes again', () => {
    const memo = new SnapshotMemo();
    const key = {};
    let computed = 0;
    const get = (table: string, variant: string) => memo.remember(table, key, variant, () => ++computed);
    expect([get('plan', 'a'), get('plan', 'a')]).toEqual([1, 1]);
    expect(get('plan', 'b')).toBe(2);
    expect(get('plan', 'a')).toBe(3);
    expect(get('names', 'a')).toBe(4);
    expect(memo.remember('plan', {}, 'a', () => ++computed)).toBe(5);
  });

  test('a new snapshot remembers nothing of the last', () => {
    const key = {};
    expect(new SnapshotMemo().remember('t', key, '', () => 'old')).toBe('old');
    expect(new SnapshotMemo().remember('t', key, '', () => 'new')).toBe('new');
  });

  test('secret names need no memo: a walk of the template as its package read it, a new list each time', () => {
    const template = readComposeTemplate('services:\n  a:\n    image: x\n    environment:\n      B: ${PIC_SECRET_B}\n      A: ${PIC_SECRET_A}\n', 't.yml');
    const first = templateSecretNames(template);
    expect(first).toEqual(['A', 'B']);
    first.push('C');
    expect(templateSecretNames(template)).toEqual(['A', 'B']);
  });
});
