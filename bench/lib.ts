// Shared helpers for the benchmarks: the fake WebUI tree, marker read-back, cleanup, statistics, output.
// House rules: nothing here signals a process by name or pattern. Trees are stopped through terminate(handle);
// the last-resort fallback only SIGKILLs pids whose /proc/PID/environ carries the handle's own marker.
import { chooseContainment } from '../src/process/containment.js';
import type { ContainmentChoice } from '../src/process/containment.js';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { collectOwned, findMarked, launch, snapshotProcSync, terminate } from '../src/process/index.js';
import type { OwnedProcess, TerminationReport, TreeHandle } from '../src/process/index.js';

export const BENCH_DIR = import.meta.dirname;
export const REPO_DIR = resolve(BENCH_DIR, '..');
export const FAKE_WEBUI_DIR = join(REPO_DIR, 'examples/fake-webui');
export const RESULTS_DIR = join(BENCH_DIR, 'results');

// ------------------------------------------------------------------ the machine

export interface MachineInfo {
  date: string;
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  platform: string;
  kernel: string;
  node: string;
  loadAverage: number[];
  processes: number;
}

export function machineInfo(): MachineInfo {
  let nproc = os.availableParallelism();
  try {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: synchronous child, awaited here.   Cleanup handled by: it exits by itself.   Known risks: none.
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    // keep Node's answer
  }
  return {
    date: new Date().toISOString(),
    nproc,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${process.platform}-${process.arch}`,
    kernel: os.release(),
    node: process.version,
    loadAverage: os.loadavg().map((value) => Math.round(value * 100) / 100),
    processes: snapshotProcSync(false).processes.size,
  };
}

export function printMachine(machine: MachineInfo): void {
  console.log(
    `machine: ${machine.nproc} CPU (${machine.cpuModel}), ${machine.memoryGiB} GiB, ${machine.platform} ${machine.kernel}, ` +
      `node ${machine.node}, ${machine.processes} processes, load ${machine.loadAverage.join(' ')}, ${machine.date}`,
  );
}

// ------------------------------------------------------------------ statistics and output

export interface Stats {
  n: number;
  median: number;
  p90: number;
  mean: number;
  min: number;
  max: number;
}

// Median (mean of the middle two for even n) and nearest-rank p90.
export function stats(values: readonly number[]): Stats {
  if (values.length === 0) return { n: 0, median: NaN, p90: NaN, mean: NaN, min: NaN, max: NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  const p90 = sorted[Math.max(0, Math.ceil(0.9 * n) - 1)] as number;
  const mean = sorted.reduce((sum, value) => sum + value, 0) / n;
  return { n, median, p90, mean, min: sorted[0] as number, max: sorted[n - 1] as number };
}

export const round2 = (value: number): number => Math.round(value * 100) / 100;
export const ms = (value: number): string => (Number.isFinite(value) ? value.toFixed(value < 10 ? 2 : 1) : 'n/a');

// A plain text table with right-aligned numeric columns.
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((row) => row.map(String))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  const line = (row: string[]): string =>
    row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] as number) : cell.padStart(widths[column] as number))).join('  ');
  return [line(cells[0] as string[]), widths.map((width) => '-'.repeat(width)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}

// `--rounds N` style flags.
export function numberFlag(argv: readonly string[], flag: string, fallback: number): number {
  const index = argv.indexOf(flag);
  const inline = argv.find((arg) => arg.startsWith(`${flag}=`));
  const raw = inline !== undefined ? inline.slice(flag.length + 1) : index >= 0 ? argv[index + 1] : undefined;
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} needs a positive integer, got "${raw}"`);
  return value;
}

// Whether the module at `url` is the script node was started with (so each bench runs alone too).
export function isMain(url: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && url === pathToFileURL(resolve(entry)).href;
}

// ------------------------------------------------------------------ the fake WebUI tree

/** A launched `bash webui.sh` tree plus what the bench needs to wait on it and clean it up. */
export interface BenchTree {
  handle: TreeHandle;
  stateDir: string;
  /** How many "Running on local URL" lines launch.py printed so far (one per launch.py start). */
  readonly runningLines: number;
}

const live = new Set<BenchTree>();

// A logger that keeps the tree's output off the terminal but notices launch.py's "Running on" line.
function watchingLogger(onRunning: () => void): Logger {
  return pino(
    { level: 'info', base: null, timestamp: false },
    {
      write(line: string) {
        if (line.includes('Running on local URL')) onRunning();
      },
    },
  );
}

// Launches `bash webui.sh --port 0 <args>` from examples/fake-webui through the real launch(), in a temp state dir.
// The containment backend defaults to `marker`, so the signal-protocol benches keep measuring that protocol;
// bench/containment.bench.ts passes the cgroup backend.
export async function launchTree(args: readonly string[], containment: ContainmentChoice = chooseContainment('marker')): Promise<BenchTree> {
  const stateDir = mkdtempSync(join(os.tmpdir(), 'warden-bench-'));
  let runningLines = 0;
  let handle: TreeHandle;
  try {
    handle = await launch({
      instanceId: `bench-${randomBytes(3).toString('hex')}`,
      command: 'bash',
      args: ['webui.sh', '-f', '--port', '0', ...args],
      cwd: FAKE_WEBUI_DIR,
      env: { FAKE_WEBUI_STATE_DIR: stateDir },
      containment,
      logger: watchingLogger(() => {
        runningLines += 1;
      }),
    });
  } catch (error) {
    rmSync(stateDir, { recursive: true, force: true });
    throw error;
  }
  const tree: BenchTree = {
    handle,
    stateDir,
    get runningLines() {
      return runningLines;
    },
  };
  live.add(tree);
  return tree;
}

// The owned set of the tree right now, from /proc.
export function ownedNow(tree: BenchTree): OwnedProcess[] {
  return collectOwned(tree.handle, snapshotProcSync(true));
}

export async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

// Waits until the tree owns `pythons` Python processes and launch.py has printed "Running on" `running` times.
export async function waitUntilUp(tree: BenchTree, pythons: number, running = 1, timeoutMs = 15_000): Promise<OwnedProcess[]> {
  let owned: OwnedProcess[] = [];
  await waitFor(
    () => {
      if (tree.runningLines < running) return false;
      owned = ownedNow(tree);
      return owned.filter((entry) => entry.role === 'python').length >= pythons;
    },
    timeoutMs,
    `${pythons} python processes and ${running} "Running on" line(s)`,
  );
  return owned;
}

/** A live process carrying the handle's marker. */
export interface MarkedProcess {
  pid: number;
  ppid: number;
  name: string;
  state: string | undefined;
}

// Live (non-zombie) processes whose /proc/PID/environ carries exactly this marker: the read-back proof.
export function markedAlive(marker: string): MarkedProcess[] {
  const table = snapshotProcSync(false);
  const found: MarkedProcess[] = [];
  for (const [pid, value] of findMarked(table)) {
    if (value !== marker) continue;
    const info = table.processes.get(pid);
    if (info === undefined) continue;
    found.push({ pid, ppid: info.ppid, name: info.name, state: info.state });
  }
  return found;
}

/** What cleanup had to do after a round. */
export interface CleanupResult {
  /** Processes terminate({ immediate: true }) had to SIGKILL. */
  reaped: number;
  reapedPids: number[];
  /** terminate's own survivors (should be empty). */
  survivors: number;
  /** Marker-carrying processes alive after cleanup, before the last-resort fallback. */
  markedAfter: number;
}

// Stops whatever is left of the tree (terminate immediate), checks by marker, removes the temp dir. Never throws.
export async function cleanupTree(tree: BenchTree): Promise<CleanupResult> {
  let report: TerminationReport | undefined;
  try {
    report = await terminate(tree.handle, { immediate: true, confirmTimeoutMs: 3000 });
  } catch (error) {
    console.error(`cleanup: terminate failed for ${tree.handle.marker}: ${(error as Error).message}`);
  }
  const after = markedAlive(tree.handle.marker);
  // Last resort, marker proof only: the pid's own environment names this handle's marker.
  for (const process_ of after) {
    try {
      process.kill(process_.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (after.length > 0) console.error(`cleanup: ${after.length} marker-carrying process(es) outlived terminate; SIGKILLed by marker`);
  tree.handle.dispose();
  rmSync(tree.stateDir, { recursive: true, force: true });
  live.delete(tree);
  const reaped = report?.killed.filter((entry) => entry.signal !== 'none') ?? [];
  return {
    reaped: reaped.length,
    reapedPids: reaped.map((entry) => entry.pid),
    survivors: report?.survivors.length ?? -1,
    markedAfter: after.length,
  };
}

// Cleans every tree still registered (used on Ctrl-C and on fatal errors).
export async function cleanupAll(): Promise<void> {
  for (const tree of [...live]) await cleanupTree(tree);
}

let guarded = false;
// On Ctrl-C / SIGTERM, stop our own trees before exiting.
export function installSignalCleanup(): void {
  if (guarded) return;
  guarded = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: cleaning up ${live.size} bench tree(s)...`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}

// Runs a bench's main when its file is executed directly.
export function runStandalone(url: string, main: (argv: string[]) => Promise<unknown>): void {
  if (!isMain(url)) return;
  installSignalCleanup();
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    async (error: unknown) => {
      console.error(error);
      await cleanupAll();
      process.exit(1);
    },
  );
}
