/**
 * The `http` account manager: a store service's own `/service-api/accounts`, reached at the
 * service's address on the cell network and the port of its manifest `backend` (the host routes
 * to the Docker bridge, so the operator calls it directly). The API has no authentication; only
 * the cell network and the host can reach it.
 *
 * Messages name the service, the method and the path, and the status; never the request body.
 */
import { HttpRequestError, httpRequest, type HttpAnswer } from '../shared/http.js';
import type { InstalledService } from '../shared/types.js';
import {
  AccountRejectedError,
  AccountServiceError,
  checkPassword,
  checkUsername,
  serviceText,
  type AccountManager,
  type ManagerOptions,
} from './account-manager.js';

export const DEFAULT_HTTP_TIMEOUT_MS = 5_000;
const API_PATH = '/service-api/accounts';

/** The port of a manifest backend `host:port`. */
function backendPort(service: InstalledService): number {
  const backend = service.manifest.backend;
  const match = backend === undefined ? null : /:(\d{1,5})$/.exec(backend);
  const port = match ? Number(match[1]) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new AccountRejectedError(
      `service "${service.name}" uses the http account manager but its manifest has no backend "host:port" to reach /service-api/accounts on`,
      'NoAccountEndpoint',
    );
  }
  return port;
}

export function httpAccountManager(service: InstalledService, options: ManagerOptions = {}): AccountManager {
  const timeoutMs = options.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS;
  const base = `http://${service.serviceIp}:${backendPort(service)}`;
  const name = service.name;

  async function call(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<HttpAnswer> {
    const what = `${name}: ${method} ${path}`;
    try {
      return await httpRequest(`${base}${path}`, {
        method,
        headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        timeoutMs,
      });
    } catch (err) {
      throw transportError(what, err, timeoutMs, base);
    }
  }

  function unexpected(what: string, answer: HttpAnswer, mayHaveApplied: boolean): Error {
    const detail = errorText(answer.text);
    const message = `${name}: ${what} answered ${answer.status}${detail ? ` (${detail})` : ''}`;
    // 408 and 429 say "later"; any other 4xx is the service refusing what was asked.
    if (answer.status >= 400 && answer.status < 500 && answer.status !== 408 && answer.status !== 429) return new AccountRejectedError(message);
    return new AccountServiceError(message, mayHaveApplied, false);
  }

  return {
    async list() {
      const answer = await call('GET', API_PATH);
      if (answer.status !== 200) throw unexpected(`GET ${API_PATH}`, answer, false);
      let parsed: unknown;
      try {
        parsed = JSON.parse(answer.text);
      } catch {
        throw new AccountServiceError(`${name}: GET ${API_PATH} did not answer JSON; expected {"accounts": ["alice", ...]}`, false, false);
      }
      const accounts = (parsed as { accounts?: unknown } | null)?.accounts;
      if (!Array.isArray(accounts) || !accounts.every((a): a is string => typeof a === 'string')) {
        throw new AccountServiceError(`${name}: GET ${API_PATH} answered an unexpected shape; expected {"accounts": ["alice", ...]}`, false, false);
      }
      return [...accounts];
    },

    async create(username, password) {
      checkUsername(name, username);
      checkPassword(name, password);
      const answer = await call('POST', API_PATH, { username, password });
      if (answer.status === 200 || answer.status === 201) return 'created';
      if (answer.status === 409) return 'exists';
      throw unexpected(`POST ${API_PATH} for "${username}"`, answer, true);
    },

    async remove(username) {
      checkUsername(name, username);
      const path = `${API_PATH}/${encodeURIComponent(username)}`;
      const answer = await call('DELETE', path);
      if (answer.status === 200 || answer.status === 204) return 'removed';
      if (answer.status === 404) return 'absent';
      throw unexpected(`DELETE ${path}`, answer, true);
    },
  };
}

/** The `error` of a `{"ok": false, "error": "..."}` body, else the start of the text. */
function errorText(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: unknown } | null;
    if (parsed !== null && typeof parsed === 'object' && typeof parsed.error === 'string') return serviceText(parsed.error);
  } catch {
    // not JSON: quote the text itself
  }
  return serviceText(text);
}

function transportError(what: string, err: unknown, timeoutMs: number, base: string): AccountServiceError {
  if (!(err instanceof HttpRequestError)) return new AccountServiceError(`${what}: the request to ${base} failed (${(err as Error).message})`, true, true);
  if (err.timedOut) {
    return err.sent
      ? new AccountServiceError(`${what}: no answer from ${base} within ${timeoutMs} ms`, true, true)
      : new AccountServiceError(`${what}: cannot reach ${base} within ${timeoutMs} ms; is the service running?`, false, true);
  }
  if (!err.sent) return new AccountServiceError(`${what}: cannot reach ${base} (${err.code}); is the service running?`, false, true);
  return new AccountServiceError(`${what}: the request to ${base} failed (${err.code}: ${err.message})`, true, true);
}
