/**
 * Which version of a service runs: the admission rules. A ServiceInstall is admitted at one
 * version, whose package pic keeps (state/packages.ts); a later catalog changes nothing until the
 * document asks for the catalog's newer version, which is an upgrade. Pure: the caller reads the
 * catalog, the kept packages and pic's own version.
 */
import semver from 'semver';
import { quoted } from '../crds/problem-limit.js';
import type { Manifest } from '../crds/types.js';

/** A failed upgrade, kept with the admitted version: not retried until the document changes. */
export interface FailedUpgrade {
  /** The version the upgrade went to. */
  version: string;
  /** The generation (state/generation.ts) of the document that asked for it. */
  generation: string;
  reason: string;
  at: string;
}

/** What is known of the version admitted for one service. */
export interface AdmittedView {
  version: string;
  manifest: Manifest;
  failed?: FailedUpgrade;
}

export type VersionDecision =
  /** First admission: the catalog's version is taken and kept. */
  | { kind: 'install'; version: string }
  /** The admitted version runs; `update` when the catalog offers a newer one. */
  | { kind: 'admitted'; version: string; update?: string }
  /** The document asks for the catalog's newer version. */
  | { kind: 'upgrade'; from: string; to: string }
  /** The upgrade this document asks for failed and was rolled back; `running` keeps running. */
  | { kind: 'upgrade-failed'; running: string; target: string; failed: FailedUpgrade }
  /**
   * No admission record is at hand (pic validate of a folder, without the operator's state): an
   * older version than the catalog's may be the admitted one, which only the state can tell.
   */
  | { kind: 'unchecked'; version: string; offered: string }
  /** The document cannot run: the problem is at `pointer` of the document. */
  | { kind: 'refused'; pointer: string; message: string };

export interface VersionInputs {
  /** spec.version, if the document gives one. */
  wanted?: string;
  /** The catalog's package of the service, if it has a valid one. */
  offered?: Manifest;
  /** Where the catalog's manifest is, for messages about its fields. */
  offeredFile?: string;
  admitted?: AdmittedView;
  /** Whether the admitted versions are known (false: checked without the operator's state). Default true. */
  admittedKnown?: boolean;
  /** The document's generation now. */
  generation: string;
  /** pic's own version ('unknown' when it cannot be read: min_pic_version is then not enforced). */
  picVersion: string;
}

function sameVersion(a: string, b: string): boolean {
  return semver.valid(a) && semver.valid(b) ? semver.eq(a, b) : a === b;
}

function newer(a: string, b: string): boolean {
  return semver.valid(a) !== null && semver.valid(b) !== null && semver.gt(a, b);
}

/** Why this pic cannot admit `manifest`, or undefined when it can (or pic's version is unknown). */
export function minPicVersionProblem(manifest: Manifest, file: string, pic: string): string | undefined {
  const min = manifest.min_pic_version;
  if (min === undefined || !semver.valid(pic)) return undefined;
  const needed = semver.coerce(min);
  if (!needed || semver.gte(pic, needed)) return undefined;
  return `${file}: /min_pic_version: version ${manifest.version} of "${manifest.id}" needs pic ${min} or newer, and this is pic ${pic}; upgrade pic first, or keep the version admitted`;
}

/** The admission rules (docs/admin-guide.md, "Versions and upgrades"). */
export function decideVersion(input: VersionInputs): VersionDecision {
  const { wanted, offered, admitted } = input;
  const offeredFile = input.offeredFile ?? 'the catalog manifest';
  const admit = (manifest: Manifest, decision: VersionDecision): VersionDecision => {
    const problem = minPicVersionProblem(manifest, offeredFile, input.picVersion);
    return problem ? { kind: 'refused', pointer: '/spec/version', message: problem } : decision;
  };

  if (!admitted) {
    if (!offered) return { kind: 'refused', pointer: '/metadata/name', message: 'the catalog has no valid package of this service and no version of it was admitted before' };
    if (wanted === undefined || sameVersion(wanted, offered.version)) return admit(offered, { kind: 'install', version: offered.version });
    if (input.admittedKnown === false && newer(offered.version, wanted)) return { kind: 'unchecked', version: wanted, offered: offered.version };
    return { kind: 'refused', pointer: '/spec/version', message: `version ${quoted(wanted)} is not in the catalog, which offers ${offered.version}; nothing of this service was admitted before, so only ${offered.version} can be installed` };
  }

  const update = offered && newer(offered.version, admitted.version) ? offered.version : undefined;
  if (wanted === undefined || sameVersion(wanted, admitted.version)) {
    return { kind: 'admitted', version: admitted.version, ...(update ? { update } : {}) };
  }
  if (update && sameVersion(wanted, update)) {
    const failed = admitted.failed;
    if (failed && sameVersion(failed.version, update) && failed.generation === input.generation) {
      return { kind: 'upgrade-failed', running: admitted.version, target: update, failed };
    }
    return admit(offered!, { kind: 'upgrade', from: admitted.version, to: update });
  }
  const offers = offered ? `the catalog offers ${offered.version}` : 'the catalog offers no valid package of it';
  const older = offered && newer(admitted.version, offered.version) ? `; going back to an older version is not an upgrade pic makes (restore a snapshot instead)` : '';
  return {
    kind: 'refused',
    pointer: '/spec/version',
    message: `version ${quoted(wanted)} is neither the admitted version ${admitted.version} nor the catalog's newer version (${offers})${older}; set spec.version to ${admitted.version}${update ? ` to keep it, or to ${update} to upgrade` : ''}`,
  };
}

/** The version that runs (or is to run) under a decision, if any. */
export function runningVersion(decision: VersionDecision): string | undefined {
  switch (decision.kind) {
    case 'install':
    case 'admitted':
    case 'unchecked':
      return decision.version;
    case 'upgrade':
      return decision.from;
    case 'upgrade-failed':
      return decision.running;
    case 'refused':
      return undefined;
  }
}
