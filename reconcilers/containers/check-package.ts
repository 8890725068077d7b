import type { ConfigValue } from '../../crds/config.js';
import { mergeServiceConfig } from '../../crds/config.js';
import { boundProblems } from '../../crds/problem-limit.js';
import type { CellDocument, Manifest, Problem } from '../../crds/types.js';
import type { ManifestPolicy } from '../../crds/validate-manifest.js';
import type { ComposeTemplate } from '../../state/compose-template.js';
import { corePortsOf, desiredServicePlan } from './desired.js';
import { templateSecretNames } from './render.js';
import type { ServicePlan } from './types.js';

const SAMPLE_BY_TYPE = { string: 'example', integer: 1, boolean: false } as const;

/**
 * The address a trial render gives the service: from TEST-NET-1 (RFC 5737), which no cell uses, so a
 * template that writes an address of its own instead of `${SERVICE_IP}` never passes by chance.
 */
export const TRIAL_SERVICE_IP = '192.0.2.20';

/** What a cell folder knows of one install: its merged config and the host ports the admin consented to. */
export interface TrialInstall {
  cell: CellDocument;
  config: Record<string, ConfigValue>;
  publish: readonly string[];
}

/** Where a trial render's package lives and what it is checked under. */
export interface TrialWhere {
  manifestFile: string;
  templateFile: string;
  policy: ManifestPolicy;
  install?: TrialInstall;
  /**
   * Render every published host port without deciding on it (no consent asked, no core port
   * refused), for a preview that then says port by port what the policy decides (hostPortVerdict).
   */
  portsUndecided?: boolean;
}

/**
 * A trial render of a service package, as `pic validate` does before any cell installs it: the
 * manifest's defaults (or a sample value for a required field without one), a placeholder for
 * every secret, a sample address. It finds unknown variables, forbidden Compose settings and a
 * template that does not match its manifest without touching Docker. Given an install (a cell
 * folder's ServiceInstall), it renders with that install's config and checks its consent to
 * published ports and the Cell's core ports, as the operator will.
 */
/** The `${INSTANCE_ID}` a connectivity service's package is tried with. */
export const TRIAL_INSTANCE_ID = 'trial000';

export function checkServicePackage(manifest: Manifest, template: ComposeTemplate, where: TrialWhere): Problem[] {
  return trialServicePlan(manifest, template, where).problems;
}

/** The trial render itself: what pic would create (with placeholder secrets and address), or the problems. */
export function trialServicePlan(manifest: Manifest, template: ComposeTemplate, where: TrialWhere): { plan?: ServicePlan; problems: Problem[] } {
  const schema = manifest.capabilities.has_admin_config ? manifest.config_schema ?? {} : {};
  const merged = mergeServiceConfig(schema, {}, where.manifestFile, '/config_schema');
  const config = { ...merged.config, ...where.install?.config };
  for (const [key, field] of Object.entries(schema)) {
    if (!(key in config)) config[key] = field.type === 'integer' && field.min !== undefined ? field.min : SAMPLE_BY_TYPE[field.type];
  }
  const secrets = Object.fromEntries(templateSecretNames(template).map((n) => [n, 'x'.repeat(32)]));
  const undecided = where.portsUndecided === true;
  const result = desiredServicePlan({
    manifest,
    template,
    templateFile: where.templateFile,
    manifestFile: where.manifestFile,
    config,
    secrets,
    serviceIp: TRIAL_SERVICE_IP,
    ...(where.install && !undecided ? { publish: where.install.publish } : {}),
    // A connectivity service runs as instances of Connections: tried as one, with a sample config file.
    ...(manifest.connectivity ? { instance: { id: TRIAL_INSTANCE_ID, owner: 'Connection/trial', configFile: { source: '/var/lib/pic/connections/trial/config', digest: '0'.repeat(64) } } } : {}),
    cell: {
      name: where.install?.cell.metadata.name ?? 'validate',
      corePorts: undecided ? [] : corePortsOf(where.install?.cell),
      domain: where.install?.cell.spec.domain ?? 'cell.example',
      dataDir: '/var/lib/pic/data',
      networkName: 'cell-network',
      allowedImagePrefix: where.policy.allowedImagePrefix,
      imageVerification: where.policy.imageVerification,
    },
  });
  // The trial render quotes template values in its messages; bounded here like every validator's.
  return { ...(result.plan ? { plan: result.plan } : {}), problems: boundProblems(result.problems, where.templateFile) };
}
