// The Wine suite (`npm run test:windows`): real Windows processes under Wine, kept out of `npm test`
// (its files end in .wine.ts, which the main config does not include). Prepare once with
// scripts/windows/setup-wine.sh. One wineserver for the whole machine's prefix: strictly sequential.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/windows/**/*.wine.ts'],
    globalSetup: ['test/windows/global-setup.ts'],
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 90_000,
    hookTimeout: 120_000,
    env: { WARDEN_LOG_LEVEL: 'error' },
  },
});
