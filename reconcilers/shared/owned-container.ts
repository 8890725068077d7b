/**
 * Before pic runs a program in a container it addresses by name (`wg syncconf` with the server's
 * private key, `iptables-restore`, an account command with a password on stdin) or signals it,
 * it makes sure the name leads to the container it means. Docker names are first come, first
 * served: a store container that took `cell-wireguard` while the core one was gone would
 * otherwise be handed the key.
 *
 * The name is resolved to an id once (one inspect, or an entry of a listing the pass already
 * holds), the id's labels are checked against the claim, and every later call goes to the id, so
 * a container swapped in under the name meanwhile is never reached.
 */
import type Dockerode from 'dockerode';
import { describeHolder, LABEL } from '../containers/labels.js';
import { dockerMessage, dockerStatusCode } from '../containers/types.js';
import { TerminalError } from '../errors.js';
import { ContainerUnavailableError } from './exec.js';

export { describeHolder } from '../containers/labels.js';

/** What pic is about to do with the container; the refusal says it will not. */
export type ContainerUse = 'exec into' | 'signal' | 'read from' | 'copy into';

/** The container pic means by a name, and who may hold that name. */
export interface ContainerClaim {
  /** The name pic addresses it by, e.g. `cell-wireguard`. */
  name: string;
  /** The owner label pic puts on it, e.g. `Core/wireguard` or `ServiceInstall/mail`. */
  owner: string;
  /** This cell's name (the cell label). */
  cell: string;
  /**
   * `pic`: pic creates the container, so it carries both labels. `admin`: the admin runs it, so
   * it may carry none of pic's labels, but never those of anything else pic runs.
   */
  createdBy: 'pic' | 'admin';
  /** How a refusal names the container meant, e.g. "pic's WireGuard". */
  role: string;
  use: ContainerUse;
}

/** What Docker says of the container holding the name: from one inspect, or a listing's entry. */
export interface NameHolder {
  id: string;
  labels: Readonly<Record<string, string>>;
}

/** A container the claim was checked against: exec into it and signal it by `id`. */
export interface OwnedContainer {
  name: string;
  id: string;
  /**
   * Its main process on the host, when the check inspected it and it runs: the way to its
   * namespaces for reads from the host (shared/container-netns.ts).
   */
  pid?: number;
}

/** The name is held by a container that is not the one pic means: pic will not touch it. */
export class ContainerNotOwnedError extends TerminalError {
  constructor(
    message: string,
    readonly container: string,
    readonly holderId: string,
  ) {
    super(message, 'ContainerNotOwned');
  }
}

/** Why the holder is not the container the claim means, or undefined when it is. Pure. */
export function claimRefusal(claim: ContainerClaim, holder: NameHolder): string | undefined {
  const owner = holder.labels[LABEL.owner];
  const cell = holder.labels[LABEL.cell];
  const ours = owner === claim.owner && cell === claim.cell;
  if (ours || (claim.createdBy === 'admin' && owner === undefined)) return undefined;
  return `${claim.name} is held by ${describeHolder(holder.labels, claim.cell)} (container ${shortId(holder.id)}), not by ${claim.role}: pic will not ${claim.use} it`;
}

/**
 * The container the claim means, by id. `listed` is a listing the pass already holds (for
 * instance the cell's containers): an entry of that name which passes the check is used without
 * asking Docker; otherwise the name is inspected once. Throws ContainerUnavailableError when no
 * container has the name (a fault that may pass), ContainerNotOwnedError when another holds it.
 */
export async function resolveOwnedContainer(
  docker: Dockerode,
  claim: ContainerClaim,
  listed?: readonly (NameHolder & { name: string })[],
): Promise<OwnedContainer> {
  const known = listed?.find((c) => c.name === claim.name);
  if (known && claimRefusal(claim, known) === undefined) return { name: claim.name, id: known.id };
  let info: Dockerode.ContainerInspectInfo;
  try {
    info = await docker.getContainer(claim.name).inspect();
  } catch (err) {
    if (dockerStatusCode(err) === 404) throw new ContainerUnavailableError(claim.name, 'no such container');
    throw new Error(`cannot inspect container ${claim.name}: ${dockerMessage(err)}`, { cause: err });
  }
  const holder = { id: info.Id, labels: info.Config?.Labels ?? {} };
  const refusal = claimRefusal(claim, holder);
  if (refusal !== undefined) throw new ContainerNotOwnedError(refusal, claim.name, info.Id);
  const pid = info.State?.Running ? info.State.Pid : 0;
  return { name: claim.name, id: info.Id, ...(pid > 0 ? { pid } : {}) };
}

function shortId(id: string): string {
  return `${id.replace(/^sha256:/, '').slice(0, 12)}…`;
}
