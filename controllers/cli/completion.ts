/**
 * `pic completion bash|zsh`: a completion script made from the registered commands, their flags
 * and what each flag and argument takes, so it can never list a flag a command does not have.
 */
import { HELP_FLAG, type Command, type Flag } from './command.js';
import { UsageError } from './usage.js';

const SHELLS = ['bash', 'zsh'] as const;

/** Shell words are generated from our own names (letters, digits, `-`, `/`, `=`, `|`): checked, never quoted input. */
function word(text: string): string {
  if (!/^[A-Za-z0-9_./=|-]*$/.test(text)) throw new Error(`completion: "${text}" is not a plain word`);
  return text;
}

function flagWords(flags: readonly Flag[]): string[] {
  return flags.flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]).map(word);
}

function caseArm(patterns: string[], body: string): string {
  return `    ${patterns.join('|')}) ${body} ;;`;
}

function valueCompletion(spec: Flag['complete'], shell: 'bash' | 'zsh'): string {
  if (spec === 'dir') return shell === 'bash' ? 'COMPREPLY=($(compgen -d -- "$cur"))' : "_files -/";
  if (spec === 'file') return shell === 'bash' ? 'COMPREPLY=($(compgen -f -- "$cur"))' : '_files';
  const words = (spec ?? []).map(word).join(' ');
  return shell === 'bash' ? `COMPREPLY=($(compgen -W "${words}" -- "$cur"))` : `compadd -- ${words}`;
}

export function completionScript(shell: 'bash' | 'zsh', commands: readonly Command[]): string {
  const names = commands.map((c) => word(c.name)).join(' ');
  const valueFlags = commands.flatMap((c) => c.flags.filter((f) => f.type === 'string'));
  const byFlag = new Map<string, Flag>();
  for (const f of valueFlags) if (!byFlag.has(f.name)) byFlag.set(f.name, f);
  const flagArms = [...byFlag.values()].map((f) => caseArm([`--${word(f.name)}`, ...(f.short ? [`-${word(f.short)}`] : [])], `${valueCompletion(f.complete, shell)}; return`));
  const commandArms = commands.map((c) => {
    const flags = flagWords([...c.flags, HELP_FLAG]).join(' ');
    const args = c.completeArgs;
    if (shell === 'bash') {
      const argPart = args === undefined ? '' : `; [[ "$cur" != -* ]] && ${valueCompletion(args, shell)} && return`;
      return caseArm([word(c.name)], `COMPREPLY=($(compgen -W "${flags}" -- "$cur"))${argPart}`);
    }
    const argPart = args === undefined ? '' : `; [[ "$cur" != -* ]] && ${valueCompletion(args, shell)}`;
    return caseArm([word(c.name)], `compadd -- ${flags}${argPart}`);
  });
  if (shell === 'bash') {
    return [
      '# bash completion for pic: source <(pic completion bash), or save it in /etc/bash_completion.d/pic',
      '_pic() {',
      '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" cmd="" i',
      '  for ((i = 1; i < COMP_CWORD; i++)); do',
      '    case "${COMP_WORDS[i]}" in',
      '      --state-dir|--cell|--log-format) ((i++)) ;;',
      '      -*) ;;',
      '      *) cmd="${COMP_WORDS[i]}"; break ;;',
      '    esac',
      '  done',
      '  case "$prev" in',
      ...flagArms,
      '  esac',
      '  if [[ -z "$cmd" ]]; then',
      `    COMPREPLY=($(compgen -W "${names} --state-dir --cell --log-format --help --version" -- "$cur")); return`,
      '  fi',
      '  case "$cmd" in',
      ...commandArms,
      '  esac',
      '}',
      'complete -F _pic pic',
    ].join('\n');
  }
  return [
    '#compdef pic',
    '# zsh completion for pic: add  source <(pic completion zsh)  to ~/.zshrc, after compinit',
    '_pic() {',
    '  local cur="${words[CURRENT]}" prev="${words[CURRENT-1]}" cmd="" i',
    '  for ((i = 2; i < CURRENT; i++)); do',
    '    case "${words[i]}" in',
    '      --state-dir|--cell|--log-format) ((i++)) ;;',
    '      -*) ;;',
    '      *) cmd="${words[i]}"; break ;;',
    '    esac',
    '  done',
    '  case "$prev" in',
    ...flagArms,
    '  esac',
    '  if [[ -z "$cmd" ]]; then',
    `    compadd -- ${names} --state-dir --cell --log-format --help --version; return`,
    '  fi',
    '  case "$cmd" in',
    ...commandArms,
    '  esac',
    '}',
    'compdef _pic pic',
  ].join('\n');
}

export const completionCommand: Command = {
  name: 'completion',
  summary: 'Print a shell completion script (bash or zsh)',
  args: 'bash|zsh',
  description: 'bash: source <(pic completion bash), or save it as /etc/bash_completion.d/pic. zsh: source <(pic completion zsh) in ~/.zshrc, after compinit.',
  flags: [],
  examples: ['pic completion bash', 'pic completion zsh'],
  completeArgs: SHELLS,
  async run(parsed, ctx) {
    const [shell, ...more] = parsed.positionals;
    if (shell === undefined || more.length > 0 || !(SHELLS as readonly string[]).includes(shell)) {
      throw new UsageError(`pic completion takes one of ${SHELLS.join(', ')}`);
    }
    ctx.io.out(completionScript(shell as 'bash' | 'zsh', await ctx.commands()));
    return 0;
  },
};
