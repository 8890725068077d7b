/**
 * The pure parts of "pic touches only what it created": who holds a name (the words of every
 * refusal), whether a container may be exec'd into for a claim, whether an existing volume is the
 * service's own, the wording of a name conflict, and the bound on a stop's wait.
 */
import { describe, expect, test } from '@jest/globals';
import { volumeRefusal } from '../../reconcilers/containers/apply.js';
import { nameConflictMessage } from '../../reconcilers/containers/plan.js';
import { coreContainerClaim } from '../../reconcilers/core/spec.js';
import { claimRefusal, describeHolder, type ContainerClaim } from '../../reconcilers/shared/owned-container.js';
import { boundedStopSeconds, MAX_STOP_SECONDS } from '../../reconcilers/shared/stop.js';
import { testCell } from '../support/cell-document.js';

const ID = '1a2b3c4d5e6f7a8b9c0d';
const own = (owner: string, cell = 'alice') => ({ 'ngo.pic.owner': owner, 'ngo.pic.cell': cell });

describe('describeHolder', () => {
  test.each([
    [{}, 'a container with no pic labels'],
    [{ 'ngo.pic.cell': 'bob' }, 'a container of cell bob with no pic owner'],
    [own('ServiceInstall/evil'), 'ServiceInstall/evil'],
    [own('Core/wireguard', 'bob'), 'Core/wireguard of cell bob'],
    [{ 'ngo.pic.owner': 'ServiceInstall/x' }, 'ServiceInstall/x of cell (none)'],
  ])('%j → %s', (labels, words) => expect(describeHolder(labels, 'alice')).toBe(words));
});

describe('claimRefusal', () => {
  const picRuns: ContainerClaim = { name: 'cell-wireguard', owner: 'Core/wireguard', cell: 'alice', createdBy: 'pic', role: "pic's WireGuard", use: 'exec into' };
  const adminRuns: ContainerClaim = { ...picRuns, createdBy: 'admin', role: 'the WireGuard the admin runs' };
  const refused = (claim: ContainerClaim, holder: string) => `cell-wireguard is held by ${holder} (container 1a2b3c4d5e6f…), not by ${claim.role}: pic will not exec into it`;

  test.each([
    ['pic runs it: its own', picRuns, own('Core/wireguard'), undefined],
    ['pic runs it: a service container', picRuns, own('ServiceInstall/evil'), refused(picRuns, 'ServiceInstall/evil')],
    ['pic runs it: no labels', picRuns, {}, refused(picRuns, 'a container with no pic labels')],
    ['pic runs it: another cell\'s core', picRuns, own('Core/wireguard', 'bob'), refused(picRuns, 'Core/wireguard of cell bob')],
    ['the admin runs it: no labels', adminRuns, {}, undefined],
    ['the admin runs it: pic\'s own from before', adminRuns, own('Core/wireguard'), undefined],
    ['the admin runs it: a service container', adminRuns, own('ServiceInstall/evil'), refused(adminRuns, 'ServiceInstall/evil')],
    ['the admin runs it: another core component', adminRuns, own('Core/dns'), refused(adminRuns, 'Core/dns')],
  ])('%s', (_what, claim, labels, expected) => {
    expect(claimRefusal(claim, { id: ID, labels })).toBe(expected);
  });

  test('the claim of a core container follows the Cell: pic\'s when it has a run section, the admin\'s otherwise', () => {
    const run = { image: 'git.pic.ngo/roof/pic-core-wireguard:1.0.0', address: '172.20.0.4' };
    expect(coreContainerClaim(testCell({ wireguard: { run: { ...run, container: 'vpn' } } }), 'wireguard', 'exec into')).toEqual({
      name: 'vpn', owner: 'Core/wireguard', cell: 'alice', createdBy: 'pic', role: "pic's WireGuard", use: 'exec into',
    });
    expect(coreContainerClaim(testCell({ wireguard: { container: 'their-vpn' } }), 'wireguard', 'exec into')).toMatchObject({ name: 'their-vpn', createdBy: 'admin' });
    expect(coreContainerClaim(testCell({ dns: { run } }), 'dns', 'signal')).toMatchObject({ name: 'cell-dns', owner: 'Core/dns', createdBy: 'pic', use: 'signal' });
  });
});

describe('volumeRefusal', () => {
  const wanted = own('ServiceInstall/notes');
  test.each([
    ['its own, kept across an uninstall', { ...wanted, 'ngo.pic.volume': 'data' }, undefined],
    ['no pic labels', {}, 'a volume with no pic labels'],
    ['another service', own('ServiceInstall/files'), 'ServiceInstall/files'],
    ['the core', own('Core/caddy'), 'Core/caddy'],
    ['another cell', own('ServiceInstall/notes', 'bob'), 'ServiceInstall/notes of cell bob'],
  ])('%s', (_what, have, holder) => {
    const message = volumeRefusal('pic-alice-notes-data', have, wanted);
    if (holder === undefined) expect(message).toBeUndefined();
    else expect(message).toContain(`volume "pic-alice-notes-data" already exists, held by ${holder}, and pic did not create it for ServiceInstall/notes`);
  });
});

test('a name conflict names the holder and its id, and a core container is renamed in the Cell', () => {
  expect(nameConflictMessage('cell-wireguard', { id: ID, labels: own('ServiceInstall/evil') }, 'Core/wireguard', 'alice')).toBe(
    'container name "cell-wireguard" is held by ServiceInstall/evil (id 1a2b3c4d5e6f), so Core/wireguard cannot create it; ' +
      "remove or rename that container (docker rm -f cell-wireguard), or give pic's container another name in the Cell (spec.wireguard.run.container)",
  );
  expect(nameConflictMessage('cell-notes', { id: ID, labels: {} }, 'ServiceInstall/notes', 'alice')).toContain(
    "is held by a container with no pic labels (id 1a2b3c4d5e6f), so ServiceInstall/notes cannot create it; remove or rename that container (docker rm -f cell-notes), or change container_name in the service's template",
  );
});

describe('boundedStopSeconds', () => {
  test.each([
    [undefined, 10],
    [null, 10],
    [0, 0],
    [30, 30],
    [MAX_STOP_SECONDS, 600],
    [601, 600],
    [360_000, 600],
    [-1, 600],
  ])('StopTimeout %p → t=%p', (configured, t) => expect(boundedStopSeconds(configured)).toBe(t));
});
