/** Account names: what every example service accepts, and what is safe as a path segment and a directory name. Pure. */

export const USERNAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

/** Why `username` cannot be an account name, or undefined when it can. */
export function usernameProblem(username: string): string | undefined {
  if (!USERNAME_PATTERN.test(username)) return `"${printable(username)}" is not a valid account name: use 1-64 characters of A-Z a-z 0-9 . _ @ -`;
  if (username.startsWith('.') || username.startsWith('-')) return `"${username}" is not a valid account name: it may not start with "." or "-"`;
  return undefined;
}

/** `text` with every control character shown as "?". */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, '?');
}
