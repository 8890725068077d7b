/**
 * What passes derive from one snapshot of the cell (a service's rendered plan), remembered while that snapshot is the operator's. It belongs to the snapshot
 * (`LoadedCell.memo`): reading the folder again gives a new snapshot and an empty memo, so nothing
 * derived outlives what it was derived from, and no module keeps anything between snapshots. Pure.
 */
export class SnapshotMemo {
  private readonly tables = new Map<string, Map<unknown, { variant: string; value: unknown }>>();

  /**
   * The value `compute` gives for `key` (a value of the snapshot: a manifest, a template) and
   * `variant` (everything else it depends on, as text), computed once while both stay the same.
   * The value is shared: callers must not change it.
   */
  remember<T>(table: string, key: unknown, variant: string, compute: () => T): T {
    let entries = this.tables.get(table);
    if (!entries) this.tables.set(table, (entries = new Map<unknown, { variant: string; value: unknown }>()));
    const known = entries.get(key);
    if (known && known.variant === variant) return known.value as T;
    const value = compute();
    entries.set(key, { variant, value });
    return value;
  }
}
