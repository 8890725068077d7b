/**
 * Docker's progress streams (an image pull, an image import): followed to their end, their
 * events handed on, and a failure reported inside the stream turned into a rejection. An adapter
 * over the Docker API; the one place that reads such a stream.
 */
import type Dockerode from 'dockerode';
import { dockerMessage } from '../containers/types.js';

/** A raw event of a Docker progress stream. */
export interface DockerStreamEvent {
  id?: string;
  status?: string;
  progress?: string;
  progressDetail?: unknown;
  error?: string;
  errorDetail?: { message?: string; code?: number };
}

/**
 * Follows `stream` to its end, handing each event that is not an error to `onEvent`. Docker sends
 * a failure that happens once the stream has started as an `{"error": ...}` object inside a
 * successful response: that rejects too, with Docker's message, as `<failure>: <message>`.
 */
export async function followDockerStream(
  docker: Dockerode,
  stream: NodeJS.ReadableStream,
  failure: string,
  onEvent: (event: DockerStreamEvent) => void = () => {},
): Promise<void> {
  let reported: string | undefined;
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null) => {
        if (err) reject(new Error(`${failure}: ${dockerMessage(err)}`, { cause: err }));
        else if (reported !== undefined) reject(new Error(`${failure}: ${reported}`));
        else resolve();
      },
      (event: DockerStreamEvent) => {
        if (event.error !== undefined || event.errorDetail !== undefined) {
          reported ??= (event.errorDetail?.message ?? event.error ?? 'unknown error').trim();
          return;
        }
        onEvent(event);
      },
    );
  });
}

/**
 * Pulls `ref` and follows the pull to its end (see followDockerStream); a pull Docker refuses at
 * once, or one that fails on the way, rejects with `pull of <ref> failed: <Docker's message>`.
 */
export async function pullImageStream(docker: Dockerode, ref: string, onEvent: (event: DockerStreamEvent) => void, options: object = {}): Promise<void> {
  const failure = `pull of ${ref} failed`;
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.pull(ref, options);
  } catch (err) {
    throw new Error(`${failure}: ${dockerMessage(err)}`, { cause: err });
  }
  await followDockerStream(docker, stream, failure, onEvent);
}
