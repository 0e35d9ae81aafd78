// The sentinel comes back: SIGKILL it while the supervisor lives and a new one is started and re-told every tree;
// SIGKILL the supervisor next and the new sentinel still leaves no tree behind.
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, test } from 'vitest';
import { signalProcess, terminate } from '../../src/process/index.js';
import type { OwnerRecord, ProcessIdentity } from '../../src/process/index.js';
import { readProcess, readStartTime } from '../../src/process/posix/procfs.js';
import { cleanupProcesses, isAliveNow, markedPids, tempDir, waitFor } from '../support/processes.js';

const HOST = resolve(import.meta.dirname, '../fixtures/sentinel/kept-host.ts');

// bash webui.sh → launch.py → 2 workers, and nothing else (no subshell or fork still between states).
const settledTree = (pids: number[]): boolean => {
  const scripts = pids.map((pid) => readProcess(pid, true)?.cmdline?.find((arg) => arg.endsWith('.py'))?.split('/').pop());
  return pids.length === 4 && scripts.filter((script) => script === 'launch.py').length === 1 && scripts.filter((script) => script === 'worker.py').length === 2;
};

interface Line {
  event: string;
  identity?: ProcessIdentity;
  previous?: ProcessIdentity;
  record?: OwnerRecord;
  records?: number;
}

let host: ChildProcessWithoutNullStreams | undefined;
const sentinels: ProcessIdentity[] = [];
const trees: OwnerRecord[] = [];

afterEach(async () => {
  for (const tree of trees.splice(0)) {
    await terminate(tree, { immediate: true, confirmTimeoutMs: 3000 }).catch(() => undefined);
    for (const pid of markedPids(tree.marker)) signalProcess({ pid, startTime: readStartTime(pid)?.startTime }, 'SIGKILL');
  }
  for (const sentinel of sentinels.splice(0)) signalProcess(sentinel, 'SIGKILL'); // by pid + start time only
  if (host !== undefined && host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
  host = undefined;
  await cleanupProcesses();
});

describe('keepSentinel', () => {
  test('a SIGKILLed sentinel is restarted and re-told both trees; a SIGKILLed supervisor then leaves none behind', async () => {
    // PROCESS LIFECYCLE: creates a subprocess (the stand-in supervisor, which starts the sentinel and the trees)
    // Parent tracking: our unreaped ChildProcess; it prints the sentinel's identity and each tree's record.
    // Cleanup handled by: afterEach (trees by their records, sentinels by pid + start time, the host by handle).
    // Known risks: if this runner dies the host sees stdin EOF and exits; its sentinel then stops the trees.
    const child = spawn(process.execPath, ['--import', 'tsx', HOST, tempDir('warden-keeper-'), '2'], { stdio: ['pipe', 'pipe', 'pipe'] });
    host = child;
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines: Line[] = [];
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = JSON.parse(text) as Line;
      if (line.identity !== undefined) sentinels.push(line.identity);
      if (line.record !== undefined) trees.push(line.record);
      lines.push(line);
    });
    const next = async (event: string): Promise<Line> => {
      await waitFor(() => lines.some((line) => line.event === event), 20_000, `the host's "${event}" (stderr: ${stderr})`);
      return lines.splice(lines.findIndex((line) => line.event === event), 1)[0] as Line;
    };

    const first = (await next('sentinel')).identity as ProcessIdentity;
    await next('ready');
    expect(trees).toHaveLength(2);
    // Settled: bash, launch.py and its 2 workers, none of webui.sh's short-lived subshells still around.
    let members: ProcessIdentity[] = [];
    await waitFor(() => {
      const pids = trees.map((tree) => markedPids(tree.marker));
      if (!pids.every((tree) => settledTree(tree))) return false;
      members = pids.flat().map((pid) => ({ pid, startTime: readStartTime(pid)?.startTime }));
      return true;
    }, 15_000, 'both trees settled');
    expect(members).toHaveLength(8);

    // The sentinel dies while the supervisor lives (it is ours: the host we spawned started it; checked by identity).
    expect(isAliveNow(first.pid, first.startTime)).toBe(true);
    expect(signalProcess(first, 'SIGKILL')).toBe('sent');
    const restarted = await next('restarted');
    expect(restarted.previous?.pid).toBe(first.pid);
    expect(restarted.records).toBe(2);
    const second = restarted.identity as ProcessIdentity;
    expect(second.pid).not.toBe(first.pid);
    expect(isAliveNow(second.pid, second.startTime)).toBe(true);
    // Nothing was killed by the restart itself.
    expect(members.filter((member) => !isAliveNow(member.pid, member.startTime))).toEqual([]);

    // Now the supervisor is force-closed: the restarted sentinel must stop both trees.
    child.kill('SIGKILL');
    await waitFor(() => members.every((member) => !isAliveNow(member.pid, member.startTime)), 10_000, 'every tree member dead');
    await waitFor(() => !isAliveNow(second.pid, second.startTime), 10_000, 'the restarted sentinel to exit after its cleanup');
    for (const tree of trees) expect(markedPids(tree.marker)).toEqual([]);
  });
});
