/**
 * `pic credentials PEER -o wireguard [--qr]`: the peer's wg-quick file, exactly (nothing else on
 * stdout, so it can be redirected into wg0.conf), or the same text as a QR code for the phone
 * app. It prints the peer's private key, by design; it writes and logs nothing.
 */
import QRCode from 'qrcode';
import type { CellDocument, PeerAccountDocument } from '../../crds/types.js';
import { PeerSettingsError, peerWireguardFile } from '../../reconcilers/wireguard/credentials.js';
import { safeLine } from '../safe-text.js';
import type { Io } from './usage.js';

export async function printPeerWireguard(cell: CellDocument, peer: PeerAccountDocument | undefined, peerName: string, stateRoot: string, qr: boolean, io: Io): Promise<number> {
  if (!peer) {
    io.err(`pic: no valid PeerAccount named "${safeLine(peerName)}" in the cell folder`);
    return 1;
  }
  let text: string;
  try {
    text = await peerWireguardFile(cell, peer, stateRoot);
  } catch (err) {
    if (!(err instanceof PeerSettingsError)) throw err;
    io.err(`pic: ${safeLine(err.message)}`);
    return 1;
  }
  if (qr) io.out(await QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'M' }));
  else io.out(text.replace(/\n$/, ''));
  return 0;
}
