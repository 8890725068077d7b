/**
 * A package's install.sh, run the one way pic runs it: in a throwaway helper container of the
 * service's own image (so the script has the tools the service has) with no network, every
 * capability dropped, no new privileges, a read-only root, the service container's volumes at the
 * mount points its template gives them, the package's files read-only at /pic/package, and a time
 * limit after which it is killed. The helper is the backup engine's (reconcilers/backup/helper.ts):
 * same labels, so a run a killed operator left is swept with the backup helpers.
 *
 * What to run and when is decided in controllers/install-script.ts; this only runs it.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { runHelperBounded, type HelperMount, type HelperRun, type HelperSettings } from '../backup/helper.js';
import type { ServicePlan } from './types.js';

/** Where the package's files are inside the helper. */
export const PACKAGE_MOUNT = '/pic/package';
export const INSTALL_ENTRYPOINT = ['sh', `${PACKAGE_MOUNT}/install.sh`];

/** What the script runs with: the service container's image, user and volumes. */
export interface InstallTarget {
  container: string;
  image: string;
  user?: string;
  volumes: HelperMount[];
}

/**
 * The container of `plan` named `containerName` (the manifest's container), as the script's
 * helper copies it: its image, its user, and its named volumes (bind mounts and tmpfs are not the
 * service's data and are left out). Undefined when the plan has no such container.
 */
export function installTargetOf(plan: ServicePlan, containerName: string): InstallTarget | undefined {
  const c = plan.containers.find((x) => x.name === containerName);
  const image = c?.create.Image;
  if (!c || typeof image !== 'string') return undefined;
  const volumes: HelperMount[] = (c.create.HostConfig?.Mounts ?? [])
    .filter((m) => m.Type === 'volume' && typeof m.Source === 'string' && m.Source !== '')
    .map((m) => ({ type: 'volume' as const, source: m.Source, target: m.Target, readOnly: m.ReadOnly === true }));
  return { container: containerName, image, ...(c.create.User ? { user: c.create.User } : {}), volumes };
}

/** The files the package's helper sees at /pic/package. */
export interface PackageFiles {
  'install.sh': string;
  'manifest.json': string;
  'compose-template.yml': string;
}

/**
 * Run install.sh once. The package's files are written to a fresh folder below `stagingParent`
 * (readable by the image's user, whoever it is), bound read-only, and removed afterwards.
 */
export async function runInstallScript(docker: Dockerode, settings: HelperSettings, target: InstallTarget, files: PackageFiles, stagingParent: string, timeoutMs: number): Promise<HelperRun> {
  await fs.mkdir(stagingParent, { recursive: true, mode: 0o700 });
  const staging = await fs.mkdtemp(path.join(stagingParent, 'run-'));
  try {
    for (const [name, text] of Object.entries(files) as [string, string][]) await fs.writeFile(path.join(staging, name), text, { mode: 0o644 });
    await fs.chmod(staging, 0o755);
    const mounts: HelperMount[] = [...target.volumes, { type: 'bind', source: staging, target: PACKAGE_MOUNT, readOnly: true }];
    return await runHelperBounded(docker, target.image, settings, mounts, [], {
      sandbox: { entrypoint: INSTALL_ENTRYPOINT, name: 'install', ...(target.user ? { user: target.user } : {}) },
      timeoutMs,
    });
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}
