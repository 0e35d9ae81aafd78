// Finds a Chromium for the dashboard test, so `npm ci && npm test` needs nothing apt-installed.
// Order: WARDEN_CHROMIUM (a path) → the npm devDependency @sparticuz/chromium (a brotli-packed headless
// Chromium inside the tarball, inflated once into node_modules/.cache) → /usr/bin/chromium. None → an error naming all three.
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

/** Where the Chromium came from, for the test to print. */
export interface ChromiumFound {
  path: string;
  source: 'WARDEN_CHROMIUM' | 'npm' | 'system';
}

/** Flags every launch uses: headless, no sandbox (root in CI), no network beyond the page's own server. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const SYSTEM_CHROMIUM = '/usr/bin/chromium';
const ROOT = resolve(import.meta.dirname, '../..');

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// Inflates the package's binary into a versioned cache dir. The package inflates into os.tmpdir(), shared and
// non-atomic (a half-written /tmp/chromium from an interrupted run would be reused), so TMPDIR points at a
// private staging dir for the one call, and the dir is renamed into place only when complete.
async function fromNpmPackage(packageName: string): Promise<string | { reason: string }> {
  const require = createRequire(join(ROOT, 'package.json'));
  let pkgDir: string;
  try {
    pkgDir = dirname(dirname(dirname(require.resolve(packageName))));
  } catch {
    return { reason: `package ${packageName} is not installed (run npm ci)` };
  }
  const version = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  const cache = join(ROOT, 'node_modules', '.cache', 'warden-chromium', version);
  const binary = join(cache, 'chromium');
  if (isExecutable(binary)) return binary;
  const staging = `${cache}.partial-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const savedTmp = process.env['TMPDIR'];
  try {
    process.env['TMPDIR'] = staging;
    const { default: Chromium } = (await import(packageName)) as typeof import('@sparticuz/chromium');
    // executablePath() computes every output path from os.tmpdir() synchronously before its first await.
    const inflating = Chromium.executablePath(join(pkgDir, 'bin'));
    if (savedTmp === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = savedTmp;
    const inflated = await inflating;
    if (resolve(inflated) !== join(staging, 'chromium')) return { reason: `@sparticuz/chromium inflated to ${inflated}, not the staging dir ${staging}` };
    // A broken cache (no executable) is replaced; a complete one another worker renamed first is kept.
    if (!isExecutable(binary)) rmSync(cache, { recursive: true, force: true });
    try {
      renameSync(staging, cache);
    } catch (error) {
      if (!isExecutable(binary)) throw error;
    }
  } catch (error) {
    return { reason: `${packageName} failed to inflate: ${(error as Error).message}` };
  } finally {
    rmSync(staging, { recursive: true, force: true });
    if (savedTmp === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = savedTmp;
  }
  return isExecutable(binary) ? binary : { reason: `${binary} is not executable after inflating` };
}

/** Test seams: another package name or system path, to prove the all-missing error. */
export interface FindChromiumOptions {
  env?: NodeJS.ProcessEnv;
  packageName?: string;
  systemPath?: string;
}

// WARDEN_CHROMIUM → @sparticuz/chromium → /usr/bin/chromium; throws naming all three and why each failed.
export async function findChromium(options: FindChromiumOptions = {}): Promise<ChromiumFound> {
  const { env = process.env, packageName = '@sparticuz/chromium', systemPath = SYSTEM_CHROMIUM } = options;
  const tried: string[] = [];
  const fromEnv = env['WARDEN_CHROMIUM'];
  if (fromEnv !== undefined && fromEnv !== '') {
    if (isExecutable(fromEnv)) return { path: fromEnv, source: 'WARDEN_CHROMIUM' };
    tried.push(`WARDEN_CHROMIUM=${JSON.stringify(fromEnv)}: ${existsSync(fromEnv) ? 'not executable' : 'no such file'}`);
  } else {
    tried.push('WARDEN_CHROMIUM: not set');
  }
  const packaged = await fromNpmPackage(packageName);
  if (typeof packaged === 'string') return { path: packaged, source: 'npm' };
  tried.push(`npm package ${packageName}: ${packaged.reason}`);
  if (isExecutable(systemPath)) return { path: systemPath, source: 'system' };
  tried.push(`${systemPath}: ${existsSync(systemPath) ? 'not executable' : 'no such file'}`);
  throw new Error(`no Chromium for the dashboard test; tried, in order:\n  ${tried.join('\n  ')}`);
}
