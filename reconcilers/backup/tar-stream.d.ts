/** The part of tar-stream 2.2 (which ships no types) that the backup engine uses. */
declare module 'tar-stream' {
  import type { Readable, Writable } from 'node:stream';
  interface Headers {
    name: string;
    size?: number;
    mode?: number;
    mtime?: Date;
    type?: string;
    linkname?: string;
    uid?: number;
    gid?: number;
  }
  interface Extract extends Writable {
    on(event: 'entry', listener: (header: Headers, stream: Readable, next: (err?: Error) => void) => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }
  interface Pack extends Readable {
    entry(header: Headers, buffer?: Buffer | string, callback?: (err?: Error) => void): Writable;
    finalize(): void;
  }
  const tar: { extract(): Extract; pack(): Pack };
  export default tar;
}
