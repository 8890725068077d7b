import { byText } from '../crds/values.js';
import { readJsonFile, writeFileAtomic } from './atomic-write.js';
import type { AppliedRecord } from './hold.js';

interface AppliedFile {
  version: 1;
  documents: AppliedRecord[];
}

/**
 * The last accepted version of every document (state/hold.ts), kept in one owner-only file so an
 * operator restarted while a file is broken still holds what that file declared. Written only
 * when the set changed; a pass that accepted nothing new does not touch the disk.
 */
export class AppliedStore {
  private known?: Map<string, AppliedRecord>;
  private knownText?: string;
  private writing: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  async load(): Promise<ReadonlyMap<string, AppliedRecord>> {
    if (this.known) return this.known;
    const content = await readJsonFile<AppliedFile | undefined>(this.file, undefined);
    const records = new Map<string, AppliedRecord>();
    if (content !== undefined) {
      if (content?.version !== 1 || !Array.isArray(content.documents)) throw new Error(`${this.file}: not an applied-documents file of this version of pic; move it aside to start afresh`);
      for (const record of content.documents) records.set(record.key, record);
    }
    this.known = records;
    this.knownText = serialise(records);
    return records;
  }

  /** Keep `records` as the accepted set; returns whether anything was written. */
  async save(records: ReadonlyMap<string, AppliedRecord>): Promise<boolean> {
    const text = serialise(records);
    if (text === this.knownText) return false;
    this.knownText = text;
    this.known = new Map(records);
    const write = this.writing.then(() => writeFileAtomic(this.file, text));
    this.writing = write.catch(() => undefined);
    await write;
    return true;
  }
}

function serialise(records: ReadonlyMap<string, AppliedRecord>): string {
  const documents = [...records.values()].sort(byText((r) => r.key));
  return `${JSON.stringify({ version: 1, documents } satisfies AppliedFile)}\n`;
}
