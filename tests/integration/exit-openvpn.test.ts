/**
 * The openvpn exit (examples/store/services/exit-openvpn) against a remote OpenVPN server of the
 * test's own (Debian's openvpn in a namespace, its own test CA made with openssl) that pushes a
 * DNS server and redirect-gateway: the contract of tests/support/exit-suite.ts.
 */
import { describeExit } from '../support/exit-suite.js';
import { startOpenvpnSite } from '../support/remote-sites.js';

describeExit({ prefix: 'px20ov', service: 'exit-openvpn', type: 'openvpn', startSite: startOpenvpnSite, tunnelProcess: 'openvpn', ongoingFlow: 'ping' });
