/**
 * The backup engine's pure parts: which tar entries may be restored, how trees are compared,
 * which mount holds a declared path, the retention rule, and when a scheduled snapshot is due.
 */
import fc from 'fast-check';
import { checkEntry, compareEntries, entryListDigest, entryPath, toFileEntry, type TarHeader } from '../../reconcilers/backup/entries.js';
import { configArchiveName, configPathOnHost, mountHolding, planServiceArchives, type BackupContainer } from '../../reconcilers/backup/plan.js';
import { isoWeekKey, planRetention, type RetainedSnapshot } from '../../reconcilers/backup/retention.js';
import { backupDue, lastSlot, verifiedBackupOverdue } from '../../reconcilers/backup/schedule.js';
import type { FileEntry } from '../../reconcilers/backup/types.js';
import { isSnapshotId, snapshotId } from '../../state/snapshots.js';

describe('entryPath', () => {
  it.each([
    ['./', '.'],
    ['.', '.'],
    ['./a/', 'a'],
    ['././a/b', 'a/b'],
    ['a/b/', 'a/b'],
  ])('%s → %s', (name, expected) => expect(entryPath(name)).toBe(expected));
});

describe('checkEntry', () => {
  const ok: [string, TarHeader, string[]][] = [
    ['a file', { name: './a/b.txt', type: 'file' }, []],
    ['the root', { name: './', type: 'directory' }, []],
    ['a relative symlink inside', { name: './a/latest', type: 'symlink', linkname: '2026/01.md' }, []],
    ['a symlink up to the root', { name: './a/b/up', type: 'symlink', linkname: '../..' }, []],
    ['a symlink to ./x', { name: './x-link', type: 'symlink', linkname: './x' }, []],
    ['a hard link inside', { name: './b', type: 'link', linkname: './a' }, []],
    ['a fifo', { name: './pipe', type: 'fifo' }, []],
  ];
  it.each(ok)('accepts %s', (_what, header, symlinks) => expect(checkEntry(header, new Set(symlinks))).toBeUndefined());

  const refused: [string, TarHeader, string[], RegExp][] = [
    ['an absolute name', { name: '/etc/passwd', type: 'file' }, [], /absolute name/],
    ['..', { name: './a/../../x', type: 'file' }, [], /climbs out/],
    ['a symlink out', { name: './a/l', type: 'symlink', linkname: '../../etc' }, [], /outside its volume/],
    ['an absolute symlink', { name: './l', type: 'symlink', linkname: '/etc' }, [], /absolute path/],
    ['a symlink through a symlink and ..', { name: './x', type: 'symlink', linkname: 'a/l/..' }, [], /not a plain path/],
    ['a write through a symlink', { name: './l/x', type: 'file' }, ['l'], /through the symlink "l"/],
    ['a hard link out', { name: './h', type: 'link', linkname: '../x' }, [], /outside the archive/],
    ['an absolute hard link', { name: './h', type: 'link', linkname: '/etc/shadow' }, [], /absolute path/],
    ['a hard link through a symlink', { name: './h', type: 'link', linkname: 'l/passwd' }, ['l'], /through the symlink/],
    ['a character device', { name: './null', type: 'character-device' }, [], /device file/],
    ['a block device', { name: './sda', type: 'block-device' }, [], /device file/],
    ['an unknown type', { name: './x', type: 'gnu-volume-header' }, [], /does not restore/],
  ];
  it.each(refused)('refuses %s', (_what, header, symlinks, message) => expect(checkEntry(header, new Set(symlinks))).toMatch(message));

  it('never accepts a name or link target that lands outside (property)', () => {
    const segment = fc.constantFrom('a', 'b', '..', '.', 'c');
    const relPath = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('/'));
    fc.assert(
      fc.property(relPath, relPath, (name, target) => {
        const header: TarHeader = { name: `./${name}`, type: 'symlink', linkname: target };
        if (checkEntry(header, new Set()) !== undefined) return;
        // Accepted: resolve it lexically from the entry's folder, which must itself be inside.
        const depthOf = (parts: string[]) => {
          let depth = 0;
          for (const p of parts) {
            if (p === '..') depth--;
            else if (p !== '.' && p !== '') depth++;
            if (depth < 0) return -1;
          }
          return depth;
        };
        const folder = name.split('/').slice(0, -1);
        expect(depthOf(folder)).toBeGreaterThanOrEqual(0);
        expect(depthOf([...folder, ...target.split('/')])).toBeGreaterThanOrEqual(0);
      }),
    );
  });
});

describe('entry lists', () => {
  const file = (path: string, sha256: string, size = 3): FileEntry => ({ path, type: 'file', size, mode: 0o644, uid: 0, gid: 0, sha256 });
  it('digests the same tree equally whatever the order, leaving out the root', () => {
    const a = [file('x', 'aa'), file('y', 'bb'), { ...toFileEntry({ name: './', type: 'directory', mode: 0o755 }) }];
    const b = [file('y', 'bb'), file('x', 'aa'), { ...toFileEntry({ name: './', type: 'directory', mode: 0o700, uid: 5 }) }];
    expect(entryListDigest(a)).toBe(entryListDigest(b));
    expect(entryListDigest(a)).not.toBe(entryListDigest([file('x', 'aa'), file('y', 'cc')]));
  });

  it('names what differs', () => {
    expect(compareEntries([file('x', 'aa'), file('y', 'bb')], [file('x', 'ab', 4), file('z', 'cc')])).toEqual([
      'x: size 3 → 4, sha256 aa → ab',
      'y: archived but not restored',
      "z: restored but not in the archive's record",
    ]);
    expect(compareEntries([file('x', 'aa')], [file('x', 'aa')])).toEqual([]);
  });
});

describe('planServiceArchives', () => {
  const container: BackupContainer = {
    id: 'c1',
    name: 'cell-notes',
    serviceKey: 'notes',
    running: true,
    paused: false,
    image: 'sha256:1',
    mounts: [
      { type: 'volume', name: 'pic-notes-data', source: '/var/lib/docker/volumes/pic-notes-data/_data', destination: '/data' },
      { type: 'bind', source: '/srv/pic/data/notes/cfg', destination: '/etc/notes' },
    ],
  };

  it('finds the mount holding a path, the longest first', () => {
    expect(mountHolding(container, '/data/notes')?.name).toBe('pic-notes-data');
    expect(mountHolding(container, '/data')?.name).toBe('pic-notes-data');
    expect(mountHolding(container, '/database')).toBeUndefined();
    expect(mountHolding(container, '/etc/notes/')?.source).toBe('/srv/pic/data/notes/cfg');
  });

  it.each([
    ['a volume subfolder, by container name', { container: 'cell-notes', path: '/data/notes', name: 'notes_data' }, { type: 'volume', volume: 'pic-notes-data', subpath: 'notes' }],
    ['a whole volume, by service key', { container: 'notes', path: '/data', name: 'all' }, { type: 'volume', volume: 'pic-notes-data', subpath: '.' }],
    ['a bind mount', { container: 'notes', path: '/etc/notes', name: 'cfg' }, { type: 'bind', hostPath: '/srv/pic/data/notes/cfg', subpath: '.' }],
  ])('resolves %s', (_what, volume, source) => {
    const { archives, problems } = planServiceArchives('notes', { backup: { volumes: [volume], config_paths: [] } }, [container], '/srv/pic/data');
    expect(problems).toEqual([]);
    expect(archives).toEqual([{ kind: 'volume', name: volume.name, file: `service_data/notes/${volume.name}.tar.gz`, container: volume.container, path: volume.path, source }]);
  });

  it('names the field of each problem', () => {
    const { problems } = planServiceArchives(
      'notes',
      {
        backup: {
          volumes: [
            { container: 'other', path: '/data', name: 'a' },
            { container: 'notes', path: '/usr', name: 'b' },
            { container: 'notes', path: '/data', name: 'c' },
            { container: 'notes', path: '/data/x', name: 'c' },
          ],
          config_paths: ['../etc'],
        },
      },
      [container],
      '/srv/pic/data',
    );
    expect(problems.map((p) => p.pointer)).toEqual(['/backup/volumes/0/container', '/backup/volumes/1/path', '/backup/config_paths/0', '/backup']);
  });

  it.each([
    ['notes/config', '/srv/d/notes/config'],
    ['notes', '/srv/d/notes'],
    ['notes/x/../config/', '/srv/d/notes/config'],
    ['config/../notes/config', '/srv/d/notes/config'],
    ['config/notes', /not in the service's own folder "notes\/"/],
    ['files/config', /not in the service's own folder/],
    ['notes-archive/config', /not in the service's own folder/],
    ['notes/../files', /not in the service's own folder/],
    ['../x', /climbs out/],
    ['/etc', /not the absolute path/],
    ['.', /not the data directory itself/],
  ])('config path %s of service notes: %s', (configPath, expected) => {
    const onHost = configPathOnHost('/srv/d', 'notes', configPath);
    if (typeof expected === 'string') expect(onHost).toEqual({ hostPath: expected });
    else expect('refused' in onHost && onHost.refused).toMatch(expected);
  });

  it('names a config archive after its path', () => {
    expect(configArchiveName('config/notes/')).toBe('config_notes');
  });
});

describe('planRetention', () => {
  const snap = (id: string, createdAt: string, verified = true): RetainedSnapshot => ({ id, createdAt, verified });
  // One snapshot a day for 40 days, ending on Tuesday 2026-12-01.
  const daily = Array.from({ length: 40 }, (_, i) => {
    const d = new Date(Date.UTC(2026, 11, 1) - i * 86_400_000);
    return snap(`s${String(i).padStart(2, '0')}`, d.toISOString());
  });

  it.each([
    ['nothing kept without a rule', {}, []],
    ['the last 3', { last: 3 }, ['s00', 's01', 's02']],
    ['7 daily', { daily: 7 }, ['s00', 's01', 's02', 's03', 's04', 's05', 's06']],
    // Newest of each ISO week: Tue 12-01 (W49), Sun 11-29 (W48), Sun 11-22 (W47), Sun 11-15 (W46).
    ['4 weekly', { weekly: 4 }, ['s00', 's02', 's09', 's16']],
    ['7 daily + 4 weekly', { daily: 7, weekly: 4 }, ['s00', 's01', 's02', 's03', 's04', 's05', 's06', 's09', 's16']],
    ['2 monthly', { monthly: 2 }, ['s00', 's01']],
  ])('%s', (_what, rule, kept) => {
    const plan = planRetention(daily, rule);
    expect(plan.keep.map((k) => k.id)).toEqual(kept);
    expect(plan.delete.length + plan.keep.length).toBe(40);
  });

  it('counts only verified snapshots, and keeps unverified ones newer than the last verified', () => {
    const list = [snap('a', '2026-12-01T03:00:00Z', false), snap('b', '2026-11-30T03:00:00Z'), snap('c', '2026-11-29T03:00:00Z', false), snap('d', '2026-11-28T03:00:00Z')];
    const plan = planRetention(list, { daily: 2 });
    expect(plan.keep.map((k) => k.id)).toEqual(['a', 'b', 'd']);
    expect(plan.delete).toEqual(['c']);
    expect(plan.keep[0]!.because).toEqual(['newer than the last verified snapshot']);
  });

  it('keeps the newest of two snapshots on one day', () => {
    const plan = planRetention([snap('early', '2026-12-01T01:00:00Z'), snap('late', '2026-12-01T23:00:00Z')], { daily: 1 });
    expect(plan.keep.map((k) => k.id)).toEqual(['late']);
  });

  it.each([
    ['2026-12-01T00:00:00Z', '2026-W49'],
    ['2026-01-01T00:00:00Z', '2026-W01'],
    ['2027-01-01T00:00:00Z', '2026-W53'],
    ['2024-12-30T00:00:00Z', '2025-W01'],
  ])('ISO week of %s is %s', (date, week) => expect(isoWeekKey(new Date(date))).toBe(week));
});

describe('schedule', () => {
  const now = new Date('2026-12-01T10:30:00Z'); // a Tuesday
  it.each([
    [{ every: 'daily' as const, at: '03:00' }, '2026-12-01T03:00:00.000Z'],
    [{ every: 'daily' as const, at: '23:00' }, '2026-11-30T23:00:00.000Z'],
    [{ every: 'hourly' as const, at: '00:15' }, '2026-12-01T10:15:00.000Z'],
    [{ every: 'hourly' as const, at: '00:45' }, '2026-12-01T09:45:00.000Z'],
    [{ every: 'weekly' as const, at: '03:00' }, '2026-11-29T03:00:00.000Z'],
    [{ every: 'weekly' as const, at: '03:00', weekday: 'tuesday' as const }, '2026-12-01T03:00:00.000Z'],
    [{ every: 'weekly' as const, at: '11:00', weekday: 'tuesday' as const }, '2026-11-24T11:00:00.000Z'],
  ])('last slot of %j is %s', (schedule, slot) => expect(lastSlot(schedule, now).toISOString()).toBe(slot));

  it('is due when nothing was taken since the last slot, overdue after a missed interval', () => {
    const s = { every: 'daily' as const, at: '03:00' };
    expect(backupDue(s, undefined, now)).toBe(true);
    expect(backupDue(s, new Date('2026-12-01T03:00:05Z'), now)).toBe(false);
    expect(backupDue(s, new Date('2026-11-30T03:00:05Z'), now)).toBe(true);
    expect(verifiedBackupOverdue(s, new Date('2026-11-30T03:00:05Z'), now)).toBe(false);
    expect(verifiedBackupOverdue(s, new Date('2026-11-29T03:00:05Z'), now)).toBe(true);
    expect(verifiedBackupOverdue(s, undefined, now)).toBe(true);
  });
});

describe('snapshot ids', () => {
  it('sort by time and are recognised', () => {
    const id = snapshotId(new Date('2026-12-01T21:08:24.123Z'), '1a2b');
    expect(id).toBe('20261201T210824Z-1a2b');
    expect(isSnapshotId(id)).toBe(true);
    expect(isSnapshotId('../etc')).toBe(false);
    expect(isSnapshotId('20261201T210824Z-1a2b/..')).toBe(false);
  });
});
