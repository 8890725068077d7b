/**
 * The proxy exit (examples/store/services/exit-proxy) against a SOCKS5 proxy of the test's own
 * (Debian's microsocks in a namespace), the proxy URL given as the Connection's file and DNS asked
 * over TCP through the proxy: the contract of tests/support/exit-suite.ts, and UDP other than DNS
 * goes nowhere.
 */
import { expect, it } from '@jest/globals';
import { describeExit } from '../support/exit-suite.js';
import { startProxySite } from '../support/remote-sites.js';

describeExit({
  prefix: 'px20px',
  service: 'exit-proxy',
  type: 'proxy',
  startSite: startProxySite,
  config: (site) => ({ dns: site.dnsServer }),
  tunnelProcess: 'redsocks',
  ongoingFlow: 'tcp',
  extra({ uplink, client }) {
    it('UDP other than DNS is dropped in the exit: the uplink counts none of it', async () => {
      const before = await uplink().countPackets();
      await client().exec(['sh', '-c', `echo probe | timeout 3 nc -u -w 1 ${uplink().probe} 9999; true`]);
      expect(await uplink().countPackets()).toBe(before);
    });
  },
});
