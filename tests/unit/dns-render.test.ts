/**
 * The pure half of the DNS reconciler: serials, the zone (golden files under tests/golden/dns;
 * UPDATE_GOLDEN=1 rewrites them), the plan that compares content without the serial and the
 * served serial with the file's, and the DNS messages that ask a server for its serial.
 */
import { promises as fs } from 'node:fs';
import { cellRoutes } from '../../reconcilers/caddy/routes.js';
import { planDns } from '../../reconcilers/dns/index.js';
import { parseZoneSerial, renderZone, zoneOf } from '../../reconcilers/dns/render.js';
import { laterSerial, nextSerial, serialDay } from '../../reconcilers/dns/serial.js';
import { decodeSoaAnswer, encodeSoaQuery } from '../../reconcilers/dns/wire.js';
import { goldenCases, testRouting } from '../support/caddy.js';

describe('nextSerial', () => {
  test.each([
    ['first zone ever', undefined, '20260115', 2026011500],
    ['first change of the day', 2026011403, '20260115', 2026011500],
    ['another change the same day', 2026011500, '20260115', 2026011501],
    ['a serial from an old counter style', 7, '20260115', 2026011500],
    ['the clock went backwards', 2026011502, '20260114', 2026011503],
    ['99 changes in a day roll into the next number', 2026011599, '20260115', 2026011600],
    ['after the roll-over, the next day goes on counting', 2026011600, '20260116', 2026011601],
  ])('%s', (_name, previous, today, expected) => {
    expect(nextSerial(previous, today)).toBe(expected);
  });

  test('never goes backwards over a run of changes and clock jumps', () => {
    const days = ['20260110', '20260110', '20260109', '20260111', '20260111', '20250101', '20260112'];
    let serial: number | undefined;
    for (const day of days) {
      const next = nextSerial(serial, day);
      if (serial !== undefined) expect(next).toBeGreaterThan(serial);
      serial = next;
    }
  });

  test('refuses a day that is not YYYYMMDD', () => {
    expect(() => nextSerial(undefined, '2026-01-15')).toThrow(/YYYYMMDD/);
  });

  test('serialDay is the UTC date', () => {
    expect(serialDay(new Date('2026-01-15T23:59:59Z'))).toBe('20260115');
    expect(serialDay(new Date('2026-01-16T00:00:00+02:00'))).toBe('20260115');
  });
});

describe('renderZone golden files', () => {
  test('every case renders as its golden zone', async () => {
    const cases = await goldenCases('dns', '.zone');
    expect(cases.length).toBeGreaterThanOrEqual(3);
    for (const c of cases) {
      const input = testRouting(c.input.cell, c.input.services);
      const plan = zoneOf(input.cell.spec, cellRoutes(input));
      if (!plan.publish) throw new Error(`${c.name}: nothing to publish (${plan.why})`);
      const text = renderZone(plan.zone, c.input.serial ?? 2026010100);
      if (process.env.UPDATE_GOLDEN) await fs.writeFile(c.expectedFile, text);
      expect({ case: c.name, text }).toEqual({ case: c.name, text: await fs.readFile(c.expectedFile, 'utf8') });
    }
  });

  test('the serial parsed back is the one rendered', () => {
    const input = testRouting({ domain: 'alice.pic.ngo', dns: { address: '10.0.0.1' } }, { notes: { subdomain: 'notes', backend: 'cell-notes:8080' } });
    const plan = zoneOf(input.cell.spec, cellRoutes(input));
    if (!plan.publish) throw new Error('expected a zone');
    expect(parseZoneSerial(renderZone(plan.zone, 2026011517))).toBe(2026011517);
  });
});

describe('zoneOf', () => {
  test('routes without spec.dns.address: no zone, and a notice naming the field and the file', () => {
    const input = testRouting({ domain: 'alice.pic.ngo' }, { notes: { subdomain: 'notes', backend: 'cell-notes:8080' } });
    const plan = zoneOf(input.cell.spec, cellRoutes(input), '/cells/alice/cell.yaml');
    if (plan.publish) throw new Error('expected no zone');
    expect(plan.why).toMatch(/^\/cells\/alice\/cell\.yaml: spec\.dns\.address is not set/);
    expect(plan.why).toContain('notes.alice.pic.ngo');
  });

  test('a direct subdomain resolves to the service itself, its other names to Caddy', () => {
    const input = testRouting({ domain: 'alice.pic.ngo', dns: { address: '10.0.0.1' } }, {
      email: { subdomain: 'mail', backend: 'cell-mail:8080', extra_backends: { autoconfig: 'cell-mail:8080' }, direct_subdomains: ['mail'] },
      notes: { subdomain: 'notes', backend: 'cell-notes:8080' },
    });
    const plan = zoneOf(input.cell.spec, cellRoutes(input));
    if (!plan.publish) throw new Error('expected a zone');
    expect(plan.zone.records.filter((r) => !r.owner.startsWith('ns'))).toEqual([
      { owner: 'autoconfig', address: '10.0.0.1' },
      { owner: 'mail', address: input.services.find((s) => s.name === 'email')!.serviceIp },
      { owner: 'notes', address: '10.0.0.1' },
    ]);
    // Caddy keeps a site for the direct name (its CA keeps a certificate of it).
    expect(cellRoutes(input).map((r) => r.host)).toContain('mail.alice.pic.ngo');
  });

  test('no routes and no DNS settings: nothing to publish', () => {
    const input = testRouting({ domain: 'alice.pic.ngo' }, { clock: { container_name: 'cell-clock' } });
    expect(zoneOf(input.cell.spec, cellRoutes(input))).toMatchObject({ publish: false });
  });

  test('a name server inside the zone needs the address too', () => {
    const input = testRouting({ domain: 'alice.pic.ngo', dns: { nameservers: ['ns1.alice.pic.ngo'] } });
    expect(zoneOf(input.cell.spec, [])).toMatchObject({ publish: false, why: expect.stringContaining('spec.dns.address') });
  });

  test('name servers outside the zone need no address', () => {
    const input = testRouting({ domain: 'alice.pic.ngo', dns: { nameservers: ['ns.example.net.'] } });
    const plan = zoneOf(input.cell.spec, []);
    expect(plan).toMatchObject({ publish: true, zone: { mname: 'ns.example.net.', nameservers: ['ns.example.net.'], records: [] } });
  });

  test('records are sorted and unique', () => {
    const input = testRouting(
      { domain: 'alice.pic.ngo', dns: { address: '10.0.0.1' } },
      { b: { subdomain: 'zeta', backend: 'cell-b:1' }, a: { subdomain: 'alpha', backend: 'cell-a:1', extra_subdomains: ['beta'] } },
    );
    const plan = zoneOf(input.cell.spec, cellRoutes(input));
    expect(plan.publish && plan.zone.records.map((r) => r.owner)).toEqual(['alpha', 'beta', 'ns1', 'zeta']);
  });
});

describe('parseZoneSerial', () => {
  test.each([
    ['@\tIN\tSOA\tns1.a.b. hostmaster.a.b. 2026011500 3600 600 1209600 300\n', 2026011500],
    ['$TTL 300\n@ 300 IN SOA ns1.a.b. hostmaster.a.b. ( 42 3600 600 1209600 300 )\n', 42],
    ['a.b. IN SOA ns1.a.b. hostmaster.a.b. (\n  7 ; serial\n 1 1 1 1 )\n', 7],
    ['', undefined],
    ['; no SOA here\n@ IN NS ns1.a.b.\n', undefined],
    ['@ IN SOA ns1.a.b. hostmaster.a.b. 99999999999 1 1 1 1\n', undefined],
  ])('%j → %s', (text, expected) => {
    expect(parseZoneSerial(text)).toBe(expected);
  });
});

describe('planDns', () => {
  const input = testRouting({ domain: 'alice.pic.ngo', dns: { address: '10.0.0.1' } }, { notes: { subdomain: 'notes', backend: 'cell-notes:8080' } });
  const file = '/state/dns/alice.pic.ngo.zone';

  test('a first zone gets today’s first serial and a diff from nothing', () => {
    const p = planDns(input, { file, current: '' }, '20260115');
    expect(p).toMatchObject({ publish: true, write: true, serial: 2026011500 });
    expect(p.publish && p.diff.slice(0, 3)).toEqual([`--- ${file}`, `+++ ${file}`, '@@ -0,0 +1,8 @@']);
  });

  test('in sync: no lines and the old serial, even on another day', () => {
    const first = planDns(input, { file, current: '' }, '20260115');
    if (!first.publish) throw new Error('expected a zone');
    const again = planDns(input, { file, current: first.text }, '20260301');
    expect(again).toMatchObject({ publish: true, write: false, serial: 2026011500, diff: [] });
  });

  test('a change bumps the serial, and only the serial and the record change', () => {
    const first = planDns(input, { file, current: '' }, '20260115');
    if (!first.publish) throw new Error('expected a zone');
    const more = testRouting(input.cell.spec, { notes: { subdomain: 'notes', backend: 'cell-notes:8080' }, wiki: { subdomain: 'wiki', backend: 'cell-wiki:80' } });
    const next = planDns(more, { file, current: first.text }, '20260115');
    expect(next).toMatchObject({ publish: true, write: true, serial: 2026011501 });
    const changed = next.publish ? next.diff.filter((l) => /^[-+][^-+]/.test(l)) : [];
    expect(changed).toHaveLength(3);
    expect(changed.join('\n')).toMatch(/2026011500[\s\S]*2026011501[\s\S]*\+wiki/);
  });
});

describe('planDns with the DNS server pic runs', () => {
  const server = { container: 'cell-dns', address: '172.20.0.3' };
  const input = testRouting({ domain: 'alice.pic.ngo', dns: { address: '10.0.0.1', run: { image: 'pictest/dns:1', ...server } } }, { notes: { subdomain: 'notes', backend: 'cell-notes:8080' } });
  const file = '/state/dns/alice.pic.ngo.zone';
  const first = planDns(input, { file, current: '' }, '20260115');
  if (!first.publish) throw new Error('expected a zone');
  const inFile = first.text; // serial 2026011500
  const serving = (serial: number) => ({ state: 'serving' as const, serial });
  const refused = { state: 'not-serving' as const, why: 'answers REFUSED for the zone (it has not loaded it)' };
  const silent = { state: 'no-answer' as const, why: 'no answer to a SOA query within 500 ms (asked 2 times)' };

  test.each([
    ['the file is served: nothing to do', inFile, serving(2026011500), { write: false, serial: 2026011500, server: { step: 'in-sync', server } }],
    [
      'a reload that never arrived: the server serves an older serial than the file',
      inFile,
      serving(2026011499),
      { write: false, serial: 2026011500, server: { step: 'reload', server, why: 'serves serial 2026011499, the zone file has 2026011500' } },
    ],
    ['the server has not loaded the zone (it started before the file was there)', inFile, refused, { write: false, serial: 2026011500, server: { step: 'reload', server, why: refused.why } }],
    ['the server does not answer: no reload to send, the pass fails', inFile, silent, { write: false, serial: 2026011500, server: { step: 'unreachable', server, why: silent.why } }],
    ['a first zone, the server up without it: write, then reload', '', refused, { write: true, serial: 2026011600, server: { step: 'reload', server, why: refused.why } }],
    [
      'a change: write with the next serial, then reload',
      inFile.replace('notes\t', 'wiki\t'),
      serving(2026011500),
      { write: true, serial: 2026011600, server: { step: 'reload', server, why: 'serves serial 2026011500, the zone file gets 2026011600' } },
    ],
    [
      'a change while the server serves a later serial than the file (the file was lost): the new serial follows the served one',
      '',
      serving(2026012007),
      { write: true, serial: 2026012008, server: { step: 'reload', server, why: 'serves serial 2026012007, the zone file gets 2026012008' } },
    ],
    ['a change while the server is silent: write, and the pass fails', '', silent, { write: true, serial: 2026011600, server: { step: 'unreachable', server, why: silent.why } }],
  ])('%s', (_name, current, served, expected) => {
    expect(planDns(input, { file, current, server: { ...server, served } }, '20260116')).toMatchObject({ publish: true, ...expected });
  });

  test('without a DNS server pic runs, nothing is asked and nothing reloaded', () => {
    const plain = testRouting({ domain: 'alice.pic.ngo', dns: { address: '10.0.0.1' } }, { notes: { subdomain: 'notes', backend: 'cell-notes:8080' } });
    expect(planDns(plain, { file, current: inFile }, '20260116')).toMatchObject({ publish: true, write: false, server: { step: 'none' } });
  });
});

describe('laterSerial', () => {
  test.each([
    [undefined, undefined, undefined],
    [5, undefined, 5],
    [undefined, 7, 7],
    [2026011500, 2026011499, 2026011500],
    [2026011499, 2026011500, 2026011500],
    [4294967295, 3, 3],
  ])('%s and %s → %s', (a, b, expected) => {
    expect(laterSerial(a, b)).toBe(expected);
  });
});

describe('the SOA query and its answer', () => {
  /** An answer as a server builds it: the question echoed, then a SOA whose owner and names use compression pointers. */
  function answer(id: number, options: { flags?: number; serial?: number; owner?: string; answers?: number } = {}): Buffer {
    const query = encodeSoaQuery(id, 'alice.pic.ngo');
    const out = Buffer.from(query);
    out.writeUInt16BE(options.flags ?? 0x8400, 2);
    const answers = options.answers ?? 1;
    out.writeUInt16BE(answers, 6);
    if (answers === 0) return out;
    const owner = options.owner === undefined ? Buffer.from([0xc0, 12]) : Buffer.concat([encodeName(options.owner)]);
    const rdata = Buffer.concat([Buffer.from([3, ...Buffer.from('ns1'), 0xc0, 12]), Buffer.from([10, ...Buffer.from('hostmaster'), 0xc0, 12]), u32(options.serial ?? 2026011500), u32(3600), u32(600), u32(1209600), u32(300)]);
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(6, 0);
    fixed.writeUInt16BE(1, 2);
    fixed.writeUInt32BE(300, 4);
    fixed.writeUInt16BE(rdata.length, 8);
    return Buffer.concat([out, owner, fixed, rdata]);
  }
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const encodeName = (name: string) => Buffer.from([...name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]), 0]);

  test('the query: id, one question, no recursion wanted, QTYPE SOA, QCLASS IN', () => {
    expect(encodeSoaQuery(0x1234, 'Alice.pic.ngo.').toString('hex')).toBe('12340000000100000000000005616c69636503706963036e676f0000060001');
  });

  test('a domain that is not one is refused before anything is sent', () => {
    expect(() => encodeSoaQuery(1, 'a..b')).toThrow(/not a domain name/);
    expect(() => encodeSoaQuery(1, `${'x'.repeat(64)}.b`)).toThrow(/not a domain name/);
  });

  test.each([
    ['an authoritative SOA: its serial', answer(7, { serial: 2026011503 }), { state: 'serving', serial: 2026011503 }],
    ['the owner written out in another case', answer(7, { owner: 'ALICE.pic.ngo' }), { state: 'serving', serial: 2026011500 }],
    ['REFUSED', answer(7, { flags: 0x8005, answers: 0 }), { state: 'not-serving', why: 'answers REFUSED for the zone (it has not loaded it)' }],
    ['SERVFAIL', answer(7, { flags: 0x8002, answers: 0 }), { state: 'not-serving', why: 'answers SERVFAIL for the zone (it has not loaded it)' }],
    ['not authoritative (forwarded)', answer(7, { flags: 0x8080 }), { state: 'not-serving', why: 'answers without authority for the zone (it has not loaded it)' }],
    ['a SOA of another zone', answer(7, { owner: 'pic.ngo' }), { state: 'not-serving', why: 'answers a SOA query for the zone with no SOA record' }],
    ['cut short', answer(7).subarray(0, 40), { state: 'not-serving', why: 'sent a malformed answer to a SOA query' }],
    ['another query’s answer: not this one', answer(8), undefined],
    ['the query itself (no QR bit): not an answer', encodeSoaQuery(7, 'alice.pic.ngo'), undefined],
  ])('%s', (_name, message, expected) => {
    expect(decodeSoaAnswer(message, 7, 'alice.pic.ngo')).toEqual(expected);
  });

  test('a compression loop is a malformed answer, not a hang', () => {
    // One answer whose owner name is a pointer to itself.
    const msg = Buffer.concat([encodeSoaQuery(7, 'alice.pic.ngo').subarray(0, 12), Buffer.from([0xc0, 12]), Buffer.alloc(10)]);
    msg.writeUInt16BE(0x8400, 2);
    msg.writeUInt16BE(0, 4);
    msg.writeUInt16BE(1, 6);
    expect(decodeSoaAnswer(msg, 7, 'alice.pic.ngo')).toEqual({ state: 'not-serving', why: 'sent a malformed answer to a SOA query' });
  });
});
