/**
 * Service IPs: each installed service gets one stable IPv4 address from the cell's service pool
 * (`Cell.spec.network.servicePool`, e.g. 172.20.0.20-172.20.0.254), kept across restarts and
 * reconciles, and freed when the service is uninstalled.
 *
 * The parsing and choosing are pure functions; `IpAllocationStore` keeps the assignments in a
 * JSON file `{ "assignments": { "<owner>": "<ip>" } }` (0600, atomic writes, written only on change).
 */
import { formatIpv4, inNetwork, lastAddress, parseCidr, parseIpv4, type Ipv4Network } from '../crds/ipv4.js';
import { fileSignature, readJsonFile, sameSignature, serialiseOnFile, writeFileAtomic, type FileSignature } from './atomic-write.js';

export interface IpPool {
  /** First and last address, inclusive, as unsigned 32-bit numbers. */
  start: number;
  end: number;
  size: number;
  text: string;
}

/**
 * Parse a pool `first-last` (both IPv4, first ≤ last). With `subnet`, both ends must lie inside
 * it, and the pool may not include the subnet's network or broadcast address.
 */
export function parsePool(text: string, subnet?: string | Ipv4Network): IpPool {
  const m = /^\s*([^-\s]+)\s*-\s*([^-\s]+)\s*$/.exec(text);
  if (!m) throw new Error(`service pool "${text}" must be "<first IPv4>-<last IPv4>", e.g. 172.20.0.20-172.20.0.254`);
  const start = parseIpv4(m[1] as string);
  const end = parseIpv4(m[2] as string);
  if (start === undefined) throw new Error(`service pool "${text}": "${m[1]}" is not an IPv4 address`);
  if (end === undefined) throw new Error(`service pool "${text}": "${m[2]}" is not an IPv4 address`);
  if (start > end) throw new Error(`service pool "${text}" starts after it ends`);
  if (subnet !== undefined) {
    const c = typeof subnet === 'string' ? parseCidr(subnet) : subnet;
    for (const [label, value] of [['first', start], ['last', end]] as const) {
      if (!inNetwork(value, c)) throw new Error(`service pool "${text}": its ${label} address ${formatIpv4(value)} is outside the subnet ${c.text}`);
    }
    if (c.prefix < 31) {
      const broadcast = lastAddress(c);
      if (start === c.network) throw new Error(`service pool "${text}" includes ${formatIpv4(c.network)}, the network address of ${c.text}`);
      if (end === broadcast) throw new Error(`service pool "${text}" includes ${formatIpv4(broadcast)}, the broadcast address of ${c.text}`);
    }
  }
  return { start, end, size: end - start + 1, text: `${formatIpv4(start)}-${formatIpv4(end)}` };
}

function inPool(pool: IpPool, ip: string): boolean {
  const value = parseIpv4(ip);
  return value !== undefined && value >= pool.start && value <= pool.end;
}

/**
 * The IP for `owner`: its current assignment when that is still valid (inside the pool, not
 * reserved, not also held by another owner), otherwise the lowest address of the pool that no
 * other owner holds and that is not reserved. Throws when the pool is exhausted.
 */
export function allocateServiceIp(
  pool: IpPool,
  assignments: Readonly<Record<string, string>>,
  owner: string,
  reserved: ReadonlySet<string> = new Set(),
): string {
  const taken = new Set<number>();
  for (const [other, ip] of Object.entries(assignments)) {
    if (other === owner) continue;
    const value = parseIpv4(ip);
    if (value !== undefined) taken.add(value);
  }
  for (const ip of reserved) {
    const value = parseIpv4(ip);
    if (value !== undefined) taken.add(value);
  }
  const current = Object.prototype.hasOwnProperty.call(assignments, owner) ? assignments[owner] : undefined;
  if (current !== undefined && inPool(pool, current) && !taken.has(parseIpv4(current) as number)) return formatIpv4(parseIpv4(current) as number);
  // At most taken.size addresses can be skipped before a free one, so this loop stays short.
  for (let value = pool.start; value <= pool.end; value += 1) {
    if (!taken.has(value)) return formatIpv4(value);
  }
  throw new Error(
    `service pool ${pool.text} is exhausted: all ${pool.size} address${pool.size === 1 ? '' : 'es'} are assigned or reserved, so "${owner}" gets none; uninstall a service or widen Cell spec.network.servicePool`,
  );
}

export interface AllocationResult {
  ip: string;
  /** True when the owner had an address and has been moved to another (its containers must be recreated). */
  changed: boolean;
  /** The address the owner had before, when it changed. */
  previousIp?: string;
  /** Why it changed, for the owner's status and the event log. */
  reason?: string;
}

interface AllocationFile {
  assignments: Record<string, string>;
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

function isAllocationFile(value: unknown): value is AllocationFile {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const assignments = (value as Record<string, unknown>).assignments;
  return (
    assignments !== null &&
    typeof assignments === 'object' &&
    !Array.isArray(assignments) &&
    Object.values(assignments as Record<string, unknown>).every((ip) => typeof ip === 'string')
  );
}

export class IpAllocationStore {
  private current: Record<string, string> | undefined;
  /** The file version `current` was read from or written as; an unchanged file is not read again. */
  private signature: FileSignature | undefined;
  /** How many owners hold each address of `current`, so a kept address is confirmed without a scan. */
  private holders = new Map<string, number>();
  /** The pool last parsed, by its text and subnet: every service's reconcile asks with the same two. */
  private pool: { text: string; subnet: string; pool: IpPool } | undefined;

  /**
   * `dryRun` (`pic plan`): allocations and releases are computed exactly as they would be, and
   * kept in this object for the rest of the run, but never saved: the file is not written.
   */
  constructor(
    readonly file: string,
    private readonly options: { dryRun?: boolean } = {},
  ) {}

  /**
   * Read the file (a missing file is an empty allocation) so that `assignments()` reflects it.
   * Every change checks the file first anyway (re-reading it when it changed on disk): the file,
   * not this object, is the truth.
   */
  load(): Promise<void> {
    return this.serialise(async () => {
      await this.loadNow();
    });
  }

  /**
   * The address of `owner` in the pool `poolText` (validated against `subnet`). Stable: an owner
   * keeps its address as long as it stays valid; if the pool changed and the address fell out of
   * it (or became reserved), the owner is moved and the result says so.
   */
  allocate(owner: string, poolText: string, subnet: string, reserved: ReadonlySet<string> = new Set()): Promise<AllocationResult> {
    return this.serialise(async () => {
      const pool = this.poolOf(poolText, subnet);
      const assignments = await this.loadNow();
      const previous = Object.prototype.hasOwnProperty.call(assignments, owner) ? assignments[owner] : undefined;
      // The common case, every reconcile of an installed service: its address is still its own.
      if (previous !== undefined && this.holders.get(previous) === 1 && !reserved.has(previous) && inPool(pool, previous) && formatIpv4(parseIpv4(previous)!) === previous) {
        return { ip: previous, changed: false };
      }
      const ip = allocateServiceIp(pool, assignments, owner, reserved);
      if (ip === previous) return { ip, changed: false };
      const next = { ...assignments };
      setOwn(next, owner, ip);
      await this.save(next);
      if (previous === undefined) return { ip, changed: false };
      const reason = !inPool(pool, previous)
        ? `${previous} is outside the service pool ${pool.text}`
        : reserved.has(previous)
          ? `${previous} is reserved`
          : `${previous} is also assigned to another owner`;
      return { ip, changed: true, previousIp: previous, reason: `moved from ${previous} to ${ip}: ${reason}` };
    });
  }

  /** Free the address of `owner`; writes only when it had one. Returns whether it had one. */
  release(owner: string): Promise<boolean> {
    return this.serialise(async () => {
      const assignments = await this.loadNow();
      if (!Object.prototype.hasOwnProperty.call(assignments, owner)) return false;
      const next = { ...assignments };
      delete next[owner];
      await this.save(next);
      return true;
    });
  }

  /** The address of `owner` as of the last load or change, if it has one. */
  assignmentOf(owner: string): string | undefined {
    return this.current && Object.prototype.hasOwnProperty.call(this.current, owner) ? this.current[owner] : undefined;
  }

  /** A copy of the assignments as of the last load or change (empty before either). */
  assignments(): Record<string, string> {
    return { ...(this.current ?? {}) };
  }

  private poolOf(text: string, subnet: string): IpPool {
    if (this.pool?.text !== text || this.pool.subnet !== subnet) this.pool = { text, subnet, pool: parsePool(text, subnet) };
    return this.pool.pool;
  }

  private serialise<T>(task: () => Promise<T>): Promise<T> {
    return serialiseOnFile(this.file, task);
  }

  /** The assignments on disk: read again only when the file changed since it was last read or written. */
  private async loadNow(): Promise<Record<string, string>> {
    const signature = await fileSignature(this.file);
    if (this.current && sameSignature(signature, this.signature)) return this.current;
    const data = signature === undefined ? { assignments: {} } : await readJsonFile<unknown>(this.file, { assignments: {} });
    if (!isAllocationFile(data)) {
      throw new Error(`${this.file}: expected { "assignments": { "<owner>": "<ip>" } }; refusing to overwrite it — fix or move it aside`);
    }
    this.remember({ ...data.assignments }, signature);
    return this.current!;
  }

  private remember(assignments: Record<string, string>, signature: FileSignature | undefined): void {
    this.current = assignments;
    this.signature = signature;
    this.holders = new Map();
    for (const ip of Object.values(assignments)) this.holders.set(ip, (this.holders.get(ip) ?? 0) + 1);
  }

  private async save(assignments: Record<string, string>): Promise<void> {
    const sorted: Record<string, string> = {};
    for (const owner of Object.keys(assignments).sort()) setOwn(sorted, owner, assignments[owner]);
    if (this.options.dryRun) {
      // Held against the file as it was read: while it does not change, loads return this.
      this.remember(sorted, this.signature);
      return;
    }
    await writeFileAtomic(this.file, `${JSON.stringify({ assignments: sorted }, null, 2)}\n`, 0o600);
    this.remember(sorted, await fileSignature(this.file));
  }
}
