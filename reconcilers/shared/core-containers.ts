/**
 * One pass's view of the core containers that the shared resources read from: the VPN container
 * resolved by the owner guard (one inspect, which also gives its pid) and the reader of its
 * network state, shared by the firewall, the tunnel firewall, egress and the peer set. Held by
 * the pass (controllers/shared-resources.ts), never by a module: a new pass, a Docker event about
 * a core container, or a failed read drops it, and the next use resolves again.
 */
import type { ContainerNetworkReader } from './container-netns.js';
import type { ContainerClaim, OwnedContainer } from './owned-container.js';

export interface ReadableContainer {
  container: OwnedContainer;
  reader: ContainerNetworkReader;
}

export class CoreContainers {
  private readonly resolved = new Map<string, Promise<ReadableContainer>>();

  /** The container the claim means, resolved once while this view holds. */
  get(claim: ContainerClaim, resolve: () => Promise<ReadableContainer>): Promise<ReadableContainer> {
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

  forget(): void {
    this.resolved.clear();
  }
}
