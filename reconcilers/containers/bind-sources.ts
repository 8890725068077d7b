/**
 * Bind-mount sources on the host, checked without following symlinks before Docker sees them.
 *
 * The policy (policy.ts) keeps every source lexically inside the cell data directory. That is not
 * enough on its own: a service's container can write into its own data directory, and a symlink
 * it plants there (`data/notes/cfg -> /etc`) would make the next container's bind of
 * `data/notes/cfg` mount the host's /etc, since Docker resolves the path. So each component from
 * the data directory down is looked at with lstat, and a symlink anywhere below the data
 * directory refuses the bind, naming the path. Missing directories are created one component at
 * a time (mkdir does not follow a symlink in its last component), each looked at again after.
 *
 * The data directory itself, and the path above it, are the admin's: a data directory on another
 * disk through a symlink is fine.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface BindSourceRefusal {
  /** The bind source as the template renders it. */
  source: string;
  /** The component that is not a real directory. */
  path: string;
  message: string;
}

export type BindSourceMode = 'check' | 'prepare';

/**
 * Look at every bind source (all inside `dataDir`, as the policy checked); with `prepare`, create
 * what is missing (mode 0750). Returns every refusal; an empty list means Docker may mount them.
 */
export async function checkBindSources(dataDir: string, sources: readonly string[], mode: BindSourceMode): Promise<BindSourceRefusal[]> {
  const refusals: BindSourceRefusal[] = [];
  const root = path.posix.normalize(dataDir).replace(/(.)\/+$/, '$1');
  if (mode === 'prepare' && sources.length > 0) await fs.mkdir(root, { recursive: true, mode: 0o750 });
  for (const source of sources) {
    const refusal = await walk(root, source, mode);
    if (refusal) refusals.push(refusal);
  }
  return refusals;
}

async function walk(root: string, source: string, mode: BindSourceMode): Promise<BindSourceRefusal | undefined> {
  const relative = path.posix.relative(root, source);
  if (relative === '' || relative.startsWith('..') || path.posix.isAbsolute(relative)) {
    return { source, path: source, message: `bind source "${source}" is not inside the cell data directory "${root}"` };
  }
  const components = relative.split('/');
  let current = root;
  for (const [index, component] of components.entries()) {
    current = `${current}/${component}`;
    const last = index === components.length - 1;
    let stat = await lstatOrMissing(current);
    if (stat === undefined) {
      if (mode === 'check') return undefined; // the rest is created by prepare, one real directory at a time
      try {
        await fs.mkdir(current, { mode: 0o750 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      stat = await lstatOrMissing(current);
      if (stat === undefined) throw new Error(`bind source directory ${current} vanished right after it was created`);
    }
    if (stat.isSymbolicLink()) {
      return {
        source,
        path: current,
        message: `bind source "${source}" is refused: "${current}" is a symbolic link, and pic never follows one below the data directory (a container may have planted it); remove the link (rm ${current}) or change the template`,
      };
    }
    // The source itself may be a file (a config file bound in); everything above it must be a directory.
    if (!last && !stat.isDirectory()) {
      return { source, path: current, message: `bind source "${source}" is refused: "${current}" is not a directory` };
    }
    if (last && !stat.isDirectory() && !stat.isFile()) {
      return { source, path: current, message: `bind source "${source}" is refused: "${current}" is neither a directory nor a regular file` };
    }
  }
  return undefined;
}

async function lstatOrMissing(p: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
