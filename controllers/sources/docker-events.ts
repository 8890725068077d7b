import { StringDecoder } from 'node:string_decoder';
import type Dockerode from 'dockerode';
import { OWNER_LABEL } from '../../reconcilers/containers/labels.js';
import { backOffDelay } from '../queue.js';

export interface OwnerEvent {
  /** The document that owns the container, e.g. `ServiceInstall/notes`. */
  owner: string;
  /** The container's name, or its ID when Docker sent no name. */
  container: string;
  /** Docker's action verbatim: `die`, `destroy`, `health_status: unhealthy`, ... */
  action: string;
}

export type DockerEventsStatus = 'connected' | 'disconnected';

export interface WatchDockerEventsOptions {
  /** The label that marks a container as ours; its value is the owner (default `ngo.pic.owner`). */
  labelFilter?: string;
  /** Only containers that also carry this label (one cell among several on one engine). */
  cellLabel?: { key: string; value: string };
  /**
   * `connected` each time the stream is (re)established — events may have been missed while it
   * was down, so the caller resyncs — and `disconnected` with the reason when it drops.
   */
  onStatus?: (status: DockerEventsStatus, err?: Error) => void;
  reconnectDelayMs?: { base: number; max: number };
}

export const DEFAULT_OWNER_LABEL = OWNER_LABEL;

/** Container actions after which the owner may have drifted from its document. */
const RELEVANT_ACTIONS: ReadonlySet<string> = new Set(['create', 'start', 'die', 'stop', 'kill', 'oom', 'destroy']);

function isRelevantAction(action: string): boolean {
  return RELEVANT_ACTIONS.has(action) || action.startsWith('health_status');
}

/** The part of a Docker event message we read (API /events, one JSON object per line). */
interface DockerEventMessage {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/** Maps one Docker event message to its owner, or undefined when it is not ours or not relevant. */
export function toOwnerEvent(message: unknown, ownerLabel = DEFAULT_OWNER_LABEL): OwnerEvent | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const { Type, Action, Actor } = message as DockerEventMessage;
  if (Type !== 'container' || typeof Action !== 'string' || !isRelevantAction(Action)) return undefined;
  const owner = Actor?.Attributes?.[ownerLabel];
  if (typeof owner !== 'string' || owner === '') return undefined;
  const container = Actor?.Attributes?.['name'] ?? Actor?.ID ?? '';
  return { owner, container, action: Action };
}

/**
 * Splits a byte stream of newline-delimited JSON into parsed values. Chunks may end anywhere,
 * even inside a multi-byte character; a line that is not JSON is skipped.
 */
export function createJsonLineParser(onValue: (value: unknown) => void): (chunk: Buffer | string) => void {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  return (chunk) => {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const text = line.trim();
      if (text === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        continue;
      }
      onValue(value);
    }
  };
}

/**
 * Follows Docker's container events for containers labelled with an owner and reports each
 * relevant one. When the stream ends or fails (dockerd restarted), reconnects with exponential
 * back-off, forever, until `close()`.
 */
export function watchDockerEvents(
  docker: Dockerode,
  onEvent: (e: OwnerEvent) => void,
  opts: WatchDockerEventsOptions = {},
): { close(): void } {
  const ownerLabel = opts.labelFilter ?? DEFAULT_OWNER_LABEL;
  const labels = [ownerLabel];
  if (opts.cellLabel !== undefined) labels.push(`${opts.cellLabel.key}=${opts.cellLabel.value}`);
  const delays = opts.reconnectDelayMs ?? { base: 500, max: 30_000 };

  let closed = false;
  let stream: NodeJS.ReadableStream | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let failedAttempts = 0;

  // The callbacks are the caller's; one that throws must not end the subscription.
  const status = (s: DockerEventsStatus, err?: Error): void => {
    if (closed) return;
    try {
      opts.onStatus?.(s, err);
    } catch {
      // ignored, see above
    }
  };
  const report = (event: OwnerEvent): void => {
    if (closed) return;
    try {
      onEvent(event);
    } catch {
      // ignored, see above
    }
  };

  const scheduleReconnect = (): void => {
    if (closed) return;
    failedAttempts++;
    retryTimer = setTimeout(connect, backOffDelay(failedAttempts, delays.base, delays.max));
    retryTimer.unref();
  };

  const follow = (events: NodeJS.ReadableStream): void => {
    let ended = false;
    const end = (err?: Error): void => {
      if (ended) return;
      ended = true;
      if (stream === events) stream = undefined;
      destroy(events);
      if (closed) return;
      status('disconnected', err ?? new Error('the Docker event stream ended'));
      scheduleReconnect();
    };
    const parse = createJsonLineParser((message) => {
      const event = toOwnerEvent(message, ownerLabel);
      if (event !== undefined) report(event);
    });
    events.on('data', (chunk: Buffer | string) => parse(chunk));
    events.on('end', () => end());
    events.on('close', () => end());
    events.on('error', (err: Error) => end(err));
  };

  function connect(): void {
    retryTimer = undefined;
    if (closed) return;
    docker.getEvents({ filters: { type: ['container'], label: labels } }).then(
      (events) => {
        if (closed) {
          destroy(events);
          return;
        }
        stream = events;
        failedAttempts = 0;
        follow(events);
        status('connected');
      },
      (err: unknown) => {
        status('disconnected', err instanceof Error ? err : new Error(String(err)));
        scheduleReconnect();
      },
    );
  }

  connect();

  return {
    close(): void {
      closed = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      retryTimer = undefined;
      if (stream !== undefined) destroy(stream);
      stream = undefined;
    },
  };
}

function destroy(stream: NodeJS.ReadableStream): void {
  (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
}
