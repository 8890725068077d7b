/** Verify a snapshot by a test restore of every archive into a scratch volume. */
import path from 'node:path';
import { BACKUP_LABEL } from './labels.js';
import { progressReporter, type BackupEnv } from './context.js';
import { createVolume, ensureHelperImage, removeVolume } from './helper.js';
import { restoreInto } from './steps.js';
import type { Verification } from './types.js';
import { verificationVerdict, type ServiceCheck } from './verification.js';

/**
 * Restore every archive of a snapshot into scratch volumes and compare file list, sizes and
 * content hashes with what was archived; record the outcome in the snapshot's manifest.
 */
export async function verifySnapshot(env: BackupEnv, id: string): Promise<Verification> {
  const manifest = await env.store.read(id);
  const image = await ensureHelperImage(env.docker, env.helper);
  const results: ServiceCheck[] = [];
  for (const s of manifest.services) {
    const progress = progressReporter(env, 'verify', s.service);
    const problems: string[] = [];
    for (const record of s.archives) {
      // The file's hash and entries are checked as it is extracted into the scratch volume.
      const p = progress.start(record.name);
      const scratch = await createVolume(env.docker, env.helper, 'scratch', s.service, { [BACKUP_LABEL.snapshot]: id });
      try {
        const check = { record, service: s.service, file: path.join(env.store.dir(id), record.file) };
        problems.push(...(await restoreInto(env, image, { type: 'volume', source: scratch, target: '/d', readOnly: false }, check, p.onBytes)));
      } finally {
        p.finish();
        await removeVolume(env.docker, scratch);
      }
    }
    results.push({ service: s.service, problems });
  }
  const { notices, verification } = verificationVerdict(id, results, env.now());
  for (const n of notices) env.notify?.(n);
  await env.store.write({ ...manifest, verification });
  return verification;
}
