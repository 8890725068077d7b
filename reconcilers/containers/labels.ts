/**
 * The labels pic puts on every container, volume and network it creates, and reads back to know
 * what it owns. The one definition of each name: everything that writes or filters by a pic label
 * imports it from here.
 */

export const LABEL = {
  /** The cell a resource belongs to: two cells (or a test and a cell) can share one dockerd. */
  cell: 'ngo.pic.cell',
  /** The document a resource belongs to, e.g. `ServiceInstall/notes`. */
  owner: 'ngo.pic.owner',
  /** The Compose service key the container was rendered from. */
  service: 'ngo.pic.service',
  /** A hash of everything the container was created from; a difference means "recreate". */
  specHash: 'ngo.pic.spec-hash',
  /** The key of a named volume under the template's top-level `volumes`. */
  volume: 'ngo.pic.volume',
  /** A file pic mounts itself (`<prefix><n>`: its target and content digest), e.g. a Connection's configFile. */
  ownMount: 'ngo.pic.own-mount.',
  /** The catalog version of the package the resource was rendered from. */
  version: 'ngo.pic.version',
  /** Compose's own labels, set only when asked, so `docker compose -p` lists the containers. */
  composeProject: 'com.docker.compose.project',
  composeService: 'com.docker.compose.service',
} as const;

/** The owner label's name, for filters (the Docker event source, listings). */
export const OWNER_LABEL: string = LABEL.owner;

/** Label prefixes a template may not set: pic's and Compose's labels mean what pic says they mean. */
export const RESERVED_LABEL_PREFIXES = ['ngo.pic.', 'com.docker.compose.'] as const;

/**
 * Who holds a container or volume, in the words of a refusal: its owner label (with the cell when
 * it is another cell's), or "a container with no pic labels".
 */
export function describeHolder(labels: Readonly<Record<string, string>>, cell: string, noun = 'container'): string {
  const owner = labels[LABEL.owner];
  const holderCell = labels[LABEL.cell];
  if (owner === undefined) return holderCell === undefined ? `a ${noun} with no pic labels` : `a ${noun} of cell ${holderCell} with no pic owner`;
  return holderCell === cell ? owner : `${owner} of cell ${holderCell ?? '(none)'}`;
}
