/**
 * A service package's `compose-template.yml` as YAML: read once, where the package is read (the
 * catalog, the admitted packages), and the one reading kept with the package for every render and
 * every question about it (its secret names, each trial render of `pic validate`). Pure.
 */
import type { Document } from 'yaml';
import type { Problem } from '../crds/types.js';
import {
  DOCUMENT_YAML_OPTIONS,
  nestingProblem,
  parseYamlStreams,
  yamlDocumentsOf,
  yamlDocumentsUnparsed,
  yamlIssuesAsProblems,
  yamlNestingTooDeep,
  type YamlReadOptions,
} from './yaml-documents.js';

/** Templates are small; anything bigger is a mistake or an attack. */
export const MAX_TEMPLATE_BYTES = 1024 * 1024;

/**
 * Anchors and merge keys are allowed (Compose files use them to share blocks between services),
 * but only a few expansions: enough for `<<: *common` in a handful of services, far too few for a
 * "billion laughs" document.
 */
export const MAX_ALIAS_COUNT = 32;

/**
 * A template as read: its one document's value (undefined when it cannot be read, null for an empty
 * stream), or the problems of its reading, each naming the file it was read as. Shared by every
 * render of the package: nothing may change it.
 */
export interface ComposeTemplate {
  value: unknown;
  problems: Problem[];
}

/** yaml's options for a template: Compose's merge keys, one kind of key, the core schema's tags only. */
const TEMPLATE_YAML_OPTIONS: YamlReadOptions = {
  merge: true,
  uniqueKeys: true,
  stringKeys: true,
  strict: true,
  // Positions are counted by yamlIssuesAsProblems: a pretty error would quote the template.
  prettyErrors: false,
  // Explicit tags (!!binary, !!set, !!timestamp…) would turn into values Compose has no use for.
  resolveKnownTags: false,
  logLevel: 'silent',
};

/** Read a template safely: size limit, one document, unique keys, bounded alias expansion. */
export function readComposeTemplate(template: string, file: string): ComposeTemplate {
  return templateUnparsed(template, file) ?? templateOf(parseYamlStreams(template, [TEMPLATE_YAML_OPTIONS])[0]!, template, file);
}

/**
 * A package's template read both ways, from one parse: as a YAML document (the problems
 * parseYamlDocuments finds, which make the package invalid) and as Compose reads it (for its renders).
 */
export function readPackageTemplate(template: string, file: string): { documentProblems: Problem[]; template: ComposeTemplate } {
  const documents = yamlDocumentsUnparsed(template, file);
  const composed = templateUnparsed(template, file);
  if (documents && composed) return { documentProblems: documents.problems, template: composed };
  const optionSets = [...(documents ? [] : [DOCUMENT_YAML_OPTIONS]), ...(composed ? [] : [TEMPLATE_YAML_OPTIONS])];
  const streams = parseYamlStreams(template, optionSets);
  return {
    documentProblems: (documents ?? yamlDocumentsOf(streams[0]!, template, file)).problems,
    template: composed ?? templateOf(streams[streams.length - 1]!, template, file),
  };
}

/** What readComposeTemplate decides before yaml parses the text; undefined when yaml must parse it. */
function templateUnparsed(template: string, file: string): ComposeTemplate | undefined {
  if (typeof template !== 'string') {
    return { value: undefined, problems: [{ file, pointer: '', message: 'the compose template is not text' }] };
  }
  const bytes = Buffer.byteLength(template, 'utf8');
  if (bytes > MAX_TEMPLATE_BYTES) {
    return { value: undefined, problems: [{ file, pointer: '', message: `the compose template is ${bytes} bytes, over the ${MAX_TEMPLATE_BYTES}-byte limit` }] };
  }
  // Deep nesting is refused before the parser sees it (its recursion and messages grow with depth).
  const deep = yamlNestingTooDeep(template);
  if (deep !== undefined) return { value: undefined, problems: [nestingProblem(file, deep)] };
  return undefined;
}

/** The template from what yaml gave for its text under TEMPLATE_YAML_OPTIONS. */
function templateOf(stream: { docs: Document.Parsed[] } | { thrown: unknown }, template: string, file: string): ComposeTemplate {
  const problems: Problem[] = [];
  try {
    if ('thrown' in stream) throw stream.thrown;
    const docs = stream.docs;
    if (docs.length === 0) {
      // An empty stream (only comments or directives) may still carry errors of its own.
      problems.push(...yamlIssuesAsProblems(template, file, (docs as { errors?: { message: string; pos?: [number, number] }[] }).errors ?? [], []));
      return { value: null, problems };
    }
    if (docs.length > 1) {
      return { value: undefined, problems: [{ file, pointer: '', message: `the template holds ${docs.length} YAML documents; a compose template is exactly one` }] };
    }
    const doc = docs[0]!;
    problems.push(...yamlIssuesAsProblems(template, file, doc.errors, doc.warnings));
    if (problems.length) return { value: undefined, problems };
    const value: unknown = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    return { value, problems };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const detail = /alias/i.test(message) ? `too many alias expansions (at most ${MAX_ALIAS_COUNT}): ${message}` : message;
    return { value: undefined, problems: [{ file, pointer: '', message: `cannot read the template: ${oneLine(detail)}` }] };
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
