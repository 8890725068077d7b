/** Read what a backup needs from Docker: a service's containers with their mounts, kept volumes. */
import type Dockerode from 'dockerode';
import { byText } from '../../crds/values.js';
import { serviceKey } from '../../state/document-keys.js';
import { LABEL } from '../containers/labels.js';
import { stopTimeoutOf } from '../shared/stop.js';
import type { BackupContainer } from './plan.js';

export async function observeServiceContainers(docker: Dockerode, service: string, cellName?: string): Promise<BackupContainer[]> {
  const label = [`${LABEL.owner}=${serviceKey(service)}`, ...(cellName ? [`${LABEL.cell}=${cellName}`] : [])];
  const infos = await docker.listContainers({ all: true, filters: { label } });
  const out: BackupContainer[] = [];
  for (const info of infos) {
    let inspect: Dockerode.ContainerInspectInfo;
    try {
      inspect = await docker.getContainer(info.Id).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) continue;
      throw err;
    }
    const serviceKey = inspect.Config.Labels?.[LABEL.service];
    const stopTimeout = stopTimeoutOf(inspect);
    out.push({
      id: inspect.Id,
      name: inspect.Name.replace(/^\//, ''),
      ...(serviceKey ? { serviceKey } : {}),
      running: inspect.State.Running && !inspect.State.Paused,
      paused: inspect.State.Paused,
      ...(stopTimeout !== undefined ? { stopTimeout } : {}),
      image: inspect.Image,
      mounts: (inspect.Mounts ?? []).map((m) => ({ type: m.Type, ...(m.Name ? { name: m.Name } : {}), source: m.Source, destination: m.Destination })),
    });
  }
  return out.sort(byText((v) => v.name));
}

/** The labels of a volume (so a deleted one can be created again as the pipeline made it). */
export async function volumeLabels(docker: Dockerode, name: string): Promise<Record<string, string> | undefined> {
  try {
    return (await docker.getVolume(name).inspect()).Labels ?? {};
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
}

/**
 * The folder that holds a plain local volume's `_data` on the Docker host (its Mountpoint's
 * parent), where a restore can stage beside the live tree and swap by renames; undefined for a
 * volume of another driver or with mount options (its `_data` may be a mount of its own).
 */
export async function volumeFolder(docker: Dockerode, name: string): Promise<string | undefined> {
  const v = await docker.getVolume(name).inspect();
  const options = (v as { Options?: Record<string, string> | null }).Options;
  if (v.Driver !== 'local' || (options && Object.keys(options).length > 0)) return undefined;
  if (!v.Mountpoint.startsWith('/') || !v.Mountpoint.endsWith('/_data')) return undefined;
  return v.Mountpoint.slice(0, -'/_data'.length);
}

export interface KeptVolume {
  name: string;
  service: string;
  createdAt?: string;
}

/** Volumes pic created for services (owner label), of this cell. */
export async function listServiceVolumes(docker: Dockerode, cellName: string): Promise<KeptVolume[]> {
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${LABEL.cell}=${cellName}`, LABEL.owner] } });
  const out: KeptVolume[] = [];
  for (const v of Volumes ?? []) {
    const owner = v.Labels?.[LABEL.owner] ?? '';
    const m = /^ServiceInstall\/(.+)$/.exec(owner);
    if (!m) continue;
    const createdAt = (v as { CreatedAt?: string }).CreatedAt;
    out.push({ name: v.Name, service: m[1] as string, ...(createdAt ? { createdAt } : {}) });
  }
  return out.sort(byText((v) => v.name));
}

/** Names of the containers (of any owner) that mount a volume. */
export async function containersUsingVolume(docker: Dockerode, volume: string): Promise<string[]> {
  const infos = await docker.listContainers({ all: true, filters: { volume: [volume] } });
  return infos.map((i) => (i.Names[0] ?? i.Id).replace(/^\//, ''));
}
