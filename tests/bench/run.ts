/** `make bench`: every benchmark in turn; each writes its own section of docs/benchmarks.md. */
const which = process.argv.slice(2);
const all = ['validate', 'operator', 'routing', 'accounts', 'peers', 'signing', 'backup', 'upgrade', 'fuzz'];
for (const name of which.length ? which : all) {
  await import(`./${name}.js`);
}
