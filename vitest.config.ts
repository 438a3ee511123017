import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Lab tests start real servers on loopback ports; running files in parallel on 2 cores
    // is fine, the harness picks free ports per server.
    pool: 'forks',
  },
});
