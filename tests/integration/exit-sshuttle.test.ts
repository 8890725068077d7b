/**
 * The sshuttle exit (examples/store/services/exit-sshuttle) against an SSH server of the test's
 * own (Debian's sshd in a namespace, its own host key), the private key given as the Connection's
 * file and the host key pinned in its config: the contract of tests/support/exit-suite.ts, UDP
 * other than DNS goes nowhere, and a host whose key is not the pinned one is never used.
 */
import { expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startExit } from '../support/exit-container.js';
import { describeExit } from '../support/exit-suite.js';
import { sh, startSshuttleSite, until } from '../support/remote-sites.js';

const prefix = 'sx20ss';

/** A public key that is not the site's host key. */
async function otherHostKey(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `${prefix}-key-`));
  try {
    await sh(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'key')]);
    return (await readFile(path.join(dir, 'key.pub'), 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describeExit({
  prefix,
  service: 'exit-sshuttle',
  type: 'sshuttle',
  startSite: startSshuttleSite,
  config: (site) => ({ ...site.exitConfig, dns: site.dnsServer }),
  tunnelProcess: 'sshuttle',
  ongoingFlow: 'tcp',
  extra({ uplink, client, site, network }) {
    it('UDP other than DNS is dropped in the exit: the uplink counts none of it', async () => {
      const before = await uplink().countPackets();
      await client().exec(['sh', '-c', `echo probe | timeout 3 nc -u -w 1 ${uplink().probe} 9999; true`]);
      expect(await uplink().countPackets()).toBe(before);
    });

    it('a host key other than the pinned one: ssh refuses the host and the exit never carries traffic', async () => {
      const exit = await startExit({
        prefix,
        service: 'exit-sshuttle',
        network: network(),
        ip: network().address(4),
        configFile: site().clientConfig,
        config: { ...site().exitConfig, host_key: await otherHostKey(), health_check: `${uplink().probe}:80` },
        healthInterval: '2s',
      });
      try {
        await until('ssh to refuse the host key and the exit to try again', async () => /Host key verification failed[^]*trying again/.test(await exit.logs()), 30_000);
        expect((await exit.exec(['pic-exit-health'])).exitCode).not.toBe(0);
      } finally {
        await exit.remove();
      }
    });

    it('no host key in the config: the exit refuses to start rather than trust the host', async () => {
      const exit = await startExit({
        prefix,
        service: 'exit-sshuttle',
        network: network(),
        ip: network().address(5),
        configFile: site().clientConfig,
        config: { ...site().exitConfig, host_key: '' },
      });
      try {
        await until('the exit to stop', async () => (await exit.state()).restarts > 0 || (await exit.state()).status !== 'running', 30_000);
        expect(await exit.logs()).toContain('no host key');
      } finally {
        await exit.remove();
      }
    });
  },
});
