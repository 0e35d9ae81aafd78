// The Windows stop protocol, replayed on recorded (hand-written) fastlist-like tables through a fake OS:
// ownership by every pid ever seen in the tree, pid-reuse guards, empty names, kill order and confirmation.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { collectOwned } from '../../src/process/ownership.js';
import { WindowsTreeTracker, processKillExecutor, sequencedReader, taskkillExecutor, terminateWindows } from '../../src/process/windows/index.js';
import type { WindowsKillExecutor, WindowsKillResult, WindowsTerminateOptions } from '../../src/process/windows/index.js';
import type { ProcessInfo, ProcessTable } from '../../src/process/types.js';

// ---------------------------------------------------------------------------------------------------------
// Fixtures

interface Row {
  pid: number;
  ppid: number;
  name: string;
  note?: string;
}

interface Scenario {
  scenario: string;
  root: number;
  baseline: boolean;
  stopStartsAt: number;
  cast: Record<string, number | number[]>;
  /** Every listing, with the unrelated processes of system.json merged in. */
  listings: Row[][];
}

const FIXTURES = resolve(import.meta.dirname, '../fixtures/windows');
const readJson = (file: string): unknown => JSON.parse(readFileSync(resolve(FIXTURES, file), 'utf8'));
const SYSTEM = (readJson('system.json') as { processes: Row[] }).processes;

function loadScenario(file: string): Scenario {
  const raw = readJson(file) as Omit<Scenario, 'listings'> & { listings: { processes: Row[] }[] };
  return { ...raw, listings: raw.listings.map((listing) => [...SYSTEM, ...listing.processes]) };
}

function toTable(rows: Row[], takenAt: number): ProcessTable {
  const processes = new Map<number, ProcessInfo>();
  for (const row of rows) {
    processes.set(row.pid, {
      pid: row.pid, ppid: row.ppid, name: row.name,
      pgid: undefined, sid: undefined, startTime: undefined, state: undefined, cmdline: undefined, uid: undefined,
    });
  }
  return { backend: 'ps-list', takenAt, processes };
}

const pid = (scenario: Scenario, role: string): number => scenario.cast[role] as number;
const pids = (scenario: Scenario, role: string): number[] => scenario.cast[role] as number[];
const sorted = (list: number[]): number[] => [...list].sort((a, b) => a - b);
// The fixtures' pids are fixed; nothing about this test process may change the verdicts.
const PROTECTED = [0, 4];

// A tracker that has seen every listing before `upTo` (as the sampler would have), baseline included.
function trackerAfter(scenario: Scenario, upTo: number): WindowsTreeTracker {
  const [baseline, ...rest] = scenario.listings;
  const tracker = new WindowsTreeTracker({
    root: { pid: scenario.root, startTime: undefined },
    protectedPids: PROTECTED,
    ...(scenario.baseline && baseline !== undefined && { baseline: toTable(baseline, 0) }),
  });
  const first = scenario.baseline ? 1 : 0;
  const listings = scenario.baseline ? rest : scenario.listings;
  for (let i = 0; i < upTo - first; i += 1) tracker.observe(toTable(listings[i] as Row[], (i + first) * 1000));
  return tracker;
}

// ---------------------------------------------------------------------------------------------------------
// A fake Windows: each read returns the next recorded listing (the last one repeats) minus what was killed.

interface KillCall {
  pid: number;
  tree: boolean;
  outcome: WindowsKillResult['outcome'];
}

class FakeWindows {
  reads = 0;
  readonly calls: KillCall[] = [];
  /** Every process a kill actually ended (tree kills included), as `pid`. */
  readonly victims: number[] = [];
  /** Processes that refuse every kill (another user's or elevated). */
  readonly denied = new Set<number>();
  /** Processes whose first kill fails (a transient taskkill error). */
  readonly failOnce = new Set<number>();
  /** Processes that a kill terminates but that stay listed (stuck in a driver call); later kills are refused. */
  readonly lingering = new Set<number>();
  private readonly terminating = new Set<number>();
  /** Processes that left by themselves (e.g. after the polite request). */
  readonly exited = new Set<string>();
  private readonly killed = new Set<string>();
  private cursor: number;
  clock = 0;

  constructor(private readonly scenario: Scenario, private readonly start = scenario.stopStartsAt) {
    this.cursor = start;
  }

  // A process is one pid + ppid: a reused pid with another parent is another process.
  private static key(row: Row): string {
    return `${row.pid}<${row.ppid}`;
  }

  view(): Row[] {
    const rows = this.scenario.listings[this.cursor] ?? [];
    return rows.filter((row) => !this.killed.has(FakeWindows.key(row)) && !this.exited.has(FakeWindows.key(row)));
  }

  readonly readTable = async (): Promise<ProcessTable> => {
    this.cursor = Math.min(this.start + this.reads, this.scenario.listings.length - 1);
    this.reads += 1;
    return toTable(this.view(), (this.start + this.reads) * 1000);
  };

  // Everything the protocol could do to the OS: per-pid kills and (like real taskkill /T) ppid-walking tree kills.
  readonly killer: WindowsKillExecutor = {
    kill: async (target) => this.kill(target, false),
    killTree: async (target) => this.kill(target, true),
  };

  readonly options = (extra: WindowsTerminateOptions = {}): WindowsTerminateOptions => ({
    readTable: this.readTable,
    killer: this.killer,
    now: () => this.clock,
    sleep: async (ms) => {
      this.clock += ms;
    },
    pollIntervalMs: 100,
    confirmTimeoutMs: 1000,
    ...extra,
  });

  /** Makes every listed process with one of these pids exit by itself. */
  exit(targets: number[]): void {
    for (const row of this.view()) if (targets.includes(row.pid)) this.exited.add(FakeWindows.key(row));
  }

  get killOrder(): number[] {
    return this.calls.filter((call) => !call.tree).map((call) => call.pid);
  }

  private kill(target: number, tree: boolean): WindowsKillResult {
    const result = this.outcomeOf(target, tree);
    this.calls.push({ pid: target, tree, outcome: result.outcome });
    return result;
  }

  private outcomeOf(target: number, tree: boolean): WindowsKillResult {
    const rows = this.view();
    const row = rows.find((entry) => entry.pid === target);
    if (row === undefined) return { outcome: 'gone', detail: `ERROR: The process "${target}" not found.` };
    if (this.denied.has(target)) {
      return { outcome: 'denied', detail: `ERROR: The process with PID ${target} could not be terminated. Reason: Access is denied.` };
    }
    if (this.failOnce.delete(target)) return { outcome: 'failed', detail: 'ERROR: The operation could not be completed.' };
    if (this.terminating.has(target)) return { outcome: 'denied', detail: 'Reason: Access is denied.' };
    if (this.lingering.has(target)) {
      this.terminating.add(target);
      return { outcome: 'killed', detail: `SUCCESS: The process with PID ${target} has been terminated.` };
    }
    // /T follows ppid through the live table, with no regard for creation order: the worst case.
    const doomed = [row];
    for (let i = 0; tree && i < doomed.length; i += 1) {
      const parent = doomed[i] as Row;
      doomed.push(...rows.filter((entry) => entry.ppid === parent.pid && entry.pid !== parent.pid && !this.denied.has(entry.pid)));
    }
    for (const entry of doomed) {
      this.killed.add(FakeWindows.key(entry));
      this.victims.push(entry.pid);
    }
    return { outcome: 'killed', detail: `SUCCESS: The process with PID ${target} has been terminated.` };
  }
}

const ownedPids = (tracker: WindowsTreeTracker, rows: Row[], takenAt: number): number[] =>
  tracker.owned(toTable(rows, takenAt)).map((entry) => entry.info.pid);

// ---------------------------------------------------------------------------------------------------------

describe('Windows ownership (tracker)', () => {
  test('the whole healthy tree is ours: both cmd.exe parents first, then top-down to the workers', () => {
    const a = loadScenario('a-healthy-tree.json');
    const tracker = trackerAfter(a, 1);
    const owned = tracker.owned(toTable(a.listings[1] as Row[], 1000));
    expect(owned.map((entry) => entry.info.pid)).toEqual([
      pid(a, 'root'), pid(a, 'webuiBat'), pid(a, 'conhost'), pid(a, 'python'), ...pids(a, 'workers'),
    ]);
    expect(owned.map((entry) => entry.role)).toEqual(['shell', 'shell', 'other', 'python', 'python', 'python', 'python', 'python']);
    expect(owned[0]?.proofs).toEqual(['root']);
    expect(owned.slice(1).every((entry) => entry.proofs.join() === 'tree')).toBe(true);
    expect(owned.map((entry) => entry.depth)).toEqual([0, 1, 1, 2, 3, 3, 3, 3]);
  });

  test('look-alikes are never ours: the user\'s cmd.exe running another .bat, its python.exe, Jupyter, another user\'s python.exe, the warden itself', () => {
    const a = loadScenario('a-healthy-tree.json');
    const tracker = trackerAfter(a, 2);
    const owned = ownedPids(tracker, a.listings[2] as Row[], 2000);
    for (const decoy of [...pids(a, 'decoys'), pid(a, 'warden'), 0, 4]) expect(owned).not.toContain(decoy);
    expect(owned).toHaveLength(8);
  });

  test('orphans that kept a dead parent\'s pid are still ours', () => {
    const b = loadScenario('b-middle-python-died.json');
    const tracker = trackerAfter(b, 2);
    const owned = tracker.owned(toTable(b.listings[2] as Row[], 2000));
    expect(owned.map((entry) => entry.info.pid)).toEqual([pid(b, 'root'), pid(b, 'webuiBat'), pid(b, 'conhost'), ...pids(b, 'workers')]);
    for (const worker of owned.filter((entry) => entry.role === 'python')) {
      expect(worker.info.ppid).toBe(pid(b, 'python'));
      expect(worker.depth).toBe(3);
    }
    const python = tracker.history().find((member) => member.pid === pid(b, 'python'));
    expect(python).toMatchObject({ lastSeen: 1, goneAt: 2 });
  });

  test('a walk down from the live cmd.exe alone (the POSIX tree proof) would miss those orphans', () => {
    const b = loadScenario('b-middle-python-died.json');
    const table = toTable(b.listings[2] as Row[], 2000);
    const walked = collectOwned(
      { instanceId: 'webui', marker: 'webui:0', root: { pid: pid(b, 'root'), startTime: undefined } },
      table,
      { readMarker: () => undefined },
    ).map((entry) => entry.info.pid);
    expect(walked).toContain(pid(b, 'webuiBat'));
    for (const worker of pids(b, 'workers')) expect(walked).not.toContain(worker);
  });

  test('a pid reused by an unrelated process after our worker died is not ours, even with the same image name', () => {
    const d = loadScenario('d-pid-reuse.json');
    const tracker = trackerAfter(d, 3);
    const owned = ownedPids(tracker, d.listings[3] as Row[], 3000);
    expect(owned).not.toContain(pid(d, 'reusedWorkerPid'));
    // At listing 3 workers 9412 and 9436 still run.
    expect(owned).toEqual([pid(d, 'root'), pid(d, 'webuiBat'), pid(d, 'conhost'), pid(d, 'python'), pid(d, 'reusedWithinInterval'), ...pids(d, 'liveWorkers')]);
    expect(tracker.memberAt(pid(d, 'reusedWorkerPid'))).toBeUndefined();
    // The dead worker stays on record with the listing it vanished in.
    expect(tracker.history().find((member) => member.pid === pid(d, 'reusedWorkerPid'))).toMatchObject({ goneAt: 2 });
  });

  test('children of a reused pid, and processes that appear under a pid that had already died, are not ours', () => {
    const d = loadScenario('d-pid-reuse.json');
    const tracker = trackerAfter(d, 4);
    const owned = ownedPids(tracker, d.listings[4] as Row[], 4000);
    expect(owned).not.toContain(pid(d, 'childOfReused'));
    expect(owned).not.toContain(pid(d, 'childOfDeadPid'));
  });

  test('a pid listed under another parent in the very next listing is another process, not ours', () => {
    const d = loadScenario('d-pid-reuse.json');
    const tracker = trackerAfter(d, 4);
    const reused = pid(d, 'reusedWithinInterval');
    expect(tracker.memberAt(reused)).toBeDefined();
    expect(ownedPids(tracker, d.listings[4] as Row[], 4000)).not.toContain(reused);
    expect(tracker.history().find((member) => member.pid === reused)).toMatchObject({ lastSeen: 3, goneAt: 4 });
  });

  test('a process that already pointed at our cmd.exe\'s pid before the launch is never adopted', () => {
    const d = loadScenario('d-pid-reuse.json');
    const tracker = trackerAfter(d, 4);
    const table = toTable(d.listings[4] as Row[], 4000);
    expect(table.processes.get(pid(d, 'preLaunchOrphan'))?.ppid).toBe(pid(d, 'root'));
    expect(ownedPids(tracker, d.listings[4] as Row[], 4000)).not.toContain(pid(d, 'preLaunchOrphan'));
  });

  test('a starting process with an empty name is ours by the tree, classified "other" until a listing names it', () => {
    const e = loadScenario('e-empty-names.json');
    const tracker = trackerAfter(e, 2);
    const starting = tracker.owned(toTable(e.listings[2] as Row[], 2000)).find((entry) => entry.info.pid === pid(e, 'python'));
    expect(starting).toMatchObject({ role: 'other', info: { name: '' } });

    tracker.observe(toTable(e.listings[3] as Row[], 3000));
    // The next listing shows it without a name again: the name learned earlier is kept.
    const later = tracker.owned(toTable(e.listings[4] as Row[], 4000));
    expect(later.find((entry) => entry.info.pid === pid(e, 'python'))).toMatchObject({ role: 'python', info: { name: 'python.exe' } });
    expect(later.find((entry) => entry.info.pid === pid(e, 'unnamedWorker'))).toMatchObject({ role: 'other', depth: 3 });
    expect(later.find((entry) => entry.info.pid === pid(e, 'conhost'))?.info.name).toBe('conhost.exe');
  });

  test('an unnamed process starting outside the tree is not adopted', () => {
    const e = loadScenario('e-empty-names.json');
    const tracker = trackerAfter(e, 4);
    expect(ownedPids(tracker, e.listings[4] as Row[], 4000)).not.toContain(pid(e, 'unnamedStranger'));
  });

  test('overlapping readers (sampler and stop) are serialized, so listings are observed in the order they were read', async () => {
    const a = loadScenario('a-healthy-tree.json');
    const tracker = trackerAfter(a, 1);
    const events: string[] = [];
    const slowRead = async (): Promise<ProcessTable> => {
      events.push('slow:start');
      await new Promise((done) => setTimeout(done, 20));
      events.push('slow:end');
      return toTable(a.listings[1] as Row[], 1000);
    };
    const fastRead = async (): Promise<ProcessTable> => {
      events.push('fast:start');
      return toTable(a.listings[2] as Row[], 2000);
    };
    const failingRead = async (): Promise<ProcessTable> => Promise.reject(new Error('fastlist failed'));
    const [, failed, last] = await Promise.allSettled([tracker.refresh(slowRead), tracker.refresh(failingRead), tracker.refresh(fastRead)]);
    expect(events).toEqual(['slow:start', 'slow:end', 'fast:start']);
    expect(failed?.status).toBe('rejected');
    expect(last?.status).toBe('fulfilled');
    expect(tracker.listings).toBe(3);
    expect(ownedPids(tracker, a.listings[2] as Row[], 2000)).toHaveLength(8);
  });

  test('a sequenced table whose read began earlier is skipped when it arrives after a newer one', async () => {
    const c = loadScenario('c-relaunch-during-stop.json');
    const tracker = trackerAfter(c, 5);
    const webuiBat = pid(c, 'webuiBat');
    const newcomer = pid(c, 'relaunchedDuringKill');
    // After the first kill round: both cmd.exe are dead and the loop's last python.exe is listed.
    const afterKill = (c.listings[5] as Row[]).filter((row) => row.pid !== pid(c, 'root') && row.pid !== webuiBat);
    let releaseSampler: () => void = () => undefined;
    const samplerRead = sequencedReader(async () => {
      await new Promise<void>((done) => {
        releaseSampler = done;
      });
      return toTable(c.listings[4] as Row[], 5000); // read before the kill: webui.bat alive, no newcomer yet
    });
    const stopRead = sequencedReader(async () => toTable(afterKill, 5000));
    const older = samplerRead();
    tracker.observe(await stopRead());
    expect(tracker.memberAt(newcomer)).toBeDefined();
    releaseSampler();
    expect(tracker.observe(await older)).toEqual([]);
    // Had the older listing been observed, the newcomer would have vanished, then come back after its
    // parent's death and been judged a reused pid.
    expect(ownedPids(tracker, afterKill, 6000)).toContain(newcomer);
  });

  test('when the reader gives start times, a reused root pid and a child older than its parent are not ours', () => {
    const withStart = (rows: Row[], starts: Record<number, number>, takenAt: number): ProcessTable => {
      const table = toTable(rows, takenAt);
      for (const info of table.processes.values()) info.startTime = starts[info.pid];
      return table;
    };
    const rows: Row[] = [
      { pid: 9120, ppid: 8840, name: 'cmd.exe' },
      { pid: 9244, ppid: 9120, name: 'cmd.exe' },
      { pid: 2232, ppid: 9244, name: 'python.exe' },
    ];
    const starts = { 9120: 500, 9244: 510, 2232: 100 };
    const ours = new WindowsTreeTracker({ root: { pid: 9120, startTime: 500, clock: 'ps-list' }, protectedPids: PROTECTED });
    expect(ours.owned(withStart(rows, starts, 1000)).map((entry) => entry.info.pid)).toEqual([9120, 9244]);
    const reusedRoot = new WindowsTreeTracker({ root: { pid: 9120, startTime: 400, clock: 'ps-list' }, protectedPids: PROTECTED });
    expect(reusedRoot.owned(withStart(rows, starts, 1000))).toEqual([]);
  });

  test('children are found even when the root cmd.exe died before the tracker\'s first listing', () => {
    const f = loadScenario('f-controller-closed.json');
    const tracker = new WindowsTreeTracker({ root: { pid: pid(f, 'root'), startTime: undefined }, protectedPids: PROTECTED, baseline: toTable(f.listings[0] as Row[], 0) });
    const owned = ownedPids(tracker, f.listings[2] as Row[], 2000);
    expect(sorted(owned)).toEqual(sorted([pid(f, 'webuiBat'), pid(f, 'conhost'), pid(f, 'python'), ...pids(f, 'workers')]));
  });
});

describe('Windows ownership record (registry)', () => {
  test('the tracker round-trips through JSON and keeps every pid ever seen, dead ones included', () => {
    const d = loadScenario('d-pid-reuse.json');
    const tracker = trackerAfter(d, 4);
    const json = JSON.stringify(tracker);
    const restored = WindowsTreeTracker.fromRecord(JSON.parse(json), { protectedPids: PROTECTED });
    expect(JSON.parse(JSON.stringify(restored))).toEqual(JSON.parse(json));
    const everSeen = restored.history().map((member) => member.pid);
    expect(sorted(everSeen)).toEqual(sorted([pid(d, 'root'), pid(d, 'conhost'), pid(d, 'webuiBat'), pid(d, 'python'), ...pids(d, 'workers')]));
    const next = d.listings[4] as Row[];
    expect(ownedPids(restored, next, 5000)).toEqual(ownedPids(tracker, next, 5000));
  });

  test('a restored tracker still refuses the old orphan whose ppid collides with our live cmd.exe', () => {
    const d = loadScenario('d-pid-reuse.json');
    const restored = WindowsTreeTracker.fromRecord(JSON.parse(JSON.stringify(trackerAfter(d, 2))), { protectedPids: PROTECTED });
    // Without the persisted foreign sighting, a fresh look would take it for a new child of our live root.
    expect(restored.toJSON().foreign.map((entry) => entry.pid)).toContain(pid(d, 'preLaunchOrphan'));
    expect(ownedPids(restored, d.listings[2] as Row[], 2500)).not.toContain(pid(d, 'preLaunchOrphan'));
  });

  test('a malformed record is refused with the field that is wrong', () => {
    const a = loadScenario('a-healthy-tree.json');
    const record = trackerAfter(a, 2).toJSON();
    const broken = { ...record, members: record.members.map((member, i) => (i === 2 ? { ...member, pid: -8 } : member)) };
    expect(() => WindowsTreeTracker.fromRecord(broken)).toThrow(/"members\[2\]\.pid".*-8/);
    expect(() => WindowsTreeTracker.fromRecord({ ...record, version: 2 })).toThrow(/"version"/);
    expect(() => WindowsTreeTracker.fromRecord('nope')).toThrow(/record/);
  });
});

describe('Windows stop protocol', () => {
  test('the tracked cmd.exe parents are killed first, then every owned pid top-down, and the tree is confirmed gone', async () => {
    const a = loadScenario('a-healthy-tree.json');
    const tracker = trackerAfter(a, a.stopStartsAt);
    const os = new FakeWindows(a);
    const report = await terminateWindows(tracker, os.options({ immediate: true }));
    expect(os.killOrder).toEqual([pid(a, 'root'), pid(a, 'webuiBat'), pid(a, 'conhost'), pid(a, 'python'), ...pids(a, 'workers')]);
    expect(report.survivors).toEqual([]);
    expect(sorted(report.killed.map((entry) => entry.pid))).toEqual(sorted(os.killOrder));
    expect(report.killed.every((entry) => entry.signal === 'SIGKILL')).toBe(true);
    expect(report).toMatchObject({ escalated: true, reads: 2 });
    for (const decoy of [...pids(a, 'decoys'), pid(a, 'warden')]) expect(os.victims).not.toContain(decoy);
  });

  test('orphans that kept a dead parent\'s pid are still found and killed', async () => {
    const b = loadScenario('b-middle-python-died.json');
    const tracker = trackerAfter(b, b.stopStartsAt);
    const os = new FakeWindows(b);
    const report = await terminateWindows(tracker, os.options({ immediate: true }));
    expect(os.killOrder).toEqual([pid(b, 'root'), pid(b, 'webuiBat'), pid(b, 'conhost'), ...pids(b, 'workers')]);
    expect(report.survivors).toEqual([]);
    expect(os.view().filter((row) => row.ppid === pid(b, 'python'))).toEqual([]);
  });

  test('the webui.bat relaunch loop\'s newcomers, during the polite wait and during the kill, are tracked and killed', async () => {
    const c = loadScenario('c-relaunch-during-stop.json');
    const tracker = trackerAfter(c, c.stopStartsAt);
    const os = new FakeWindows(c);
    let politeRequests = 0;
    const report = await terminateWindows(tracker, os.options({
      beforeSignals: async () => {
        politeRequests += 1;
      },
      politeWaitMs: 200,
    }));
    expect(politeRequests).toBe(1);
    // First round, after the polite wait: cmd.exe parents, then the relaunched python.exe and its workers.
    expect(os.killOrder.slice(0, 6)).toEqual([
      pid(c, 'root'), pid(c, 'webuiBat'), pid(c, 'conhost'), pid(c, 'relaunched'), ...pids(c, 'relaunchedWorkers'),
    ]);
    // The python.exe started while webui.bat was being killed is adopted (it appeared as its parent died) and killed.
    expect(os.victims).toContain(pid(c, 'relaunchedDuringKill'));
    expect(os.calls).toContainEqual({ pid: pid(c, 'relaunchedDuringKill'), tree: true, outcome: 'killed' });
    expect(report.survivors).toEqual([]);
    const killed = new Map(report.killed.map((entry) => [entry.pid, entry]));
    // Launch.py and its workers left after the polite request: reported, but no kill was needed.
    for (const left of [pid(c, 'python'), ...pids(c, 'workers')]) expect(killed.get(left)?.signal).toBe('none');
    expect(killed.get(pid(c, 'relaunched'))).toMatchObject({ name: 'python.exe', role: 'python', signal: 'SIGKILL' });
    expect(killed.get(pid(c, 'relaunchedDuringKill'))?.signal).toBe('SIGKILL');
    for (const decoy of pids(c, 'decoys')) expect(os.victims).not.toContain(decoy);
  });

  test('without /T (Wine\'s taskkill) the per-pid kills alone stop the relaunching tree', async () => {
    const c = loadScenario('c-relaunch-during-stop.json');
    const tracker = trackerAfter(c, c.stopStartsAt);
    const os = new FakeWindows(c);
    const report = await terminateWindows(tracker, os.options({ beforeSignals: async () => undefined, politeWaitMs: 200, treeKill: false }));
    expect(os.calls.some((call) => call.tree)).toBe(false);
    expect(os.killOrder).toContain(pid(c, 'relaunchedDuringKill'));
    expect(report.survivors).toEqual([]);
  });

  test('reused pids, their children, pre-launch orphans and look-alikes are never killed, not even by the /T pass', async () => {
    const d = loadScenario('d-pid-reuse.json');
    const tracker = trackerAfter(d, d.stopStartsAt);
    const os = new FakeWindows(d);
    // The first kill of the root fails, so a second round with a /T pass runs; the root's live ppid-subtree
    // holds the pre-launch orphan, so /T must not be used on it.
    os.failOnce.add(pid(d, 'root'));
    const report = await terminateWindows(tracker, os.options({ immediate: true }));
    expect(report.survivors).toEqual([]);
    expect(os.calls.filter((call) => call.tree && call.pid === pid(d, 'root'))).toEqual([]);
    expect(os.killOrder.filter((target) => target === pid(d, 'root'))).toHaveLength(2);
    const never = [pid(d, 'preLaunchOrphan'), pid(d, 'reusedWorkerPid'), pid(d, 'childOfReused'), pid(d, 'childOfDeadPid'), pid(d, 'reusedWithinInterval'), ...pids(d, 'decoys')];
    for (const target of never) {
      expect(os.victims).not.toContain(target);
      expect(os.calls.map((call) => call.pid)).not.toContain(target);
    }
    expect(sorted(os.victims)).toEqual(sorted([pid(d, 'root'), pid(d, 'conhost'), pid(d, 'webuiBat'), pid(d, 'python'), ...pids(d, 'liveWorkers')]));
  });

  test('a starting process with an empty name is killed and reported as "other"', async () => {
    const e = loadScenario('e-empty-names.json');
    const tracker = trackerAfter(e, e.stopStartsAt);
    const os = new FakeWindows(e);
    const report = await terminateWindows(tracker, os.options({ immediate: true }));
    expect(os.killOrder).toContain(pid(e, 'unnamedWorker'));
    expect(os.killOrder).not.toContain(pid(e, 'unnamedStranger'));
    expect(report.survivors).toEqual([]);
    const killed = new Map(report.killed.map((entry) => [entry.pid, entry]));
    expect(killed.get(pid(e, 'unnamedWorker'))).toMatchObject({ name: '', role: 'other', signal: 'SIGKILL' });
    expect(killed.get(pid(e, 'python'))).toMatchObject({ name: 'python.exe', role: 'python' });
  });

  test('a pid taskkill cannot end (access denied) is reported as a survivor with the reason, after the confirmation timeout', async () => {
    const a = loadScenario('a-healthy-tree.json');
    const tracker = trackerAfter(a, a.stopStartsAt);
    const os = new FakeWindows(a);
    const stubborn = (pids(a, 'workers')[1]) as number;
    os.denied.add(stubborn);
    const report = await terminateWindows(tracker, os.options({ immediate: true, confirmTimeoutMs: 1000 }));
    expect(report.survivors).toEqual([{ pid: stubborn, name: 'python.exe', role: 'python', reason: expect.stringMatching(/access denied.*Access is denied/) }]);
    expect(report.killed.map((entry) => entry.pid)).not.toContain(stubborn);
    expect(report.killed).toHaveLength(7);
    expect(report.durationMs).toBeGreaterThanOrEqual(1000);
    // It was retried every round until the timeout, never reported dead.
    expect(os.killOrder.filter((target) => target === stubborn).length).toBeGreaterThan(1);
  });

  test('a process that was terminated but stays listed (stuck in a driver call) is a survivor, reported as such', async () => {
    const a = loadScenario('a-healthy-tree.json');
    const tracker = trackerAfter(a, a.stopStartsAt);
    const os = new FakeWindows(a);
    os.lingering.add(pid(a, 'python'));
    const report = await terminateWindows(tracker, os.options({ immediate: true }));
    expect(report.survivors).toEqual([{ pid: pid(a, 'python'), name: 'python.exe', role: 'python', reason: expect.stringMatching(/terminated but still listed/) }]);
  });

  test('a tree that leaves after the polite request needs no kill at all', async () => {
    const a = loadScenario('a-healthy-tree.json');
    const tracker = trackerAfter(a, a.stopStartsAt);
    const os = new FakeWindows(a);
    const tree = [pid(a, 'root'), pid(a, 'conhost'), pid(a, 'webuiBat'), pid(a, 'python'), ...pids(a, 'workers')];
    const report = await terminateWindows(tracker, os.options({ beforeSignals: async () => os.exit(tree), politeWaitMs: 500 }));
    expect(os.calls).toEqual([]);
    expect(report.survivors).toEqual([]);
    expect(report.escalated).toBe(false);
    expect(sorted(report.killed.map((entry) => entry.pid))).toEqual(sorted(tree));
    expect(report.killed.every((entry) => entry.signal === 'none')).toBe(true);
  });

  test('a second Ctrl-C (shouldHurry) cuts the polite wait short', async () => {
    const a = loadScenario('a-healthy-tree.json');
    const tracker = trackerAfter(a, a.stopStartsAt);
    const os = new FakeWindows(a);
    const report = await terminateWindows(tracker, os.options({ beforeSignals: async () => undefined, politeWaitMs: 60_000, shouldHurry: () => os.clock >= 200 }));
    expect(report.survivors).toEqual([]);
    expect(os.clock).toBeLessThan(1000);
  });

  test('a failing polite request is ignored and the kills follow', async () => {
    const a = loadScenario('a-healthy-tree.json');
    const tracker = trackerAfter(a, a.stopStartsAt);
    const os = new FakeWindows(a);
    const report = await terminateWindows(tracker, os.options({ beforeSignals: async () => Promise.reject(new Error('ECONNREFUSED')), politeWaitMs: 200 }));
    expect(report.survivors).toEqual([]);
    expect(os.killOrder[0]).toBe(pid(a, 'root'));
  });

  test('a tree whose controller was force-closed is stopped from the persisted record, though its root cmd.exe is gone', async () => {
    const f = loadScenario('f-controller-closed.json');
    const persisted = JSON.stringify(trackerAfter(f, 2));
    const restored = WindowsTreeTracker.fromRecord(JSON.parse(persisted), { protectedPids: PROTECTED });
    const os = new FakeWindows(f);
    const report = await terminateWindows(restored, os.options({ immediate: true }));
    expect(os.killOrder).toEqual([pid(f, 'webuiBat'), pid(f, 'conhost'), pid(f, 'python'), ...pids(f, 'workers')]);
    expect(report.survivors).toEqual([]);
    for (const never of [pid(f, 'newWarden'), ...pids(f, 'decoys')]) expect(os.victims).not.toContain(never);
  });
});

describe('Windows kill executors', () => {
  const FAKE_TASKKILL = resolve(FIXTURES, 'fake-taskkill.sh');

  test('taskkill is called per pid with /F, /T only for tree passes, and its exit code becomes the outcome', async () => {
    const killer = taskkillExecutor({ command: FAKE_TASKKILL });
    expect(await killer.kill(9120)).toMatchObject({ outcome: 'killed', detail: expect.stringContaining('args: /pid 9120 /F') });
    expect(await killer.killTree?.(9244)).toMatchObject({ outcome: 'killed', detail: expect.stringContaining('args: /pid 9244 /T /F') });
    expect(await killer.kill(404)).toMatchObject({ outcome: 'gone' });
    expect(await killer.kill(5)).toMatchObject({ outcome: 'denied', detail: expect.stringContaining('Access is denied') });
    expect(await killer.kill(7)).toMatchObject({ outcome: 'failed', detail: expect.stringContaining('could not be completed') });
  });

  test('a taskkill without /T (Wine) offers no tree pass, and a missing taskkill is a failure, not a throw', async () => {
    expect(taskkillExecutor({ command: FAKE_TASKKILL, tree: false }).killTree).toBeUndefined();
    const missing = await taskkillExecutor({ command: resolve(FIXTURES, 'no-such-taskkill') }).kill(9120);
    expect(missing.outcome).toBe('failed');
    expect(missing.detail).toMatch(/no-such-taskkill/);
  });

  test('process.kill ends a real process', async () => {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: ChildProcess handle (pid).   Cleanup handled by: the test kills it through the executor under test, afterEach by its handle.   Known risks: none past the test.
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      const exited = new Promise((done) => child.once('exit', done));
      const killer = processKillExecutor();
      expect(killer.killTree).toBeUndefined();
      expect(await killer.kill(child.pid as number)).toEqual({ outcome: 'killed' });
      // Not killed again after the exit: the pid is no longer ours to signal.
      expect(await exited).toBe(null);
      expect(child.signalCode).toBe('SIGKILL');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
