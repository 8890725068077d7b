import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { formatIpv4, inNetwork, parseCidr } from '../../crds/ipv4.js';
import { IpAllocationStore, allocateServiceIp, parsePool } from '../../state/ip-allocation.js';

const SUBNET = '172.20.0.0/16';
const POOL_TEXT = '172.20.0.20-172.20.0.254';

describe('parsePool', () => {
  test('a valid pool', () => {
    const pool = parsePool(POOL_TEXT, SUBNET);
    expect(pool.size).toBe(235);
    expect(formatIpv4(pool.start)).toBe('172.20.0.20');
    expect(formatIpv4(pool.end)).toBe('172.20.0.254');
    expect(parsePool(' 172.20.0.20 - 172.20.0.20 ').size).toBe(1);
  });

  test.each([
    ['172.20.0.20', SUBNET, /must be "<first IPv4>-<last IPv4>"/],
    ['172.20.0.20-172.20.0.300', SUBNET, /"172.20.0.300" is not an IPv4 address/],
    ['x-172.20.0.30', SUBNET, /"x" is not an IPv4 address/],
    ['172.20.0.30-172.20.0.20', SUBNET, /starts after it ends/],
    ['172.20.0.20-172.21.0.5', SUBNET, /last address 172.21.0.5 is outside the subnet 172.20.0.0\/16/],
    ['10.0.0.1-10.0.0.5', SUBNET, /first address 10.0.0.1 is outside/],
    ['172.20.0.0-172.20.0.10', SUBNET, /network address/],
    ['172.20.255.200-172.20.255.255', SUBNET, /broadcast address/],
  ])('%s in %s is refused', (text, subnet, message) => {
    expect(() => parsePool(text, subnet)).toThrow(message);
  });
});

describe('allocateServiceIp', () => {
  const pool = parsePool('10.0.0.10-10.0.0.14', '10.0.0.0/24');

  test.each<[string, Record<string, string>, string, string[], string]>([
    ['first owner gets the lowest address', {}, 'a', [], '10.0.0.10'],
    ['an existing assignment is kept', { a: '10.0.0.13' }, 'a', [], '10.0.0.13'],
    ['the lowest free address is chosen', { a: '10.0.0.10', b: '10.0.0.12' }, 'c', [], '10.0.0.11'],
    ['reserved addresses are skipped', { a: '10.0.0.10' }, 'b', ['10.0.0.11', '10.0.0.12'], '10.0.0.13'],
    ['a freed gap is reused', { a: '10.0.0.10', c: '10.0.0.12' }, 'd', [], '10.0.0.11'],
    ['an assignment outside the pool is moved', { a: '10.0.0.99' }, 'a', [], '10.0.0.10'],
    ['an assignment that became reserved is moved', { a: '10.0.0.10' }, 'a', ['10.0.0.10'], '10.0.0.11'],
    ['a doubly-held address goes to one owner only', { a: '10.0.0.10', b: '10.0.0.10' }, 'b', [], '10.0.0.11'],
    ['a garbage assignment is replaced', { a: 'nonsense' }, 'a', [], '10.0.0.10'],
    ['other owners outside the pool do not matter', { x: '10.0.0.200' }, 'a', [], '10.0.0.10'],
  ])('%s', (_name, assignments, owner, reserved, expected) => {
    expect(allocateServiceIp(pool, assignments, owner, new Set(reserved))).toBe(expected);
  });

  test('exhaustion says which pool, how big, and what to do', () => {
    const full = { a: '10.0.0.10', b: '10.0.0.11', c: '10.0.0.12', d: '10.0.0.13' };
    expect(() => allocateServiceIp(pool, full, 'e', new Set(['10.0.0.14']))).toThrow(
      /service pool 10.0.0.10-10.0.0.14 is exhausted: all 5 addresses are assigned or reserved.*uninstall a service or widen/,
    );
    expect(allocateServiceIp(pool, full, 'e')).toBe('10.0.0.14');
  });

  test('never hands out a taken or reserved address (property)', () => {
    const small = parsePool('10.0.0.1-10.0.0.40', '10.0.0.0/24');
    const address = fc.integer({ min: 1, max: 45 }).map((n) => `10.0.0.${n}`);
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 4 }), address, { maxKeys: 30 }), fc.array(address, { maxLength: 10 }), (assignments, reservedList) => {
        const reserved = new Set(reservedList);
        const owner = '__new__';
        let ip: string;
        try {
          ip = allocateServiceIp(small, assignments, owner, reserved);
        } catch (err) {
          expect((err as Error).message).toMatch(/exhausted/);
          return;
        }
        expect(Object.values(assignments)).not.toContain(ip);
        expect(reserved.has(ip)).toBe(false);
        expect(inNetwork(ip, parseCidr('10.0.0.0/24'))).toBe(true);
      }),
    );
  });
});

describe('IpAllocationStore', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pic-ip-'));
    file = path.join(dir, 'ip-allocations.json');
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  test('allocates stable addresses and persists them 0600 across store instances', async () => {
    const store = new IpAllocationStore(file);
    await store.load();
    expect(store.assignments()).toEqual({});
    expect(await store.allocate('ServiceInstall/notes', POOL_TEXT, SUBNET)).toEqual({ ip: '172.20.0.20', changed: false });
    expect(await store.allocate('ServiceInstall/files', POOL_TEXT, SUBNET)).toEqual({ ip: '172.20.0.21', changed: false });
    expect(await store.allocate('ServiceInstall/notes', POOL_TEXT, SUBNET)).toEqual({ ip: '172.20.0.20', changed: false });
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await fs.readFile(file, 'utf8'))).toEqual({
      assignments: { 'ServiceInstall/files': '172.20.0.21', 'ServiceInstall/notes': '172.20.0.20' },
    });

    const reopened = new IpAllocationStore(file);
    await reopened.load();
    expect(reopened.assignments()).toEqual({ 'ServiceInstall/files': '172.20.0.21', 'ServiceInstall/notes': '172.20.0.20' });
    expect(await reopened.allocate('ServiceInstall/files', POOL_TEXT, SUBNET)).toEqual({ ip: '172.20.0.21', changed: false });
  });

  test('release frees an address for reuse; releasing twice is a no-op', async () => {
    const store = new IpAllocationStore(file);
    await store.allocate('a', POOL_TEXT, SUBNET);
    await store.allocate('b', POOL_TEXT, SUBNET);
    expect(await store.release('a')).toBe(true);
    expect(await store.release('a')).toBe(false);
    expect(store.assignments()).toEqual({ b: '172.20.0.21' });
    expect((await store.allocate('c', POOL_TEXT, SUBNET)).ip).toBe('172.20.0.20');
    const reopened = new IpAllocationStore(file);
    await reopened.load();
    expect(reopened.assignments()).toEqual({ b: '172.20.0.21', c: '172.20.0.20' });
  });

  test('reserved addresses are skipped', async () => {
    const store = new IpAllocationStore(file);
    const result = await store.allocate('a', POOL_TEXT, SUBNET, new Set(['172.20.0.20', '172.20.0.21']));
    expect(result.ip).toBe('172.20.0.22');
  });

  test('a pool change that strands an assignment moves it and says so', async () => {
    const store = new IpAllocationStore(file);
    await store.allocate('a', POOL_TEXT, SUBNET);
    const moved = await store.allocate('a', '172.20.1.10-172.20.1.50', SUBNET);
    expect(moved).toEqual({
      ip: '172.20.1.10',
      changed: true,
      previousIp: '172.20.0.20',
      reason: 'moved from 172.20.0.20 to 172.20.1.10: 172.20.0.20 is outside the service pool 172.20.1.10-172.20.1.50',
    });
    expect(store.assignments()).toEqual({ a: '172.20.1.10' });
  });

  test('an assignment that is still inside a changed pool is kept', async () => {
    const store = new IpAllocationStore(file);
    await store.allocate('a', POOL_TEXT, SUBNET);
    expect(await store.allocate('a', '172.20.0.1-172.20.0.100', SUBNET)).toEqual({ ip: '172.20.0.20', changed: false });
  });

  test('exhaustion is an error and writes nothing', async () => {
    const store = new IpAllocationStore(file);
    await store.allocate('a', '172.20.0.20-172.20.0.21', SUBNET);
    await store.allocate('b', '172.20.0.20-172.20.0.21', SUBNET);
    const bytes = await fs.readFile(file, 'utf8');
    await expect(store.allocate('c', '172.20.0.20-172.20.0.21', SUBNET)).rejects.toThrow(/172.20.0.20-172.20.0.21 is exhausted: all 2 addresses/);
    expect(await fs.readFile(file, 'utf8')).toBe(bytes);
  });

  test('an invalid pool is an error', async () => {
    const store = new IpAllocationStore(file);
    await expect(store.allocate('a', '10.0.0.1-10.0.0.9', SUBNET)).rejects.toThrow(/outside the subnet/);
  });

  test('nothing changed means no write (same inode and mtime)', async () => {
    const store = new IpAllocationStore(file);
    await store.allocate('a', POOL_TEXT, SUBNET);
    const past = new Date(Date.now() - 60_000);
    await fs.utimes(file, past, past);
    const before = await fs.stat(file);
    await store.allocate('a', POOL_TEXT, SUBNET);
    await store.release('nobody');
    const reopened = new IpAllocationStore(file);
    await reopened.allocate('a', POOL_TEXT, SUBNET);
    const after = await fs.stat(file);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  test('concurrent allocations never hand out one address twice, and all are persisted', async () => {
    const store = new IpAllocationStore(file);
    const owners = Array.from({ length: 12 }, (_, i) => `ServiceInstall/s${i}`);
    const results = await Promise.all(owners.map((owner) => store.allocate(owner, POOL_TEXT, SUBNET)));
    const ips = results.map((r) => r.ip);
    expect(new Set(ips).size).toBe(owners.length);
    const reopened = new IpAllocationStore(file);
    await reopened.load();
    expect(Object.keys(reopened.assignments()).sort()).toEqual([...owners].sort());
  });

  test('two store objects on one file see each other\'s allocations', async () => {
    const first = new IpAllocationStore(file);
    const second = new IpAllocationStore(file);
    await first.load();
    await second.load();
    const [a, b] = await Promise.all([first.allocate('a', POOL_TEXT, SUBNET), second.allocate('b', POOL_TEXT, SUBNET)]);
    expect(a.ip).not.toBe(b.ip);
    expect(await first.allocate('c', POOL_TEXT, SUBNET)).toEqual({ ip: '172.20.0.22', changed: false });
    expect(first.assignments()).toEqual({ a: a.ip, b: b.ip, c: '172.20.0.22' });
  });

  test('a corrupt file is reported, never overwritten', async () => {
    await fs.writeFile(file, '{"assignments": {"a": 1}}');
    const store = new IpAllocationStore(file);
    await expect(store.allocate('b', POOL_TEXT, SUBNET)).rejects.toThrow(/refusing to overwrite/);
    expect(await fs.readFile(file, 'utf8')).toBe('{"assignments": {"a": 1}}');
  });
  test('a file edited by hand is read again, even one rewritten in place with the same size', async () => {
    const store = new IpAllocationStore(file);
    expect((await store.allocate('a', POOL_TEXT, SUBNET)).ip).toBe('172.20.0.20');
    // In place (same inode), same length, another owner now holds a's address.
    const text = await fs.readFile(file, 'utf8');
    const edited = text.replace('"a": "172.20.0.20"', '"z": "172.20.0.20"');
    expect(edited.length).toBe(text.length);
    await fs.writeFile(file, edited);
    expect(await store.allocate('z', POOL_TEXT, SUBNET)).toEqual({ ip: '172.20.0.20', changed: false });
    expect(store.assignmentOf('a')).toBeUndefined();
    expect(await store.allocate('a', POOL_TEXT, SUBNET)).toEqual({ ip: '172.20.0.21', changed: false });
  });

  test('two owners holding one address in the file: the kept-address shortcut does not hide it', async () => {
    await fs.writeFile(file, JSON.stringify({ assignments: { a: '172.20.0.30', b: '172.20.0.30' } }));
    const store = new IpAllocationStore(file);
    const results = [await store.allocate('a', POOL_TEXT, SUBNET), await store.allocate('b', POOL_TEXT, SUBNET)];
    expect(new Set(results.map((r) => r.ip)).size).toBe(2);
    expect(results.filter((r) => r.changed)).toHaveLength(1);
  });

  test('an address not written in canonical form is not kept as it is', async () => {
    await fs.writeFile(file, JSON.stringify({ assignments: { a: '172.20.0.030' } }));
    const store = new IpAllocationStore(file);
    const result = await store.allocate('a', POOL_TEXT, SUBNET);
    expect(result).toMatchObject({ ip: '172.20.0.20', changed: true, previousIp: '172.20.0.030' });
  });
});
