/** IPv4 addresses and networks (crds/ipv4.ts): the one module the cell's address arithmetic goes through. */
import { describe, expect, test } from '@jest/globals';
import fc from 'fast-check';
import { formatIpv4, inNetwork, isIpv4, isIpv6, isLoopbackHost, lastAddress, networkOf, parseCidr, parseIpv4, readCidr, readIpv4Range } from '../../crds/ipv4.js';
import { dynamicRangeFor, normaliseCidr } from '../../reconcilers/containers/network.js';

const SUBNET = '172.20.0.0/16';
const address = fc.integer({ min: 0, max: 2 ** 32 - 1 });

describe('parseIpv4 / formatIpv4', () => {
  test.each<[string, number | undefined]>([
    ['0.0.0.0', 0],
    ['172.20.0.20', (172 << 24 >>> 0) + (20 << 16) + 20],
    ['255.255.255.255', 2 ** 32 - 1],
    ['256.0.0.1', undefined],
    ['1.2.3', undefined],
    ['1.2.3.4.5', undefined],
    ['01.2.3.4', undefined],
    ['1.2.3.x', undefined],
    [' 1.2.3.4', undefined],
    ['0x0a.0.0.1', undefined],
    ['10.1', undefined],
    ['167772161', undefined],
    ['', undefined],
  ])('%j → %s', (text, value) => {
    expect(parseIpv4(text)).toBe(value);
    expect(isIpv4(text)).toBe(value !== undefined);
  });

  test('format is the inverse of parse (property)', () => {
    fc.assert(fc.property(address, (n) => expect(parseIpv4(formatIpv4(n))).toBe(n)));
  });

  test('parse is the inverse of format on every dotted address (property)', () => {
    const octet = fc.integer({ min: 0, max: 255 });
    fc.assert(fc.property(fc.tuple(octet, octet, octet, octet), (octets) => expect(formatIpv4(parseIpv4(octets.join('.'))!)).toBe(octets.join('.'))));
  });
});

describe('isIpv6', () => {
  test.each([
    ['::1', true],
    ['fd00::1', true],
    ['2001:db8:0:0:0:0:0:1', true],
    ['::ffff:10.0.0.1', true],
    ['1.2.3.4', false],
    [':::', false],
    ['fd00::g', false],
    ['', false],
  ])('%j → %s', (text, valid) => {
    expect(isIpv6(text)).toBe(valid);
  });
});

describe('parseCidr / readCidr / inNetwork', () => {
  test.each<[string, number, string]>([
    ['172.20.0.0/16', 16, '172.20.0.0/16'],
    ['10.0.0.0/8', 8, '10.0.0.0/8'],
    ['192.168.1.0/24', 24, '192.168.1.0/24'],
    ['0.0.0.0/0', 0, '0.0.0.0/0'],
    ['192.168.1.7/32', 32, '192.168.1.7/32'],
    [' 10.0.0.0/8 ', 8, '10.0.0.0/8'],
  ])('%s', (text, prefix, normalised) => {
    expect(parseCidr(text)).toMatchObject({ prefix, text: normalised });
  });

  test.each([
    ['172.20.0.0', /CIDR form/],
    ['172.20.0.0/33', /CIDR form/],
    ['172.20.0/16', /CIDR form/],
    ['172.20.0.0/016', /CIDR form/],
    ['172.20.0.5/16', /host bits set; the subnet is 172.20.0.0\/16/],
  ])('%s is refused', (text, message) => {
    expect(() => parseCidr(text)).toThrow(message);
  });

  test.each([
    ['10.1.2.3/16', { address: parseIpv4('10.1.2.3'), network: { network: parseIpv4('10.1.0.0'), prefix: 16, size: 65536, text: '10.1.0.0/16' } }],
    ['10.1.2.3/33', undefined],
    [' 10.1.2.3/16', undefined],
    ['fd00::/64', undefined],
  ])('readCidr(%j)', (text, read) => {
    expect(readCidr(text)).toEqual(read);
  });

  test.each<[string, string, boolean]>([
    ['172.20.0.1', SUBNET, true],
    ['172.20.255.255', SUBNET, true],
    ['172.21.0.0', SUBNET, false],
    ['172.19.255.255', SUBNET, false],
    ['10.1.2.3', '0.0.0.0/0', true],
    ['not-an-ip', SUBNET, false],
  ])('%s in %s → %s', (ip, cidr, inside) => {
    expect(inNetwork(ip, parseCidr(cidr))).toBe(inside);
  });

  test('a network holds exactly the addresses that share its prefix (property)', () => {
    fc.assert(
      fc.property(address, address, fc.integer({ min: 0, max: 32 }), (a, b, prefix) => {
        const net = networkOf(a, prefix);
        expect(inNetwork(a, net)).toBe(true);
        expect(lastAddress(net) - net.network + 1).toBe(2 ** (32 - prefix));
        const shift = 2 ** (32 - prefix);
        expect(inNetwork(b, net)).toBe(Math.floor(a / shift) === Math.floor(b / shift));
        expect(parseCidr(net.text)).toEqual(net);
      }),
    );
  });
});

describe('readIpv4Range', () => {
  test.each([
    ['172.20.0.20-172.20.0.254', { text: '172.20.0.20-172.20.0.254', first: parseIpv4('172.20.0.20'), last: parseIpv4('172.20.0.254') }],
    ['10.0.0.9-10.0.0.1', { text: '10.0.0.9-10.0.0.1', first: parseIpv4('10.0.0.9'), last: parseIpv4('10.0.0.1') }],
    ['10.0.0.1', undefined],
    ['10.0.0.1-10.0.0.300', undefined],
    ['10.0.0.1 - 10.0.0.5', undefined],
  ])('%j', (text, range) => {
    expect(readIpv4Range(text)).toEqual(range);
  });
});

describe('isLoopbackHost', () => {
  test.each([
    ['127.0.0.1:5000', true],
    ['127.3.4.5', true],
    ['localhost', true],
    ['localhost:5000', true],
    ['[::1]:5000', true],
    ['[0:0:0:0:0:0:0:1]', true],
    ['10.0.0.1:5000', false],
    ['git.pic.ngo', false],
    ['127.0.0.1.evil.com', false],
    ['[fd00::1]:5000', false],
  ])('%s → %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe('the cell network (reconcilers/containers/network.ts)', () => {
  test.each([
    ['172.20.0.0/16', '172.20.0.0/16'],
    ['172.20.5.9/16', '172.20.0.0/16'],
    ['10.213.7.1/24', '10.213.7.0/24'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    [' 10.0.0.0/8', '10.0.0.0/8'],
    ['fd00::/64', 'fd00::/64'],
  ])('normaliseCidr(%s) → %s', (input, expected) => {
    expect(normaliseCidr(input)).toBe(expected);
  });

  test.each([
    ['172.20.0.0/16', '172.20.0.20', '172.20.0.254', '172.20.128.0/17'],
    ['172.20.0.0/16', '172.20.200.1', '172.20.200.254', '172.20.0.0/17'],
    ['172.20.5.9/16', '172.20.0.20', '172.20.0.254', '172.20.128.0/17'],
    ['172.20.0.0/16', '172.20.100.0', '172.20.130.0', undefined],
    ['10.0.0.0/31', '10.0.0.0', '10.0.0.0', undefined],
    ['not a subnet', '10.0.0.1', '10.0.0.2', undefined],
  ])('dynamicRangeFor(%s, pool %s-%s) → %s', (subnet, start, end, range) => {
    expect(dynamicRangeFor(subnet, parseIpv4(start)!, parseIpv4(end)!)).toBe(range);
  });
});
