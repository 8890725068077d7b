/**
 * The long run of the pic validate fuzzer: 10,000 seeded cases over the example catalog and
 * cell (tests/fuzz/validate-fuzz.ts), its counts written to docs/benchmarks.md.
 */
import { DEFAULT_FUZZ_SEED, runValidateFuzz } from '../fuzz/validate-fuzz.js';
import { writeBenchSection } from './report.js';

const cases = Number(process.env.PIC_FUZZ_CASES ?? 10_000);
const seed = Number(process.env.PIC_FUZZ_SEED ?? DEFAULT_FUZZ_SEED);
const started = process.hrtime.bigint();
const report = await runValidateFuzz({ seed, cases });
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const mutations = Object.entries(report.mutations)
  .sort(([a], [b]) => (a < b ? -1 : 1))
  .map(([name, n]) => `${name} ${n}`)
  .join(', ');
await writeBenchSection(
  'fuzz',
  [
    { name: `pic validate over mutated examples (seed 0x${seed.toString(16)})`, result: `${report.cases} cases in ${seconds.toFixed(0)} s`, target: '10,000 cases', met: report.cases >= 10_000 },
    { name: 'crashes (validation threw)', result: String(report.crashes), target: '0', met: report.crashes === 0 },
    { name: 'stack traces in messages', result: String(report.stackTraces), target: '0', met: report.stackTraces === 0 },
    { name: 'problems naming no file', result: String(report.unnamed), target: '0', met: report.unnamed === 0 },
    { name: 'unbounded reports or leaked outside content', result: String(report.unbounded), target: '0', met: report.unbounded === 0 },
    { name: 'packages reaching outside their service that validated (escape mutations alone)', result: `${report.escapesAccepted} of ${report.mutations.escape ?? 0} escapes`, target: '0', met: report.escapesAccepted === 0 },
  ],
  [
    `${report.problems} problems reported in all; ${report.valid} cases were still valid after their mutation (a flipped bit in a comment, a removed optional file).`,
    `Mutations applied: ${mutations}.`,
    ...report.failures.slice(0, 5).map((f) => `- case ${f.case} (${f.mutations.join('; ')}): ${f.why.replace(/\n/g, ' ').slice(0, 300)}`),
  ],
);
if (report.failures.length > 0) process.exitCode = 1;
