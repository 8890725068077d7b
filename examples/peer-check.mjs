#!/usr/bin/env node
// The peer's view of a running cell, for the demo: a throwaway container with its own network
// namespace gets nothing but the peer's `pic credentials PEER -o wireguard` file and `pic ca`,
// brings the tunnel up with wg-quick, resolves the URL's host through the cell's DNS and fetches
// the URL over HTTPS through Caddy. Prints what it resolved and fetched; exit 0 only if both worked.
//
//   node examples/peer-check.mjs --cell DIR --state-dir DIR --peer alice --url https://notes.demo.pic.test/ [--network bridge]
//
// The Cell's spec.wireguard.endpoint must be reachable from a container on --network (for
// Docker's default bridge: 172.17.0.1:<port>, with the port published there). Run `make build`
// first: this uses the compiled modules in dist/. The container and its image are removed at the end.
import { parseArgs } from 'node:util';
import { main } from '../dist/controllers/cli/main.js';
import { buildPeerImage, configurePeer, removeContainer, startPeerContainer } from '../dist/tests/support/peer.js';
import { docker } from '../dist/tests/support/docker.js';

const { values } = parseArgs({ options: { cell: { type: 'string' }, 'state-dir': { type: 'string' }, peer: { type: 'string' }, url: { type: 'string' }, network: { type: 'string', default: 'bridge' } } });
for (const need of ['cell', 'state-dir', 'peer', 'url']) {
  if (!values[need]) {
    console.error(`peer-check: --${need} is required`);
    process.exit(2);
  }
}
const url = new URL(values.url);

async function pic(args) {
  const out = [];
  const err = [];
  const code = await main([...args, '--cell', values.cell, '--state-dir', values['state-dir']], { out: (l) => out.push(l), err: (l) => err.push(l) });
  if (code !== 0) throw new Error(`pic ${args.join(' ')}: ${err.join('; ')}`);
  return out.join('\n');
}

async function retry(what, attempt, tries = 30) {
  for (let i = 1; ; i++) {
    const result = await attempt();
    if (result.exitCode === 0 || i >= tries) return result;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const wgQuick = await pic(['credentials', values.peer, '-o', 'wireguard']);
const ca = await pic(['ca']);
const image = await buildPeerImage();
let peer;
let ok = false;
try {
  peer = await startPeerContainer(image, values.network, {});
  await configurePeer(peer, wgQuick, ca);
  const resolved = await retry('dig', () => peer.exec(['dig', '+short', '+time=2', '+tries=1', url.hostname, 'A']));
  console.log(`peer ${values.peer}: ${url.hostname} resolves to ${resolved.stdout.trim() || '(nothing)'} through the cell's DNS`);
  const page = await retry('curl', () => peer.exec(['curl', '-sS', '--max-time', '5', '--cacert', '/root/cell-ca.pem', url.href]));
  if (page.exitCode === 0) {
    console.log(`peer ${values.peer}: GET ${url.href} over HTTPS (the cell's CA trusted):`);
    console.log(page.stdout.trimEnd());
    ok = resolved.stdout.trim() !== '';
  } else {
    console.error(`peer ${values.peer}: GET ${url.href} failed: ${page.stderr.trim()}`);
  }
} finally {
  if (peer) await removeContainer(peer.id);
  await docker.getImage(image).remove({ force: true }).catch(() => undefined);
}
process.exit(ok ? 0 : 1);
