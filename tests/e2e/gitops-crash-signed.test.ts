/**
 * Issue 21: `pic run --git` killed with SIGKILL in the middle of a switch (while a revision is
 * checked out, validated or swapped in) leaves the folder the operator reconciles one whole
 * revision, never a mix, and after a restart the revision applies; and signed mode, where only a
 * commit signed by a key of the allowed_signers file applies (an unsigned one, and one signed by
 * another key, are refused, and the status names the commit and why).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { removeTestCell, waitFor } from '../support/cell.js';
import { containerState, createGitCell, facts, git, startGitPic, waitCell, type GitCell, type GitPic } from '../support/git-cell.js';

const run = promisify(execFile);
const cells: GitCell[] = [];
let pic: GitPic | undefined;

afterAll(async () => {
  await pic?.stop();
  for (const cell of cells) await removeTestCell(cell);
}, 120_000);

const applied = (cell: GitCell, sha: string) => waitCell(cell, `${sha} applied`, (s) => (facts(s).lastAppliedRevision ?? '').includes(sha) && s.phase === 'Ready');

/** The tree id of a folder's content, as git would commit it (compared with a commit's tree). */
async function treeOf(cell: GitCell, dir: string): Promise<string> {
  const index = path.join(cell.root, `tree-index-${process.pid}`);
  const env = { GIT_INDEX_FILE: index };
  try {
    await git(cell.root, ['--git-dir', path.join(cell.work, '.git'), '--work-tree', dir, 'add', '-A', '.'], env);
    return await git(cell.root, ['--git-dir', path.join(cell.work, '.git'), 'write-tree'], env);
  } finally {
    await fs.rm(index, { force: true });
  }
}

/** The commit whose whole tree the folder the operator reconciles holds. */
async function wholeRevision(cell: GitCell, candidates: string[]): Promise<string> {
  const current = path.join(cell.stateDir, 'git', 'current');
  const target = await fs.readlink(current);
  const sha = path.basename(target);
  expect(candidates).toContain(sha);
  expect(await treeOf(cell, await fs.realpath(current))).toBe(await git(cell.work, ['rev-parse', `${sha}^{tree}`]));
  return sha;
}

/** A commit touching many files (so its checkout takes a while) and installing alpha or not. */
function bulk(round: number, withAlpha: boolean, cell: GitCell): Record<string, string | null> {
  const files: Record<string, string | null> = {};
  for (let i = 0; i < 1500; i++) files[`bulk/${String(i % 30).padStart(2, '0')}/f${i}.txt`] = `round ${round} file ${i}\n`;
  return { ...files, ...(withAlpha ? cell.serviceFile('alpha') : { 'cell/services/alpha.yaml': null }) };
}

test('SIGKILL in the middle of a switch leaves one whole revision; after a restart it applies', async () => {
  const cell = await createGitCell([{ id: 'alpha' }]);
  cells.push(cell);
  const url = `file://${cell.bare}`;
  const seen = [await git(cell.work, ['rev-parse', 'HEAD'])];
  seen.push(await cell.commit('bulk 0', bulk(0, true, cell)));
  pic = startGitPic(cell, url);
  await applied(cell, seen[1]!);
  // Kill at several points after the checkout begins: during it, during validation, around the swap.
  for (const [round, delayMs] of [[1, 0], [2, 30], [3, 120], [4, 300], [5, 700]] as const) {
    const sha = await cell.commit(`bulk ${round}`, bulk(round, round % 2 === 0, cell));
    seen.push(sha);
    await waitFor(`checkout of ${sha} to begin`, async () => (pic!.output().includes(`checking out main@sha1:${sha}`) ? true : undefined), 60_000);
    await new Promise((r) => setTimeout(r, delayMs));
    await pic.kill();
    // Right after the kill, and after the restart: one whole revision, the old one or the new one.
    await wholeRevision(cell, seen);
    pic = startGitPic(cell, url);
    await applied(cell, sha);
    expect(await wholeRevision(cell, seen)).toBe(sha);
    const left = (await fs.readdir(path.join(cell.stateDir, 'git', 'revisions'))).filter((n) => n.startsWith('.'));
    expect(left).toEqual([]);
  }
  // The cell converges to the last revision: round 5 has no alpha.
  await waitFor('alpha removed', async () => ((await containerState(cell.containerName('alpha'))) === 'absent' ? true : undefined), 120_000);
  await pic.stop();
  pic = undefined;
}, 600_000);

async function keyPair(dir: string, name: string): Promise<{ key: string; publicKey: string }> {
  const key = path.join(dir, name);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', key]);
  return { key, publicKey: (await fs.readFile(`${key}.pub`, 'utf8')).trim() };
}

test('signed mode: a commit signed by an allowed key applies; an unsigned one and one signed by another key do not', async () => {
  const cell = await createGitCell([{ id: 'alpha' }, { id: 'beta' }]);
  cells.push(cell);
  const keys = await fs.mkdtemp(path.join(cell.root, '..', 'gto-keys-'));
  try {
    const allowed = await keyPair(keys, 'admin');
    const other = await keyPair(keys, 'intruder');
    const signers = path.join(keys, 'allowed_signers');
    await fs.writeFile(signers, `admin@pic.test namespaces="git" ${allowed.publicKey}\n`);
    const good = await cell.commit('install alpha (signed)', cell.serviceFile('alpha'), { sign: allowed.key });
    pic = startGitPic(cell, `file://${cell.bare}`, ['--verify-commits', signers]);
    await applied(cell, good);
    await waitFor('alpha running', async () => ((await containerState(cell.containerName('alpha'))) === 'running' ? true : undefined), 120_000);

    const unsigned = await cell.commit('install beta (unsigned)', cell.serviceFile('beta'));
    const refusedUnsigned = await waitCell(cell, 'unsigned refused', (s) => facts(s).refused?.revision === `main@sha1:${unsigned}`);
    expect(facts(refusedUnsigned).refused?.reason).toBe('RevisionUnverified');
    expect(facts(refusedUnsigned).refused?.problems.join('\n')).toContain(unsigned);
    expect(facts(refusedUnsigned).lastAppliedRevision).toBe(`main@sha1:${good}`);
    expect(refusedUnsigned.conditions.find((c) => c.type === 'Stalled')?.message).toContain('not signed by a key in');

    const forged = await cell.commit('install beta (signed by another key)', cell.serviceFile('beta'), { sign: other.key });
    const refusedForged = await waitCell(cell, 'other key refused', (s) => facts(s).refused?.revision === `main@sha1:${forged}`);
    expect(facts(refusedForged).refused?.reason).toBe('RevisionUnverified');
    expect(facts(refusedForged).lastAppliedRevision).toBe(`main@sha1:${good}`);
    expect(await containerState(cell.containerName('beta'))).toBe('absent');

    const signed = await cell.commit('install beta (signed)', cell.serviceFile('beta'), { sign: allowed.key });
    await applied(cell, signed);
    await waitFor('beta running', async () => ((await containerState(cell.containerName('beta'))) === 'running' ? true : undefined), 120_000);
    await pic.stop();
    pic = undefined;
  } finally {
    await fs.rm(keys, { recursive: true, force: true });
  }
}, 400_000);
