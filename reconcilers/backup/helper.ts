/**
 * The helper the backup engine reads and writes data through: an image built here from the host's
 * static busybox (so no registry is needed and a service image without tar does not matter),
 * containers of it that mount one volume or directory each, and the scratch, staged and previous
 * volumes. Thin Docker calls; what to create is decided by the engine.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type Dockerode from 'dockerode';
import tar from 'tar-stream';
import { parseImageReference } from '../../crds/image-reference.js';
import { followDockerStream } from '../shared/docker-stream.js';
import { BACKUP_LABEL, type BackupRole } from './labels.js';

export interface HelperSettings {
  /** Tag of the helper image; built when absent. Default pic/backup-helper:<busybox hash>. */
  image?: string;
  /** The static busybox the helper image holds (default /bin/busybox). */
  busybox?: string;
  /** Labels on everything the engine creates (the cell's label; tests add theirs). */
  labels: Record<string, string>;
  /** Start of the names of helper containers and volumes; default `pic-backup`. */
  namePrefix?: string;
}

/** Applets the helper's fixed scripts use. */
const APPLETS = ['sh', 'cp', 'rm', 'mkdir', 'touch', 'true', 'test', '['];

/** The copy a restore swaps with: old contents into /previous (once), then the staged tree into /live/$1. */
export const SWAP_SCRIPT = [
  'set -e',
  'target="/live/$1"',
  'mkdir -p "$target"',
  'if [ ! -e /previous/.pic-previous-complete ]; then',
  '  cd /previous && rm -rf -- * .[!.]* ..?*',
  '  cp -a "$target"/. /previous/',
  '  touch /previous/.pic-previous-complete',
  'fi',
  'cd "$target" && rm -rf -- * .[!.]* ..?*',
  'cp -a /staged/. "$target"/',
].join('\n');

/** Undo of a swap that failed halfway: the copy kept in /previous goes back into /live/$1. */
export const UNSWAP_SCRIPT = [
  'set -e',
  'target="/live/$1"',
  '[ -e /previous/.pic-previous-complete ] || exit 3',
  'mkdir -p "$target"',
  'cd "$target" && rm -rf -- * .[!.]* ..?*',
  'cp -a /previous/. "$target"/',
  'rm -f "$target"/.pic-previous-complete',
].join('\n');

/**
 * The swap of a restore staged inside a volume's own folder (bound at /vol): the live tree
 * ($1, `_data` or a path under it) renamed to the previous name ($3), the staged tree ($2), given
 * the archived root's owner and mode ($4, $5, when known), renamed into its place. Two renames on one file system, so the live data is at every moment the old
 * tree or the restored one, and a run killed between them is finished by running it again.
 * `busybox` is named for every applet, so a helper image built before these scripts works too.
 */
export const MOVE_SWAP_SCRIPT = [
  'set -e',
  'target="/vol/$1"; staged="/vol/$2"; previous="/vol/$3"',
  '[ -e "$staged" ] || exit 0',
  'if [ ! -e "$previous" ]; then',
  '  if [ -e "$target" ] || [ -L "$target" ]; then busybox mv "$target" "$previous"; else busybox mkdir "$previous"; fi',
  'fi',
  'if [ -e "$target" ] || [ -L "$target" ]; then echo "$1 is in the way of the restored tree"; exit 4; fi',
  // The archive API does not carry the root folder's owner and mode: given as $4 and $5.
  'if [ -n "$4" ]; then busybox chown "$4" "$staged"; busybox chmod "$5" "$staged"; fi',
  'busybox mkdir -p "$(busybox dirname "$target")"',
  'busybox mv "$staged" "$target"',
].join('\n');

/** Undo of a move swap: the restored tree set aside under the staged name, the previous one put back. */
export const MOVE_UNSWAP_SCRIPT = [
  'set -e',
  'target="/vol/$1"; staged="/vol/$2"; previous="/vol/$3"',
  '[ -e "$previous" ] || exit 3',
  'if [ -e "$target" ] || [ -L "$target" ]; then',
  '  if [ -e "$staged" ]; then busybox rm -rf "$target"; else busybox mv "$target" "$staged"; fi',
  'fi',
  'busybox mv "$previous" "$target"',
].join('\n');

export async function ensureHelperImage(docker: Dockerode, settings: HelperSettings): Promise<string> {
  const busyboxPath = settings.busybox ?? '/bin/busybox';
  let busybox: Buffer | undefined;
  let tag = settings.image;
  if (tag === undefined) {
    busybox = await readBusybox(busyboxPath);
    tag = `pic/backup-helper:${createHash('sha256').update(busybox).digest('hex').slice(0, 12)}`;
  }
  try {
    await docker.getImage(tag).inspect();
    return tag;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  busybox ??= await readBusybox(busyboxPath);
  const pack = tar.pack();
  pack.entry({ name: 'bin/', type: 'directory', mode: 0o755 });
  pack.entry({ name: 'tmp/', type: 'directory', mode: 0o1777 });
  pack.entry({ name: 'bin/busybox', mode: 0o755, size: busybox.length }, busybox);
  for (const applet of APPLETS) pack.entry({ name: `bin/${applet}`, type: 'symlink', linkname: 'busybox', mode: 0o777 });
  pack.finalize();
  const named = parseImageReference(tag);
  if (!named || named.digest !== undefined) throw new Error(`cannot build the backup helper image ${JSON.stringify(tag)}: it is not a name[:tag] (PIC_BACKUP_HELPER_IMAGE)`);
  const changes = ['ENV PATH=/bin', 'CMD ["true"]', ...Object.entries({ ...settings.labels, [BACKUP_LABEL.role]: 'helper' }).map(([k, v]) => `LABEL ${JSON.stringify(k)}=${JSON.stringify(v)}`)];
  const stream = await docker.importImage(pack, { repo: named.name, tag: named.tag ?? 'latest', changes });
  await followDockerStream(docker, stream, `cannot build the backup helper image ${tag}`);
  return tag;
}

async function readBusybox(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new Error(`the backup helper image is built from a static busybox at ${file}, which cannot be read (${(err as Error).message}); install Debian's busybox-static or set PIC_BUSYBOX`);
  }
}

function labelsFor(settings: HelperSettings, role: BackupRole, extra: Record<string, string> = {}): Record<string, string> {
  return { ...settings.labels, ...extra, [BACKUP_LABEL.role]: role, [BACKUP_LABEL.pid]: String(process.pid) };
}

function randomPart(): string {
  return createHash('sha256').update(`${process.pid}-${Date.now()}-${Math.random()}`).digest('hex').slice(0, 10);
}

export function helperName(settings: HelperSettings, what: string): string {
  return `${settings.namePrefix ?? 'pic-backup'}-${what}-${randomPart()}`;
}

export interface HelperMount {
  /** A volume name, or an absolute host path for a bind mount. */
  source: string;
  type: 'volume' | 'bind';
  target: string;
  readOnly: boolean;
}

/**
 * A helper that runs code pic did not write (a package's install.sh, in another image than the
 * helper's): every capability dropped, no new privileges, a read-only root with a small /tmp, a
 * bound number of processes, the image's entrypoint replaced by `entrypoint` (an argument array).
 */
export interface HelperSandbox {
  /** What the container runs (its Entrypoint; Cmd is left empty). */
  entrypoint: string[];
  /** The user to run as (the service container's own), when it names one. */
  user?: string;
  /** Replaces `role` in the container's name (e.g. `install`). */
  name: string;
}

/** The Docker settings of a sandboxed helper, beside the network and mounts every helper has. */
export function sandboxHostConfig(): Dockerode.HostConfig {
  return {
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges:true'],
    Privileged: false,
    ReadonlyRootfs: true,
    Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=16m' },
    PidsLimit: 256,
    Memory: 512 * 1024 * 1024,
    // The output read back is its tail: a script that floods it fills no disk.
    LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
  };
}

/** A helper container, created and never started (the archive API works on it as it is). */
export async function createHelper(docker: Dockerode, image: string, settings: HelperSettings, mounts: HelperMount[], cmd: string[] = ['true'], role: 'helper' | 'cleanup' = 'helper', sandbox?: HelperSandbox): Promise<Dockerode.Container> {
  return docker.createContainer({
    name: helperName(settings, sandbox?.name ?? role),
    Image: image,
    ...(sandbox ? { Entrypoint: sandbox.entrypoint, Cmd: [], ...(sandbox.user ? { User: sandbox.user } : {}) } : { Cmd: cmd }),
    Labels: labelsFor(settings, role),
    NetworkDisabled: true,
    HostConfig: {
      // A cleanup removes itself when done; it outlives the run that started it by design.
      ...(role === 'cleanup' ? { AutoRemove: true } : {}),
      ...(sandbox ? sandboxHostConfig() : {}),
      NetworkMode: 'none',
      Mounts: mounts.map((m) => ({ Type: m.type, Source: m.source, Target: m.target, ReadOnly: m.readOnly })),
    },
  });
}

export async function removeContainer(docker: Dockerode, id: string): Promise<void> {
  try {
    await docker.getContainer(id).remove({ force: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404 && (err as { statusCode?: number }).statusCode !== 409) throw err;
  }
}

export function volumeName(settings: HelperSettings, role: BackupRole, what: string): string {
  return helperName(settings, `${role}-${what}`.slice(0, 60));
}

/** Labels of a previous volume: the live volume it holds the old contents of, and the snapshot restored. */
export function previousLabels(live: string, snapshot?: string): Record<string, string> {
  return { [BACKUP_LABEL.previousOf]: live, ...(snapshot ? { [BACKUP_LABEL.snapshot]: snapshot } : {}) };
}

export async function createVolume(docker: Dockerode, settings: HelperSettings, role: BackupRole, what: string, extra: Record<string, string> = {}, name: string = volumeName(settings, role, what)): Promise<string> {
  await docker.createVolume({ Name: name, Labels: labelsFor(settings, role, extra) });
  return name;
}

/** Create a volume the engine names (a previous volume a crashed restore journalled) unless it exists. */
export async function ensureVolume(docker: Dockerode, settings: HelperSettings, role: BackupRole, name: string, extra: Record<string, string> = {}): Promise<void> {
  try {
    await docker.getVolume(name).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    await docker.createVolume({ Name: name, Labels: labelsFor(settings, role, extra) });
  }
}

export async function removeVolume(docker: Dockerode, name: string): Promise<void> {
  try {
    await docker.getVolume(name).remove();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
}

/** Run a helper to completion; the exit code and its output (for the error message). */
export async function runHelper(docker: Dockerode, image: string, settings: HelperSettings, mounts: HelperMount[], cmd: string[]): Promise<{ exitCode: number; output: string }> {
  const { exitCode, output } = await runHelperBounded(docker, image, settings, mounts, cmd, {});
  return { exitCode, output: output.trim().slice(-2000) };
}

/** What a bounded helper run gives: its exit code (137 when killed), its whole output, whether the time limit killed it. */
export interface HelperRun {
  exitCode: number;
  output: string;
  timedOut: boolean;
}

/**
 * Run a helper to completion or until `timeoutMs` (then it is killed); removed either way. With
 * `sandbox`, the container is confined as HelperSandbox says.
 */
export async function runHelperBounded(docker: Dockerode, image: string, settings: HelperSettings, mounts: HelperMount[], cmd: string[], opts: { sandbox?: HelperSandbox; timeoutMs?: number }): Promise<HelperRun> {
  const container = await createHelper(docker, image, settings, mounts, cmd, 'helper', opts.sandbox);
  let timer: NodeJS.Timeout | undefined;
  try {
    await container.start();
    let timedOut = false;
    const waited = container.wait() as Promise<{ StatusCode: number }>;
    if (opts.timeoutMs !== undefined) {
      const limit = opts.timeoutMs;
      await Promise.race([
        waited,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, limit);
        }),
      ]);
      const state = (await container.inspect()).State as { Running?: boolean };
      if (state.Running) {
        timedOut = true;
        await container.kill().catch((err: { statusCode?: number }) => {
          // 409: it stopped on its own meanwhile.
          if (err.statusCode !== 409) throw err;
        });
      }
    }
    const result = await waited;
    const logs = await container.logs({ stdout: true, stderr: true, follow: false });
    return { exitCode: result.StatusCode, output: stripDockerFrames(Buffer.isBuffer(logs) ? logs : Buffer.from(String(logs))), timedOut };
  } finally {
    if (timer) clearTimeout(timer);
    await removeContainer(docker, container.id);
  }
}

/** Docker's multiplexed log frames (8-byte headers) to text. */
function stripDockerFrames(buf: Buffer): string {
  const parts: string[] = [];
  let i = 0;
  while (i + 8 <= buf.length && (buf[i] === 1 || buf[i] === 2) && buf[i + 1] === 0) {
    const len = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + len).toString('utf8'));
    i += 8 + len;
  }
  return parts.length > 0 ? parts.join('') : buf.toString('utf8');
}

/** Helper containers and volumes of a given role whose run (pid) is over, carrying `labels`. */
export async function listLeftovers(docker: Dockerode, labels: Record<string, string>, isAlive: (pid: number) => boolean): Promise<{ containers: string[]; volumes: { name: string; role: string }[] }> {
  const filters = { label: [...Object.entries(labels).map(([k, v]) => `${k}=${v}`), BACKUP_LABEL.role] };
  const dead = (l: Record<string, string> | undefined) => {
    const pid = Number(l?.[BACKUP_LABEL.pid]);
    return !Number.isInteger(pid) || !isAlive(pid);
  };
  const containers = (await docker.listContainers({ all: true, filters }))
    .filter((c) => dead(c.Labels) && c.Labels?.[BACKUP_LABEL.role] !== 'cleanup')
    .map((c) => c.Id);
  const { Volumes } = await docker.listVolumes({ filters });
  const volumes = (Volumes ?? [])
    .filter((v) => dead(v.Labels ?? undefined) && (v.Labels?.[BACKUP_LABEL.role] === 'scratch' || v.Labels?.[BACKUP_LABEL.role] === 'staged'))
    .map((v) => ({ name: v.Name, role: v.Labels?.[BACKUP_LABEL.role] ?? '' }));
  return { containers, volumes };
}
