/**
 * The dry run's record (`pic plan`). The operator's own reconcile runs with a dry-run context
 * (context.ts): where it would change something — admit a version, start an upgrade, allocate or
 * release an address, generate a secret, create, start or remove a container — it notes a line
 * here under the document's key instead. Nothing else of the pipeline differs.
 */
import { publishedPortsOf } from '../reconcilers/containers/translate.js';
import type { ContainerAction, DesiredContainer } from '../reconcilers/containers/types.js';

export interface PlannedChange {
  key: string;
  lines: string[];
}

export class PlanJournal {
  private readonly byKey = new Map<string, string[]>();
  /** Facts worth telling that change nothing: a newer catalog version, an upgrade that failed. */
  readonly notices: string[] = [];

  /** What the reconcile of `key` would change, one line. */
  note(key: string, line: string): void {
    const lines = this.byKey.get(key);
    if (lines) lines.push(line);
    else this.byKey.set(key, [line]);
  }

  notice(text: string): void {
    this.notices.push(text);
  }

  /** The container actions a dry run of `key` planned, one line each (the network is always ensured: not a change). */
  noteActions(key: string, actions: readonly ContainerAction[], after?: string): void {
    const lines = actions.filter((a) => a.type !== 'ensure-network').map(describeAction);
    for (const line of lines) this.note(key, line);
    if (lines.length > 0 && after) this.note(key, after);
  }

  /** Every key with something to change, in the order they were first noted. */
  changes(): PlannedChange[] {
    return [...this.byKey].map(([key, lines]) => ({ key, lines }));
  }
}

/** What a container opens on the host, for the admin who consented to it: ", publishing host port 25/tcp on 0.0.0.0 → cell-mail:25". */
function publishing(container: DesiredContainer): string {
  const ports = publishedPortsOf({ containers: [container], volumes: [] });
  return ports.length === 0 ? '' : `, publishing host port${ports.length === 1 ? '' : 's'} ${ports.join(', ')} (consented in spec.publish)`;
}

/** One line per action, in the order they would run. */
export function describeAction(a: ContainerAction): string {
  switch (a.type) {
    case 'conflict':
      return `! conflict ${a.name}: ${a.message}`;
    case 'remove':
      return `- remove container ${a.name} (${a.reason})`;
    case 'ensure-network':
      return '+ ensure network';
    case 'create-volume':
      return `+ volume ${a.volume.name} (kept if it exists)`;
    case 'pull-image':
      return `+ pull image ${a.image}`;
    case 'create':
      return `+ create container ${a.container.name} from ${String(a.container.create.Image)}${publishing(a.container)}`;
    case 'recreate':
      return `~ recreate container ${a.container.name} (${a.reason})${publishing(a.container)}`;
    case 'start':
      return `> start container ${a.container.name}`;
  }
}
