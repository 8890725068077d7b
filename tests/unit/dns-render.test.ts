/**
 * The pure half of the DNS reconciler: serials, the zone (golden files under tests/golden/dns;
 * UPDATE_GOLDEN=1 rewrites them) and the plan that compares content without the serial.
 */
import { promises as fs } from 'node:fs';
import { cellRoutes } from '../../reconcilers/caddy/routes.js';
import { planDns } from '../../reconcilers/dns/index.js';
import { parseZoneSerial, renderZone, zoneOf } from '../../reconcilers/dns/render.js';
import { nextSerial, serialDay } from '../../reconcilers/dns/serial.js';
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
    const p = planDns(input, file, '', '20260115');
    expect(p).toMatchObject({ publish: true, changed: true, serial: 2026011500 });
    expect(p.publish && p.diff.slice(0, 3)).toEqual([`--- ${file}`, `+++ ${file}`, '@@ -0,0 +1,8 @@']);
  });

  test('in sync: no lines and the old serial, even on another day', () => {
    const first = planDns(input, file, '', '20260115');
    if (!first.publish) throw new Error('expected a zone');
    const again = planDns(input, file, first.text, '20260301');
    expect(again).toMatchObject({ publish: true, changed: false, serial: 2026011500, diff: [] });
  });

  test('a change bumps the serial, and only the serial and the record change', () => {
    const first = planDns(input, file, '', '20260115');
    if (!first.publish) throw new Error('expected a zone');
    const more = testRouting(input.cell.spec, { notes: { subdomain: 'notes', backend: 'cell-notes:8080' }, wiki: { subdomain: 'wiki', backend: 'cell-wiki:80' } });
    const next = planDns(more, file, first.text, '20260115');
    expect(next).toMatchObject({ publish: true, changed: true, serial: 2026011501 });
    const changed = next.publish ? next.diff.filter((l) => /^[-+][^-+]/.test(l)) : [];
    expect(changed).toHaveLength(3);
    expect(changed.join('\n')).toMatch(/2026011500[\s\S]*2026011501[\s\S]*\+wiki/);
  });
});
