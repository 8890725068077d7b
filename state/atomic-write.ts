import { randomBytes } from 'node:crypto';
import { promises as fs, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Replace `file` with `data` so that a reader, or a crash at any moment, sees either the old
 * content or the new one, never a torn mix: write a temporary file beside it, fsync it, rename it
 * over the target, then fsync the directory so the rename itself survives a power cut.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await fs.open(tmp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.chmod(tmp, mode);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  const dirHandle = await fs.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** The temporary name writeFileAtomic uses: `.<name>.<pid>.<12 hex>.tmp`. */
const TEMPORARY_FILE = /^\..+\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/** The pid of the process that was writing `name`, when it is one of writeFileAtomic's temporary files. */
export function temporaryFileWriter(name: string): number | undefined {
  const pid = TEMPORARY_FILE.exec(name)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

/** Read and parse a JSON file the operator owns; a missing file yields `fallback`. */
export async function readJsonFile<T>(file: string, fallback: T): Promise<T> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message}); refusing to overwrite it — move it aside to start afresh`);
  }
}

/**
 * Read-modify-write cycles on one file run one after another, even across store instances in
 * this process, so concurrent callers never lose each other's update. (Another process is kept
 * out by the operator lock.)
 */
const fileQueues = new Map<string, Promise<unknown>>();

export function serialiseOnFile<T>(file: string, task: () => Promise<T>): Promise<T> {
  const key = path.resolve(file);
  const run = (fileQueues.get(key) ?? Promise.resolve()).then(task, task);
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  fileQueues.set(key, settled);
  void settled.then(() => {
    if (fileQueues.get(key) === settled) fileQueues.delete(key);
  });
  return run;
}

/** What identifies one version of a file: an atomic replace always gives a new inode. */
export interface FileSignature {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/**
 * The signature of `file` now, or undefined when it does not exist. A synchronous stat: it is
 * asked for once per service per pass, where a round trip through libuv's thread pool costs
 * twenty times the stat itself.
 */
export async function fileSignature(file: string): Promise<FileSignature | undefined> {
  try {
    const st = statSync(file, { bigint: true });
    return { ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function sameSignature(a: FileSignature | undefined, b: FileSignature | undefined): boolean {
  if (!a || !b) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * A JSON file read again only when it changed on disk (one stat instead of open, read, parse):
 * the operator asks for its allocation and secrets files once per service per pass. The file stays
 * the truth: another writer in this or another process is seen at the next read. What `read`
 * returns is shared with later reads: callers must not change it (they copy what they change).
 */
export class CachedJsonFile<T> {
  private cached?: { signature: FileSignature | undefined; value: T };

  constructor(
    readonly file: string,
    private readonly fallback: T,
  ) {}

  async read(): Promise<Readonly<T>> {
    const signature = await fileSignature(this.file);
    if (this.cached && sameSignature(this.cached.signature, signature)) return this.cached.value;
    const value = signature === undefined ? structuredClone(this.fallback) : await readJsonFile<T>(this.file, structuredClone(this.fallback));
    // A file replaced between the stat and the read is caught by the next stat (its inode differs).
    this.cached = { signature, value };
    return value;
  }

  /** Write atomically and remember what was written (`value` is kept: do not change it after). */
  async write(value: T, text: string, mode = 0o600): Promise<void> {
    await writeFileAtomic(this.file, text, mode);
    this.cached = { signature: await fileSignature(this.file), value };
  }
}
