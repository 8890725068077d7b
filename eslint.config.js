// Lint for pic: typescript-eslint's type-aware recommended rules, and the two import rules of
// docs/STYLE ("Imports point one way: commands → controllers → reconcilers → state / crds";
// "Only adapters import dockerode, node:fs, node:child_process or fetch").
// `make lint` runs it (cached in .tmp/eslintcache); `make test` runs `make lint` first.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// ---------------------------------------------------------------------------------------------
// Layers. A file may import its own layer and the ones below it, never one above. Type imports
// count too: a type a lower layer needs belongs in that layer (reconcilers/shared, state, crds).
// crds is the floor (schemas, document types, validators): it imports nothing of ours but crds.
// Specifiers are relative paths, so "above" is any path through the higher layer's folder.
// ---------------------------------------------------------------------------------------------
const layer = (folder, why) => ({ regex: `^(\\.\\./)+${folder}(/|$)`, message: why });
const NO_CLI = { regex: '(^|/)cli(/|$)', message: 'controllers never import the commands (controllers/cli/): the commands call down into controllers.' };
const NO_CONTROLLERS = layer('controllers', 'reconcilers, state and crds never import controllers/: move the shared type or helper down (reconcilers/shared, state).');
const NO_RECONCILERS = layer('reconcilers', 'state and crds never import reconcilers/: move the shared type or helper into state/ or crds/.');
const NO_STATE = layer('state', 'crds/ is the lowest layer and imports nothing of state/: move what it needs into crds/.');

// ---------------------------------------------------------------------------------------------
// Pure modules: plans, renderers and the parsing/policy/translation code they are built from.
// They take what was read as arguments, so they import no I/O: no file system, process, socket or
// Docker module, no `fetch`, and no adapter of ours (a reconciler's observe.ts, apply.ts or
// index.ts, or the helpers those use to reach Docker, files or HTTP). A *type* from dockerode or
// from an observer may be imported (`import type`): it is the vocabulary of what the plan takes
// and returns (Docker's create options, the observed rules) and is erased from the output.
// Add a file here when it is pure; move a pure helper out of an adapter rather than exempt it.
// ---------------------------------------------------------------------------------------------
const PURE_FILES = [
  'reconcilers/**/plan.ts',
  'reconcilers/**/*-plan.ts',
  'reconcilers/**/render.ts',
  'reconcilers/**/*-render.ts',
  'reconcilers/errors.ts',
  'controllers/outcome.ts',
  'controllers/plan-journal.ts',
  'reconcilers/shared/diff.ts',
  'reconcilers/shared/types.ts',
  'reconcilers/backup/entries.ts',
  'reconcilers/backup/labels.ts',
  'reconcilers/backup/retention.ts',
  'reconcilers/backup/schedule.ts',
  'reconcilers/backup/types.ts',
  'reconcilers/caddy/routes.ts',
  'reconcilers/containers/check-package.ts',
  'reconcilers/containers/command.ts',
  'reconcilers/containers/compose.ts',
  'reconcilers/containers/compose-model.ts',
  'reconcilers/containers/desired.ts',
  'reconcilers/containers/labels.ts',
  'reconcilers/containers/policy.ts',
  'reconcilers/containers/read-compose.ts',
  'reconcilers/containers/read-compose-fields.ts',
  'reconcilers/containers/readiness.ts',
  'reconcilers/containers/spec-hash.ts',
  'reconcilers/containers/translate.ts',
  'reconcilers/containers/units.ts',
  'reconcilers/core/desired.ts',
  'reconcilers/core/policy.ts',
  'reconcilers/core/spec.ts',
  'reconcilers/dns/serial.ts',
  'reconcilers/dns/wire.ts',
  'reconcilers/egress/allocate.ts',
  'reconcilers/images/facts.ts',
  'reconcilers/images/policy.ts',
  'reconcilers/images/reference.ts',
  'reconcilers/images/verdict.ts',
];

const IO_BUILTINS = [
  'fs', 'fs/promises', 'child_process', 'net', 'dgram', 'dns', 'dns/promises', 'http', 'https', 'http2', 'tls',
  'worker_threads', 'cluster', 'readline',
].flatMap((name) => [name, `node:${name}`]);

// Our modules that do I/O without being named observe/apply/index, by file name (a specifier is
// relative, so the name is what every importer spells the same way; no pure module shares one):
// reconcilers/shared/{exec,http,owned-container,stop,docker-stream}, containers/{image,network,bind-sources},
// images/{credentials,keys,pull,registry,transport,verifier,gate}, backup/{archive,helper,context,
// steps,sweep,create,restore}, caddy/{ca,ca-expiry}, firewall/tunnel, wireguard/credentials and
// state/{atomic-write,state-dir,snapshots,file-memo}.
const IO_HELPERS = [
  'exec', 'http', 'owned-container', 'stop', 'docker-stream',
  'image', 'network', 'bind-sources',
  'credentials', 'keys', 'pull', 'registry', 'transport', 'verifier', 'gate',
  'archive', 'helper', 'context', 'steps', 'sweep', 'create', 'restore',
  'ca', 'ca-expiry', 'tunnel',
  'atomic-write', 'state-dir', 'snapshots', 'file-memo',
].join('|');

const pureImports = {
  paths: IO_BUILTINS.map((name) => ({ name, message: 'a plan or renderer does no I/O: take what was read as an argument (the adapter reads it).' })),
  patterns: [
    {
      regex: '^dockerode$',
      allowTypeImports: true,
      message: 'a plan or renderer does not talk to Docker: only its types may be imported (`import type`).',
    },
    {
      regex: `(^|/)(observe|apply|index)\\.js$|^\\.{1,2}$|(^|/)(${IO_HELPERS})\\.js$`,
      allowTypeImports: true,
      message: 'a plan or renderer imports no adapter (observe/apply/index or an I/O helper): move the pure helper it needs into a pure module; types may be imported with `import type`.',
    },
  ],
};

export default tseslint.config(
  {
    ignores: ['dist/', 'node_modules/', 'coverage/', '.tmp/', '.demo/', 'crds/generated/'],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },

  // The plain scripts (jest config, demo and peer-check helpers): JavaScript's recommended rules.
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: {
      sourceType: 'module',
      globals: { console: 'readonly', process: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', fetch: 'readonly' },
    },
  },

  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // `_name` marks a binding left unused on purpose: a destructured field dropped from a copy
      // (`const { owner: _owner, ...rest } = x`), an argument a callback signature requires.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      // `async` without `await` is how a command's `run`, a fake adapter or a loader meets a
      // Promise-returning interface, so that a throw becomes a rejection; dropping `async` would
      // change which errors escape synchronously. The bug this rule is after (a promise not awaited)
      // is caught by no-floating-promises and no-misused-promises, which stay on.
      '@typescript-eslint/require-await': 'off',
    },
  },

  // Tests build deliberately malformed documents by mutating `any` copies of valid fixtures and
  // read JSON printed by the CLI; typing every such probe would rewrite ~20 test files without
  // making pic safer. The no-unsafe-* and no-explicit-any rules guard the operator's own code.
  {
    files: ['tests/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },

  // Layers (see the top of this file).
  { files: ['controllers/**/*.ts'], ignores: ['controllers/cli/**'], rules: { 'no-restricted-imports': ['error', { patterns: [NO_CLI] }] } },
  { files: ['reconcilers/**/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [NO_CONTROLLERS] }] } },
  { files: ['state/**/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [NO_CONTROLLERS, NO_RECONCILERS] }] } },
  { files: ['crds/**/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [NO_CONTROLLERS, NO_RECONCILERS, NO_STATE] }] } },

  // Pure modules (see above).
  {
    files: PURE_FILES,
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', pureImports],
      'no-restricted-globals': ['error', { name: 'fetch', message: 'a plan or renderer does no I/O: the adapter fetches and passes the result in.' }],
    },
  },
);
