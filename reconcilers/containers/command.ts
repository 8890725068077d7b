/**
 * A `command` or `entrypoint` written as one string: split into words as a POSIX shell would,
 * without running one (pic creates the container with the word list, as Compose does).
 *
 * The splitting is shell-quote's. Around it, what only a shell could honour is refused rather
 * than silently handed to the program as arguments: control operators (`|`, `;`, `&&`,
 * redirections, subshells), comments, command substitution (`` `…` `` and `$(…)`), `${…}`
 * (shell-quote would rewrite it to `$NAME`), quotes left open or a lone final backslash (which
 * shell-quote would accept as if closed), and a backslash-newline (which it reads as an empty
 * word). `$NAME` and glob patterns stay literal, as Compose leaves them.
 *
 * Where shell-quote differs from a POSIX shell and pic lets it: a `#` inside a word starts a
 * comment (so it is refused; quote it), and inside double quotes a backslash before a backtick is
 * kept. Pure.
 */
import { parse, quote } from 'shell-quote';

export class CommandSyntaxError extends Error {}

function needsShell(what: string): CommandSyntaxError {
  return new CommandSyntaxError(`${what} needs a shell, and pic runs the command without one; write the list form, e.g. ["sh", "-c", "…"]`);
}

/** The refusals shell-quote does not make itself: it is lenient where a shell is not. */
function checkShellSyntax(text: string): void {
  let i = 0;
  const substitution = (at: number): CommandSyntaxError | undefined => {
    const c = text[at];
    if (c === '`' || (c === '$' && text[at + 1] === '(')) return needsShell('command substitution');
    if (c === '$' && text[at + 1] === '{') return needsShell('"${…}" (a shell parameter expansion)');
    return undefined;
  };
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '\\') {
      if (i + 1 >= text.length) throw new CommandSyntaxError('the command ends with a lone backslash');
      // shell-quote reads a backslash-newline as an empty word rather than as a line continuation.
      if (text[i + 1] === '\n') throw new CommandSyntaxError('a backslash ends a line; write the command on one line, or use the list form');
      i += 2;
    } else if (c === "'") {
      const close = text.indexOf("'", i + 1);
      if (close < 0) throw new CommandSyntaxError('a single quote is never closed');
      i = close + 1;
    } else if (c === '"') {
      i += 1;
      for (;;) {
        if (i >= text.length) throw new CommandSyntaxError('a double quote is never closed');
        const d = text[i] as string;
        if (d === '"') break;
        const refused = substitution(i);
        if (refused) throw refused;
        i += d === '\\' ? 2 : 1;
      }
      i += 1;
    } else {
      const refused = substitution(i);
      if (refused) throw refused;
      i += 1;
    }
  }
}

/** The words of a command string; throws a CommandSyntaxError saying why it cannot be split. */
export function splitCommand(text: string): string[] {
  checkShellSyntax(text);
  const words: string[] = [];
  for (const entry of parse(text, (name) => `$${name}`)) {
    if (typeof entry === 'string') words.push(entry);
    else if ('comment' in entry) throw needsShell('a comment (an unquoted "#")');
    else if (entry.op === 'glob') words.push(entry.pattern);
    else throw needsShell(`the unquoted "${entry.op}"`);
  }
  return words;
}

/** Quote words so that `splitCommand` gives them back unchanged. */
export function quoteCommand(words: readonly string[]): string {
  return quote([...words]);
}
