/**
 * The wireguard_ext exit (examples/store/services/exit-wireguard) against a remote WireGuard
 * server of the test's own (wireguard-go in a namespace), with a wg-quick file as a provider
 * exports it: the contract of tests/support/exit-suite.ts.
 */
import { describeExit } from '../support/exit-suite.js';
import { startWireguardSite } from '../support/remote-sites.js';

describeExit({ prefix: 'px20wg', service: 'exit-wireguard', type: 'wireguard_ext', startSite: startWireguardSite, tunnelProcess: 'wireguard-go', ongoingFlow: 'ping' });
