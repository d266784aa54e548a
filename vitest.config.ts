import { defineConfig } from 'vitest/config';

/** Every test file runs twice: on embedded PGlite and on PostgreSQL (scripts/test.mjs picks the projects). */
export default defineConfig({
  // Node resolves graphql to its CommonJS build for the dependencies; make our own imports agree,
  // or two copies of graphql load and schema objects stop being recognised.
  resolve: { alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }] },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'pglite', include: ['test/**/*.test.ts'], env: { TEST_BACKEND: 'pglite' } } },
      { extends: true, test: { name: 'postgres', include: ['test/**/*.test.ts'], env: { TEST_BACKEND: 'postgres' } } },
    ],
  },
});
