/**
 * The kill switch across a reboot. Netfilter rules live in the kernel: a reboot clears them, and
 * dockerd starts the services that have a restart policy as soon as it runs, before pic does. So
 * every fence pic writes is also recorded in `<stateRoot>/egress/fence.json` (before a rule goes
 * on the host, and again once the host matches), and `pic fence` puts the recorded fence back from
 * that file alone, without Docker and without the cell folder: deploy/systemd/pic-fence.service
 * runs it before docker.service.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../state/atomic-write.js';
import { parseIptablesSave } from '../firewall/observe.js';
import { hostNetworkReader, type HostNetworkReader } from '../shared/container-netns.js';
import { runHostCommand } from './apply.js';
import { checkBootFence, renderBootFence, type BootFence } from './render.js';

export function bootFenceFile(stateRoot: string): string {
  return path.join(stateRoot, 'egress', 'fence.json');
}

function text(fence: BootFence): string {
  return `${JSON.stringify(fence, null, 2)}\n`;
}

async function readText(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
}

/** The recorded fence; undefined when none was ever recorded; an error naming the file and field when it is damaged. */
export async function readBootFence(stateRoot: string): Promise<BootFence | undefined> {
  const file = bootFenceFile(stateRoot);
  const raw = await readText(file);
  if (raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
  const { fence, problems } = checkBootFence(value);
  if (!fence) throw new Error(`${file}: ${problems.join('; ')}`);
  return fence;
}

/**
 * Runs `apply` (the host write of `fence`) between two records of it: before, the union of what was
 * recorded and what is coming (so a crash in between never leaves a live fence unrecorded); after,
 * exactly `fence`. When the record is `fence` already nothing is written.
 */
export async function recordingBootFence<T>(stateRoot: string, fence: BootFence, apply: () => Promise<T>): Promise<T> {
  const file = bootFenceFile(stateRoot);
  const savedText = await readText(file).catch(() => undefined);
  const wanted = text(fence);
  if (savedText === wanted) return apply();
  let saved: BootFence | undefined;
  try {
    saved = savedText === undefined ? undefined : checkBootFence(JSON.parse(savedText)).fence;
  } catch {
    saved = undefined;
  }
  const union = saved?.chain === fence.chain ? [...new Set([...saved.rules, ...fence.rules])] : fence.rules;
  if (union.length > fence.rules.length) await writeFileAtomic(file, text({ ...fence, rules: union }));
  else await writeFileAtomic(file, wanted);
  const result = await apply();
  if (union.length > fence.rules.length) await writeFileAtomic(file, wanted);
  return result;
}

/** What `pic fence` did: the record it used, and whether the host needed a write. */
export interface BootFenceResult {
  fence?: BootFence;
  wrote: boolean;
}

/** Put the recorded fence back on the host (a no-op when it is there, or none is recorded). */
export async function restoreBootFence(stateRoot: string, reader: Pick<HostNetworkReader, 'iptablesSave'> = hostNetworkReader()): Promise<BootFenceResult> {
  const fence = await readBootFence(stateRoot);
  if (!fence) return { wrote: false };
  const restore = renderBootFence(fence, parseIptablesSave(await reader.iptablesSave()).get('filter'));
  if (restore === undefined) return { fence, wrote: false };
  await runHostCommand('iptables-restore', ['--noflush'], restore);
  return { fence, wrote: true };
}
