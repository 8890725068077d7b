/**
 * Puts a rendered Caddyfile into force: Caddy is asked to load it first (it adapts the Caddyfile
 * itself), and only a Caddyfile Caddy accepted is written to disk. A config Caddy refuses thus
 * never replaces the last good file, and Caddy keeps running the last good config too.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../state/atomic-write.js';
import { TerminalError } from '../errors.js';
import type { HttpAnswer } from '../shared/http.js';
import { ADMIN_TIMEOUT_MS, adminHint, adminRequest, adminTarget, describeRequestFailure, errorText } from './observe.js';
import { describeRoute, routesConcerned, type RenderedCaddyfile } from './render.js';

export interface CaddyfileApply {
  file: string;
  /** Where pic reaches Caddy's admin API; without it the file is only written. */
  adminAddress?: string;
  rendered: RenderedCaddyfile;
  /** The file as it was before: the last Caddyfile Caddy accepted, to tell what changed. */
  previous: string;
  /** Write the file after loading (false when only Caddy had lost the config). */
  write: boolean;
  timeoutMs?: number;
}

export async function applyCaddyfile(req: CaddyfileApply): Promise<{ loaded: boolean; written: boolean }> {
  if (req.adminAddress !== undefined) await loadCaddyfile(req.adminAddress, req.rendered, req.previous, req.timeoutMs);
  if (req.write) await writeCaddyfile(req.file, req.rendered.text);
  return { loaded: req.adminAddress !== undefined, written: req.write };
}

/**
 * POST /load with the Caddyfile. Caddy answers 200 once the new config runs, or 400 with
 * `{"error": ...}` when it cannot adapt or start it (then the old config stays in force).
 */
export async function loadCaddyfile(adminAddress: string, rendered: RenderedCaddyfile, previous: string, timeoutMs = ADMIN_TIMEOUT_MS): Promise<void> {
  adminTarget(adminAddress); // a malformed address is the admin's to fix, not a failure to retry
  let res: HttpAnswer;
  try {
    res = await adminRequest(adminAddress, '/load', {
      method: 'POST',
      headers: { 'Content-Type': 'text/caddyfile' },
      body: rendered.text,
      timeoutMs,
    });
  } catch (err) {
    throw new Error(`Caddy's admin API at ${adminAddress} is unreachable: ${describeRequestFailure(err, timeoutMs)}; the Caddyfile was left as it was`);
  }
  const body = res.text;
  if (res.status === 200) return;
  const said = errorText(body);
  if (res.status >= 500) {
    throw new Error(`Caddy's admin API at ${adminAddress} failed to load the Caddyfile (HTTP ${res.status}): ${said}`);
  }
  if (res.status !== 400) {
    throw new TerminalError(`${adminAddress} answered POST /load with HTTP ${res.status}: ${said}. ${adminHint(res.status)}`, 'CaddyAdminRefused');
  }
  // A port held by another process is a fault of the machine that may pass, not of the input.
  if (/address already in use/i.test(said)) {
    throw new Error(`Caddy at ${adminAddress} could not start the new config: ${said}`);
  }
  const concerned = routesConcerned(said, rendered, previous);
  const which =
    concerned.length > 0
      ? ` Routes concerned: ${concerned.map(describeRoute).join('; ')}.`
      : ' No route changed; the global options did (spec.caddy.tls or the admin address).';
  throw new TerminalError(
    `Caddy at ${adminAddress} refused the new Caddyfile: ${said}.${which} The last good config stays in force and the file was not replaced.`,
    'CaddyRejected',
  );
}

/**
 * Writes the Caddyfile atomically, readable by a Caddy that runs as its own user (the file holds
 * no secret).
 */
export async function writeCaddyfile(file: string, text: string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, text, 0o644);
}
