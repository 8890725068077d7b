/**
 * The core containers of a cell (Caddy, the DNS server, WireGuard), converged through the same
 * containers pipeline as the services: desired.ts builds the plan, reconcilePlannedContainers
 * observes, plans, pulls and applies. What differs is only where the plan comes from and the
 * owner key (`Core/<name>`).
 */
import { chmod, lstat, mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { CellDocument } from '../../crds/types.js';
import { reconcilePlannedContainers, removeServiceContainers, type ApplyMode, type ContainersConverged, type ContainersRefusal } from '../containers/index.js';
import type { ContainerAction, ObservedContainer } from '../containers/types.js';
import { writeFileAtomic } from '../../state/atomic-write.js';
import { CADDY_BOOT_CADDYFILE, CADDY_BOOT_FILE, desiredCorePlan, type CorePaths } from './desired.js';
import type { CoreComponent } from './spec.js';

export { caddyAdminAddressOf, caddyAdminDir, coreComponents, coreKey, isCoreKey, withCoreDefaults, vpnNetworkOf, CORE_NAMES, type CoreComponent, type CoreName } from './spec.js';
export type { CorePaths } from './desired.js';

export interface CoreInput {
  component: CoreComponent;
  cell: CellDocument;
  paths: CorePaths;
  observed?: ObservedContainer[];
  /** Named in refusals: the Cell document. */
  cellFile: string;
}

export async function reconcileCoreComponent(docker: Dockerode, input: CoreInput, mode: ApplyMode): Promise<ContainersRefusal | ContainersConverged> {
  const plan = desiredCorePlan(input.component, input.cell, input.paths);
  // The DNS server reads the zone's folder, which must exist before Docker bind-mounts it.
  if (mode !== 'dry-run' && input.component.name === 'dns') await mkdir(path.dirname(input.paths.zoneFile), { recursive: true, mode: 0o755 });
  // Caddy's admin folder (its socket, its boot config, its saved config) must exist, owner-only, before Docker bind-mounts it.
  if (mode !== 'dry-run' && input.component.name === 'caddy') await prepareCaddyAdminDir(input.paths.caddyAdminDir);
  return reconcilePlannedContainers(
    docker,
    {
      owner: input.component.key,
      cellName: input.cell.metadata.name,
      plan,
      dataDir: path.dirname(input.paths.zoneFile),
      file: input.cellFile,
      ...(input.observed ? { observed: input.observed } : {}),
    },
    mode,
  );
}

/** A core component the Cell no longer asks pic to run: its container removed, its volumes kept. */
export function removeCoreComponent(
  docker: Dockerode,
  target: { owner: string; cellName: string; observed?: ObservedContainer[] },
  mode: Parameters<typeof removeServiceContainers>[2],
): Promise<ContainerAction[]> {
  return removeServiceContainers(docker, target, mode);
}

/**
 * The folder Caddy's admin socket lives in: a real folder (not a symlink), mode 0700, holding the
 * boot config. Written only when missing or different, so a pass with nothing to do writes nothing.
 */
async function prepareCaddyAdminDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const stat = await lstat(dir);
  if (!stat.isDirectory()) throw new Error(`${dir} (the folder of Caddy's admin socket) is not a folder; remove it and pic makes it again`);
  if ((stat.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
  const boot = path.join(dir, CADDY_BOOT_FILE);
  const current = await readFile(boot, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (current !== CADDY_BOOT_CADDYFILE) await writeFileAtomic(boot, CADDY_BOOT_CADDYFILE, 0o600);
}
