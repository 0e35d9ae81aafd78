// Reaping at start: trees an earlier run left (by registry record or by marker) die; other supervisors' trees and decoys do not.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import { launch } from '../../src/process/index.js';
import type { OwnedProcess, TreeHandle } from '../../src/process/index.js';
import { reapLeftovers } from '../../src/process/state/reap.js';
import { Registry, launchRecord } from '../../src/process/state/registry.js';
import { readStartTime } from '../../src/process/posix/procfs.js';
import {
  FAKE_WEBUI_DIR,
  cleanupProcesses,
  isAliveNow,
  markedPids,
  ownForCleanup,
  startDecoy,
  tempDir,
  waitForPythons,
} from '../support/processes.js';

afterEach(cleanupProcesses);

// Instance ids unique to this test file, so a reap here can never match another file's trees.
const instanceId = (prefix: string): string => `${prefix}-${randomBytes(4).toString('hex')}`;

// Launches `bash webui.sh --port 0 --workers 2` and waits for the whole tree (bash, launch.py, 2 workers).
async function launchTree(id: string): Promise<{ handle: TreeHandle; owned: OwnedProcess[] }> {
  const handle = await launch({
    instanceId: id,
    command: './webui.sh',
    args: ['-f', '--port', '0', '--workers', '2'],
    cwd: FAKE_WEBUI_DIR,
    env: { FAKE_WEBUI_STATE_DIR: tempDir('warden-reap-') },
  });
  ownForCleanup(handle);
  const owned = await waitForPythons(handle, 3);
  return { handle, owned };
}

// Both sorted numerically: pids wrap around, so the order processes were seen in is not the numeric order.
const alive = (owned: OwnedProcess[]): number[] =>
  owned.filter((entry) => isAliveNow(entry.info.pid, entry.info.startTime)).map((entry) => entry.info.pid).sort((a, b) => a - b);
const pidsOf = (owned: OwnedProcess[]): number[] => owned.map((entry) => entry.info.pid).sort((a, b) => a - b);

describe('reapLeftovers', () => {
  test('a recorded tree whose supervisor died is killed whole, from the registry alone, and its record is removed', async () => {
    const stateDir = tempDir();
    const id = instanceId('reap');
    const { handle, owned } = await launchTree(id);
    expect(owned.map((entry) => entry.role)).toEqual(['shell', 'python', 'python', 'python']);
    const registry = await Registry.open(stateDir);
    await registry.add(launchRecord(handle));
    // The supervisor dies: its handle is gone; the next start has only what is on disk.
    handle.dispose();

    const nextStart = await Registry.open(stateDir);
    const report = await reapLeftovers({ registry: nextStart, instanceIds: [id], graceMs: 3000 });

    expect(report.survivors).toEqual([]);
    // Only our record is acted on; other suites' marked trees may show up as unmanaged, untouched.
    expect(report.entries.filter((candidate) => candidate.source !== 'unmanaged')).toHaveLength(1);
    const entry = report.entries.find((candidate) => candidate.marker === handle.marker);
    expect(entry).toMatchObject({ marker: handle.marker, instanceId: id, source: 'registry', action: 'reaped', recordRemoved: true, survivors: [] });
    expect(entry?.found.map((found) => found.pid).sort((a, b) => a - b)).toEqual(pidsOf(owned));
    expect(entry?.found.find((found) => found.pid === handle.root.pid)?.role).toBe('shell');
    expect(entry?.killed.map((killed) => killed.pid)).toEqual(expect.arrayContaining(pidsOf(owned)));
    expect(markedPids(handle.marker)).toEqual([]);
    expect(alive(owned)).toEqual([]);
    expect(nextStart.list()).toEqual([]);
    expect((await Registry.open(stateDir)).list()).toEqual([]);
  });

  test('a recorded tree whose shell parent already died is still reaped whole: the orphans carry the recorded marker', async () => {
    const stateDir = tempDir();
    const id = instanceId('reap');
    const { handle, owned } = await launchTree(id);
    const registry = await Registry.open(stateDir);
    await registry.add(launchRecord(handle));
    handle.dispose();
    // The shell dies alone (as after a lone SIGTERM): launch.py and its workers are reparented and keep running.
    expect(isAliveNow(handle.root.pid, handle.root.startTime)).toBe(true);
    process.kill(handle.root.pid, 'SIGKILL');
    await handle.exited;
    const orphans = owned.filter((entry) => entry.info.pid !== handle.root.pid);
    expect(alive(orphans)).toEqual(pidsOf(orphans));

    const report = await reapLeftovers({ registry: await Registry.open(stateDir), instanceIds: [id], graceMs: 3000 });

    expect(report.survivors).toEqual([]);
    expect(report.entries.find((entry) => entry.marker === handle.marker)?.found.map((found) => found.pid).sort((a, b) => a - b)).toEqual(pidsOf(orphans));
    expect(alive(orphans)).toEqual([]);
    expect(markedPids(handle.marker)).toEqual([]);
    expect((await Registry.open(stateDir)).list()).toEqual([]);
  });

  test('a tree carrying a managed instance marker but never recorded is reaped as stale; the live launch of that instance is not', async () => {
    const id = instanceId('reap');
    const stale = await launchTree(id);
    const current = await launchTree(id);
    const registry = await Registry.open(tempDir());

    const report = await reapLeftovers({ registry, instanceIds: [id], liveMarkers: new Set([current.handle.marker]), graceMs: 3000 });

    const mine = report.entries.filter((entry) => entry.instanceId === id);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ marker: stale.handle.marker, source: 'stale-marker', action: 'reaped', survivors: [] });
    expect(mine[0]?.found.map((found) => found.pid).sort((a, b) => a - b)).toEqual(pidsOf(stale.owned));
    expect(markedPids(stale.handle.marker)).toEqual([]);
    expect(alive(stale.owned)).toEqual([]);
    // The live launch is neither reported nor touched.
    expect(alive(current.owned)).toEqual(pidsOf(current.owned));
  });

  test('a marked tree of an instance this supervisor does not manage is reported and left alive', async () => {
    const managed = instanceId('reap');
    const other = instanceId('other');
    const foreign = await launchTree(other);
    const registry = await Registry.open(tempDir());

    const report = await reapLeftovers({ registry, instanceIds: [managed], graceMs: 3000 });

    const entry = report.entries.find((candidate) => candidate.marker === foreign.handle.marker);
    expect(entry).toMatchObject({ instanceId: other, source: 'unmanaged', action: 'left-alone', killed: [], survivors: [] });
    expect(entry?.found.map((found) => found.pid).sort((a, b) => a - b)).toEqual(pidsOf(foreign.owned));
    expect(alive(foreign.owned)).toEqual(pidsOf(foreign.owned));
    // afterEach's cleanupProcesses stops it through its handle.
  });

  test('a dry run lists what would be killed and signals nothing, keeping the records', async () => {
    const stateDir = tempDir();
    const id = instanceId('reap');
    const recorded = await launchTree(id);
    const stale = await launchTree(id);
    const registry = await Registry.open(stateDir);
    await registry.add(launchRecord(recorded.handle));
    const before = { recorded: pidsOf(recorded.owned), stale: pidsOf(stale.owned) };

    const report = await reapLeftovers({ registry, instanceIds: [id], dryRun: true });

    expect(report.dryRun).toBe(true);
    const byMarker = new Map(report.entries.map((entry) => [entry.marker, entry]));
    expect(byMarker.get(recorded.handle.marker)).toMatchObject({ source: 'registry', action: 'would-reap', killed: [], survivors: [] });
    expect(byMarker.get(stale.handle.marker)).toMatchObject({ source: 'stale-marker', action: 'would-reap', killed: [], survivors: [] });
    expect(byMarker.get(recorded.handle.marker)?.found.map((found) => found.pid).sort((a, b) => a - b)).toEqual(before.recorded);
    expect(byMarker.get(stale.handle.marker)?.found.map((found) => found.pid).sort((a, b) => a - b)).toEqual(before.stale);
    // Same pids, same start times, not even stopped.
    expect(alive(recorded.owned)).toEqual(before.recorded);
    expect(alive(stale.owned)).toEqual(before.stale);
    for (const entry of [...recorded.owned, ...stale.owned]) expect(['S', 'R']).toContain(readStartTime(entry.info.pid)?.state);
    expect((await Registry.open(stateDir)).list().map((record) => record.marker)).toEqual([recorded.handle.marker]);
  });

  test('a record whose root pid now names another process (start time differs) touches nothing and is dropped', async () => {
    const stateDir = tempDir();
    const decoy = await startDecoy('sleep', ['60']);
    const registry = await Registry.open(stateDir);
    const id = instanceId('reap');
    await registry.add({
      instanceId: id,
      marker: `${id}:${randomBytes(8).toString('hex')}`,
      root: { pid: decoy.pid, startTime: (decoy.startTime as number) - 100, clock: 'proc' },
      pgid: decoy.pid,
      launchedAt: Date.now() - 60_000,
      supervisor: { pid: 999_999, startTime: 1 },
    });

    const report = await reapLeftovers({ registry, instanceIds: [id], graceMs: 1000 });

    // Other suites' marked trees may be reported as unmanaged; only the record matters here.
    expect(report.entries.filter((entry) => entry.source !== 'unmanaged')).toEqual([expect.objectContaining({ source: 'registry', action: 'nothing-left', found: [], killed: [], recordRemoved: true })]);
    expect(isAliveNow(decoy.pid, decoy.startTime)).toBe(true);
    expect(registry.list()).toEqual([]);
  });
});
