/** The snapshot shapes the backup engine works with; defined beside the store that keeps them. */
export type { ArchiveRecord, ArchiveSource, FileEntry, ServiceSnapshot, SnapshotManifest, Verification } from '../../state/snapshot-types.js';
