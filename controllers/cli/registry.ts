/**
 * Every pic command, in the order `pic help` lists them. A new command is one more line here (its
 * name, and where its module is); help, flag checking and completion follow from the `Command` the
 * module exports.
 *
 * Only the command that runs is loaded: `pic get` never loads the operator, the signature
 * verifier or the backup engine, and `pic --version` loads none (about half a second of CPU
 * saved per invocation on a small machine). `pic help` and completion load them all.
 */
import type { Command } from './command.js';

export interface CommandEntry {
  name: string;
  load(): Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'validate', load: async () => (await import('./validate.js')).validateCommand },
  { name: 'init', load: async () => (await import('./init.js')).initCommand },
  { name: 'plan', load: async () => (await import('./plan.js')).planCommand },
  { name: 'run', load: async () => (await import('./run.js')).runCommand },
  { name: 'reconcile', load: async () => (await import('./reconcile.js')).reconcileCommand },
  { name: 'get', load: async () => (await import('./status-commands.js')).getCommand },
  { name: 'describe', load: async () => (await import('./status-commands.js')).describeCommand },
  { name: 'watch', load: async () => (await import('./status-commands.js')).watchCommand },
  { name: 'credentials', load: async () => (await import('./credentials.js')).credentials },
  { name: 'verify', load: async () => (await import('./verify.js')).verifyCommand },
  { name: 'ca', load: async () => (await import('./ca.js')).caCommand },
  { name: 'catalog', load: async () => (await import('./catalog.js')).catalogCommand },
  { name: 'backup', load: async () => (await import('./backup.js')).backupCommand },
  { name: 'data', load: async () => (await import('./data.js')).dataCommand },
  { name: 'fence', load: async () => (await import('./fence.js')).fenceCommand },
  { name: 'completion', load: async () => (await import('./completion.js')).completionCommand },
];
