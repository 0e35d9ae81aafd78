// The sampler's picture of the launches is taken when a read begins: a launch made while a read is in flight is
// neither counted from that table nor fed it (a Windows tree tracker fed a table read before its spawn would take
// the root for dead and every child for foreign: seen under Wine through `warden run`).
import { firstValueFrom, take, toArray } from 'rxjs';
import { describe, expect, test } from 'vitest';
import type { ProcessInfo, ProcessTable } from '../../src/process/types.js';
import { WindowsTreeTracker } from '../../src/process/windows/index.js';
import { createSampler } from '../../src/sampler.js';
import type { SampledInstance } from '../../src/sampler.js';

const row = (pid: number, ppid: number, name: string): ProcessInfo => ({
  pid, ppid, name, pgid: undefined, sid: undefined, startTime: undefined, state: undefined, cmdline: undefined, uid: undefined,
});
const table = (rows: ProcessInfo[], takenAt: number): ProcessTable => ({ backend: 'ps-list', takenAt, processes: new Map(rows.map((info) => [info.pid, info])) });

const WARDEN = 8840;
const ROOT = 9120;
const beforeSpawn = table([row(WARDEN, 6236, 'node.exe')], 1000);
const afterSpawn = table([row(WARDEN, 6236, 'node.exe'), row(ROOT, WARDEN, 'cmd.exe'), row(9320, ROOT, 'python.exe')], 2000);

describe('sampler', () => {
  test('a launch made while a read is in flight is neither counted from that table nor fed it; the next table is both', async () => {
    let tracker: WindowsTreeTracker | undefined;
    let releaseFirst: (value: ProcessTable) => void = () => undefined;
    const reads: Array<Promise<ProcessTable>> = [new Promise((resolveRead) => (releaseFirst = resolveRead)), Promise.resolve(afterSpawn)];
    const fed: Array<{ takenAt: number; launches: number }> = [];
    const instances = (): SampledInstance[] => [
      {
        id: 'webui',
        owner: tracker === undefined ? undefined : { instanceId: 'webui', marker: 'webui:00', root: { pid: ROOT, startTime: undefined } },
        windows: tracker,
        profile: { cwd: '/nonexistent', command: 'webui-user.bat' },
      },
    ];
    const samples = firstValueFrom(
      createSampler({
        intervalMs: 30,
        emergencyWindowMs: 60_000,
        instances,
        liveMarkers: () => new Set(),
        readTable: () => reads.shift() ?? Promise.resolve(afterSpawn),
        onTable: (seen, _owned, sampled) => fed.push({ takenAt: seen.takenAt, launches: sampled.filter((entry) => entry.owner !== undefined).length }),
      }).pipe(take(2), toArray()),
    );
    // The read begins, then the launch happens (baseline, spawn), then the read ends: its table lacks the root.
    await new Promise((resolveTick) => setTimeout(resolveTick, 5));
    tracker = new WindowsTreeTracker({ root: { pid: ROOT, startTime: undefined }, baseline: beforeSpawn, protectedPids: [0, 4] });
    releaseFirst(table([row(WARDEN, 6236, 'node.exe')], 1500));
    const [first, second] = await samples;

    expect(fed).toEqual([{ takenAt: 1500, launches: 0 }, { takenAt: 2000, launches: 1 }]);
    expect(first?.perInstance.webui?.total).toBe(0);
    expect(second?.perInstance.webui).toEqual({ python: 1, shell: 1, other: 0, total: 2 });
    expect(tracker.history().map((member) => ({ pid: member.pid, goneAt: member.goneAt }))).toEqual([
      { pid: ROOT, goneAt: undefined },
      { pid: 9320, goneAt: undefined },
    ]);
  });

  test('why: a tracker fed a table read before its spawn takes the root for dead and disowns the whole tree', () => {
    const tracker = new WindowsTreeTracker({ root: { pid: ROOT, startTime: undefined }, baseline: beforeSpawn, protectedPids: [0, 4] });
    tracker.observe(table([row(WARDEN, 6236, 'node.exe')], 1500));
    expect(tracker.owned(afterSpawn)).toEqual([]);
    expect(tracker.history()).toEqual([expect.objectContaining({ pid: ROOT, proof: 'root', lastSeen: -1, goneAt: 1 })]);
  });

  test('a failed read skips one sample and is reported; sampling goes on (a watchdog that stopped for good would guard nothing)', async () => {
    const errors: unknown[] = [];
    let reads = 0;
    const samples = await firstValueFrom(
      createSampler({
        intervalMs: 10,
        emergencyWindowMs: 60_000,
        instances: () => [],
        liveMarkers: () => new Set(),
        readTable: async () => {
          reads += 1;
          if (reads === 2) throw new Error('Cannot list processes through ps-list after 3 attempts: spawn UNKNOWN');
          return table([row(WARDEN, 6236, 'node.exe')], reads * 1000);
        },
        onSampleError: (error) => errors.push(error),
      }).pipe(take(3), toArray()),
    );
    expect(samples.map((sample) => sample.at)).toEqual([1000, 3000, 4000]);
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toContain('spawn UNKNOWN');
  });
});
