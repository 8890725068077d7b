/**
 * A store package shipped as a ZIP (`<id>-<version>.zip`: manifest.json, compose-template.yml,
 * optionally install.sh), read with yauzl into memory. Every entry is checked before any content
 * is kept, and nothing is written by this module: an archive with one bad entry (an absolute
 * path, `..`, a link, a duplicate, a name that is not one of the package's files, a size over the
 * limit) is refused whole, and the caller writes nothing of it.
 */
import type yauzl from 'yauzl';

/** yauzl (and zlib under it) is loaded the first time a package comes as a ZIP: most stores never ship one. */
let yauzlModule: Promise<typeof yauzl> | undefined;
const loadYauzl = (): Promise<typeof yauzl> => (yauzlModule ??= import('yauzl').then((m) => m.default));

export const PACKAGE_FILES = ['manifest.json', 'compose-template.yml', 'install.sh'] as const;

export interface ZipLimits {
  /** Uncompressed size of one entry. */
  maxEntryBytes: number;
  /** Entries in the archive (folders included). */
  maxEntries: number;
}

/** What the checks know of one entry. */
export interface ZipEntryFacts {
  name: string;
  /** The Unix mode in the entry's external attributes (0 when the archiver recorded none). */
  mode: number;
  uncompressedSize: number;
  encrypted: boolean;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/**
 * Why an entry is refused, or undefined when it is one of the package's files (or a folder entry
 * of none, which is skipped). `seen` holds the names met before; the name is added. Pure.
 */
export function zipEntryProblem(entry: ZipEntryFacts, seen: Set<string>, limits: ZipLimits): string | undefined {
  const name = entry.name;
  const shown = JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}…` : name);
  if (name === '') return 'an entry has an empty name';
  if (name.includes('\0')) return `entry ${shown} has a NUL byte in its name`;
  if (name.startsWith('/') || name.includes('\\') || /^[A-Za-z]:/.test(name)) return `entry ${shown} has an absolute path`;
  if (name.split('/').includes('..')) return `entry ${shown} climbs out of the package with ..`;
  const type = entry.mode & S_IFMT;
  if (type === S_IFLNK) return `entry ${shown} is a symbolic link; a package holds regular files only`;
  if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) return `entry ${shown} is not a regular file (mode ${(entry.mode & 0o177777).toString(8)})`;
  if (seen.has(name)) return `entry ${shown} appears twice`;
  seen.add(name);
  if (entry.encrypted) return `entry ${shown} is encrypted`;
  if (name.endsWith('/') || type === S_IFDIR) return `entry ${shown} is a folder; a package holds its files at the top of the archive: ${PACKAGE_FILES.join(', ')}`;
  if (!(PACKAGE_FILES as readonly string[]).includes(name)) return `entry ${shown} is not a package file; a package holds ${PACKAGE_FILES.join(', ')} at the top of the archive, nothing else`;
  if (entry.uncompressedSize > limits.maxEntryBytes) return `entry ${shown} is ${entry.uncompressedSize} bytes, more than the ${limits.maxEntryBytes} allowed`;
  return undefined;
}

/** The archive's files by name, or why it is refused (the first bad entry). */
export async function readPackageZip(buffer: Buffer, limits: ZipLimits): Promise<{ files?: Map<string, Buffer>; problem?: string }> {
  const zipLib = await loadYauzl();
  let zip: yauzl.ZipFile;
  try {
    zip = await zipLib.fromBufferPromise(buffer, { lazyEntries: true, decodeStrings: false, validateEntrySizes: true });
  } catch (err) {
    return { problem: `is not a readable ZIP archive: ${(err as Error).message}` };
  }
  if (zip.entryCount > limits.maxEntries) {
    zip.close();
    return { problem: `holds ${zip.entryCount} entries, more than the ${limits.maxEntries} allowed` };
  }
  const files = new Map<string, Buffer>();
  const seen = new Set<string>();
  try {
    for (;;) {
      const entry = await nextEntry(zip);
      if (!entry) break;
      let name: string;
      try {
        name = zipLib.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
      } catch (err) {
        return { problem: `an entry's name cannot be read: ${(err as Error).message}` };
      }
      const facts: ZipEntryFacts = { name, mode: (entry.externalFileAttributes >>> 16) & 0xffff, uncompressedSize: entry.uncompressedSize, encrypted: entry.isEncrypted() };
      const problem = zipEntryProblem(facts, seen, limits);
      if (problem) return { problem };
      files.set(name, await readEntry(zip, entry, limits.maxEntryBytes));
    }
  } catch (err) {
    return { problem: `is not a readable ZIP archive: ${(err as Error).message}` };
  } finally {
    zip.close();
  }
  return { files };
}

function nextEntry(zip: yauzl.ZipFile): Promise<yauzl.Entry | undefined> {
  return new Promise((resolve, reject) => {
    const onEntry = (entry: yauzl.Entry) => {
      cleanup();
      resolve(entry);
    };
    const onEnd = () => {
      cleanup();
      resolve(undefined);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
    };
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

async function readEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, maxBytes: number): Promise<Buffer> {
  const stream = await zip.openReadStreamPromise(entry);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) {
      stream.destroy();
      throw new Error(`an entry inflates past the ${maxBytes} bytes allowed`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
