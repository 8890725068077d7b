/**
 * A container named like a core one (or like a service's) but holding pic's labels of another
 * owner — a store container that took `cell-wireguard` while the core one was gone — is never
 * exec'd into nor signalled: the WireGuard, firewall and tunnel resources, the DNS reload
 * and the account managers refuse it, naming the container, its id and its owner label, and
 * Docker's event stream shows that no exec was even created in it. A container that does carry
 * the expected labels (or, for one the admin runs, none) is reached.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { CellDocument } from '../../crds/types.js';
import { reconcileServiceAccounts } from '../../reconcilers/accounts/index.js';
import { createDnsReconciler } from '../../reconcilers/dns/index.js';
import { isTerminal } from '../../reconcilers/errors.js';
import { firewallReconciler } from '../../reconcilers/firewall/index.js';
import { tunnelReconciler } from '../../reconcilers/firewall/tunnel.js';
import { execInContainer } from '../../reconcilers/shared/exec.js';
import type { CellRouting, ResourceContext, ResourceReconciler } from '../../reconcilers/shared/types.js';
import { wireguardReconciler } from '../../reconcilers/wireguard/index.js';
import { CredentialsStore } from '../../state/credentials.js';
import { TEST_IMAGE } from '../support/cell.js';
import { buildBusyboxImage, cleanupTestResources, docker, recordDockerEvents, TEST_LABELS, uniqueName } from '../support/docker.js';
import { testManifest, testRouting } from '../support/wireguard.js';

const SUITE_LABEL = 'ngo.pic.test-exec-guard';
const CELL = uniqueName('pictest-exec-cell');
const CORE_IMAGE = 'git.pic.ngo/roof/pic-core-wireguard:1.0.0';

let stateRoot = '';
const made: string[] = [];

/** A running busybox container named `pictest-exec-<hex>` with these labels (pic's, or none). */
async function holder(labels: Record<string, string>): Promise<{ name: string; id: string }> {
  const name = uniqueName('pictest-exec');
  const container = await docker.createContainer({
    name,
    Image: TEST_IMAGE,
    Cmd: ['sleep', '3600'],
    Labels: { ...labels, ...TEST_LABELS, [SUITE_LABEL]: '1' },
    StopTimeout: 1,
    HostConfig: { NetworkMode: 'none' },
  });
  made.push(container.id);
  await container.start();
  return { name, id: container.id };
}

const evilLabels = { 'ngo.pic.owner': 'ServiceInstall/evil', 'ngo.pic.cell': CELL, 'ngo.pic.service': 'evil' };

/**
 * The execs created and the signals sent in `container` while `action` runs, from Docker's event
 * stream; a marker exec afterwards shows every earlier event has arrived (it is not included).
 */
async function touchesOf(container: { name: string; id: string }, action: () => Promise<unknown>): Promise<string[]> {
  const recording = await recordDockerEvents({ type: ['container'], container: [container.id], event: ['exec_create', 'kill'] });
  try {
    await action();
  } catch (err) {
    recording.close();
    throw err;
  }
  return recording.stop((marker) => execInContainer(docker, container.name, ['echo', marker]));
}

async function rejection(run: () => Promise<unknown>): Promise<Error> {
  try {
    await run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a refusal, but the call succeeded');
}

function ctx(): ResourceContext {
  return { docker, stateRoot, cellDir: stateRoot, event: () => undefined };
}

/** The cell of testRouting, named CELL, with pic running its WireGuard (or the admin, with `run` false) in `container`. */
function routingWith(container: string, run: boolean): CellRouting {
  const routing = testRouting(container, [{ name: 'web', ip: '172.20.0.20', rules: [{ type: 'ACCEPT', dest_ip: '${SERVICE_IP}', dest_port: 80, proto: 'tcp' }] }]);
  const cell: CellDocument = { ...routing.cell, metadata: { name: CELL } };
  // As the operator passes it (withCoreDefaults): the container named in both places.
  cell.spec.wireguard = run ? { container, run: { image: CORE_IMAGE, address: '172.20.0.12', container } } : { container };
  return { ...routing, cell, peers: [] };
}

const VPN_RESOURCES: ResourceReconciler[] = [wireguardReconciler, firewallReconciler, tunnelReconciler];
// The egress resource works on the cell host (iptables, ip rule), never inside a container.

beforeAll(async () => {
  await cleanupTestResources(`${SUITE_LABEL}=1`, { olderThanMs: 30 * 60_000 });
  await buildBusyboxImage(TEST_IMAGE);
  stateRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'pictest-exec-guard-'));
});

afterAll(async () => {
  for (const id of made) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
  if (stateRoot) await fs.rm(stateRoot, { recursive: true, force: true });
});

describe('a container named like the core WireGuard, held by a service', () => {
  test.each([
    ['pic runs WireGuard', true, "pic's WireGuard"],
    ['the admin runs WireGuard', false, 'the WireGuard the admin runs'],
  ])('%s: every VPN resource refuses it, plans and reconciles, and nothing is exec\'d in it', async (_what, run, role) => {
    const evil = await holder(evilLabels);
    const routing = routingWith(evil.name, run);
    const errors: Error[] = [];
    const touches = await touchesOf(evil, async () => {
      for (const r of VPN_RESOURCES) {
        if (!run && (r === wireguardReconciler || r === tunnelReconciler)) continue; // active only where pic runs WireGuard
        // reconcile first: the peer set is observed only once the server has its key pair.
        errors.push(await rejection(() => r.reconcile(routing, ctx())));
        errors.push(await rejection(() => r.plan(routing, ctx())));
      }
    });
    expect(touches).toEqual([]);
    expect(errors.length).toBeGreaterThan(0);
    for (const err of errors) {
      expect(err.message).toBe(`${evil.name} is held by ServiceInstall/evil (container ${evil.id.slice(0, 12)}…), not by ${role}: pic will not exec into it`);
      expect(isTerminal(err)).toBe(true);
    }
  });

  test('another cell\'s core container under the name is refused too', async () => {
    const other = await holder({ 'ngo.pic.owner': 'Core/wireguard', 'ngo.pic.cell': 'pictest-exec-other' });
    const touches = await touchesOf(other, async () => {
      const err = await rejection(() => firewallReconciler.reconcile(routingWith(other.name, true), ctx()));
      expect(err.message).toContain(`is held by Core/wireguard of cell pictest-exec-other (container ${other.id.slice(0, 12)}…)`);
    });
    expect(touches).toEqual([]);
  });

  test('pic\'s own core container, and an unlabelled one the admin runs, are reached (by id)', async () => {
    const own = await holder({ 'ngo.pic.owner': 'Core/wireguard', 'ngo.pic.cell': CELL });
    const admins = await holder({});
    for (const [container, run] of [[own, true], [admins, false]] as const) {
      const touches = await touchesOf(container, async () => {
        // busybox has no iptables, so the host cannot tell its backend and reads by exec (one
        // iptables-save): the exec runs, and fails there.
        const err = await rejection(() => firewallReconciler.reconcile(routingWith(container.name, run), ctx()));
        expect(err.message).toContain(`in container ${container.name}`);
        expect(isTerminal(err)).toBe(false);
      });
      expect(touches).toEqual([expect.stringMatching(/^exec_create: iptables-save\s*$/)]);
    }
    // An unlabelled container is not pic's own: pic running WireGuard refuses it.
    const err = await rejection(() => firewallReconciler.reconcile(routingWith(admins.name, true), ctx()));
    expect(err.message).toContain(`${admins.name} is held by a container with no pic labels (container ${admins.id.slice(0, 12)}…), not by pic's WireGuard`);
  });

  test('a missing container is still a fault that may pass, naming it', async () => {
    const missing = uniqueName('pictest-exec-absent');
    const err = await rejection(() => firewallReconciler.reconcile(routingWith(missing, true), ctx()));
    expect(isTerminal(err)).toBe(false);
    expect(err.message).toBe(`waiting for container ${missing}: no such container`);
  });
});

test('the DNS server pic runs is not signalled when a service holds its name, and the zone is not written', async () => {
  const evil = await holder(evilLabels);
  const routing = routingWith(evil.name, true);
  routing.cell.spec.dns = { address: '172.20.0.10', run: { image: 'git.pic.ngo/roof/pic-core-dns:1.0.0', address: '172.20.0.11', container: evil.name } };
  const dns = createDnsReconciler({ now: () => new Date('2024-05-01T00:00:00Z') });
  let err: Error | undefined;
  const touches = await touchesOf(evil, async () => {
    err = await rejection(() => dns.reconcile(routing, ctx()));
  });
  expect(touches).toEqual([]);
  expect(err?.message).toBe(`${evil.name} is held by ServiceInstall/evil (container ${evil.id.slice(0, 12)}…), not by pic's DNS server: pic will not signal it`);
  await expect(fs.readdir(path.join(stateRoot, 'dns'))).rejects.toThrow(/ENOENT/);
});

test('an account manager runs only in its own service\'s container', async () => {
  const evil = await holder(evilLabels);
  const manifest = testManifest('files');
  manifest.capabilities.has_accounts = true;
  manifest.accounts = { manager: 'file_manager', credentials: [] } as unknown as NonNullable<typeof manifest.accounts>;
  manifest.container_name = evil.name;
  const service = { name: 'files', manifest, config: {}, serviceIp: '172.20.0.21', egress: { connection: 'default', type: 'default' as const, failOpen: false } };
  const deps = { docker, cellName: CELL, credentials: new CredentialsStore(path.join(stateRoot, 'credentials.json')), event: () => undefined };
  let reasons: string[] = [];
  const touches = await touchesOf(evil, async () => {
    const result = await reconcileServiceAccounts(service, ['alice'], deps);
    reasons = result.peers.map((p) => `${p.state} ${p.retryable}: ${p.reason}`);
  });
  expect(touches).toEqual([]);
  expect(reasons).toEqual([`failed false: ${evil.name} is held by ServiceInstall/evil (container ${evil.id.slice(0, 12)}…), not by pic's files service: pic will not exec into it`]);
});
