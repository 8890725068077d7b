/**
 * The firewall's pure parts: rendering `PIC-SERVICES` (golden files), normalising what
 * `iptables -S` prints, and the plan from wanted and observed chains.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isTerminal } from '../../reconcilers/errors.js';
import { normaliseRule, parseListing, type ObservedChain } from '../../reconcilers/firewall/observe.js';
import { planFirewall } from '../../reconcilers/firewall/plan.js';
import { renderServiceRules, renderServicesRestore } from '../../reconcilers/firewall/render.js';
import type { IptablesRule } from '../../crds/types.js';
import { testRouting, type TestServiceShape } from '../support/wireguard.js';

/** Golden files hold the exact text; `UPDATE_GOLDEN=1 npm test` rewrites them after a deliberate change. */
const GOLDEN_DIR = path.join(process.cwd(), 'tests', 'golden', 'firewall');

async function expectGolden(name: string, actual: string): Promise<void> {
  const file = path.join(GOLDEN_DIR, name);
  if (process.env.UPDATE_GOLDEN === '1') {
    await fs.mkdir(GOLDEN_DIR, { recursive: true });
    await fs.writeFile(file, actual);
  }
  expect(actual).toBe(await fs.readFile(file, 'utf8'));
}

const tcp = (port: number): IptablesRule => ({ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: port, proto: 'tcp' });
const udp = (port: number): IptablesRule => ({ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: port, proto: 'udp' });
const bare = (port: number): IptablesRule => ({ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: port });

const rulesOf = (services: TestServiceShape[]) => renderServiceRules(testRouting('cell-wireguard', services).services);

describe('renderServicesRestore (golden)', () => {
  const cases: [string, TestServiceShape[]][] = [
    [
      'two-services.rules',
      [
        { name: 'homepage', ip: '172.20.0.20', rules: [tcp(80), tcp(443)] },
        { name: 'voice', ip: '172.20.0.31', rules: [udp(3478), tcp(3478)] },
      ],
    ],
    ['dedupe.rules', [{ name: 'notes', ip: '172.20.0.22', rules: [tcp(8080), bare(8080), tcp(8080), udp(8080)] }]],
    [
      'ordering.rules',
      [
        { name: 'zeta', ip: '172.20.0.40', rules: [tcp(9000)] },
        { name: 'alpha', ip: '172.20.0.41', rules: [tcp(8080), tcp(443), udp(53), tcp(53), tcp(80)] },
        { name: 'no-rules', ip: '172.20.0.42' },
      ],
    ],
    ['none-installed.rules', []],
  ];

  test.each(cases)('%s', async (name, services) => {
    const rules = rulesOf(services);
    await expectGolden(name, renderServicesRestore(rules));
  });

  test('rendered rules are already in the form iptables -S prints', () => {
    const rules = rulesOf(cases.flatMap(([, services]) => services).filter((s, i, all) => all.findIndex((o) => o.name === s.name) === i));
    expect(rules.length).toBeGreaterThan(5);
    for (const rule of rules) expect(normaliseRule(rule)).toBe(rule);
  });

  test('the order services come in does not matter', () => {
    const { services } = testRouting('cell-wireguard', cases[2]?.[1] ?? []);
    expect(renderServiceRules([...services].reverse())).toEqual(renderServiceRules(services));
  });

  test('a service without iptables_rules renders nothing', () => {
    expect(rulesOf([{ name: 'quiet', ip: '172.20.0.50' }])).toEqual([]);
  });

  test.each([
    ['a port out of range', [{ ...tcp(80), dest_port: 70000 }], /dest_port must be an integer from 1 to 65535/],
    ['an unknown protocol', [{ ...tcp(80), proto: 'icmp' as 'tcp' }], /proto must be tcp or udp/],
    ['a literal address', [{ ...tcp(80), dest_ip: '10.0.0.1' as '${SERVICE_IP}' }], /dest_ip must be the literal/],
    ['a DROP rule', [{ ...tcp(80), type: 'DROP' as 'ACCEPT' }], /type must be ACCEPT/],
  ])('%s is bad input naming the service and the rule', (_what, rules, message) => {
    let thrown: unknown;
    try {
      rulesOf([{ name: 'bad', ip: '172.20.0.60', rules }]);
    } catch (err) {
      thrown = err;
    }
    expect(isTerminal(thrown)).toBe(true);
    expect((thrown as Error).message).toMatch(/ServiceInstall\/bad: manifest iptables_rules\[0\]/);
    expect((thrown as Error).message).toMatch(message);
  });

  test('a service IP that is not an address is bad input', () => {
    expect(() => rulesOf([{ name: 'bad', ip: '172.20.0.300', rules: [tcp(80)] }])).toThrow(/not an IPv4 address/);
  });
});

describe('normaliseRule', () => {
  test.each([
    ['-A PIC-SERVICES  -d 172.20.0.20/32   -j ACCEPT', '-A PIC-SERVICES -d 172.20.0.20/32 -j ACCEPT'],
    ['-A X -m comment --comment pic:homepage -j ACCEPT', '-A X -m comment --comment "pic:homepage" -j ACCEPT'],
    ['-A X -m comment --comment "pic:homepage" -j ACCEPT', '-A X -m comment --comment "pic:homepage" -j ACCEPT'],
    ['-A X -m comment --comment "two words" -j ACCEPT', '-A X -m comment --comment "two words" -j ACCEPT'],
    ['-A X -m comment --comment "say \\"hi\\"" -j ACCEPT', '-A X -m comment --comment "say \\"hi\\"" -j ACCEPT'],
    ['  -N PIC-SERVICES  ', '-N PIC-SERVICES'],
  ])('%j → %j', (printed, normal) => {
    expect(normaliseRule(printed)).toBe(normal);
  });

  test('parseListing drops blank lines and normalises each', () => {
    expect(parseListing('-N A\n\n-A A  -j ACCEPT\n')).toEqual(['-N A', '-A A -j ACCEPT']);
  });
});

describe('planFirewall', () => {
  const wanted = rulesOf([
    { name: 'homepage', ip: '172.20.0.20', rules: [tcp(80)] },
    { name: 'voice', ip: '172.20.0.31', rules: [udp(3478)] },
  ]);
  const [homepage, voice] = wanted as [string, string];
  const byHand = '-A PIC-SERVICES -s 10.9.9.9/32 -j ACCEPT';
  const chain = (rules: string[], jumps = 1, exists = true): ObservedChain => ({ exists, rules, jumps });

  test.each<[string, string[], ObservedChain, { lines: string[]; addJump?: boolean; removeJumps?: number }]>([
    ['in sync', wanted, chain(wanted), { lines: [] }],
    ['nothing installed, empty chain with its jump', [], chain([]), { lines: [] }],
    ['a rule added by hand', wanted, chain([homepage, byHand, voice]), { lines: [`- ${byHand}`], addJump: false, removeJumps: 0 }],
    ['a rule removed', wanted, chain([homepage]), { lines: [`+ ${voice}`], addJump: false, removeJumps: 0 }],
    ['the jump missing', wanted, chain(wanted, 0), { lines: ['+ -I FORWARD 1 -j PIC-SERVICES'], addJump: true, removeJumps: 0 }],
    [
      'the chain missing',
      wanted,
      chain([], 0, false),
      { lines: ['+ -N PIC-SERVICES', `+ ${homepage}`, `+ ${voice}`, '+ -I FORWARD 1 -j PIC-SERVICES'], addJump: true, removeJumps: 0 },
    ],
    ['the jump twice', wanted, chain(wanted, 2), { lines: ['- -A FORWARD -j PIC-SERVICES (duplicate)'], addJump: false, removeJumps: 1 }],
    ['rules out of order', wanted, chain([voice, homepage]), { lines: ['~ PIC-SERVICES: rules back in order'], addJump: false, removeJumps: 0 }],
    ['a duplicate of a wanted rule', wanted, chain([homepage, homepage, voice]), { lines: [`- ${homepage}`], addJump: false, removeJumps: 0 }],
    ['the last service uninstalled', [], chain(wanted), { lines: [`- ${homepage}`, `- ${voice}`], addJump: false, removeJumps: 0 }],
  ])('%s', (_name, desired, observed, expected) => {
    const plan = planFirewall(desired, observed);
    expect(plan.lines).toEqual(expected.lines);
    if (expected.lines.length === 0) {
      expect(plan.action).toBeUndefined();
      return;
    }
    expect(plan.action?.addJump).toBe(expected.addJump);
    expect(plan.action?.removeJumps).toBe(expected.removeJumps);
    // Always the whole chain, so the result does not depend on what was there.
    const restore = plan.action?.restore ?? '';
    expect(restore.startsWith(renderServicesRestore(desired).replace(/COMMIT\n$/, ''))).toBe(true);
    expect(restore.endsWith('COMMIT\n')).toBe(true);
    expect(restore.includes('-I FORWARD 1 -j PIC-SERVICES')).toBe(expected.addJump);
    expect(restore.split('\n').filter((l) => l === '-D FORWARD -j PIC-SERVICES')).toHaveLength(expected.removeJumps ?? 0);
    // Nothing but our chain and the jump to it is named.
    for (const line of restore.split('\n').filter((l) => /^-[AIDFN] /.test(l))) expect(line).toMatch(/PIC-SERVICES/);
  });
});
