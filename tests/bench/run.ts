/** `make bench`: every benchmark in turn; each writes its own section of docs/benchmarks.md. */
const which = process.argv.slice(2);
const all = ['validate', 'operator', 'routing', 'accounts', 'peers', 'signing', 'backup', 'upgrade', 'egress', 'store', 'gitops', 'fuzz'];
// The operator's queue timers do not hold a process open (pic run keeps itself alive while it
// works); a benchmark waiting for a requeued key, say a container settling, must not see the
// process end under it.
const keepAlive = setInterval(() => undefined, 60_000);
try {
  for (const name of which.length ? which : all) {
    await import(`./${name}.js`);
  }
} finally {
  clearInterval(keepAlive);
}
