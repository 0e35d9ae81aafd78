// `warden run --no-sentinel`: a killed run leaves its tree to the registry (the incident, on purpose), and
// `warden reap` then stops it from the registry record alone. Real CLI processes, a real fake WebUI tree.
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, expect, test } from 'vitest';
import { snapshotProcSync } from '../../src/process/index.js';
import { readEnvironVariable } from '../../src/process/procfs.js';
import { startPiped } from '../support/child.js';
import type { ChildResult } from '../support/child.js';

const ROOT = resolve(import.meta.dirname, '../..');
const FAKE = join(ROOT, 'examples/fake-webui');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

const children = new Set<ChildProcess>();
const instanceIds = new Set<string>();
const dirs = new Set<string>();
let python = 'python3';

beforeAll(() => {
  // The interpreter itself: a version manager's `python3` is a bash shim, which would count as a shell.
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: synchronous child, awaited here.   Cleanup handled by: it exits by itself.   Known risks: none.
  python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim() || 'python3';
});

afterEach(async () => {
  for (const child of children) child.kill('SIGKILL'); // only the CLI processes this file spawned, by handle
  children.clear();
  await sleep(200);
  // Every process carrying this test's unique instance id in its marker was started by this test's CLI.
  for (const id of instanceIds) for (const pid of pidsOfInstance(id)) killQuietly(pid);
  instanceIds.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
});

// Runs `node --import tsx src/cli.ts <args>`; registered until it exits (afterEach SIGKILLs it by handle).
function startCli(args: string[], onStdout?: (text: string) => void): { child: ChildProcess; done: Promise<ChildResult> } {
  const piped = startPiped(process.execPath, ['--import', TSX, join(ROOT, 'src/cli.ts'), ...args], { cwd: ROOT, ...(onStdout !== undefined && { onStdout }) });
  children.add(piped.child);
  return { child: piped.child, done: piped.done.finally(() => children.delete(piped.child)) };
}

function pidsOfInstance(id: string): number[] {
  const pids: number[] = [];
  for (const info of snapshotProcSync(false).processes.values()) {
    if (info.state === 'Z') continue;
    if (readEnvironVariable(info.pid, 'WARDEN_INSTANCE')?.startsWith(`${id}:`) === true) pids.push(info.pid);
  }
  return pids.sort((a, b) => a - b);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

test('warden run --no-sentinel, killed with SIGKILL, leaves its tree running; warden reap stops it from the registry alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-nosentinel-'));
  dirs.add(dir);
  const id = `nosentinel-${randomBytes(3).toString('hex')}`;
  instanceIds.add(id);
  const file = join(dir, 'warden.config.json');
  writeFileSync(
    file,
    JSON.stringify({
      stateDir: 'state',
      instances: [{ id, command: join(FAKE, 'webui.sh'), args: ['--port', '0', '--workers', '2'], env: { FAKE_WEBUI_STATE_DIR: dir, python_cmd: python }, startupTimeoutMs: 20_000 }],
      watchdog: { sampleIntervalMs: 200 },
      server: { port: 0 },
    }),
  );
  let ready!: () => void;
  const running = new Promise<void>((resolveReady) => {
    ready = resolveReady;
  });
  const run = startCli(['run', '--config', file, '--no-sentinel'], (text) => text.includes('1 of 1 instance running') && ready());
  await Promise.race([running, run.done.then((result) => Promise.reject(new Error(`warden run exited early: ${JSON.stringify(result)}`)))]);
  // The whole tree: bash webui.sh, launch.py, 2 workers.
  const deadline = Date.now() + 10_000;
  while (pidsOfInstance(id).length < 4 && Date.now() < deadline) await sleep(50);
  const tree = pidsOfInstance(id);
  expect(tree).toHaveLength(4);
  expect(run.child.pid).toBeDefined();

  run.child.kill('SIGKILL');
  const result = await run.done;
  expect(result.signal).toBe('SIGKILL');
  expect(result.stdout).toContain('sentinel    off (--no-sentinel)');
  // With a sentinel the tree would be gone within a few hundred ms (test/runtime/force-close.test.ts); here it stays.
  await sleep(1000);
  expect(pidsOfInstance(id)).toEqual(tree);
  const registry = JSON.parse(readFileSync(join(dir, 'state', 'registry.json'), 'utf8')) as { records: Array<{ instanceId: string; marker: string }> };
  expect(registry.records.map((record) => record.instanceId)).toEqual([id]);
  expect(existsSync(join(dir, 'state', 'sentinel.log'))).toBe(false);

  // --forget drops only records Warden cannot prove: this one it can (its tree is right there), so it refuses.
  const marker = registry.records[0]?.marker as string;
  const forgetProvable = await startCli(['reap', '--config', file, '--forget', marker]).done;
  expect(forgetProvable.code).toBe(64);
  expect(forgetProvable.stderr).toContain(`--forget ${marker}: Warden can prove this record's tree (a reap would do: would-reap); run \`warden reap\` instead`);
  const forgetUnknown = await startCli(['reap', '--config', file, '--forget', `${id}:0000`]).done;
  expect(forgetUnknown.code).toBe(64);
  expect(forgetUnknown.stderr).toContain(`--forget ${id}:0000: no registry record has this marker (records: ${marker})`);
  expect(pidsOfInstance(id)).toEqual(tree);
  expect((JSON.parse(readFileSync(join(dir, 'state', 'registry.json'), 'utf8')) as { records: unknown[] }).records).toHaveLength(1);

  const reap = await startCli(['reap', '--config', file, '--json']).done;
  expect(reap.code).toBe(0);
  const report = JSON.parse(reap.stdout) as { entries: Array<{ instanceId: string; source: string; action: string; recordRemoved?: boolean; killed: unknown[]; survivors: unknown[] }> };
  expect(report.entries.filter((entry) => entry.instanceId === id)).toEqual([expect.objectContaining({ source: 'registry', action: 'reaped', recordRemoved: true, survivors: [] })]);
  // Trees of other instances on this machine (other test files run in parallel) are reported, never touched.
  for (const entry of report.entries.filter((other) => other.instanceId !== id)) expect(entry).toMatchObject({ action: 'left-alone', killed: [] });
  expect(pidsOfInstance(id)).toEqual([]);
}, 60_000);
