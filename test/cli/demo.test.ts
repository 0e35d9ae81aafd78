// `warden demo` as a newcomer runs it: a real child process, a real fake WebUI, nothing left behind.
import type { ChildProcess } from 'node:child_process';
import { startPiped } from '../support/child.js';
import type { ChildResult } from '../support/child.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { snapshotProcSync } from '../../src/process/index.js';
import { readEnvironVariable } from '../../src/process/posix/procfs.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

type CliResult = ChildResult;

const children = new Set<ChildProcess>();
const instanceIds = new Set<string>();
const dirs = new Set<string>();

// Runs `node --import tsx src/cli.ts <args>` and collects its output; `onStdout` sees the output as it comes.
// Registered in `children` until it exits; afterEach SIGKILLs it by handle if it still runs, then sweeps markers.
function runCli(args: string[], options: { env?: Record<string, string>; onStdout?: (text: string, child: ChildProcess) => void } = {}): Promise<CliResult> {
  // As a user runs it: without the test runner's WARDEN_LOG_LEVEL, so the demo's own quiet default applies.
  const { WARDEN_LOG_LEVEL: _level, ...env } = process.env;
  const { child, done } = startPiped(process.execPath, ['--import', TSX, join(ROOT, 'src/cli.ts'), ...args], {
    cwd: ROOT,
    env: { ...env, NO_COLOR: '1', ...options.env },
    ...(options.onStdout !== undefined && { onStdout: options.onStdout }),
  });
  children.add(child);
  return done.finally(() => children.delete(child));
}

// Live processes carrying any marker of the instance id (`<id>:<token>`), from /proc.
function pidsOfInstance(id: string): number[] {
  const pids: number[] = [];
  for (const info of snapshotProcSync(false).processes.values()) {
    if (info.state === 'Z') continue;
    if (readEnvironVariable(info.pid, 'WARDEN_INSTANCE')?.startsWith(`${id}:`) === true) pids.push(info.pid);
  }
  return pids;
}

function uniqueId(): string {
  const id = `clidemo-${randomBytes(3).toString('hex')}`;
  instanceIds.add(id);
  return id;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-cli-demo-'));
  dirs.add(dir);
  return dir;
}

afterEach(async () => {
  for (const child of children) {
    // Only the child we spawned, by its handle; its supervisor's sentinel ends the trees it launched.
    child.kill('SIGKILL');
  }
  children.clear();
  await new Promise((done) => setTimeout(done, 300));
  for (const id of instanceIds) {
    // Every process with this test's unique instance id in its marker is ours (launched or injected by the demo).
    for (const pid of pidsOfInstance(id)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  instanceIds.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
});

describe('warden demo', () => {
  test('walks start, crash, runaway and shutdown, and exits 0 with survivors: 0 and nothing left', async () => {
    const id = uniqueId();
    const result = await runCli(['demo', '--id', id], { env: { TMPDIR: tempDir() } });

    expect(result.stderr, result.stdout).toBe('');
    expect(result.code, result.stdout).toBe(0);
    const out = result.stdout;
    for (const step of ['1/4  Start', '2/4  Crash', '3/4  Runaway', '4/4  Shutdown', 'Summary']) expect(out).toContain(step);
    // 1: healthy with pids and counts
    expect(out).toMatch(new RegExp(`${id} spawning → running  shell pid \\d+, python pid \\d+`));
    expect(out).toMatch(/healthy: shell pid \d+ \(bash\) · python pid \d+ \(launch\.py\) · 4 workers · counted python 5, shell 1/);
    // 2: crash → stopping (crash) → confirmed dead → crashed → backoff → spawning → running with new pids
    expect(out).toContain(`${id} running → stopping (crash`);
    expect(out).toMatch(/confirmed dead \(crash\): 4 processes stopped \[4 python\] in .*, survivors 0/);
    expect(out).toContain(`${id} stopping → crashed`);
    expect(out).toMatch(new RegExp(`${id} crashed → spawning \\(after .* of backoff\\)`));
    expect(out).toMatch(/back: shell pid (\d+) \(was (?!\1)\d+\)/);
    // 3: stale strays detected, watchdog rises, emergency stop + reap + bundle, reset, recovery
    expect(out).toMatch(/sampler +12 stale processes/);
    expect(out).toMatch(/watchdog +ok → (critical|emergency)/);
    expect(out).toContain('EMERGENCY');
    expect(out).toContain(`${id} running → stopping (emergency)`);
    expect(out).toMatch(/diagnostic bundle written: \S+bundles/);
    expect(out).toContain('reset(): hold released');
    expect(out).toMatch(/recovered: shell pid \d+/);
    // 4: shutdown and the summary
    expect(out).toContain(`${id} running → stopping (shutdown)`);
    expect(out).toMatch(/processes spawned: \d+ by Warden's 3 launches \+ 12 injected strays/);
    expect(out).toMatch(/processes killed: \d+/);
    expect(out).toContain('survivors: 0');
    expect(out).toContain(`no process carries a ${id} marker`);
    expect(out).toMatch(/elapsed: /);
    expect(pidsOfInstance(id)).toEqual([]);
  }, 90_000);

  test('--json prints one parseable summary: ok, no survivors, no leftovers, the bundle path', async () => {
    const id = uniqueId();
    const result = await runCli(['demo', '--json', '--id', id], { env: { TMPDIR: tempDir() } });

    expect(result.code, result.stdout).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const summary = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
    expect(summary).toMatchObject({ ok: true, exitCode: 0, instanceId: id, survivors: [], leftovers: [], strays: [], failure: null, launches: 3 });
    expect(summary.bundle).toEqual(expect.stringContaining('bundles'));
    expect(pidsOfInstance(id)).toEqual([]);
  }, 90_000);

  test('Ctrl-C in the middle of the story still stops everything it started, and exits 130', async () => {
    const id = uniqueId();
    let sent = false;
    const result = await runCli(['demo', '--id', id], {
      env: { TMPDIR: tempDir() },
      onStdout: (text, child) => {
        if (!sent && text.includes('3/4  Runaway')) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });

    expect(sent).toBe(true);
    expect(result.code).toBe(130);
    expect(result.stdout).toContain('4/4  Shutdown');
    expect(result.stdout).toContain('survivors: 0');
    expect(pidsOfInstance(id)).toEqual([]);
  }, 90_000);
});
