import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real-process tests share one machine's process table; run files in parallel but
    // keep each file's tests sequential so a test's tree is the only one it reasons about.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    env: { WARDEN_LOG_LEVEL: 'error' },
  },
});
