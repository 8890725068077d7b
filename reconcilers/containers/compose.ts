/**
 * A rendered compose document, start to end: read it once into the model (compose-model.ts),
 * check the model against the cell's security policy (policy.ts), translate the checked model
 * into create options (translate.ts). Pure.
 */
import type { Problem } from '../../crds/types.js';
import type { ComposeFile, ComposeModel } from './compose-model.js';
import { readComposeModel } from './read-compose.js';
import { checkComposePolicy, type ComposePolicy } from './policy.js';
import { translateCompose, type TranslateContext } from './translate.js';
import type { ServicePlan } from './types.js';

export type { ComposeFile } from './compose-model.js';
export type { ComposePolicy } from './policy.js';
export type { TranslateContext } from './translate.js';

/** Every problem of the document: its shape, then the policy (nothing is translated). */
export function checkRenderedCompose(compose: ComposeFile, policy: ComposePolicy, file: string): Problem[] {
  const read = readComposeModel(compose, file);
  return [...read.problems, ...checkComposePolicy(read.model, policy, file).problems];
}

/**
 * What pic would create from the document, or every problem that stops it. `alsoCheck` adds the
 * caller's checks of the same model (the manifest's, say), so the document is read only once.
 */
export function planRenderedCompose(
  compose: ComposeFile,
  policy: ComposePolicy,
  ctx: TranslateContext & { file: string },
  alsoCheck: (model: ComposeModel) => Problem[] = () => [],
): { plan?: ServicePlan; problems: Problem[] } {
  const read = readComposeModel(compose, ctx.file);
  const checked = checkComposePolicy(read.model, policy, ctx.file);
  const problems = [...read.problems, ...checked.problems, ...alsoCheck(read.model)];
  if (problems.length > 0 || !checked.checked) return { problems };
  return translateCompose(checked.checked, ctx);
}
