#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (run automatically by `npm install`).
import('../dist/src/cli.js').catch((error) => {
  if (error && error.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('warden: the build output is missing; run `npm run build` (or `npm install`) first.');
    process.exit(1);
  }
  throw error;
});
