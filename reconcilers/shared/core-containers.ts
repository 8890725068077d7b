/**
 * One pass's view of the core containers that the shared resources read from: the VPN container
 * resolved by the owner guard (one inspect, which also gives its pid) and the reads of its network
 * state, shared by the firewall, the tunnel firewall, egress and the peer set. Held by the pass
 * (controllers/shared-resources.ts), never by a module: a new pass, a Docker event about a core
 * container, or a failed reconcile drops it, and the next use resolves and reads again.
 *
 * A read is shared the way the pass's container listing is: each resource key gets the pass's
 * read once, and only while pic has written nothing into a core container since it was taken; a
 * second reconcile of the same key (a retry, a change) reads afresh. So the resources of one pass
 * cost one `iptables-save` and one `ip` between them, and no plan is made from a read that
 * predates a write of pic's own.
 */
import type { ContainerNetworkReader } from './container-netns.js';
import type { ContainerClaim, OwnedContainer } from './owned-container.js';

export interface ReadableContainer {
  container: OwnedContainer;
  reader: ContainerNetworkReader;
}

/** What one resource key sees of the pass's core containers. */
export interface CoreView {
  /** The container the claim means, resolved once for the pass; its reader shares the pass's reads. */
  get(claim: ContainerClaim, resolve: () => Promise<ReadableContainer>): Promise<ReadableContainer>;
  /** pic wrote into a core container: reads taken before are not handed out again. */
  wrote(): void;
}

interface SharedRead {
  generation: number;
  value: Promise<unknown>;
  takenBy: Set<string>;
}

export class CoreContainers {
  private readonly resolved = new Map<string, Promise<ReadableContainer>>();
  private readonly reads = new Map<string, SharedRead>();
  private generation = 0;

  /** The view of one resource key (its queue key). */
  forKey(key: string): CoreView {
    return {
      get: async (claim, resolve) => {
        const { container, reader } = await this.resolve(claim, resolve);
        return { container, reader: this.sharedReader(key, container.id, reader) };
      },
      wrote: () => {
        this.generation++;
      },
    };
  }

  forget(): void {
    this.resolved.clear();
    this.reads.clear();
  }

  private resolve(claim: ContainerClaim, resolve: () => Promise<ReadableContainer>): Promise<ReadableContainer> {
    const key = `${claim.cell}\0${claim.name}\0${claim.owner}\0${claim.createdBy}`;
    let known = this.resolved.get(key);
    if (!known) {
      known = resolve();
      this.resolved.set(key, known);
      // A refusal or a fault is not remembered: the next use asks Docker again.
      known.catch(() => this.resolved.delete(key));
    }
    return known;
  }

  private sharedReader(key: string, containerId: string, reader: ContainerNetworkReader): ContainerNetworkReader {
    const share = <T>(what: string, read: () => Promise<T>): Promise<T> => {
      const id = `${containerId}\0${what}`;
      const known = this.reads.get(id);
      if (known && known.generation === this.generation && !known.takenBy.has(key)) {
        known.takenBy.add(key);
        return known.value as Promise<T>;
      }
      const value = read();
      const entry: SharedRead = { generation: this.generation, value, takenBy: new Set([key]) };
      this.reads.set(id, entry);
      value.catch(() => {
        if (this.reads.get(id) === entry) this.reads.delete(id);
      });
      return value;
    };
    return {
      via: reader.via,
      iptablesSave: () => share('iptables-save', () => reader.iptablesSave()),
      ipJson: (commands) => share(`ip ${commands.join('; ')}`, () => reader.ipJson(commands)),
      wireguard: (iface) => share(`wireguard ${iface}`, () => reader.wireguard(iface)),
    };
  }
}
