#!/usr/bin/env node
// The peer's view of a running cell, for the demo: a throwaway container with its own network
// namespace gets nothing but the peer's `pic credentials PEER -o wireguard` file and `pic ca`,
// brings the tunnel up with wg-quick, resolves the URL's host through the cell's DNS and fetches
// the URL over HTTPS through Caddy. With --sign-in PATH it then signs in at PATH of the same site
// (HTTP Basic) with the username and password `pic credentials PEER -o json` gives for the service
// at that URL, and checks that a wrong password is refused. Prints what it resolved and fetched;
// exit 0 only if every step worked.
//
//   node examples/peer-check.mjs --cell DIR --state-dir DIR --peer alice --url https://notes.demo.pic.test/ [--sign-in /account] [--network bridge]
//
// The Cell's spec.wireguard.endpoint must be reachable from a container on --network (for
// Docker's default bridge: 172.17.0.1:<port>, with the port published there). Run `make build`
// first: this uses the compiled modules in dist/. The container and its image are removed at the
// end; a killed run's are labelled ngo.pic.peer-check=<cell name> and tagged
// pic-peer-check/<cell name>, which is what `make demo-clean` removes.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { main } from '../dist/controllers/cli/main.js';
import { loadCell } from '../dist/state/cell.js';
import { buildPeerImage, configurePeer, removeContainer, startPeerContainer } from '../dist/tests/support/peer.js';
import { docker } from '../dist/tests/support/docker.js';

const { values } = parseArgs({
  options: { cell: { type: 'string' }, 'state-dir': { type: 'string' }, peer: { type: 'string' }, url: { type: 'string' }, 'sign-in': { type: 'string' }, network: { type: 'string', default: 'bridge' } },
});
for (const need of ['cell', 'state-dir', 'peer', 'url']) {
  if (!values[need]) {
    console.error(`peer-check: --${need} is required`);
    process.exit(2);
  }
}
const url = new URL(values.url);
const signInUrl = values['sign-in'] ? new URL(values['sign-in'], url) : undefined;
const FIRST_LINES = 8;

async function pic(args, { stateDir = true } = {}) {
  const out = [];
  const err = [];
  // pic ca asks the running Caddy and takes no --state-dir.
  const code = await main([...args, '--cell', values.cell, ...(stateDir ? ['--state-dir', values['state-dir']] : [])], { out: (l) => out.push(l), err: (l) => err.push(l) });
  if (code !== 0) throw new Error(`pic ${args.join(' ')}: ${err.join('; ')}`);
  return out.join('\n');
}

/** Runs `attempt` until its exit code is 0, at most `tries` times a second apart; the last result. */
async function retry(attempt, tries = 30) {
  for (let i = 1; ; i++) {
    const result = await attempt();
    if (result.exitCode === 0 || i >= tries) return result;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** A string in a curl config file: quoted, backslash and quote escaped. */
const curlString = (value) => `"${value.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;

/** GET `target` from the peer, with Basic credentials given to curl on stdin (never in its argv): status and page. */
async function get(peer, target, user) {
  const config = user ? `user = ${curlString(`${user.username}:${user.password}`)}\n` : '';
  const r = await peer.exec(['curl', '-sS', '--max-time', '5', '--cacert', '/root/cell-ca.pem', '-K', '-', '-w', '\n%{http_code}', target.href], config);
  const lines = r.stdout.trimEnd().split('\n');
  return { exitCode: r.exitCode, status: r.exitCode === 0 ? Number(lines.pop()) : 0, body: lines.join('\n'), stderr: r.stderr.trim() };
}

const firstLines = (text) => text.split('\n').slice(0, FIRST_LINES).map((l) => `  | ${l}`).join('\n');

/** The peer's credentials for the service whose url is on the same site as `target`. */
async function credentialsFor(target) {
  const printed = JSON.parse(await pic(['credentials', values.peer, '-o', 'json']));
  for (const [service, fields] of Object.entries(printed.services ?? {})) {
    if (typeof fields.url === 'string' && new URL(fields.url).host === target.host && fields.username && fields.password) return { service, ...fields };
  }
  throw new Error(`pic credentials ${values.peer} names no service at ${target.host} with a username and password`);
}

const loaded = await loadCell(path.resolve(values.cell));
const cellName = loaded.cell?.metadata.name;
if (!cellName) {
  console.error(`peer-check: ${values.cell} has no valid Cell document`);
  process.exit(2);
}
const wgQuick = await pic(['credentials', values.peer, '-o', 'wireguard']);
const ca = await pic(['ca'], { stateDir: false });
const user = signInUrl ? await credentialsFor(signInUrl) : undefined;
const image = await buildPeerImage(`pic-peer-check/${cellName}:${process.pid}`);
let peer;
let ok = false;
try {
  peer = await startPeerContainer(image, values.network, { 'ngo.pic.peer-check': cellName });
  await configurePeer(peer, wgQuick, ca);
  console.log(`peer ${values.peer}: tunnel up from ${peer.name} (nothing in it but pic credentials ${values.peer} -o wireguard and pic ca)`);
  const resolved = await retry(() => peer.exec(['dig', '+short', '+time=2', '+tries=1', url.hostname, 'A']));
  const address = resolved.stdout.trim();
  console.log(`peer ${values.peer}: ${url.hostname} resolves to ${address || '(nothing)'} through the cell's DNS`);
  const page = address ? await retry(() => get(peer, url).then((r) => ({ ...r, exitCode: r.status === 200 ? 0 : 1 }))) : undefined;
  if (page?.status === 200) {
    console.log(`peer ${values.peer}: GET ${url.href} over HTTPS (the cell's CA trusted): ${page.status}, first lines:`);
    console.log(firstLines(page.body));
    ok = true;
  } else if (page) {
    console.error(`peer ${values.peer}: GET ${url.href} failed: ${page.stderr || `status ${page.status}`}`);
  }
  if (ok && signInUrl && user) {
    const signedIn = await get(peer, signInUrl, user);
    const wrong = await get(peer, signInUrl, { username: user.username, password: `${user.password}-wrong` });
    console.log(`peer ${values.peer}: GET ${signInUrl.href} as ${user.username} with the ${user.service} password from pic credentials: ${signedIn.status}`);
    console.log(firstLines(signedIn.body.split('\n').filter((l) => /signed in/i.test(l)).join('\n') || signedIn.body));
    console.log(`peer ${values.peer}: the same with a wrong password: ${wrong.status}`);
    ok = signedIn.status === 200 && (wrong.status === 401 || wrong.status === 403);
    if (!ok) console.error(`peer ${values.peer}: sign-in check failed (expected 200, then 401 or 403)`);
  }
} finally {
  if (peer) await removeContainer(peer.id);
  await docker.getImage(image).remove({ force: true }).catch(() => undefined);
}
process.exit(ok ? 0 : 1);
