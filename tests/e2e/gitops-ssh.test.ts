/**
 * `pic run --git` over SSH with a deploy key (issue 21): Debian's sshd runs on loopback with a
 * configuration, host key and authorized key of the test's own; a known_hosts file without the
 * server's key is refused (never accepted on first use) and nothing is applied; with the
 * server's key the cell follows the repository.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { removeTestCell, waitFor } from '../support/cell.js';
import { containerState, createGitCell, facts, freePort, startGitPic, waitCell, type GitCell, type GitPic } from '../support/git-cell.js';

const run = promisify(execFile);
let cell: GitCell | undefined;
let pic: GitPic | undefined;
let sshd: ChildProcess | undefined;
let dir: string | undefined;

afterAll(async () => {
  await pic?.stop();
  if (sshd && sshd.exitCode === null) {
    const exited = new Promise((resolve) => sshd!.once('exit', resolve));
    sshd.kill('SIGTERM');
    await exited;
  }
  if (cell) await removeTestCell(cell);
  if (dir) await fs.rm(dir, { recursive: true, force: true });
}, 120_000);

async function keyPair(file: string): Promise<string> {
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', path.basename(file), '-f', file]);
  return (await fs.readFile(`${file}.pub`, 'utf8')).trim();
}

test('a deploy key over ssh: an unknown host key is refused, the known one is followed', async () => {
  cell = await createGitCell([{ id: 'alpha' }]);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gto-ssh-'));
  const hostKey = await keyPair(path.join(dir, 'host_key'));
  const otherHostKey = await keyPair(path.join(dir, 'other_host_key'));
  const deployKey = await keyPair(path.join(dir, 'deploy_key'));
  await fs.writeFile(path.join(dir, 'authorized_keys'), `${deployKey}\n`, { mode: 0o600 });
  const port = await freePort();
  await fs.writeFile(
    path.join(dir, 'sshd_config'),
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${path.join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      // The test's folder is below /tmp (mode 1777), which StrictModes would refuse.
      'StrictModes no',
      '',
    ].join('\n'),
  );
  sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  await waitFor(`sshd on 127.0.0.1:${port}`, () => new Promise<true | undefined>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(undefined));
  }), 15_000);
  const user = os.userInfo().username;
  const url = `ssh://${user}@127.0.0.1:${port}${cell.bare}`;
  const known = path.join(dir, 'known_hosts');
  const key = path.join(dir, 'deploy_key');

  // A known_hosts file that holds another key for the server: refused, nothing applied.
  await fs.writeFile(known, `[127.0.0.1]:${port} ${otherHostKey}\n`);
  pic = startGitPic(cell, url, ['--git-ssh-key', key, '--git-known-hosts', known]);
  const refused = await waitCell(cell, 'host key refused', (s) => facts(s).source?.lastError !== undefined);
  expect(facts(refused).source?.lastError).toMatch(/host key|Host key verification failed/i);
  expect(facts(refused).lastAppliedRevision).toBeUndefined();
  await fs.access(path.join(cell.stateDir, 'git', 'current')).then(
    () => {
      throw new Error('a revision was checked out through an unverified host');
    },
    () => undefined,
  );
  await pic.stop();

  // An empty known_hosts: still refused (no trust on first use), and the file is left as it was.
  await fs.writeFile(known, '');
  pic = startGitPic(cell, url, ['--git-ssh-key', key, '--git-known-hosts', known]);
  await waitFor('a refused first contact', async () => (/Host key verification failed|No ED25519 host key is known/i.test(pic!.output()) ? true : undefined), 60_000);
  expect(await fs.readFile(known, 'utf8')).toBe('');
  await pic.stop();

  // The server's key: the cell follows the repository.
  await fs.writeFile(known, `[127.0.0.1]:${port} ${hostKey}\n`);
  pic = startGitPic(cell, url, ['--git-ssh-key', key, '--git-known-hosts', known]);
  const sha = await cell.commit('install alpha over ssh', cell.serviceFile('alpha'));
  await waitCell(cell, `${sha} applied`, (s) => (facts(s).lastAppliedRevision ?? '').includes(sha) && s.phase === 'Ready');
  await waitFor('alpha running', async () => ((await containerState(cell!.containerName('alpha'))) === 'running' ? true : undefined), 120_000);
  await pic.stop();
  pic = undefined;
}, 300_000);
