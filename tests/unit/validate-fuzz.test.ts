// The short run of the pic validate fuzzer (tests/fuzz/validate-fuzz.ts); `make bench` runs the
// long one and writes its counts into docs/benchmarks.md.
import { DEFAULT_FUZZ_SEED, runValidateFuzz } from '../fuzz/validate-fuzz.js';

// Each case validates the whole example catalog (ten packages since the five exits joined it), so
// the short run takes 150 cases; `make bench` runs the long one.
test('150 mutated example packages and documents: no crash, no stack trace, every problem names a file', async () => {
  const report = await runValidateFuzz({ seed: DEFAULT_FUZZ_SEED, cases: 150 });
  expect(report.failures).toEqual([]);
  expect(report).toEqual(expect.objectContaining({ cases: 150, crashes: 0, stackTraces: 0, unnamed: 0, unbounded: 0, escapesAccepted: 0 }));
  expect(report.mutations.escape ?? 0).toBeGreaterThan(0);
  // The mutations reach validation: most cases are refused, with problems to show for it.
  expect(report.problems).toBeGreaterThan(150);
  expect(report.valid).toBeLessThan(75);
}, 240_000);
