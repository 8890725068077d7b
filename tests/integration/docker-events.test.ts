import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import {
  createJsonLineParser,
  toOwnerEvent,
  watchDockerEvents,
  type DockerEventsStatus,
  type OwnerEvent,
} from '../../controllers/sources/docker-events.js';

const IMAGE = 'pic-test/busybox:queue-test';
const NAME_PREFIX = 'pictest-events-';
const OWNER_LABEL = 'ngo.pic.owner';

const docker = new Docker();
const created: Docker.Container[] = [];
const watchers: { close(): void }[] = [];

const random = (): string => randomBytes(4).toString('hex');

/** A one-file image (a static busybox), built here so the test needs no registry. */
async function buildImage(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'pic-busybox-'));
  try {
    await mkdir(path.join(work, 'rootfs', 'bin'), { recursive: true });
    await copyFile('/bin/busybox', path.join(work, 'rootfs', 'bin', 'busybox'));
    const tarPath = path.join(work, 'rootfs.tar');
    await promisify(execFile)('tar', ['-cf', tarPath, '-C', path.join(work, 'rootfs'), 'bin']);
    const [repo, tag] = IMAGE.split(':');
    const progress = await docker.importImage(tarPath, { repo, tag });
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(progress, (err: Error | null) => (err ? reject(err) : resolve()));
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Containers of this test left behind by an earlier run that was killed. */
async function removeLeftovers(): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { name: [NAME_PREFIX] } });
  for (const info of containers) {
    if (info.Names.some((name) => name.startsWith(`/${NAME_PREFIX}`))) {
      await docker.getContainer(info.Id).remove({ force: true });
    }
  }
}

/** Creates, starts, kills and removes a sleeping container: the lifecycle the watcher reports. */
async function liveAndDie(name: string, labels: Record<string, string>): Promise<void> {
  const container = await docker.createContainer({
    name,
    Image: IMAGE,
    Cmd: ['/bin/busybox', 'sleep', '3600'],
    Labels: labels,
  });
  created.push(container);
  await container.start();
  await container.kill();
  await container.wait();
  await container.remove();
}

/** Collects values; `until(predicate)` resolves once one that matches has arrived. */
class Collector<T> {
  seen: T[] = [];
  #waiters: { matches: (value: T) => boolean; resolve: () => void }[] = [];

  push = (value: T): void => {
    this.seen.push(value);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.matches(value)) return true;
      w.resolve();
      return false;
    });
  };

  until(matches: (value: T) => boolean): Promise<void> {
    if (this.seen.some(matches)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ matches, resolve }));
  }
}

interface Status {
  status: DockerEventsStatus;
  err?: Error;
}

/** Starts a watcher and resolves once it is connected. */
async function watch(
  client: Docker,
  opts: Parameters<typeof watchDockerEvents>[2] = {},
): Promise<{ events: Collector<OwnerEvent>; statuses: Collector<Status> }> {
  const events = new Collector<OwnerEvent>();
  const statuses = new Collector<Status>();
  watchers.push(
    watchDockerEvents(client, events.push, {
      ...opts,
      onStatus: (status, err) => statuses.push({ status, err }),
    }),
  );
  await statuses.until((s) => s.status === 'connected');
  return { events, statuses };
}

const ofContainer = (events: OwnerEvent[], name: string): OwnerEvent[] => events.filter((e) => e.container === name);

describe('watchDockerEvents against the real dockerd', () => {
  beforeAll(async () => {
    await removeLeftovers();
    const present = await docker
      .getImage(IMAGE)
      .inspect()
      .then(() => true)
      .catch(() => false);
    if (!present) await buildImage();
  });

  afterEach(async () => {
    for (const watcher of watchers.splice(0)) watcher.close();
    for (const container of created.splice(0)) await container.remove({ force: true }).catch(() => undefined);
  });

  afterAll(async () => {
    await removeLeftovers();
    await docker.getImage(IMAGE).remove({ force: true }).catch(() => undefined);
  });

  test('reports the lifecycle of a labelled container with its owner, and nothing of an unlabelled one', async () => {
    const id = random();
    const owner = `ServiceInstall/pictest-${id}`;
    const name = `${NAME_PREFIX}${id}`;
    const plain = `${NAME_PREFIX}${id}-plain`;
    const { events } = await watch(docker);

    // The unlabelled container goes first: the stream is ordered, so once the labelled one's
    // destroy arrives, anything about the unlabelled one would have arrived too.
    await liveAndDie(plain, {});
    await liveAndDie(name, { [OWNER_LABEL]: owner });
    await events.until((e) => e.container === name && e.action === 'destroy');

    const ours = ofContainer(events.seen, name);
    expect(ours.every((e) => e.owner === owner)).toBe(true);
    const actions = ours.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['create', 'start', 'kill', 'die', 'destroy']));
    expect(actions.indexOf('die')).toBeLessThan(actions.indexOf('destroy'));
    expect(ofContainer(events.seen, plain)).toEqual([]);
  });

  test('with a cell label, containers of another cell are not reported', async () => {
    const id = random();
    const cellKey = 'ngo.pic.cell';
    const name = `${NAME_PREFIX}${id}`;
    const otherCell = `${NAME_PREFIX}${id}-other-cell`;
    const { events } = await watch(docker, { cellLabel: { key: cellKey, value: `pictest-${id}` } });

    await liveAndDie(otherCell, { [OWNER_LABEL]: `ServiceInstall/pictest-${id}`, [cellKey]: `other-${id}` });
    await liveAndDie(name, { [OWNER_LABEL]: `ServiceInstall/pictest-${id}`, [cellKey]: `pictest-${id}` });
    await events.until((e) => e.container === name && e.action === 'destroy');

    expect(ofContainer(events.seen, name).map((e) => e.action)).toEqual(expect.arrayContaining(['die', 'destroy']));
    expect(ofContainer(events.seen, otherCell)).toEqual([]);
  });

  test('reconnects when the stream breaks, says so, and keeps reporting', async () => {
    // A client of its own whose event streams the test can reach, to break one as a restart would.
    const client = new Docker();
    const streams: NodeJS.ReadableStream[] = [];
    const getEvents = client.getEvents.bind(client) as (opts: Docker.GetEventsOptions) => Promise<NodeJS.ReadableStream>;
    client.getEvents = (async (opts: Docker.GetEventsOptions) => {
      const stream = await getEvents(opts);
      streams.push(stream);
      return stream;
    }) as typeof client.getEvents;

    const { events, statuses } = await watch(client, { reconnectDelayMs: { base: 20, max: 200 } });
    expect(streams).toHaveLength(1);
    (streams[0] as NodeJS.ReadableStream & { destroy(): void }).destroy();

    await statuses.until(() => statuses.seen.filter((s) => s.status === 'connected').length === 2);
    expect(statuses.seen.map((s) => s.status)).toEqual(['connected', 'disconnected', 'connected']);
    expect(statuses.seen[1]!.err).toBeInstanceOf(Error);
    expect(streams).toHaveLength(2);

    const id = random();
    const name = `${NAME_PREFIX}${id}`;
    await liveAndDie(name, { [OWNER_LABEL]: `ServiceInstall/pictest-${id}` });
    await events.until((e) => e.container === name && e.action === 'destroy');
    expect(ofContainer(events.seen, name).map((e) => e.action)).toEqual(expect.arrayContaining(['die', 'destroy']));
  });

  test('keeps retrying while dockerd cannot be reached', async () => {
    const unreachable = new Docker({ socketPath: path.join(tmpdir(), `pic-no-docker-${random()}.sock`) });
    const statuses = new Collector<Status>();
    const watcher = watchDockerEvents(unreachable, () => undefined, {
      reconnectDelayMs: { base: 1, max: 4 },
      onStatus: (status, err) => statuses.push({ status, err }),
    });
    watchers.push(watcher);
    await statuses.until(() => statuses.seen.length === 3);
    watcher.close();
    expect(statuses.seen.map((s) => s.status)).toEqual(['disconnected', 'disconnected', 'disconnected']);
    expect(statuses.seen.every((s) => s.err instanceof Error)).toBe(true);
  });

  test('close stops the stream and the callbacks', async () => {
    const { events, statuses } = await watch(docker);
    watchers.pop()!.close();
    const id = random();
    const name = `${NAME_PREFIX}${id}`;
    // A second watcher sees the container, proving the first one had every chance to.
    const { events: witness } = await watch(docker);
    await liveAndDie(name, { [OWNER_LABEL]: `ServiceInstall/pictest-${id}` });
    await witness.until((e) => e.container === name && e.action === 'destroy');
    expect(events.seen).toEqual([]);
    expect(statuses.seen.map((s) => s.status)).toEqual(['connected']);
  });
});

describe('Docker event parsing', () => {
  const message = (action: string, attributes: Record<string, string>, type = 'container'): unknown => ({
    Type: type,
    Action: action,
    Actor: { ID: 'c0ffee', Attributes: attributes },
  });

  test.each([
    { name: 'die of an owned container', msg: message('die', { [OWNER_LABEL]: 'ServiceInstall/notes', name: 'notes' }), expected: { owner: 'ServiceInstall/notes', container: 'notes', action: 'die' } },
    { name: 'health status', msg: message('health_status: unhealthy', { [OWNER_LABEL]: 'caddy', name: 'pic-caddy' }), expected: { owner: 'caddy', container: 'pic-caddy', action: 'health_status: unhealthy' } },
    { name: 'no name attribute', msg: message('destroy', { [OWNER_LABEL]: 'dns' }), expected: { owner: 'dns', container: 'c0ffee', action: 'destroy' } },
    { name: 'an exec from a health check', msg: message('exec_start: /bin/true', { [OWNER_LABEL]: 'dns' }), expected: undefined },
    { name: 'no owner label', msg: message('die', { name: 'foreign' }), expected: undefined },
    { name: 'an empty owner', msg: message('die', { [OWNER_LABEL]: '' }), expected: undefined },
    { name: 'a network event', msg: message('connect', { [OWNER_LABEL]: 'dns' }, 'network'), expected: undefined },
    { name: 'not an object', msg: 'die', expected: undefined },
    { name: 'null', msg: null, expected: undefined },
  ])('$name', ({ msg, expected }) => {
    expect(toOwnerEvent(msg)).toEqual(expected);
  });

  test('uses the configured label as the owner', () => {
    expect(toOwnerEvent(message('oom', { 'x.owner': 'ServiceInstall/a' }), 'x.owner')).toEqual({
      owner: 'ServiceInstall/a',
      container: 'c0ffee',
      action: 'oom',
    });
  });

  test('lines split across chunks at every byte, even inside a character, parse the same', () => {
    const values = [{ Action: 'die', n: 1 }, { Action: 'start', name: 'café ☕' }, { Action: 'destroy' }];
    const bytes = Buffer.from(`${values.map((v) => JSON.stringify(v)).join('\n')}\n`);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const parsed: unknown[] = [];
      const parse = createJsonLineParser((v) => parsed.push(v));
      parse(bytes.subarray(0, cut));
      parse(bytes.subarray(cut));
      expect(parsed).toEqual(values);
    }
  });

  test('one byte at a time, with blank and broken lines in between', () => {
    const bytes = Buffer.from('{"a":1}\n\n  \n{broken\n{"b":2}\r\n{"c":');
    const parsed: unknown[] = [];
    const parse = createJsonLineParser((v) => parsed.push(v));
    for (const byte of bytes) parse(Buffer.from([byte]));
    expect(parsed).toEqual([{ a: 1 }, { b: 2 }]);
  });
});
