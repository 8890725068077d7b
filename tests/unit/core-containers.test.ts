/**
 * The pass's view of the core containers: one resolution for every resource key, and each read
 * handed to each key at most once, never across a write of pic's own.
 */
import type { ContainerNetworkReader } from '../../reconcilers/shared/container-netns.js';
import { CoreContainers } from '../../reconcilers/shared/core-containers.js';
import type { ContainerClaim } from '../../reconcilers/shared/owned-container.js';

const claim: ContainerClaim = { name: 'cell-wireguard', owner: 'Core/wireguard', cell: 'alice', createdBy: 'pic', role: "pic's WireGuard", use: 'exec into' };

function counting(): { reader: ContainerNetworkReader; saves: () => number } {
  let saves = 0;
  const reader: ContainerNetworkReader = {
    via: { mode: 'host' },
    iptablesSave: () => Promise.resolve(`save ${++saves}`),
    ipJson: () => Promise.resolve([]),
    wireguard: () => Promise.resolve({ format: 'uapi', text: '' }),
  };
  return { reader, saves: () => saves };
}

test('one resolution for the pass, whichever key asks first', async () => {
  const core = new CoreContainers();
  const { reader } = counting();
  let resolutions = 0;
  const resolve = () => Promise.resolve({ container: { name: 'cell-wireguard', id: 'abc', pid: 42 }, reader }).finally(() => resolutions++);
  await Promise.all(['Resource/firewall', 'Resource/tunnel', 'Resource/egress', 'Resource/wireguard'].map((k) => core.forKey(k).get(claim, resolve)));
  expect(resolutions).toBe(1);
  core.forget();
  await core.forKey('Resource/firewall').get(claim, resolve);
  expect(resolutions).toBe(2);
});

test('a failed resolution is not remembered', async () => {
  const core = new CoreContainers();
  const { reader } = counting();
  await expect(core.forKey('a').get(claim, () => Promise.reject(new Error('gone')))).rejects.toThrow('gone');
  await expect(core.forKey('a').get(claim, () => Promise.resolve({ container: { name: 'x', id: 'abc' }, reader }))).resolves.toMatchObject({ container: { id: 'abc' } });
});

test('each key gets the pass\'s read once; its next reconcile, and any read after a write, read afresh', async () => {
  const core = new CoreContainers();
  const { reader, saves } = counting();
  const resolve = () => Promise.resolve({ container: { name: 'cell-wireguard', id: 'abc', pid: 42 }, reader });
  const firewall = core.forKey('Resource/firewall');
  const tunnel = core.forKey('Resource/tunnel');
  const egress = core.forKey('Resource/egress');
  const read = async (view: typeof firewall) => (await view.get(claim, resolve)).reader.iptablesSave();
  expect(await read(firewall)).toBe('save 1');
  expect(await read(tunnel)).toBe('save 1');
  // The firewall again (a retry or a change): a fresh read.
  expect(await read(firewall)).toBe('save 2');
  // A write: the egress key has not had a read yet, but the one before the write is not handed out.
  tunnel.wrote();
  expect(await read(egress)).toBe('save 3');
  // Taken after the write, that read may go to the writer's next reconcile; once.
  expect(await read(tunnel)).toBe('save 3');
  expect(await read(tunnel)).toBe('save 4');
  expect(saves()).toBe(4);
});
