/**
 * Streams between Docker and archive files: a directory read through a helper container's
 * getArchive, gzipped and hashed as it streams; an archive file read back into its entry list and
 * safety problems; an archive put into a helper container's mount. Thin: every rule is in entries.ts.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { PassThrough, Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type Dockerode from 'dockerode';
import tar from 'tar-stream';
import { checkEntry, toFileEntry, type TarHeader } from './entries.js';
import type { FileEntry } from './types.js';

/** Called with the bytes read so far (uncompressed tar bytes from Docker, or archive bytes). */
export type OnBytes = (bytes: number) => void;

interface TarReadResult {
  entries: FileEntry[];
  /** Why the archive may not be restored, one sentence per refused entry (at most 20). */
  refused: string[];
}

/** A writable that parses a tar stream and records every entry, hashing file contents. */
function tarRecorder(): { sink: Writable; done: Promise<TarReadResult> } {
  const extract = tar.extract();
  const entries: FileEntry[] = [];
  const refused: string[] = [];
  const symlinks = new Set<string>();
  extract.on('entry', (header: TarHeader, stream: Readable, next: (err?: Error) => void) => {
    const problem = checkEntry(header, symlinks);
    if (problem && refused.length < 20) refused.push(problem);
    const entry = toFileEntry(header);
    if (entry.type === 'symlink') symlinks.add(entry.path);
    if (entry.type === 'file') {
      const hash = createHash('sha256');
      stream.on('data', (chunk: Buffer) => hash.update(chunk));
      stream.on('end', () => {
        entry.sha256 = hash.digest('hex');
        entries.push(entry);
        next();
      });
      stream.on('error', next);
    } else {
      stream.on('end', () => {
        entries.push(entry);
        next();
      });
      stream.resume();
    }
  });
  const done = new Promise<TarReadResult>((resolve, reject) => {
    extract.on('finish', () => resolve({ entries, refused }));
    extract.on('error', reject);
  });
  // The pipeline that feeds the recorder reports the same failure; this one must not go unhandled.
  done.catch(() => undefined);
  return { sink: extract as unknown as Writable, done };
}

/** A writable that writes every chunk to both streams, at the pace of the slower one. */
function teeTo(a: PassThrough, b: PassThrough): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      const okA = a.write(chunk);
      const okB = b.write(chunk);
      if (okA && okB) return cb();
      let waiting = (okA ? 0 : 1) + (okB ? 0 : 1);
      const drained = () => {
        waiting--;
        if (waiting === 0) cb();
      };
      if (!okA) a.once('drain', drained);
      if (!okB) b.once('drain', drained);
    },
    final(cb) {
      a.end();
      b.end();
      cb();
    },
    // Destroyed after a clean finish too (autoDestroy): only a failure is passed on to the readers.
    destroy(err, cb) {
      if (err) {
        a.destroy(err);
        b.destroy(err);
      }
      cb(err);
    },
  });
}

async function drainResponse(response: unknown): Promise<void> {
  // dockerode may answer with the response stream: drain it so the request completes.
  const stream = response as Readable | undefined;
  if (stream && typeof stream.resume === 'function' && typeof stream.on === 'function') {
    await new Promise<void>((resolve, reject) => {
      stream.on('end', resolve).on('error', reject).resume();
    });
  }
}

function hashingCounter(onBytes?: OnBytes): { transform: Transform; digest: () => { sha256: string; size: number } } {
  const hash = createHash('sha256');
  let size = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      onBytes?.(size);
      cb(null, chunk);
    },
  });
  return { transform, digest: () => ({ sha256: hash.digest('hex'), size }) };
}

export interface WrittenArchive extends TarReadResult {
  sha256: string;
  size: number;
  /** Uncompressed tar bytes read from Docker. */
  tarBytes: number;
}

/**
 * Read `dir` of a (created, not necessarily started) container through the Docker API and write it
 * to `outFile` as a .tar.gz, recording each entry on the way. Entries are named `./...`.
 */
export async function archiveContainerPath(docker: Dockerode, containerId: string, dir: string, outFile: string, onBytes?: OnBytes): Promise<WrittenArchive> {
  const source = (await docker.getContainer(containerId).getArchive({ path: `${dir.replace(/\/+$/, '')}/.` })) as Readable;
  const counted = hashingCounter(onBytes);
  const recorder = tarRecorder();
  const toGzip = new PassThrough({ highWaterMark: 1 << 20 });
  const toRecorder = new PassThrough({ highWaterMark: 1 << 20 });
  const fileHash = hashingCounter();
  // One read of Docker's stream feeds both the gzip file and the entry recorder.
  const tee = pipeline(source, counted.transform, teeTo(toGzip, toRecorder));
  const written = pipeline(toGzip, createGzip({ level: 6 }), fileHash.transform, createWriteStream(outFile, { mode: 0o600 }));
  const recorded = pipeline(toRecorder, recorder.sink);
  await Promise.all([tee, written, recorded]);
  const result = await recorder.done;
  return { ...result, ...fileHash.digest(), tarBytes: counted.digest().size };
}

export interface ReadArchive extends TarReadResult {
  sha256: string;
  size: number;
}

/** Read an archive file: its hash and size, its entries, and why it may not be restored. */
export async function readArchiveFile(file: string, onBytes?: OnBytes): Promise<ReadArchive> {
  const counted = hashingCounter(onBytes);
  const recorder = tarRecorder();
  await pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), counted.transform, createGunzip(), recorder.sink);
  const result = await recorder.done;
  return { ...result, ...counted.digest() };
}

/**
 * Extract an archive file into `dir` of a (created) container and read it on the way: one read
 * and one gunzip feed both Docker (an uncompressed tar) and the entry recorder, so the file's
 * hash, its entries and why it may not be restored are known when the extraction ends.
 */
export async function putArchiveFileRead(docker: Dockerode, containerId: string, dir: string, file: string, onBytes?: OnBytes): Promise<{ read: ReadArchive | Error; put?: Error }> {
  const counted = hashingCounter(onBytes);
  const recorder = tarRecorder();
  const toDocker = new PassThrough({ highWaterMark: 1 << 20 });
  const toRecorder = new PassThrough({ highWaterMark: 1 << 20 });
  const read = pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), counted.transform, createGunzip(), teeTo(toDocker, toRecorder));
  // Docker refusing the archive must not stall the read: the rest is then read for the check alone.
  const put = docker
    .getContainer(containerId)
    .putArchive(toDocker, { path: dir })
    .then(drainResponse)
    .then(
      () => undefined,
      (err: Error) => {
        toDocker.resume();
        return err;
      },
    );
  const [readOutcome, recordOutcome] = await Promise.allSettled([read, pipeline(toRecorder, recorder.sink)]);
  const putError = await put;
  const failed = (readOutcome.status === 'rejected' ? readOutcome.reason : recordOutcome.status === 'rejected' ? recordOutcome.reason : undefined) as Error | string | undefined;
  const outcome: ReadArchive | Error = failed !== undefined ? (failed instanceof Error ? failed : new Error(String(failed))) : { ...(await recorder.done), ...counted.digest() };
  return { read: outcome, ...(putError ? { put: putError } : {}) };
}

/** Create the empty folder `name` (0700) in `dir` of a (created) container. */
export async function putDirectory(docker: Dockerode, containerId: string, dir: string, name: string): Promise<void> {
  const pack = tar.pack();
  pack.entry({ name: `${name}/`, type: 'directory', mode: 0o700 });
  pack.finalize();
  const response: unknown = await docker.getContainer(containerId).putArchive(pack, { path: dir });
  const stream = response as Readable | undefined;
  if (stream && typeof stream.resume === 'function' && typeof stream.on === 'function') {
    await new Promise<void>((resolve, reject) => {
      stream.on('end', resolve).on('error', reject).resume();
    });
  }
}

/** Read the entries of `dir` of a container, without writing anything. */
export async function listContainerPath(docker: Dockerode, containerId: string, dir: string, onBytes?: OnBytes): Promise<TarReadResult> {
  const source = (await docker.getContainer(containerId).getArchive({ path: `${dir.replace(/\/+$/, '')}/.` })) as Readable;
  const recorder = tarRecorder();
  // The tree's files are hashed one by one by the recorder; the tar stream itself needs no digest.
  if (!onBytes) {
    await pipeline(source, recorder.sink);
    return recorder.done;
  }
  let size = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      onBytes(size);
      cb(null, chunk);
    },
  });
  await pipeline(source, counted, recorder.sink);
  return recorder.done;
}
