/**
 * Which URLs a published store may have, and which URLs below it pic fetches. Pure.
 *
 * A store is fetched over HTTPS; plain HTTP only to a loopback address (a store served on the
 * cell's own host, or a test's), where nobody on the path can change the answers. The base URL
 * carries no credentials, query or fragment, and every file pic fetches resolves below it: a
 * redirect may change the path, never the origin (scheme, host, port).
 */
import { isIPv4 } from 'node:net';

/** A store's base URL, always ending in `/`, or why it cannot be one. */
export type StoreUrlCheck = { url: URL; problem?: undefined } | { url?: undefined; problem: string };

export function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost') return true;
  if (hostname === '[::1]') return true;
  return isIPv4(hostname) && hostname.split('.')[0] === '127';
}

export function checkStoreUrl(text: string): StoreUrlCheck {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { problem: `${JSON.stringify(text)} is not a URL; give the store's base URL, e.g. https://git.example.org/owner/store/raw/branch/main/` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { problem: `${url.protocol} URLs are not fetched; a store is fetched over https (or http to a loopback address)` };
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    return { problem: `plain http is allowed only to a loopback address (127.0.0.0/8, ::1, localhost), not to ${url.hostname}; anyone on the path could change the catalog: use https` };
  }
  if (url.username !== '' || url.password !== '') return { problem: 'the URL carries a user name or password; a store is public, and pic keeps no credentials in cell.yaml' };
  if (url.search !== '' || url.hash !== '') return { problem: 'the URL has a query or a fragment; give the base URL the index.json and services/ folders are below' };
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return { url };
}

/**
 * The URL of `relative` (e.g. `services/notes/manifest.json`) below the base, or undefined when
 * it would leave the base (an index entry naming `../x` or another host).
 */
export function storeFileUrl(base: URL, relative: string): URL | undefined {
  if (relative === '' || relative.startsWith('/') || relative.includes('\\') || relative.includes('?') || relative.includes('#')) return undefined;
  let url: URL;
  try {
    url = new URL(relative, base);
  } catch {
    return undefined;
  }
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) return undefined;
  if (relative.split('/').some((part) => part === '..' || part === '.' || part === '' || /%2e|%2f/i.test(part))) return undefined;
  return url;
}

/** Where a redirect from `from` may go: the resolved target when it keeps the origin, else why not. */
export function redirectTarget(from: URL, location: string | null): { url: URL; problem?: undefined } | { url?: undefined; problem: string } {
  if (!location) return { problem: 'a redirect without a Location header' };
  let url: URL;
  try {
    url = new URL(location, from);
  } catch {
    return { problem: `a redirect to ${JSON.stringify(location.slice(0, 200))}, which is not a URL` };
  }
  if (url.origin !== from.origin) return { problem: `a redirect to another origin (${url.origin}); a store's files are only followed within ${from.origin}` };
  return { url };
}
