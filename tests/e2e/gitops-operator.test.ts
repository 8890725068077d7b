/**
 * `pic run --git` against a real repository over file:// (issue 21): a commit that adds a
 * ServiceInstall installs it and the Cell status names that commit; a revert uninstalls; a
 * commit that adds a service and breaks another file applies nothing (no container created, none
 * changed) and the status, `pic describe` and `pic get -o wide` name the broken file; the fixing
 * commit applies both; a force-push to an older revision is followed; a deleted branch keeps the
 * cell on its last good revision and says so, until the branch is back.
 *
 * The tests run in order and share one cell and one operator.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { removeTestCell, waitFor } from '../support/cell.js';
import { docker } from '../support/docker.js';
import { containerState, createGitCell, facts, git, startGitPic, waitCell, type GitCell, type GitPic } from '../support/git-cell.js';
import { runPic } from '../support/pic-cli.js';

let cell: GitCell | undefined;
let pic: GitPic | undefined;
const shas: Record<string, string> = {};

function theCell(): GitCell {
  if (!cell) throw new Error('the test cell was not created');
  return cell;
}

const applied = (sha: string) => waitCell(theCell(), `${sha} applied`, (s) => (facts(s).lastAppliedRevision ?? '').includes(sha) && s.phase === 'Ready');

async function containerId(id: string): Promise<string | undefined> {
  return docker
    .getContainer(theCell().containerName(id))
    .inspect()
    .then((c) => c.Id, () => undefined);
}

async function events(): Promise<{ key: string; reason: string; message: string }[]> {
  const text = await fs.readFile(path.join(theCell().stateDir, 'events.jsonl'), 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { key: string; reason: string; message: string });
}

beforeAll(async () => {
  cell = await createGitCell([{ id: 'alpha' }, { id: 'beta' }]);
  shas.first = await git(cell.work, ['rev-parse', 'HEAD']);
  pic = startGitPic(cell, `file://${cell.bare}`);
}, 120_000);

afterAll(async () => {
  await pic?.stop();
  if (cell) await removeTestCell(cell);
}, 120_000);

test('the first revision applies and the Cell status names it in Flux form', async () => {
  const s = await applied(shas.first!);
  expect(facts(s).lastAppliedRevision).toBe(`main@sha1:${shas.first}`);
  expect(facts(s).lastAttemptedRevision).toBe(`main@sha1:${shas.first}`);
  expect(facts(s).source).toMatchObject({ url: `file://${theCell().bare}`, ref: 'main', path: 'cell' });
  // The operator reconciles the checkout, never the working folder.
  const current = await fs.readlink(path.join(theCell().stateDir, 'git', 'current'));
  expect(current).toBe(path.join('revisions', shas.first!));
}, 120_000);

/** Every file and folder below `dir` with its modification time (and inode: a replaced file is new). */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(entry.parentPath, entry.name);
    const st = await fs.lstat(p);
    out.set(p, `${st.ino}:${st.mtimeMs}`);
  }
  return out;
}

test('polls that find the same commit check out nothing and write nothing', async () => {
  const git = path.join(theCell().stateDir, 'git');
  const cellStatuses = path.join(theCell().stateDir, 'status', 'Cell');
  // Settled: the one Cell status, under the cell's name.
  await waitFor('one Cell status', async () => ((await fs.readdir(cellStatuses)).join() === `${theCell().name}.json` ? true : undefined), 30_000);
  const before = new Map([...(await snapshot(git)), ...(await snapshot(cellStatuses))]);
  await fs.access(path.join(git, 'current'));
  // Five polls at the 1 s interval (the source's log says nothing of a poll that found nothing).
  await new Promise((r) => setTimeout(r, 5500));
  const after = new Map([...(await snapshot(git)), ...(await snapshot(cellStatuses))]);
  expect(after).toEqual(before);
  expect(pic!.output().match(/checking out/g)).toHaveLength(1);
}, 60_000);

test('a commit adding a ServiceInstall installs it; pic get shows the commit', async () => {
  shas.alpha = await theCell().commit('install alpha', theCell().serviceFile('alpha'));
  await applied(shas.alpha);
  await waitFor('alpha running', async () => ((await containerState(theCell().containerName('alpha'))) === 'running' ? true : undefined), 120_000);
  const json = await runPic(['get', 'Cell', '-o', 'json', '--state-dir', theCell().stateDir]);
  expect(json.code).toBe(0);
  expect(json.stdout).toContain(`"lastAppliedRevision": "main@sha1:${shas.alpha}"`);
  const table = await runPic(['get', '--state-dir', theCell().stateDir]);
  expect(table.stdout).toMatch(new RegExp(`Cell\\s+${theCell().name}\\s+True\\s+Ready.*main@${shas.alpha.slice(0, 7)}: install`));
  expect((await events()).some((e) => e.reason === 'RevisionApplied' && e.message.includes(shas.alpha!))).toBe(true);
}, 180_000);

test('reverting a commit uninstalls what it installed', async () => {
  shas.beta = await theCell().commit('install beta', theCell().serviceFile('beta'));
  await applied(shas.beta);
  await waitFor('beta running', async () => ((await containerState(theCell().containerName('beta'))) === 'running' ? true : undefined), 120_000);
  await git(theCell().work, ['revert', '--no-edit', 'HEAD']);
  await git(theCell().work, ['push', '--quiet', theCell().bare, 'main']);
  shas.revert = await git(theCell().work, ['rev-parse', 'HEAD']);
  await applied(shas.revert);
  await waitFor('beta removed', async () => ((await containerState(theCell().containerName('beta'))) === 'absent' ? true : undefined), 120_000);
  expect(await containerState(theCell().containerName('alpha'))).toBe('running');
}, 240_000);

test('a commit that adds a service and breaks another file applies nothing; the fix applies both', async () => {
  const alphaBefore = await containerId('alpha');
  const bad = await theCell().commit('add beta, break alpha', {
    ...theCell().serviceFile('beta'),
    'cell/services/alpha.yaml': 'apiVersion: pic.ngo/v1alpha1\nkind: ServiceInstall\nmetadata: {name: alpha}\nspec:\n  version: 1.0.0\n  colour: red\n',
  });
  const s = await waitCell(theCell(), `${bad} refused`, (st) => (facts(st).lastAttemptedRevision ?? '').includes(bad) && st.phase === 'Stalled');
  expect(facts(s).lastAppliedRevision).toBe(`main@sha1:${shas.revert}`);
  expect(facts(s).refused?.revision).toBe(`main@sha1:${bad}`);
  expect(facts(s).refused?.problems.join('\n')).toContain('cell/services/alpha.yaml');
  expect(s.conditions.find((c) => c.type === 'Stalled')?.message).toContain('cell/services/alpha.yaml');
  // The previous revision keeps running, untouched: no beta, the same alpha.
  const current = await fs.readlink(path.join(theCell().stateDir, 'git', 'current'));
  expect(current).toBe(path.join('revisions', shas.revert!));
  // Give the operator every chance to act on it (several polls and a resync), then look.
  await new Promise((r) => setTimeout(r, 6000));
  expect(await containerState(theCell().containerName('beta'))).toBe('absent');
  expect(await containerId('alpha')).toBe(alphaBefore);
  const describe = await runPic(['describe', `Cell/${theCell().name}`, '--state-dir', theCell().stateDir]);
  expect(describe.code).toBe(0);
  expect(describe.stdout).toContain(`main@sha1:${shas.revert}`);
  expect(describe.stdout).toContain(`main@sha1:${bad}`);
  expect(describe.stdout).toContain('cell/services/alpha.yaml');
  const wide = await runPic(['get', '-o', 'wide', '--state-dir', theCell().stateDir]);
  expect(wide.stdout).toContain('cell/services/alpha.yaml');
  expect((await events()).some((e) => e.reason === 'RevisionInvalid' && e.message.includes(bad) && e.message.includes('cell/services/alpha.yaml'))).toBe(true);

  shas.fixed = await theCell().commit('fix alpha', theCell().serviceFile('alpha'));
  const fixed = await applied(shas.fixed);
  expect(facts(fixed).refused).toBeUndefined();
  await waitFor('beta running', async () => ((await containerState(theCell().containerName('beta'))) === 'running' ? true : undefined), 120_000);
  expect(await containerState(theCell().containerName('alpha'))).toBe('running');
}, 240_000);

test('a force-push to an older revision is followed', async () => {
  await theCell().forcePush(shas.alpha!);
  await applied(shas.alpha!);
  await waitFor('beta removed', async () => ((await containerState(theCell().containerName('beta'))) === 'absent' ? true : undefined), 120_000);
  expect(await containerState(theCell().containerName('alpha'))).toBe('running');
}, 180_000);

test('a deleted branch keeps the last good revision running and says since when; its return is followed', async () => {
  await git(theCell().root, ['--git-dir', theCell().bare, 'update-ref', '-d', 'refs/heads/main']);
  const s = await waitCell(theCell(), 'source error', (st) => facts(st).source?.lastError !== undefined);
  expect(facts(s).source?.lastError).toContain('main');
  expect(Number.isNaN(Date.parse(facts(s).source?.lastErrorSince ?? ''))).toBe(false);
  expect(facts(s).lastAppliedRevision).toBe(`main@sha1:${shas.alpha}`);
  expect(s.phase).toBe('Stalled');
  expect(await containerState(theCell().containerName('alpha'))).toBe('running');
  shas.back = await theCell().commit('the branch again, with beta', theCell().serviceFile('beta'));
  const back = await applied(shas.back);
  expect(facts(back).source?.lastError).toBeUndefined();
  await waitFor('beta running', async () => ((await containerState(theCell().containerName('beta'))) === 'running' ? true : undefined), 120_000);
}, 240_000);

test('a relative path pic writes to (snapshots, the zone file: inside a replaced checkout) is refused in Git mode, naming the field', async () => {
  const cellYaml = await fs.readFile(path.join(theCell().work, 'cell', 'cell.yaml'), 'utf8');
  const bad = await theCell().commit('keep backups beside the documents', { 'cell/cell.yaml': `${cellYaml}  backup: {path: backups}\n` });
  const s = await waitCell(theCell(), `${bad} refused`, (st) => facts(st).refused?.revision === `main@sha1:${bad}`);
  expect(facts(s).refused?.problems.join('\n')).toContain('cell/cell.yaml: /spec/backup/path');
  expect(facts(s).lastAppliedRevision).toBe(`main@sha1:${shas.back}`);
  const zone = await theCell().commit('the zone beside the documents', { 'cell/cell.yaml': `${cellYaml}  dns: {zoneFile: cell.zone}\n` });
  const z = await waitCell(theCell(), `${zone} refused`, (st) => facts(st).refused?.revision === `main@sha1:${zone}`);
  expect(facts(z).refused?.problems.join('\n')).toContain('cell/cell.yaml: /spec/dns/zoneFile');
  const good = await theCell().commit('backups in an absolute folder', { 'cell/cell.yaml': `${cellYaml}  backup: {path: ${path.join(theCell().root, 'snapshots')}}\n` });
  await applied(good);
}, 120_000);
