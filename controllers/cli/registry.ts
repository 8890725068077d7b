/**
 * Every pic command, in the order `pic help` lists them. A new command is one more line here
 * (a `Command` value from its own module); help, flag checking and completion follow from it.
 */
import { backupCommand } from './backup.js';
import { caCommand } from './ca.js';
import type { Command } from './command.js';
import { catalogCommand } from './catalog.js';
import { completionCommand } from './completion.js';
import { credentials } from './credentials.js';
import { dataCommand } from './data.js';
import { planCommand } from './plan.js';
import { runCommand } from './run.js';
import { describeCommand, getCommand, watchCommand } from './status-commands.js';
import { validateCommand } from './validate.js';
import { verifyCommand } from './verify.js';

export const COMMANDS: readonly Command[] = [
  validateCommand,
  planCommand,
  runCommand,
  getCommand,
  describeCommand,
  watchCommand,
  credentials,
  verifyCommand,
  caCommand,
  catalogCommand,
  backupCommand,
  dataCommand,
  completionCommand,
];
