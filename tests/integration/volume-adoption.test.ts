/**
 * pic never adopts a volume: when a service's named volume already exists, it is used only when
 * pic created it for that service in this cell (kept across an uninstall). One without pic's
 * labels, another owner's or another cell's is refused with a reason naming it and its holder,
 * and left as it is: labels and content untouched.
 */
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { applyContainerActions, volumeRefusal, type ApplyEvent } from '../../reconcilers/containers/apply.js';
import { isTerminal, type TerminalError } from '../../reconcilers/errors.js';
import { inVolume as scriptIn } from '../support/backup-fixture.js';
import { TEST_IMAGE } from '../support/cell.js';
import { buildBusyboxImage, cleanupTestResources, docker, TEST_LABELS, uniqueName } from '../support/docker.js';

const SUITE_LABEL = 'ngo.pic.test-volume-adoption';
const CELL = uniqueName('pictest-exec-cell');
const OWNER = 'ServiceInstall/notes';
const labels = { ...TEST_LABELS, [SUITE_LABEL]: '1' };
const events: ApplyEvent[] = [];

/** Runs a busybox script with the volume at /d; its output. */
const inVolume = (volume: string, script: string) => scriptIn({ labels }, volume, script);

function createVolume(name: string) {
  return applyContainerActions(docker, [{ type: 'create-volume', volume: { name, labels: { 'ngo.pic.volume': 'data' } } }], {
    network: { name: 'unused', subnet: '10.0.0.0/24' },
    labels: { 'ngo.pic.owner': OWNER, 'ngo.pic.cell': CELL },
    log: (e) => events.push(e),
  });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a refusal');
}

async function labelsOf(name: string): Promise<Record<string, string>> {
  return (await docker.getVolume(name).inspect()).Labels ?? {};
}

beforeAll(async () => {
  await cleanupTestResources(`${SUITE_LABEL}=1`, { olderThanMs: 30 * 60_000 });
  await buildBusyboxImage(TEST_IMAGE);
});

afterAll(async () => {
  await cleanupTestResources(`${SUITE_LABEL}=1`);
  await cleanupTestResources(`ngo.pic.cell=${CELL}`);
});

test.each([
  ['no pic labels', {}, 'a volume with no pic labels'],
  ['another owner', { 'ngo.pic.owner': 'ServiceInstall/other', 'ngo.pic.cell': CELL }, 'ServiceInstall/other'],
  ['another cell', { 'ngo.pic.owner': OWNER, 'ngo.pic.cell': 'pictest-exec-elsewhere' }, `${OWNER} of cell pictest-exec-elsewhere`],
])('an existing volume with %s is refused, its labels and data untouched', async (_what, have, holder) => {
  const name = uniqueName('pictest-exec-data');
  await docker.createVolume({ Name: name, Labels: { ...labels, ...have } });
  await inVolume(name, 'echo precious > /d/file');
  const err = await rejection(createVolume(name));
  expect(isTerminal(err)).toBe(true);
  expect((err as TerminalError).reason).toBe('VolumeConflict');
  expect(err.message).toContain(`volume "${name}" already exists, held by ${holder}, and pic did not create it for ${OWNER}`);
  expect(await labelsOf(name)).toEqual({ ...labels, ...have });
  expect(await inVolume(name, 'cat /d/file; ls -a /d | wc -l')).toBe('precious\n3\n');
  expect(events.map((e) => e.reason)).not.toContain('VolumeAdopted');
});

test('the service\'s own kept volume is used again, as it is', async () => {
  const name = uniqueName('pictest-exec-data');
  await createVolume(name);
  expect(events.filter((e) => e.message === `created volume ${name}`)).toHaveLength(1);
  await inVolume(name, 'echo kept > /d/file');
  await createVolume(name);
  expect(events.filter((e) => e.message === `created volume ${name}`)).toHaveLength(1);
  expect(await inVolume(name, 'cat /d/file')).toBe('kept\n');
  // What the volume carries is what pic gave it, and the same owner and cell pass the check.
  const have = await labelsOf(name);
  expect(have).toEqual({ 'ngo.pic.owner': OWNER, 'ngo.pic.cell': CELL, 'ngo.pic.volume': 'data' });
  expect(volumeRefusal(name, have, { 'ngo.pic.owner': OWNER, 'ngo.pic.cell': CELL })).toBeUndefined();
});
