import { mergeServiceConfig } from '../../crds/config.js';
import { boundProblems } from '../../crds/problem-limit.js';
import type { Manifest, Problem } from '../../crds/types.js';
import type { ManifestPolicy } from '../../crds/validate-manifest.js';
import { desiredServicePlan } from './desired.js';
import { templateSecretNames } from './render.js';

const SAMPLE_BY_TYPE = { string: 'example', integer: 1, boolean: false } as const;

/**
 * A trial render of a service package, as `pic validate` does before any cell installs it: the
 * manifest's defaults (or a sample value for a required field without one), a placeholder for
 * every secret, a sample address. It finds unknown variables, forbidden Compose settings and a
 * template that does not match its manifest without touching Docker.
 */
export function checkServicePackage(
  manifest: Manifest,
  template: string,
  where: { manifestFile: string; templateFile: string; policy: ManifestPolicy },
): Problem[] {
  const schema = manifest.capabilities.has_admin_config ? manifest.config_schema ?? {} : {};
  const merged = mergeServiceConfig(schema, {}, where.manifestFile, '/config_schema');
  const config = { ...merged.config };
  for (const [key, field] of Object.entries(schema)) {
    if (!(key in config)) config[key] = field.type === 'integer' && field.min !== undefined ? field.min : SAMPLE_BY_TYPE[field.type];
  }
  const secrets = Object.fromEntries(templateSecretNames(template).map((n) => [n, 'x'.repeat(32)]));
  const result = desiredServicePlan({
    manifest,
    template,
    templateFile: where.templateFile,
    manifestFile: where.manifestFile,
    config,
    secrets,
    serviceIp: '172.20.0.20',
    cell: {
      name: 'validate',
      domain: 'cell.example',
      dataDir: '/var/lib/pic/data',
      networkName: 'cell-network',
      allowedImagePrefix: where.policy.allowedImagePrefix,
      imageVerification: where.policy.imageVerification,
    },
  });
  // The trial render quotes template values in its messages; bounded here like every validator's.
  return boundProblems(result.problems, where.templateFile);
}
