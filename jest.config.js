// Tests are compiled by tsc first (make build) and run as native ES modules: no transformer.
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/tests'],
  testMatch: ['**/*.test.js'],
  // tests/serial restarts the Docker engine every other test uses: the Makefile runs it alone,
  // after the parallel run (`make test`).
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/dist/tests/serial/'],
  transform: {},
  testTimeout: 120000,
  // Four test files at a time on two cores: the end-to-end files spend most of their time waiting
  // on Docker (starts, stops, health checks), not on the CPU. With three, a quiet run kept the
  // CPU 57 % busy (716 s); the suite passed whole with four beside a load of 10–14.
  maxWorkers: 4,
};
