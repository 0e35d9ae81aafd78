// Windows for real, through the product: the compiled `warden` CLI runs under Wine (test/windows/harness-product.mjs
// drives it with Windows node.exe in our own prefix), supervises cmd.exe → python.exe → workers, is killed like
// Task Manager's "End task", and `warden audit` / `warden reap` then deal with what it left. Each scenario ends
// with nothing of the tree alive in a fresh listing and both decoys alive; afterEach ends every process of OUR
// prefix (`wineserver -k` with WINEPREFIX set to the suite's own prefix, never another one).
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killHarness, pythonExe, repoRoot, resetPrefix, runsDir, runWineHarness, windowsPath } from './wine.js';

interface Killed {
  pid: number;
  name: string;
  role: string;
  signal: string;
}

interface ProductResult {
  scenario: string;
  failures: string[];
  notes: string[];
  timings: Record<string, number>;
  root?: number;
  pythons?: number[];
  recordedMembers?: string[];
  guard?: string[];
  guardReport?: { survivors: unknown[]; killed: Killed[] };
  cli: {
    audit?: { code: number; level: string; stale: Array<{ source: string; processes: Array<{ pid: number; name: string }> }>; unproven: unknown[] };
    reapDryRun?: { code: number; entries: Array<{ action: string; found: number[] }> };
    reap?: { code: number; entries: Array<{ action: string; recordRemoved?: boolean; killed: Killed[]; survivors: unknown[] }> };
    auditAfter?: { code: number; level: string; stale: unknown[] };
  };
  ownedEver?: string[];
  freshListing?: string;
  startupReap?: { action: string; recordRemoved?: boolean; killed: Killed[]; survivors: unknown[] };
  shutdown?: { exit: { code: number | null } | 'timeout' };
  shutdownReport?: { survivors: unknown[]; killed: Killed[] };
}

const harness = join(repoRoot, 'test', 'windows', 'harness-product.mjs');
const HARNESS_TIMEOUT_MS = 120_000;

// Everything the harness and the CLI left behind, for a failure message that explains itself.
function diagnostics(dir: string): string {
  const parts: string[] = [];
  for (const file of existsSync(dir) ? readdirSync(dir) : []) {
    if (!/\.(log|txt|out|err|json)$/.test(file)) continue;
    parts.push(`--- ${file}\n${readFileSync(join(dir, file), 'utf8').slice(-5000)}`);
  }
  const guardLog = join(dir, 'warden', 'windows-guard.log');
  if (existsSync(guardLog)) parts.push(`--- warden/windows-guard.log\n${readFileSync(guardLog, 'utf8').slice(-5000)}`);
  return parts.join('\n');
}

async function runProductScenario(scenario: string): Promise<ProductResult> {
  const dir = join(runsDir, `product-${scenario}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const exit = await runWineHarness(harness, [scenario, windowsPath(dir), windowsPath(pythonExe)], dir, HARNESS_TIMEOUT_MS);
  const resultFile = join(dir, 'result.json');
  if (exit !== 0 || !existsSync(resultFile)) {
    throw new Error(`harness-product ${scenario} ended with ${String(exit)} and ${existsSync(resultFile) ? 'a' : 'no'} result file\n${diagnostics(dir)}`);
  }
  const result = JSON.parse(readFileSync(resultFile, 'utf8')) as ProductResult;
  if (result.failures.length > 0) throw new Error(`${scenario} failed:\n- ${result.failures.join('\n- ')}\n${diagnostics(dir)}`);
  console.info(`${scenario}: timings ${JSON.stringify(result.timings)}; ${result.notes.join('; ')}`);
  return result;
}

afterEach(async () => {
  killHarness();
  await resetPrefix();
});

const pythonsIn = (killed: Killed[] | undefined): number => (killed ?? []).filter((entry) => entry.name.toLowerCase() === 'python.exe').length;

describe('Windows under Wine, through the product: warden run killed, then warden audit and warden reap', () => {
  it('warden run --no-sentinel killed: its python tree outlives it, audit lists it stale (exit 1), reap stops it from the registry record', async () => {
    const result = await runProductScenario('cli-killed-unguarded');
    expect(result.notes.join('\n')).toContain('3 of 3 python.exe outlived the supervisor');
    const audit = result.cli.audit;
    expect(audit?.code).toBe(1);
    expect(audit?.level).toBe('warning');
    expect(audit?.stale.map((group) => group.source)).toEqual(['registry']);
    expect(audit?.stale[0]?.processes.map((entry) => entry.pid)).toEqual(expect.arrayContaining(result.pythons ?? [-1]));
    expect(result.cli.reapDryRun?.code).toBe(0);
    expect(result.cli.reapDryRun?.entries.map((entry) => entry.action)).toEqual(['would-reap']);
    const reap = result.cli.reap;
    expect(reap?.code).toBe(0);
    expect(reap?.entries).toHaveLength(1);
    expect(reap?.entries[0]).toMatchObject({ action: 'reaped', recordRemoved: true, survivors: [] });
    expect(pythonsIn(reap?.entries[0]?.killed)).toBe(3);
    expect(result.cli.auditAfter).toMatchObject({ code: 0, level: 'ok', stale: [] });
  });

  it('warden run killed with the force-close guard on: the guard stops the tree, audit shows nothing stale (exit 0), reap only forgets the record', async () => {
    const result = await runProductScenario('cli-killed-guarded');
    expect(result.guard).toEqual(['start', 'track', 'controller-gone', 'stopped']);
    expect(result.guardReport?.survivors).toEqual([]);
    expect(pythonsIn(result.guardReport?.killed)).toBe(3);
    expect(result.cli.audit).toMatchObject({ code: 0, stale: [], unproven: [] });
    expect(result.cli.reap?.entries).toEqual([expect.objectContaining({ action: 'nothing-left', recordRemoved: true, killed: [], survivors: [] })]);
    expect(result.cli.auditAfter).toMatchObject({ code: 0, stale: [] });
  });

  it('warden run killed with the Job Object on (the default) and no guard: the whole tree dies with it; audit clean, reap forgets the record', async () => {
    const result = await runProductScenario('cli-killed-job');
    expect(result.notes.join('\n')).toMatch(/job: all \d+ processes of the tree gone \d+ ms after warden run was killed/);
    expect(result.cli.audit).toMatchObject({ code: 0, stale: [], unproven: [] });
    expect(result.cli.reap?.entries).toEqual([expect.objectContaining({ action: 'nothing-left', recordRemoved: true, killed: [], survivors: [] })]);
    expect(result.cli.auditAfter).toMatchObject({ code: 0, stale: [] });
  });

  it('a record Warden cannot prove: audit says so, reap kills nothing (exit 1), and after a hand-made stop reap --forget drops it', async () => {
    const result = await runProductScenario('cli-unproven');
    expect(result.failures).toEqual([]);
    expect(result.cli.audit).toMatchObject({ code: 1 });
    expect(result.cli.auditAfter).toMatchObject({ code: 0 });
  });

  it('the next warden run reaps the killed run\'s tree before it spawns, and POST /api/shutdown stops its own tree, confirmed', async () => {
    const result = await runProductScenario('cli-killed-restart');
    expect(result.notes.join('\n')).toContain('3 of 3 python.exe outlived the supervisor');
    expect(result.startupReap).toMatchObject({ action: 'reaped', recordRemoved: true, survivors: [] });
    expect(pythonsIn(result.startupReap?.killed)).toBe(3);
    expect(result.shutdown?.exit).toMatchObject({ code: 0 });
    expect(result.shutdownReport?.survivors).toEqual([]);
    expect(pythonsIn(result.shutdownReport?.killed)).toBe(3);
    expect(result.cli.auditAfter).toMatchObject({ code: 0, stale: [] });
  });
});
