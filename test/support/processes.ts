// Test helpers for real process trees: launch the fake WebUI, start decoys, read /proc, clean up what we own.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { collectOwned, launch, snapshotProcSync, terminate } from '../../src/process/index.js';
import type { OwnedProcess, TreeHandle } from '../../src/process/index.js';
import { readEnvironVariable, readStartTime } from '../../src/process/posix/procfs.js';

export const FAKE_WEBUI_DIR = resolve(import.meta.dirname, '../../examples/fake-webui');

const handles = new Set<TreeHandle>();
const decoys = new Set<Decoy>();
const tempDirs = new Set<string>();

// A fresh state directory (the fake WebUI's tmp/restart lives under it).
export function tempDir(prefix = 'warden-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

// Launches `bash webui.sh <args>` from the fake WebUI through the real launch(); registered for cleanup.
export async function launchFakeWebui(
  args: string[],
  stateDir = tempDir(),
  env: Record<string, string> = {},
): Promise<TreeHandle & { stateDir: string }> {
  const handle = await launch({
    instanceId: `test-${randomBytes(3).toString('hex')}`,
    command: './webui.sh',
    // -f first: the fake refuses root without it, like A1111's webui.sh (the tests run as root).
    args: ['-f', '--port', '0', ...args],
    cwd: FAKE_WEBUI_DIR,
    env: { FAKE_WEBUI_STATE_DIR: stateDir, ...env },
  });
  handles.add(handle);
  return Object.assign(handle, { stateDir });
}

// Registers a handle created elsewhere for cleanup.
export function ownForCleanup(handle: TreeHandle): void {
  handles.add(handle);
}

/** A process the test started WITHOUT Warden's marker, to prove Warden never touches it. */
export interface Decoy {
  pid: number;
  startTime: number | undefined;
  /** Our own proof of ownership for cleanup: DECOY_TOKEN in its environment. */
  token: string;
}

// Starts a look-alike (same cwd, same script) outside Warden; it gets its own group and a cleanup token.
export async function startDecoy(command: string, args: string[]): Promise<Decoy> {
  const token = randomBytes(8).toString('hex');
  const env: NodeJS.ProcessEnv = { ...process.env, DECOY_TOKEN: token, FAKE_WEBUI_STATE_DIR: tempDir('warden-decoy-') };
  delete env.WARDEN_INSTANCE;
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: pid + start time, own process group, DECOY_TOKEN in its environment.
  // Cleanup handled by: cleanupProcesses() in afterEach (every process carrying the DECOY_TOKEN).
  // Known risks: none beyond the test's lifetime; the token is random per decoy.
  const child = spawn(command, args, { cwd: FAKE_WEBUI_DIR, env, detached: true, stdio: 'ignore' });
  child.unref();
  const pid = child.pid as number;
  const decoy: Decoy = { pid, startTime: readStartTime(pid)?.startTime, token };
  decoys.add(decoy);
  await waitFor(() => pidsWithVariable('DECOY_TOKEN', token).length >= 1, 5000, 'decoy to start');
  return decoy;
}

// Whether the exact process (pid + start time) is still alive and not a zombie.
export function isAliveNow(pid: number, startTime: number | undefined): boolean {
  const now = readStartTime(pid);
  if (now === undefined || now.state === 'Z') return false;
  return startTime === undefined || now.startTime === startTime;
}

// Live processes whose environment carries `variable=value`, read from /proc.
export function pidsWithVariable(variable: string, value: string): number[] {
  const table = snapshotProcSync(false);
  const pids: number[] = [];
  for (const info of table.processes.values()) {
    if (info.state === 'Z') continue;
    if (readEnvironVariable(info.pid, variable) === value) pids.push(info.pid);
  }
  return pids;
}

// Live processes carrying a Warden marker value.
export function markedPids(marker: string): number[] {
  return pidsWithVariable('WARDEN_INSTANCE', marker);
}

// The owned set of a handle right now, from /proc.
export function ownedNow(handle: TreeHandle): OwnedProcess[] {
  return collectOwned(handle, snapshotProcSync(true));
}

// Polls until the predicate holds; throws with `what` when the time is up.
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

// Waits until the tree has at least `python` Python processes (launch.py + workers).
export async function waitForPythons(handle: TreeHandle, python: number, timeoutMs = 10_000): Promise<OwnedProcess[]> {
  let owned: OwnedProcess[] = [];
  await waitFor(() => {
    owned = ownedNow(handle);
    return owned.filter((entry) => entry.role === 'python').length >= python;
  }, timeoutMs, `${python} python processes in the tree`);
  return owned;
}

// Kills everything this test file started: handles through terminate, then anything still carrying a marker or token.
export async function cleanupProcesses(): Promise<void> {
  for (const handle of handles) {
    await terminate(handle, { immediate: true, confirmTimeoutMs: 3000 }).catch(() => undefined);
    for (const pid of markedPids(handle.marker)) killQuietly(pid);
    handle.dispose();
  }
  handles.clear();
  for (const decoy of decoys) {
    for (const pid of pidsWithVariable('DECOY_TOKEN', decoy.token)) killQuietly(pid);
  }
  decoys.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
