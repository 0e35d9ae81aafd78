// Windows for real, under Wine: each scenario runs test/windows/harness.mjs with Windows node.exe in our own
// prefix (cmd.exe, a fake python.exe and its workers are real Windows processes there), then reads the JSON
// result the harness wrote to a file (node.exe under Wine dies with EBADF on a Unix pipe).
// Each scenario ends with nothing owned alive in a fresh listing, decoys alive, and afterEach ends every
// process of OUR prefix (`wineserver -k` with WINEPREFIX set to the suite's own prefix, never another one).
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { harness, killHarness, pythonExe, resetPrefix, runsDir, runWineHarness, windowsPath } from './wine.js';

interface HarnessResult {
  scenario: string;
  failures: string[];
  notes: string[];
  timings: Record<string, number>;
  report?: { survivors: unknown[]; killed: { pid: number; name: string; role: string; signal: string }[]; escalated: boolean };
  ownedEver?: string[];
  recorded?: string[];
  guard?: string[];
  freshListing?: string;
  listings?: number;
  listingsWithEmptyName?: number;
  /** The root's pid (the job launcher with a Job Object, cmd.exe without). */
  root?: number;
  /** Each taskkill the stop sent, in order, with its outcome and output. */
  kills?: { pid: number; outcome: string; detail?: string }[];
  /** Set when the launch itself failed before the scenario could start (retried once). */
  flake?: { what: string; exit: unknown; tree: string };
}

const HARNESS_TIMEOUT_MS = 75_000;

// Everything the harness left behind, for a failure message that explains itself.
function diagnostics(dir: string): string {
  const parts: string[] = [];
  for (const file of existsSync(dir) ? readdirSync(dir) : []) {
    if (!/\.(log|txt|out|json)$/.test(file)) continue;
    parts.push(`--- ${file}\n${readFileSync(join(dir, file), 'utf8').slice(-6000)}`);
  }
  return parts.join('\n');
}

async function runScenario(scenario: string, attempt = 1): Promise<HarnessResult> {
  const dir = join(runsDir, attempt === 1 ? scenario : `${scenario}-attempt${attempt}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const exit = await runWineHarness(harness, [scenario, windowsPath(dir), windowsPath(pythonExe)], dir, HARNESS_TIMEOUT_MS);
  const resultFile = join(dir, 'result.json');
  if (exit !== 0 || !existsSync(resultFile)) {
    throw new Error(`harness ${scenario} ended with ${String(exit)} and ${existsSync(resultFile) ? 'a' : 'no'} result file\n${diagnostics(dir)}`);
  }
  const result = JSON.parse(readFileSync(resultFile, 'utf8')) as HarnessResult;
  if (result.flake !== undefined && attempt === 1) {
    // A failed start (the root cmd.exe gone before python.exe ran), not a stop failure: once, loudly, again.
    console.warn(`${scenario}: ${result.flake.what}; retrying once on a fresh prefix\n${JSON.stringify(result.flake)}`);
    killHarness();
    await resetPrefix();
    return runScenario(scenario, 2);
  }
  if (result.failures.length > 0) {
    throw new Error(`${scenario} failed:\n- ${result.failures.join('\n- ')}\n${diagnostics(dir)}`);
  }
  return result;
}

afterEach(async () => {
  killHarness();
  await resetPrefix();
});

const pythonKilled = (result: HarnessResult): number => (result.report?.killed ?? []).filter((k) => k.name.toLowerCase() === 'python.exe').length;

const killedAs = (result: HarnessResult, name: string): string[] => (result.report?.killed ?? []).filter((k) => k.name.toLowerCase() === name).map((k) => k.signal);

describe('Windows under Wine, with a Job Object (the default): the job launcher holds the tree', () => {
  it('plain stop: the job launcher is ended first and the kernel ends the whole job; decoys survive', async () => {
    const result = await runScenario('plain-stop');
    expect(result.report?.survivors).toEqual([]);
    // One taskkill, on the launcher (the root): the kernel ended every other member with the job.
    expect(result.kills?.map((kill) => kill.pid)).toEqual([result.root]);
    expect(result.report?.killed[0]).toMatchObject({ pid: result.root, name: 'node.exe' });
    expect(pythonKilled(result)).toBe(3);
  });

  it('polite stop: POST /sdapi/v1/server-stop ends the tree before any kill', async () => {
    const result = await runScenario('polite-stop');
    expect(result.report?.survivors).toEqual([]);
    expect(result.report?.escalated).toBe(false);
    expect(pythonKilled(result)).toBe(3);
  });

  it('middle python.exe killed: cmd.exe ends, the launcher exits with it, and the job ends the stale-ppid orphans at once', async () => {
    const result = await runScenario('middle-killed');
    expect(result.notes.join('\n')).toMatch(/job: launcher, cmd\.exe and both orphaned workers gone \d+ ms after/);
    expect(result.report?.survivors).toEqual([]);
    // Nothing was left for the stop to kill.
    expect(killedAs(result, 'python.exe').filter((signal) => signal === 'SIGKILL')).toEqual([]);
  });

  it('.bat relaunch loop with tmp\\restart: both generations (leaked workers included) end with the job', async () => {
    const result = await runScenario('relaunch');
    expect(result.report?.survivors).toEqual([]);
    expect(pythonKilled(result)).toBe(5);
  });

  it('the job launcher hands the command exactly the arguments Node\'s own spawn would (spaces, quotes, backslashes, empty)', async () => {
    const result = await runScenario('argv');
    expect(result.failures).toEqual([]);
    expect(result.notes.join('\n')).toContain('"job":{"args":["plain","with space"');
  });

  it('a command CreateProcessW cannot run is refused (JOB_OBJECT_FAILED, with the Win32 error) and leaves nothing running', async () => {
    const result = await runScenario('refusal');
    expect(result.notes.join('\n')).toMatch(/JOB_OBJECT_FAILED: .*CreateProcessW\(.*argv\.cjs\) failed with Win32 error \d+/);
  });

  it('controller killed, no guard: the whole tree dies with it (the Job Object closes), nothing left to reap', async () => {
    const result = await runScenario('controller-killed-unguarded');
    expect(result.notes.join('\n')).toMatch(/job: all \d+ processes of the tree gone \d+ ms after the controller was killed/);
    expect(result.report?.survivors).toEqual([]);
  });
});

describe('Windows under Wine, without a Job Object (windowsJob: false): tracker, taskkill and the guard', () => {
  it('plain stop: cmd.exe parent first, then per-pid taskkill; decoy cmd.exe/python.exe survive', async () => {
    const result = await runScenario('plain-stop-nojob');
    expect(result.report?.survivors).toEqual([]);
    expect(result.report?.killed.find((k) => k.role === 'shell')?.name.toLowerCase()).toBe('cmd.exe');
    expect(pythonKilled(result)).toBe(3);
  });

  it('middle python.exe killed first: its workers keep the dead ppid and are still found and stopped', async () => {
    const result = await runScenario('middle-killed-nojob');
    expect(result.report?.survivors).toEqual([]);
    // Only the two stale-ppid orphans were left to stop (cmd.exe exited by itself when launch.py died).
    expect(pythonKilled(result)).toBe(2);
  });

  it('controller killed (Task Manager "End task"): the force-close guard stops the tree', async () => {
    const result = await runScenario('controller-killed-nojob');
    expect(result.guard).toEqual(['start', 'track', 'controller-gone', 'stopped']);
    expect(result.report?.survivors).toEqual([]);
    expect(pythonKilled(result)).toBe(3);
  });

  it('controller killed without a guard: the incident (python tree outlives it), then a reap from the persisted record', async () => {
    const result = await runScenario('controller-killed-unguarded-nojob');
    expect(result.notes.join('\n')).toContain('3 of 3 python.exe outlived the controller');
    expect(result.report?.survivors).toEqual([]);
    expect(pythonKilled(result)).toBe(3);
  });
});
