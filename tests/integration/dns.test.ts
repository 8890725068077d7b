/**
 * The DNS reconciler on a real file system, its zones checked by BIND's named-checkzone (Debian's
 * bind9-utils): every golden zone and every zone the reconciler writes must load, the serial
 * grows with each change and only then, and it survives a restart because it lives in the file.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createDnsReconciler } from '../../reconcilers/dns/index.js';
import { parseZoneSerial } from '../../reconcilers/dns/render.js';
import { goldenOutputs, testContext, testRouting } from '../support/caddy.js';

const run = promisify(execFile);
const DOMAIN = 'dtest.pic.test';

/** named-checkzone's verdict: resolves with its output when the zone loads. */
async function checkZone(domain: string, file: string): Promise<string> {
  try {
    const { stdout } = await run('named-checkzone', [domain, file]);
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`named-checkzone ${domain} ${file} failed: ${e.stdout ?? ''}${e.stderr ?? e.message}`);
  }
}

let work: string;

beforeAll(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-dns-'));
});

afterAll(async () => {
  if (work) await fs.rm(work, { recursive: true, force: true });
});

test('named-checkzone loads every golden zone', async () => {
  const files = await goldenOutputs('dns', '.zone');
  expect(files.length).toBeGreaterThanOrEqual(3);
  for (const file of files) {
    const text = await fs.readFile(file, 'utf8');
    const origin = /^\$ORIGIN (\S+)\.$/m.exec(text)?.[1];
    expect(origin).toBeDefined();
    expect(await checkZone(origin!, file)).toMatch(new RegExp(`loaded serial ${parseZoneSerial(text)}\\s+OK`));
  }
});

describe('DNS reconciler', () => {
  const stateRoot = () => path.join(work, 'state');
  const zoneFile = () => path.join(stateRoot(), 'dns', `${DOMAIN}.zone`);
  const ctx = () => testContext(stateRoot(), path.join(work, 'cell'));
  const at = (iso: string) => createDnsReconciler({ now: () => new Date(iso) });
  const input = (names: string[]) =>
    testRouting(
      { domain: DOMAIN, dns: { address: '172.20.0.2' }, caddy: { sites: [{ subdomain: 'webui', backend: 'cell-webui:80' }] } },
      Object.fromEntries(names.map((n) => [n, { subdomain: n, backend: `cell-${n}:8080` }])),
    );
  const stamp = async () => {
    const st = await fs.stat(zoneFile());
    return { ino: st.ino, mtimeMs: st.mtimeMs, text: await fs.readFile(zoneFile(), 'utf8') };
  };

  test('the first zone is written with the day’s first serial and loads', async () => {
    const c = ctx();
    const outcome = await at('2026-03-10T08:00:00Z').reconcile(input(['notes', 'files']), c);
    expect(outcome).toMatchObject({ changed: true, summary: `3 records in ${DOMAIN}; zone written with serial 2026031000` });
    expect(c.events.map((e) => e.reason)).toEqual(['ZoneWritten']);
    expect((await fs.stat(zoneFile())).mode & 0o777).toBe(0o644);
    const text = await fs.readFile(zoneFile(), 'utf8');
    expect(text).toMatch(/^notes\tIN\tA\t172\.20\.0\.2$/m);
    expect(await checkZone(DOMAIN, zoneFile())).toMatch(/loaded serial 2026031000\s+OK/);
  });

  test('nothing changed: no write, the serial stays, plan is empty — also for a new instance on a later day', async () => {
    const before = await stamp();
    const restarted = at('2026-04-01T00:00:00Z');
    expect(await restarted.plan(input(['files', 'notes']), ctx())).toEqual([]);
    const outcome = await restarted.reconcile(input(['files', 'notes']), ctx());
    expect(outcome).toMatchObject({ changed: false, summary: `3 records in ${DOMAIN}; zone unchanged (serial 2026031000)` });
    expect(await stamp()).toEqual(before);
  });

  test('a change the same day bumps the serial by one; plan shows the diff first', async () => {
    const sameDay = at('2026-03-10T20:00:00Z');
    const lines = await sameDay.plan(input(['notes', 'files', 'wiki']), ctx());
    expect(lines).toContain('+wiki\tIN\tA\t172.20.0.2');
    expect(lines.some((l) => l.startsWith('+') && l.includes(' 2026031001 '))).toBe(true);
    expect(parseZoneSerial(await fs.readFile(zoneFile(), 'utf8'))).toBe(2026031000);
    await sameDay.reconcile(input(['notes', 'files', 'wiki']), ctx());
    expect(await checkZone(DOMAIN, zoneFile())).toMatch(/loaded serial 2026031001\s+OK/);
  });

  test('a restarted reconciler reads the serial back from the file and goes on from it', async () => {
    await at('2026-03-12T09:00:00Z').reconcile(input(['notes']), ctx());
    expect(parseZoneSerial(await fs.readFile(zoneFile(), 'utf8'))).toBe(2026031200);
    // A clock set back must not make the serial go backwards.
    await at('2026-03-01T09:00:00Z').reconcile(input(['notes', 'files']), ctx());
    expect(await checkZone(DOMAIN, zoneFile())).toMatch(/loaded serial 2026031201\s+OK/);
  });

  test('routes without spec.dns.address: no zone, a notice naming the field, the zone left as it was', async () => {
    const before = await stamp();
    const noAddress = testRouting({ domain: DOMAIN }, { notes: { subdomain: 'notes', backend: 'cell-notes:8080' } });
    const outcome = await at('2026-03-13T00:00:00Z').reconcile(noAddress, ctx());
    expect(outcome.changed).toBe(false);
    expect(outcome.summary).toContain(`${path.join(work, 'cell', 'cell.yaml')}: spec.dns.address is not set`);
    expect(outcome.facts?.notices).toEqual([expect.stringContaining('spec.dns.address')]);
    expect(await stamp()).toEqual(before);
  });

  test('a zone file path relative to the cell folder', async () => {
    const cellDir = path.join(work, 'cell-relative');
    const relative = testRouting({ domain: DOMAIN, dns: { address: '10.1.2.3', zoneFile: 'zones/db.cell' } }, { notes: { subdomain: 'notes', backend: 'cell-notes:8080' } });
    await at('2026-03-10T08:00:00Z').reconcile(relative, testContext(path.join(work, 'state-relative'), cellDir));
    expect(await checkZone(DOMAIN, path.join(cellDir, 'zones', 'db.cell'))).toMatch(/OK/);
  });
});
