// Once per Wine suite run: checks the prepared prefix, compiles the process layer into a private dist
// (a concurrent `npm run build` must not swap files under a running scenario), and starts from a clean prefix.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { missingPrerequisites, privateDist, repoRoot, resetPrefix, runsDir } from './wine.js';

export default async function setup(): Promise<() => Promise<void>> {
  const missing = missingPrerequisites();
  if (missing.length > 0) {
    throw new Error(`The Wine suite is not prepared: missing ${missing.join(', ')}. Run: bash scripts/windows/setup-wine.sh`);
  }
  rmSync(privateDist, { recursive: true, force: true });
  rmSync(runsDir, { recursive: true, force: true });
  execFileSync(process.execPath, [join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(repoRoot, 'tsconfig.json'), '--outDir', privateDist], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  await resetPrefix();
  return async () => {
    await resetPrefix();
  };
}
