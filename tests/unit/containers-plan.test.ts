import { dependencyOrder, imagesForCreation, planContainers, type PlanOptions } from '../../reconcilers/containers/plan.js';
import type { ContainerAction, DesiredContainer, ObservedContainer, ServicePlan } from '../../reconcilers/containers/types.js';
import { parseHealth } from '../../reconcilers/containers/observe.js';
import { parsePinnedReference } from '../../crds/image-reference.js';
import { imageForCreate, PullProgressSummary } from '../../reconcilers/containers/image.js';

const OWNER = 'ServiceInstall/notes';
const CELL = 'alice';
const IMAGE = 'git.pic.ngo/roof/notes:1';
const DB_IMAGE = 'git.pic.ngo/roof/db:2';

function want(service: string, hash: string, opts: { dependsOn?: string[]; image?: string; owner?: string } = {}): DesiredContainer {
  const name = `cell-${service}`;
  return {
    name,
    dependsOn: opts.dependsOn ?? [],
    specHash: hash,
    create: {
      Image: opts.image ?? IMAGE,
      Labels: { 'ngo.pic.owner': opts.owner ?? OWNER, 'ngo.pic.service': service, 'ngo.pic.spec-hash': hash },
      HostConfig: { NetworkMode: 'cell-network' },
    },
  };
}

function seen(
  name: string,
  hash: string,
  state = 'running',
  extra: Partial<ObservedContainer> = {},
): ObservedContainer {
  const service = name.replace(/^cell-/, '');
  return {
    id: `id-${name}-${hash}`,
    name,
    owner: OWNER,
    cell: CELL,
    service,
    specHash: hash,
    state,
    imageId: 'sha256:aaaa',
    networks: ['cell-network'],
    labels: {},
    ...extra,
  };
}

const web = want('web', 'h-web', { dependsOn: ['cell-db'] });
const db = want('db', 'h-db', { image: DB_IMAGE });
const VOLUME = { name: 'notes-data', labels: { 'ngo.pic.owner': OWNER } };
/** Given in the wrong order on purpose: the plan must still create db before web. */
const plan: ServicePlan = { containers: [web, db], volumes: [VOLUME] };

const present: PlanOptions = { imagePresent: () => true, labels: { 'ngo.pic.cell': CELL } };

/** A compact form of an action list, easy to compare in a table. */
function summary(actions: ContainerAction[]): string[] {
  return actions.map((a) => {
    switch (a.type) {
      case 'conflict':
        return `conflict ${a.name}`;
      case 'remove':
        return `remove ${a.name} ${a.id}`;
      case 'ensure-network':
        return 'ensure-network';
      case 'pull-image':
        return `pull ${a.image}`;
      case 'create-volume':
        return `volume ${a.volume.name}`;
      case 'create':
        return `create ${a.container.name}`;
      case 'recreate':
        return `recreate ${a.container.name} ${a.id}`;
      case 'start':
        return `start ${a.container.name} ${a.id}`;
    }
  });
}

interface Case {
  name: string;
  desired: ServicePlan | null;
  observed: ObservedContainer[];
  opts?: PlanOptions;
  expected: string[];
}

const cases: Case[] = [
  {
    name: 'in sync → no action',
    desired: plan,
    observed: [seen('cell-web', 'h-web'), seen('cell-db', 'h-db')],
    expected: [],
  },
  {
    name: 'restarting counts as running',
    desired: plan,
    observed: [seen('cell-web', 'h-web', 'restarting'), seen('cell-db', 'h-db')],
    expected: [],
  },
  {
    name: 'nothing there → network, volumes, creations in dependency order',
    desired: plan,
    observed: [],
    expected: ['ensure-network', 'volume notes-data', 'create cell-db', 'create cell-web'],
  },
  {
    name: 'missing images are pulled once each, sorted',
    desired: { containers: [web, db, want('worker', 'h-worker')], volumes: [] },
    observed: [],
    opts: { imagePresent: () => false },
    expected: [
      'ensure-network',
      `pull ${DB_IMAGE}`,
      `pull ${IMAGE}`,
      'create cell-db',
      'create cell-web',
      'create cell-worker',
    ],
  },
  {
    name: 'an image whose presence is unknown is not pulled',
    desired: plan,
    observed: [seen('cell-db', 'h-db')],
    opts: { imagePresent: () => undefined },
    expected: ['ensure-network', 'volume notes-data', 'create cell-web'],
  },
  {
    name: 'only the images of created containers are looked at',
    desired: plan,
    observed: [seen('cell-db', 'h-db')],
    opts: { imagePresent: (ref) => ref !== DB_IMAGE },
    expected: ['ensure-network', 'volume notes-data', 'create cell-web'],
  },
  {
    name: 'same hash, exited → start, nothing else',
    desired: plan,
    observed: [seen('cell-web', 'h-web'), seen('cell-db', 'h-db', 'exited')],
    expected: ['start cell-db id-cell-db-h-db'],
  },
  {
    name: 'same hash, created or paused → start',
    desired: plan,
    observed: [seen('cell-web', 'h-web', 'paused'), seen('cell-db', 'h-db', 'created')],
    expected: ['start cell-db id-cell-db-h-db', 'start cell-web id-cell-web-h-web'],
  },
  {
    name: 'same hash, dead → recreate (Docker cannot start a dead container)',
    desired: plan,
    observed: [seen('cell-web', 'h-web'), seen('cell-db', 'h-db', 'dead')],
    expected: ['ensure-network', 'volume notes-data', 'recreate cell-db id-cell-db-h-db'],
  },
  {
    name: 'hash differs → recreate only that container',
    desired: plan,
    observed: [seen('cell-web', 'old'), seen('cell-db', 'h-db')],
    expected: ['ensure-network', 'volume notes-data', 'recreate cell-web id-cell-web-old'],
  },
  {
    name: 'hash differs on a stopped container → recreate, not start',
    desired: plan,
    observed: [seen('cell-web', 'h-web'), seen('cell-db', 'old', 'exited')],
    expected: ['ensure-network', 'volume notes-data', 'recreate cell-db id-cell-db-old'],
  },
  {
    name: 'a container without a hash label is recreated',
    desired: plan,
    observed: [seen('cell-web', ''), seen('cell-db', 'h-db')],
    expected: ['ensure-network', 'volume notes-data', 'recreate cell-web id-cell-web-'],
  },
  {
    name: 'owned but no longer rendered → removed, and removals come first',
    desired: plan,
    observed: [seen('cell-web', 'h-web'), seen('cell-cache', 'h-cache'), seen('cell-admin', 'x')],
    expected: [
      'remove cell-admin id-cell-admin-x',
      'remove cell-cache id-cell-cache-h-cache',
      'ensure-network',
      'volume notes-data',
      'create cell-db',
    ],
  },
  {
    name: 'service removed (desired null) → every owned container removed, nothing else',
    desired: null,
    observed: [seen('cell-web', 'h-web'), seen('cell-db', 'h-db', 'exited')],
    opts: { imagePresent: () => true, owner: OWNER },
    expected: ['remove cell-db id-cell-db-h-db', 'remove cell-web id-cell-web-h-web'],
  },
  {
    name: 'service removed with nothing left → no action',
    desired: null,
    observed: [],
    expected: [],
  },
  {
    name: 'service removed: containers of another owner are left alone',
    desired: null,
    observed: [seen('cell-web', 'h-web'), seen('cell-mail', 'h', 'running', { owner: 'ServiceInstall/mail' })],
    opts: { imagePresent: () => true, owner: OWNER },
    expected: ['remove cell-web id-cell-web-h-web'],
  },
  {
    name: 'a leftover of the same service under another name → removed, the right one kept',
    desired: plan,
    observed: [
      seen('cell-web', 'h-web'),
      seen('cell-db', 'h-db'),
      seen('cell-web-old', 'old', 'exited', { service: 'web' }),
    ],
    expected: ['remove cell-web-old id-cell-web-old-old'],
  },
  {
    name: 'two owned containers claiming one name → the one with the right hash is kept',
    desired: plan,
    observed: [
      seen('cell-web', 'stale', 'running', { id: 'aaa-stale' }),
      seen('cell-web', 'h-web', 'running', { id: 'zzz-right' }),
      seen('cell-db', 'h-db'),
    ],
    expected: ['remove cell-web aaa-stale'],
  },
  {
    name: 'a leftover with the right hash but another name cannot be kept under it: removed, then created',
    desired: plan,
    observed: [seen('cell-db', 'h-db'), seen('cell-web-renamed', 'h-web', 'running', { service: 'web' })],
    expected: [
      'remove cell-web-renamed id-cell-web-renamed-h-web',
      'ensure-network',
      'volume notes-data',
      'create cell-web',
    ],
  },
  {
    name: 'a container without owner label holding a desired name → conflict, untouched, the rest goes on',
    desired: plan,
    observed: [seen('cell-web', 'h-web', 'running', { owner: '' })],
    expected: ['conflict cell-web', 'ensure-network', 'volume notes-data', 'create cell-db'],
  },
  {
    name: 'a container of another owner holding a desired name → conflict',
    desired: plan,
    observed: [seen('cell-web', 'h-web'), seen('cell-db', 'h-db', 'running', { owner: 'ServiceInstall/mail' })],
    expected: ['conflict cell-db'],
  },
  {
    name: 'a container of another cell holding a desired name → conflict',
    desired: plan,
    observed: [seen('cell-web', 'h-web'), seen('cell-db', 'h-db', 'running', { cell: 'bob' })],
    expected: ['conflict cell-db'],
  },
  {
    name: "another owner's container with a name we do not render is ignored",
    desired: plan,
    observed: [
      seen('cell-web', 'h-web'),
      seen('cell-db', 'h-db'),
      seen('cell-mail', 'h', 'exited', { owner: 'ServiceInstall/mail' }),
      seen('cell-stray', 'h', 'exited', { owner: '' }),
    ],
    expected: [],
  },
  {
    name: 'starts and creations interleave in dependency order',
    desired: {
      containers: [
        want('app', 'h-app', { dependsOn: ['cell-cache', 'cell-db'] }),
        want('cache', 'h-cache', { dependsOn: ['cell-db'] }),
        want('db', 'h-db'),
      ],
      volumes: [],
    },
    observed: [seen('cell-db', 'h-db', 'exited'), seen('cell-app', 'h-app', 'exited')],
    expected: ['ensure-network', 'start cell-db id-cell-db-h-db', 'create cell-cache', 'start cell-app id-cell-app-h-app'],
  },
  {
    name: 'volumes are listed sorted by name',
    desired: { containers: [db], volumes: [{ name: 'zeta', labels: {} }, { name: 'alpha', labels: {} }] },
    observed: [],
    expected: ['ensure-network', 'volume alpha', 'volume zeta', 'create cell-db'],
  },
];

describe('planContainers', () => {
  test.each(cases)('$name', ({ desired, observed, opts, expected }) => {
    expect(summary(planContainers(desired, observed, opts ?? present))).toEqual(expected);
  });

  test('the output does not depend on the order of the listing', () => {
    const observed = [
      seen('cell-web', 'old'),
      seen('cell-cache', 'x'),
      seen('cell-admin', 'x'),
      seen('cell-web-old', 'old', 'exited', { service: 'web' }),
      seen('cell-db', 'h-db', 'exited'),
    ];
    const expected = planContainers(plan, observed, present);
    for (let shift = 1; shift < observed.length; shift++) {
      const rotated = [...observed.slice(shift), ...observed.slice(0, shift)];
      expect(planContainers(plan, rotated, present)).toEqual(expected);
      expect(planContainers(plan, [...rotated].reverse(), present)).toEqual(expected);
    }
  });

  test('the actions carry what apply needs', () => {
    const actions = planContainers(plan, [seen('cell-web', 'old'), seen('cell-db', 'h-db', 'exited')], present);
    expect(actions).toContainEqual({
      type: 'recreate',
      container: web,
      id: 'id-cell-web-old',
      reason: 'spec changed (hash old → h-web)',
    });
    expect(actions).toContainEqual({ type: 'start', container: db, id: 'id-cell-db-h-db' });
    expect(actions).toContainEqual({ type: 'create-volume', volume: VOLUME });
  });

  test('a conflict says who holds the name and what to do', () => {
    const [conflict] = planContainers(plan, [seen('cell-web', 'h-web', 'running', { owner: '', id: '0123456789abcdef' })], present);
    expect(conflict).toMatchObject({ type: 'conflict', name: 'cell-web' });
    const message = (conflict as { message: string }).message;
    expect(message).toContain('cell-web');
    expect(message).toContain(`is held by a container of cell ${CELL} with no pic owner (id 0123456789ab)`);
    expect(message).toContain('docker rm -f cell-web');
  });

  test('imagePresent is not asked when nothing is created', () => {
    const asked: string[] = [];
    planContainers(plan, [seen('cell-web', 'h-web'), seen('cell-db', 'h-db', 'exited')], {
      imagePresent: (ref) => {
        asked.push(ref);
        return true;
      },
    });
    expect(asked).toEqual([]);
  });
});

describe('imagesForCreation', () => {
  test('lists the images of creations and recreations once, sorted', () => {
    const actions = planContainers({ containers: [web, db, want('worker', 'h')], volumes: [] }, [seen('cell-db', 'old')], present);
    expect(imagesForCreation(actions)).toEqual([DB_IMAGE, IMAGE]);
    expect(imagesForCreation([])).toEqual([]);
  });
});

describe('dependencyOrder', () => {
  const c = (name: string, dependsOn: string[] = []) => ({ ...want(name, 'h'), name, dependsOn });
  test.each([
    { name: 'already ordered', input: [c('a'), c('b', ['a'])], expected: ['a', 'b'] },
    { name: 'reversed chain', input: [c('c', ['b']), c('b', ['a']), c('a')], expected: ['a', 'b', 'c'] },
    { name: 'independent ones keep the input order', input: [c('z'), c('y'), c('x')], expected: ['z', 'y', 'x'] },
    { name: 'unknown dependencies are ignored', input: [c('a', ['elsewhere']), c('b')], expected: ['a', 'b'] },
    { name: 'a cycle falls back to the input order', input: [c('a', ['b']), c('b', ['a']), c('c')], expected: ['c', 'a', 'b'] },
  ])('$name', ({ input, expected }) => {
    expect(dependencyOrder(input).map((x) => x.name)).toEqual(expected);
  });
});

describe('parseHealth', () => {
  test.each([
    ['Up 5 minutes (healthy)', 'healthy'],
    ['Up 2 seconds (health: starting)', 'starting'],
    ['Up 1 hour (unhealthy)', 'unhealthy'],
    ['Up 3 seconds', undefined],
    ['Exited (0) 2 minutes ago', undefined],
    ['Up 4 seconds (Paused)', undefined],
  ])('%s', (status, expected) => {
    expect(parseHealth(status)).toBe(expected);
  });
});

describe('images pinned by digest', () => {
  const hex = 'a'.repeat(64);
  test.each([
    { ref: `git.pic.ngo/roof/notes@sha256:${hex}`, pinned: { name: 'git.pic.ngo/roof/notes', digest: `sha256:${hex}` } },
    { ref: `127.0.0.1:5000/x:1@sha256:${hex}`, pinned: { name: '127.0.0.1:5000/x:1', digest: `sha256:${hex}` } },
    { ref: 'git.pic.ngo/roof/notes:1', pinned: undefined },
    { ref: `notes@sha256:${hex.slice(1)}`, pinned: undefined },
  ])('parsePinnedReference($ref)', ({ ref, pinned }) => {
    expect(parsePinnedReference(ref)).toEqual(pinned);
  });

  test.each([
    { name: 'digest is the local image Id → the Id', ref: `r/x@sha256:${hex}`, resolved: { present: true, id: `sha256:${hex}` }, expected: `sha256:${hex}` },
    { name: 'registry digest → the reference', ref: `r/x@sha256:${hex}`, resolved: { present: true, id: `sha256:${'b'.repeat(64)}` }, expected: `r/x@sha256:${hex}` },
    { name: 'absent → the reference', ref: `r/x@sha256:${hex}`, resolved: { present: false }, expected: `r/x@sha256:${hex}` },
    { name: 'a tag → the reference', ref: 'r/x:1', resolved: { present: true, id: `sha256:${hex}` }, expected: 'r/x:1' },
  ])('imageForCreate: $name', ({ ref, resolved, expected }) => {
    expect(imageForCreate(ref, resolved)).toBe(expected);
  });
});

describe('PullProgressSummary', () => {
  test('one line per change of a layer state, none for repeated progress or errors', () => {
    const summary = new PullProgressSummary();
    const events = [
      { status: 'Pulling from roof/notes', id: '1' },
      { status: 'Pulling fs layer', id: 'abc' },
      { status: 'Pulling fs layer', id: 'def' },
      { status: 'Downloading', id: 'abc', progressDetail: { current: 1, total: 10 } },
      { status: 'Downloading', id: 'abc', progressDetail: { current: 5, total: 10 } },
      { status: 'Downloading', id: 'abc', progressDetail: { current: 9, total: 10 } },
      { status: 'Download complete', id: 'abc' },
      { status: 'Extracting', id: 'abc' },
      { status: 'Extracting', id: 'abc' },
      { status: 'Pull complete', id: 'abc' },
      { status: 'Already exists', id: 'def' },
      { error: 'boom', errorDetail: { message: 'boom' } },
      { status: 'Digest: sha256:0123' },
      { status: 'Status: Downloaded newer image for roof/notes:1' },
    ];
    const lines = events.map((e) => summary.feed(e)?.message).filter((m) => m !== undefined);
    expect(lines).toEqual([
      '1: Pulling from roof/notes',
      'abc: Pulling fs layer',
      'def: Pulling fs layer',
      'abc: Downloading',
      'abc: Download complete',
      'abc: Extracting',
      'abc: Pull complete',
      'def: Already exists',
      'Digest: sha256:0123',
      'Status: Downloaded newer image for roof/notes:1',
    ]);
  });
});
