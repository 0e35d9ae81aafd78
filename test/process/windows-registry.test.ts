// The registry's Windows tree record and the win32 reap, replayed on recorded (hand-written) fastlist-like tables
// through a fake OS: a dead supervisor's tree is stopped from its record alone, anything the record cannot prove is
// left alone and said so, and nothing is ever matched by name.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { reapLeftovers, restoreWindowsTree } from '../../src/process/state/reap.js';
import { Registry, RegistryCorruptError, launchRecord } from '../../src/process/state/registry.js';
import type { LaunchRecord } from '../../src/process/state/registry.js';
import type { ProcessInfo, ProcessTable } from '../../src/process/types.js';
import { WindowsTreeTracker } from '../../src/process/windows/index.js';
import type { WindowsKillExecutor, WindowsKillResult, WindowsTerminateOptions, WindowsTreeRecord } from '../../src/process/windows/index.js';
import { cleanupProcesses, tempDir } from '../support/processes.js';

afterEach(cleanupProcesses);

// ---------------------------------------------------------------------------------------------------------
// Recorded tables (test/fixtures/windows, see its README)

interface Row {
  pid: number;
  ppid: number;
  name: string;
}

const FIXTURES = resolve(import.meta.dirname, '../fixtures/windows');
const readJson = (file: string): unknown => JSON.parse(readFileSync(resolve(FIXTURES, file), 'utf8'));
const SYSTEM = (readJson('system.json') as { processes: Row[] }).processes;
const F = readJson('f-controller-closed.json') as { root: number; cast: Record<string, number | number[]>; listings: { processes: Row[] }[] };
const listing = (index: number): Row[] => [...SYSTEM, ...(F.listings[index]?.processes ?? [])];
const cast = (role: string): number => F.cast[role] as number;
const workers = F.cast.workers as number[];
const decoys = F.cast.decoys as number[];
// The fixtures' pids are fixed; nothing about this test process may change the verdicts.
const PROTECTED = [0, 4];
const sorted = (pids: number[]): number[] => [...pids].sort((a, b) => a - b);

function toTable(rows: Row[], takenAt: number): ProcessTable {
  const processes = new Map<number, ProcessInfo>();
  for (const row of rows) {
    processes.set(row.pid, { pid: row.pid, ppid: row.ppid, name: row.name, pgid: undefined, sid: undefined, startTime: undefined, state: undefined, cmdline: undefined, uid: undefined });
  }
  return { backend: 'ps-list', takenAt, processes };
}

// The supervisor's tracker after it observed the baseline and the healthy tree (listing 1 of scenario f).
function supervisorTracker(): WindowsTreeTracker {
  const tracker = new WindowsTreeTracker({ root: { pid: F.root, startTime: undefined }, baseline: toTable(listing(0), 0), protectedPids: PROTECTED });
  tracker.observe(toTable(listing(1), 1000));
  return tracker;
}

// What the supervisor wrote for that launch, before it was force-closed.
function recordOf(tracker: WindowsTreeTracker | undefined, instanceId = `webui-${randomBytes(3).toString('hex')}`): LaunchRecord {
  return {
    instanceId,
    marker: `${instanceId}:${randomBytes(8).toString('hex')}`,
    root: { pid: F.root, startTime: undefined },
    launchedAt: 1_700_000_000_000,
    supervisor: { pid: cast('warden'), startTime: undefined },
    ...(tracker !== undefined && { windows: tracker.toJSON() }),
  };
}

async function registryWith(...records: LaunchRecord[]): Promise<Registry> {
  const registry = await Registry.open(tempDir('warden-winreg-'));
  for (const record of records) await registry.add(record);
  return registry;
}

// A fake Windows after the force close: every read shows `rows` minus what was killed; kills end one pid.
class ClosedWindows {
  readonly kills: number[] = [];
  readonly denied = new Set<number>();
  reads = 0;
  private readonly killed = new Set<number>();
  private clock = 0;

  constructor(private readonly rows: Row[]) {}

  readonly readTable = async (): Promise<ProcessTable> => {
    this.reads += 1;
    return toTable(this.rows.filter((row) => !this.killed.has(row.pid)), 10_000 + this.reads * 100);
  };

  private readonly killer: WindowsKillExecutor = {
    kill: async (pid): Promise<WindowsKillResult> => {
      this.kills.push(pid);
      if (!this.rows.some((row) => row.pid === pid) || this.killed.has(pid)) return { outcome: 'gone' };
      if (this.denied.has(pid)) return { outcome: 'denied', detail: `ERROR: The process with PID ${pid} could not be terminated. Reason: Access is denied.` };
      this.killed.add(pid);
      return { outcome: 'killed' };
    },
  };

  readonly terminateOptions: WindowsTerminateOptions = {
    killer: this.killer,
    treeKill: false,
    pollIntervalMs: 100,
    confirmTimeoutMs: 1000,
    now: () => this.clock,
    sleep: async (ms) => {
      this.clock += ms;
    },
  };

  alive(pid: number): boolean {
    return this.rows.some((row) => row.pid === pid) && !this.killed.has(pid);
  }
}

const reapOnWindows = (registry: Registry, os: ClosedWindows, extra: { dryRun?: boolean } = {}) =>
  reapLeftovers({
    registry,
    instanceIds: registry.list().map((record) => record.instanceId),
    platform: 'win32',
    readTable: os.readTable,
    windows: os.terminateOptions,
    protectedPids: PROTECTED,
    ...extra,
  });

// ---------------------------------------------------------------------------------------------------------

describe('registry: the Windows tree record', () => {
  test('a launch record carries the tracker\'s record, and it restores to a tracker that owns the same tree', async () => {
    const tracker = supervisorTracker();
    const record = launchRecord({ instanceId: 'webui', marker: 'webui:00aa', root: { pid: F.root, startTime: undefined }, windows: tracker });
    expect(record.windows).toEqual(tracker.toJSON());
    const registry = await registryWith(record);
    const reread = (await Registry.open(registry.stateDir)).get('webui:00aa');
    expect(reread?.windows).toEqual(tracker.toJSON());
    const table = toTable(listing(1), 1500);
    expect(WindowsTreeTracker.fromRecord(reread?.windows, { protectedPids: PROTECTED }).owned(table).map((entry) => entry.info.pid)).toEqual(
      tracker.owned(table).map((entry) => entry.info.pid),
    );
  });

  test('the record is rewritten only through update, and a later record replaces the earlier one whole', async () => {
    const tracker = new WindowsTreeTracker({ root: { pid: F.root, startTime: undefined }, baseline: toTable(listing(0), 0), protectedPids: PROTECTED });
    const record = recordOf(tracker);
    const registry = await registryWith(record);
    expect(registry.get(record.marker)?.windows?.members).toEqual([]);
    const adoptionsBefore = tracker.adoptions;
    tracker.observe(toTable(listing(1), 1000));
    expect(tracker.adoptions - adoptionsBefore).toBe(1 + 1 + 1 + 1 + workers.length);
    await registry.update(record.marker, { windows: tracker.toJSON() });
    const members = (await Registry.open(registry.stateDir)).get(record.marker)?.windows?.members.map((member) => member.pid);
    expect(sorted(members ?? [])).toEqual(sorted([F.root, cast('conhost'), cast('webuiBat'), cast('python'), ...workers]));
  });

  test('a malformed tree record in the registry file is refused naming the record and the field', async () => {
    const stateDir = tempDir('warden-winreg-');
    const record = recordOf(supervisorTracker());
    const windows = record.windows as WindowsTreeRecord;
    const broken = { ...record, windows: { ...windows, members: windows.members.map((member, i) => (i === 3 ? { ...member, pid: 'python' } : member)) } };
    writeFileSync(join(stateDir, 'registry.json'), JSON.stringify({ version: 1, records: [broken] }), { mode: 0o600 });
    const error = await Registry.open(stateDir).then(() => undefined, (caught: unknown) => caught);
    expect(error).toBeInstanceOf(RegistryCorruptError);
    expect((error as Error).message).toMatch(/records\[0\]\.windows: Windows tree record: "members\[3\]\.pid" is invalid, received "python"/);
  });

  test('a tree record of another root than the launch\'s is refused, naming both pids', async () => {
    const registry = await registryWith();
    const record = recordOf(supervisorTracker());
    const other = { ...record, root: { pid: 4444, startTime: undefined } };
    await expect(registry.add(other)).rejects.toMatchObject({
      code: 'REGISTRY_INVALID_RECORD',
      message: expect.stringContaining(`record.windows.root.pid: expected the launch's root.pid 4444 (got ${F.root})`) as unknown,
    });
    await expect(registry.add({ ...record, windows: 'nope' as unknown as WindowsTreeRecord })).rejects.toThrow(/record\.windows: Windows tree record: "\(record\)" is invalid, received "nope"/);
    expect(registry.list()).toEqual([]);
  });
});

describe('reap on Windows: from the registry\'s tree record, never by name', () => {
  test('a force-closed supervisor\'s orphaned tree is stopped from its record alone: webui.bat\'s cmd.exe first, decoys untouched, record removed', async () => {
    const record = recordOf(supervisorTracker());
    const registry = await registryWith(record);
    const os = new ClosedWindows(listing(2));

    const report = await reapOnWindows(registry, os);

    const tree = [cast('webuiBat'), cast('conhost'), cast('python'), ...workers];
    expect(report.survivors).toEqual([]);
    expect(report.entries).toHaveLength(1);
    const entry = report.entries[0];
    expect(entry).toMatchObject({ marker: record.marker, source: 'registry', action: 'reaped', recordRemoved: true, survivors: [] });
    expect(sorted(entry?.found.map((found) => found.pid) ?? [])).toEqual(sorted(tree));
    // The surviving cmd.exe (webui.bat, which would relaunch python.exe) goes first, then top-down.
    expect(os.kills[0]).toBe(cast('webuiBat'));
    expect(os.kills.slice(0, tree.length)).toEqual([cast('webuiBat'), cast('conhost'), cast('python'), ...workers]);
    expect(sorted(entry?.killed.map((killed) => killed.pid) ?? [])).toEqual(sorted(tree));
    for (const pid of [...decoys, cast('newWarden')]) {
      expect(os.kills).not.toContain(pid);
      expect(os.alive(pid)).toBe(true);
    }
    for (const pid of tree) expect(os.alive(pid)).toBe(false);
    expect((await Registry.open(registry.stateDir)).list()).toEqual([]);
  });

  test('a dry run (what `warden audit` shows as stale) lists the same tree and signals nothing; the record stays', async () => {
    const record = recordOf(supervisorTracker());
    const registry = await registryWith(record);
    const os = new ClosedWindows(listing(2));

    const report = await reapOnWindows(registry, os, { dryRun: true });

    expect(report.entries.map((entry) => entry.action)).toEqual(['would-reap']);
    expect(sorted(report.entries[0]?.found.map((found) => found.pid) ?? [])).toEqual(sorted([cast('webuiBat'), cast('conhost'), cast('python'), ...workers]));
    expect(report.entries[0]?.found.find((found) => found.pid === cast('webuiBat'))?.role).toBe('shell');
    expect(os.kills).toEqual([]);
    expect(registry.list()).toHaveLength(1);
  });

  test('a record without a tree record cannot prove anything on Windows: nothing is killed, even with a cmd.exe tree alive at its root pid', async () => {
    const record = recordOf(undefined);
    const registry = await registryWith(record);
    // The tempting case: the root pid is alive and a whole cmd.exe → python.exe tree hangs under it.
    const os = new ClosedWindows(listing(1).filter((row) => row.pid !== cast('warden')));

    const report = await reapOnWindows(registry, os);

    const entry = report.entries[0];
    expect(entry).toMatchObject({ action: 'unprovable', found: [], killed: [], survivors: [], recordRemoved: false });
    expect(entry?.problem).toContain('ownership cannot be proven on Windows');
    expect(entry?.problem).toContain(`root pid ${F.root} alone proves nothing`);
    expect(entry?.problem).toContain('nothing is ever matched by name');
    expect(os.kills).toEqual([]);
    expect(registry.list()).toEqual([record]);
  });

  test('a record whose supervisor died before its first listing is unprovable too: the root pid alone proves nothing', async () => {
    // The tracker as launch() leaves it: a baseline, no listing since the spawn.
    const record = recordOf(new WindowsTreeTracker({ root: { pid: F.root, startTime: undefined }, baseline: toTable(listing(0), 0), protectedPids: PROTECTED }));
    const registry = await registryWith(record);
    const os = new ClosedWindows(listing(1));

    const report = await reapOnWindows(registry, os);

    expect(report.entries[0]).toMatchObject({ action: 'unprovable', killed: [], recordRemoved: false });
    expect(report.entries[0]?.problem).toContain('gone before it ever listed this tree');
    expect(os.kills).toEqual([]);
  });

  test('hours later: a member\'s pid now held by another process is not ours, nor a newcomer whose creator is gone; a new child of a live member is', async () => {
    const record = recordOf(supervisorTracker());
    const registry = await registryWith(record);
    const [gone, reused, ...rest] = workers as [number, number, ...number[]];
    const rows: Row[] = [
      ...listing(2).filter((row) => row.pid !== gone && row.pid !== reused),
      // A Jupyter kernel now holds a dead worker's pid (another parent): not ours.
      { pid: reused, ppid: 7788, name: 'python.exe' },
      // Created under the other dead worker's pid, whose holder is gone too: its creator may have been anyone.
      { pid: 12_000, ppid: gone, name: 'python.exe' },
      // A worker launch.py started while nobody watched: its creator is a live member.
      { pid: 12_004, ppid: cast('python'), name: 'python.exe' },
    ];
    const os = new ClosedWindows(rows);

    const report = await reapOnWindows(registry, os);

    const found = report.entries[0]?.found.map((entry) => entry.pid) ?? [];
    expect(sorted(found)).toEqual(sorted([cast('webuiBat'), cast('conhost'), cast('python'), ...rest, 12_004]));
    for (const pid of [reused, 12_000, ...decoys]) {
      expect(os.kills).not.toContain(pid);
      expect(os.alive(pid)).toBe(true);
    }
    expect(report.survivors).toEqual([]);
  });

  test('a tree that is already gone: the record is dropped, nothing is signalled', async () => {
    const record = recordOf(supervisorTracker());
    const registry = await registryWith(record);
    const os = new ClosedWindows([...SYSTEM, { pid: 10_220, ppid: 6236, name: 'node.exe' }]);

    const report = await reapOnWindows(registry, os);

    expect(report.entries[0]).toMatchObject({ action: 'nothing-left', found: [], killed: [], recordRemoved: true });
    expect(os.kills).toEqual([]);
    expect(registry.list()).toEqual([]);
  });

  test('a process that refuses the kill is a named survivor, and the record stays for the next try', async () => {
    const record = recordOf(supervisorTracker());
    const registry = await registryWith(record);
    const os = new ClosedWindows(listing(2));
    os.denied.add(cast('python'));

    const report = await reapOnWindows(registry, os);

    expect(report.survivors).toEqual([expect.objectContaining({ pid: cast('python'), name: 'python.exe', marker: record.marker, reason: expect.stringContaining('access denied') as unknown })]);
    expect(report.entries[0]?.recordRemoved).toBe(false);
    expect(registry.list()).toHaveLength(1);
    for (const pid of workers) expect(os.alive(pid)).toBe(false);
  });

  test('no marker stage on Windows: only registry records are reaped, whatever the table holds', async () => {
    const registry = await registryWith();
    const os = new ClosedWindows(listing(2));
    const report = await reapLeftovers({ registry, instanceIds: ['webui'], platform: 'win32', readTable: os.readTable, windows: os.terminateOptions, protectedPids: PROTECTED });
    expect(report.entries).toEqual([]);
    expect(os.kills).toEqual([]);
    expect(os.reads).toBe(1);
  });

  test('restoreWindowsTree refuses a tree record that does not restore, naming the field', () => {
    const record = recordOf(supervisorTracker());
    const broken = { ...record, windows: { ...(record.windows as WindowsTreeRecord), listings: -1 } };
    const restored = restoreWindowsTree(broken, toTable(listing(2), 5000), PROTECTED);
    expect(restored).toEqual({ ok: false, problem: expect.stringMatching(/ownership cannot be proven: Windows tree record: "listings" is invalid, received -1/) as unknown });
  });
});
