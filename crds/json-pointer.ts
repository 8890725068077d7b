/** JSON pointers (RFC 6901), as every problem pic reports locates its field. Pure. */

/** One reference token escaped: `~` as `~0`, `/` as `~1`. */
export function escapePointerToken(token: string | number): string {
  return String(token).replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The pointer of a path of tokens: `pointerOf('env', 2, 'key')` is `/env/2/key`. */
export function pointerOf(...tokens: (string | number)[]): string {
  return tokens.map((t) => `/${escapePointerToken(t)}`).join('');
}
