/**
 * The two DNS messages the reconciler needs (RFC 1035 §4): a query for the SOA of the cell's zone,
 * and the reading of its answer down to the serial. Pure: bytes in, bytes or a verdict out; the
 * socket lives in observe.ts.
 */

/** What a DNS server's answer says about the zone. */
export type ServedZone =
  /** An authoritative answer with the zone's SOA: the serial it serves. */
  | { state: 'serving'; serial: number }
  /** It answered, but not with the zone (not loaded, refused, forwarded elsewhere): `why` completes "it …". */
  | { state: 'not-serving'; why: string }
  /** No answer at all (not running, not reachable): `why` says what happened. */
  | { state: 'no-answer'; why: string };

const TYPE_SOA = 6;
const CLASS_IN = 1;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** A standard query (no recursion wanted) for the SOA of `domain`, with message id `id`. */
export function encodeSoaQuery(id: number, domain: string): Buffer {
  const labels = domain.toLowerCase().replace(/\.$/, '').split('.');
  const name: number[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'ascii');
    if (bytes.length === 0 || bytes.length > 63) throw new Error(`encodeSoaQuery: "${domain}" is not a domain name (a label is empty or longer than 63 bytes)`);
    name.push(bytes.length, ...bytes);
  }
  name.push(0);
  if (name.length > 255) throw new Error(`encodeSoaQuery: "${domain}" is longer than 255 bytes`);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id & 0xffff, 0);
  header.writeUInt16BE(1, 4); // one question
  const question = Buffer.alloc(4);
  question.writeUInt16BE(TYPE_SOA, 0);
  question.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, Buffer.from(name), question]);
}

/**
 * What the answer `message` to the query `id` for `domain` says; undefined when it is not that
 * answer (another id, not a response), so the caller keeps waiting for it.
 */
export function decodeSoaAnswer(message: Buffer, id: number, domain: string): ServedZone | undefined {
  if (message.length < 12 || message.readUInt16BE(0) !== (id & 0xffff)) return undefined;
  const flags = message.readUInt16BE(2);
  if ((flags & FLAG_QR) === 0) return undefined;
  const rcode = flags & 0x000f;
  if (rcode !== 0) return { state: 'not-serving', why: `answers ${RCODES[rcode] ?? `rcode ${rcode}`} for the zone (it has not loaded it)` };
  if ((flags & FLAG_TC) !== 0) return { state: 'not-serving', why: 'sent a truncated answer to a SOA query' };
  if ((flags & FLAG_AA) === 0) return { state: 'not-serving', why: 'answers without authority for the zone (it has not loaded it)' };
  const want = domain.toLowerCase().replace(/\.$/, '');
  try {
    let offset = 12;
    const questions = message.readUInt16BE(4);
    const answers = message.readUInt16BE(6);
    for (let i = 0; i < questions; i++) offset = readName(message, offset).next + 4;
    for (let i = 0; i < answers; i++) {
      const owner = readName(message, offset);
      const type = message.readUInt16BE(owner.next);
      const klass = message.readUInt16BE(owner.next + 2);
      const length = message.readUInt16BE(owner.next + 8);
      const rdata = owner.next + 10;
      if (rdata + length > message.length) throw new RangeError('record past the end');
      if (type === TYPE_SOA && klass === CLASS_IN && owner.name === want) {
        const mname = readName(message, rdata);
        const rname = readName(message, mname.next);
        return { state: 'serving', serial: message.readUInt32BE(rname.next) };
      }
      offset = rdata + length;
    }
  } catch {
    return { state: 'not-serving', why: 'sent a malformed answer to a SOA query' };
  }
  return { state: 'not-serving', why: 'answers a SOA query for the zone with no SOA record' };
}

/** The (lower-case, dot-separated) name at `offset`, following compression pointers, and where the bytes after it start. */
function readName(message: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let at = offset;
  let next: number | undefined;
  for (let jumps = 0; ; ) {
    const length = message.readUInt8(at);
    if (length === 0) {
      next ??= at + 1;
      break;
    }
    if ((length & 0xc0) === 0xc0) {
      if (++jumps > 64) throw new RangeError('compression loop');
      next ??= at + 2;
      at = ((length & 0x3f) << 8) | message.readUInt8(at + 1);
      continue;
    }
    if (at + 1 + length > message.length) throw new RangeError('label past the end');
    labels.push(message.toString('latin1', at + 1, at + 1 + length).toLowerCase());
    at += 1 + length;
  }
  return { name: labels.join('.'), next };
}
