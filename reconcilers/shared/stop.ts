/**
 * pic's stops are bounded. A container is given the time it asks for (its `StopTimeout`, from a
 * template's `stop_grace_period`) before Docker kills it, but never more than ten minutes: a
 * value of hours, or -1 ("wait for ever"), would hold an upgrade, a removal or a backup that long.
 */
import type Dockerode from 'dockerode';

export const MAX_STOP_SECONDS = 600;
/** What Docker waits when a container names no stop timeout. */
const DOCKER_DEFAULT_STOP_SECONDS = 10;

/** The `t` of a stop for a container whose StopTimeout is `configured`. Pure. */
export function boundedStopSeconds(configured: number | null | undefined): number {
  if (configured === undefined || configured === null) return DOCKER_DEFAULT_STOP_SECONDS;
  if (!Number.isFinite(configured) || configured < 0 || configured > MAX_STOP_SECONDS) return MAX_STOP_SECONDS;
  return Math.floor(configured);
}

/** The StopTimeout an inspected container carries (Docker's types leave the field out). */
export function stopTimeoutOf(info: Dockerode.ContainerInspectInfo): number | undefined {
  const value = (info.Config as { StopTimeout?: unknown } | undefined)?.StopTimeout;
  return typeof value === 'number' ? value : undefined;
}

/**
 * Stops container `id` with an explicit, bounded timeout. `known` is its StopTimeout when the
 * caller inspected it already (undefined inside when it has none); otherwise it is inspected
 * once. Docker's errors (404, 304) reach the caller as they are.
 */
export async function stopContainerBounded(docker: Dockerode, id: string, known?: { stopTimeout: number | null | undefined }): Promise<void> {
  const container = docker.getContainer(id);
  const configured = known ? known.stopTimeout : stopTimeoutOf(await container.inspect());
  await container.stop({ t: boundedStopSeconds(configured) });
}
