import { decideVersion, minPicVersionProblem, runningVersion, type AdmittedView, type VersionDecision } from '../../state/admission.js';
import { effectiveServices } from '../../state/cell.js';
import { catalogService } from '../../state/catalog.js';
import type { Manifest } from '../../crds/types.js';

function manifest(version: string, extra: Partial<Manifest> = {}): Manifest {
  return {
    schema_version: 3,
    kind: 'store',
    id: 'notes',
    name: 'Notes',
    description: 'd',
    version,
    author: 'a',
    capabilities: { has_subdomain: false, has_accounts: false, has_admin_config: false, has_storage: false, has_egress: false, has_api_hooks: false },
    image: 'git.pic.ngo/roof/notes:1',
    container_name: 'cell-notes',
    ...extra,
  };
}

const admitted = (version: string, failed?: AdmittedView['failed']): AdmittedView => ({ version, manifest: manifest(version), ...(failed ? { failed } : {}) });
const failedAt = (version: string, generation: string) => ({ version, generation, reason: 'cell-notes is unhealthy', at: '2026-12-01T00:00:00.000Z' });

type Row = [string, Parameters<typeof decideVersion>[0], VersionDecision['kind'], Record<string, unknown>?];

const G = 'gen1';
const rows: Row[] = [
  ['first install at the catalog version', { wanted: '1.0.0', offered: manifest('1.0.0'), generation: G, picVersion: '0.1.0' }, 'install', { version: '1.0.0' }],
  ['first install without spec.version takes the catalog version', { offered: manifest('1.2.0'), generation: G, picVersion: '0.1.0' }, 'install', { version: '1.2.0' }],
  ['first install at a version the catalog lacks', { wanted: '0.9.0', offered: manifest('1.0.0'), generation: G, picVersion: '0.1.0' }, 'refused', { pointer: '/spec/version' }],
  ['nothing in the catalog, nothing admitted', { wanted: '1.0.0', generation: G, picVersion: '0.1.0' }, 'refused', { pointer: '/metadata/name' }],
  ['admitted version, catalog unchanged', { wanted: '1.0.0', offered: manifest('1.0.0'), admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' }, 'admitted', { version: '1.0.0', update: undefined }],
  ['admitted version, catalog moved on: an update notice', { wanted: '1.0.0', offered: manifest('1.1.0'), admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' }, 'admitted', { version: '1.0.0', update: '1.1.0' }],
  ['spec.version omitted stays on the admitted version', { offered: manifest('2.0.0'), admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' }, 'admitted', { version: '1.0.0', update: '2.0.0' }],
  ['admitted version while the catalog dropped the service', { wanted: '1.0.0', admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' }, 'admitted', { version: '1.0.0' }],
  ['the catalog newer version asked for: upgrade', { wanted: '1.1.0', offered: manifest('1.1.0'), admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' }, 'upgrade', { from: '1.0.0', to: '1.1.0' }],
  ['a failed upgrade of this very document is not retried', { wanted: '1.1.0', offered: manifest('1.1.0'), admitted: admitted('1.0.0', failedAt('1.1.0', G)), generation: G, picVersion: '0.1.0' }, 'upgrade-failed', { running: '1.0.0', target: '1.1.0' }],
  ['a changed document tries the upgrade again', { wanted: '1.1.0', offered: manifest('1.1.0'), admitted: admitted('1.0.0', failedAt('1.1.0', 'other')), generation: G, picVersion: '0.1.0' }, 'upgrade', { to: '1.1.0' }],
  ['a failure of another version does not block this one', { wanted: '1.2.0', offered: manifest('1.2.0'), admitted: admitted('1.0.0', failedAt('1.1.0', G)), generation: G, picVersion: '0.1.0' }, 'upgrade', { to: '1.2.0' }],
  ['a version neither admitted nor offered', { wanted: '1.5.0', offered: manifest('1.1.0'), admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' }, 'refused', { pointer: '/spec/version' }],
  ['an older catalog version is no upgrade', { wanted: '0.9.0', offered: manifest('0.9.0'), admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' }, 'refused', { pointer: '/spec/version' }],
  ['min_pic_version above pic at first install', { offered: manifest('1.0.0', { min_pic_version: '2.0' }), generation: G, picVersion: '0.1.0' }, 'refused', { pointer: '/spec/version' }],
  ['min_pic_version met', { offered: manifest('1.0.0', { min_pic_version: '0.1' }), generation: G, picVersion: '0.1.0' }, 'install'],
  ['min_pic_version above pic refuses the upgrade', { wanted: '2.0.0', offered: manifest('2.0.0', { min_pic_version: '9.9.9' }), admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' }, 'refused', { pointer: '/spec/version' }],
  ['min_pic_version above pic does not stop the admitted version', { wanted: '1.0.0', offered: manifest('2.0.0', { min_pic_version: '9.9.9' }), admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' }, 'admitted', { update: '2.0.0' }],
  ['without the operator state, an older version cannot be judged: unchecked', { wanted: '1.0.0', offered: manifest('2.0.0'), admittedKnown: false, generation: G, picVersion: '0.1.0' }, 'unchecked', { version: '1.0.0', offered: '2.0.0' }],
  ['without the operator state, a version newer than the catalog is refused', { wanted: '3.0.0', offered: manifest('2.0.0'), admittedKnown: false, generation: G, picVersion: '0.1.0' }, 'refused', { pointer: '/spec/version' }],
  ['pic version unknown: min_pic_version not enforced', { offered: manifest('1.0.0', { min_pic_version: '9.0' }), generation: G, picVersion: 'unknown' }, 'install'],
];

describe('admission rules', () => {
  test.each(rows)('%s', (_name, input, kind, fields = {}) => {
    const decision = decideVersion(input);
    expect(decision.kind).toBe(kind);
    for (const [k, v] of Object.entries(fields)) expect((decision as Record<string, unknown>)[k]).toEqual(v);
  });

  test('a refusal names what is admitted and what is offered', () => {
    const d = decideVersion({ wanted: '1.5.0', offered: manifest('1.1.0'), admitted: admitted('1.0.0'), generation: G, picVersion: '0.1.0' });
    expect(d.kind === 'refused' && d.message).toMatch(/"1\.5\.0".*admitted version 1\.0\.0.*offers 1\.1\.0.*set spec\.version to 1\.0\.0.*or to 1\.1\.0/);
  });

  test('the min_pic_version refusal names the manifest field and both versions', () => {
    expect(minPicVersionProblem(manifest('1.0.0', { min_pic_version: '2.1' }), 'store/services/notes/manifest.json', '0.1.0')).toMatch(/manifest\.json: \/min_pic_version: .*needs pic 2\.1 or newer.*this is pic 0\.1\.0/);
  });

  test.each<[VersionDecision, string | undefined]>([
    [{ kind: 'install', version: '1' }, '1'],
    [{ kind: 'upgrade', from: '1', to: '2' }, '1'],
    [{ kind: 'upgrade-failed', running: '1', target: '2', failed: failedAt('2', G) }, '1'],
    [{ kind: 'refused', pointer: '/spec/version', message: 'x' }, undefined],
  ])('running version of %j', (d, v) => expect(runningVersion(d)).toBe(v));
});

describe('the package each service runs', () => {
  const service = (version: string) => catalogService({ id: 'notes', dir: `/d/${version}`, manifestFile: `/d/${version}/manifest.json`, templateFile: `/d/${version}/compose-template.yml`, manifest: manifest(version), template: `# ${version}` });
  const offered = new Map([['notes', service('2.0.0')]]);
  const kept = { admitted: new Map([['notes', { version: '1.0.0', manifest: manifest('1.0.0'), service: service('1.0.0'), manifestSha256: 'a', templateSha256: 'b', admittedAt: 'x' }]]), problems: new Map() };
  test.each<[string, VersionDecision, string]>([
    ['the admitted version: the kept package', { kind: 'admitted', version: '1.0.0', update: '2.0.0' }, '1.0.0'],
    ['an upgrade asked for: still the kept package until it succeeds (routes and accounts follow what runs)', { kind: 'upgrade', from: '1.0.0', to: '2.0.0' }, '1.0.0'],
    ['a failed upgrade: the kept package', { kind: 'upgrade-failed', running: '1.0.0', target: '2.0.0', failed: failedAt('2.0.0', G) }, '1.0.0'],
    ['a first install: the catalog package', { kind: 'install', version: '2.0.0' }, '2.0.0'],
  ])('%s', (_n, decision, version) => {
    expect(effectiveServices(offered, kept, new Map([['notes', decision]])).get('notes')!.manifest.version).toBe(version);
  });
});
