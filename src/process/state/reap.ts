// Reaping what earlier runs left: every registry record, then every stale marker of an instance we manage.
// On Windows only registry records that carry the tree tracker's record can be reaped (see restoreWindowsTree).
import { launchCgroupOf } from '../posix/cgroup.js';
import { currentBootId, fromAnotherBoot } from '../posix/boot.js';
import { collectOwned, findMarked, parseMarker } from '../ownership.js';
import { readEnvironVariable } from '../posix/procfs.js';
import { STATE_DIR_VARIABLE } from '../types.js';
import type { CollectOptions, OwnedProcess, OwnerRecord } from '../ownership.js';
import type { LaunchRecord, Registry } from './registry.js';
import { classifyRole } from '../roles.js';
import { snapshot } from '../snapshot.js';
import { terminate } from '../terminate.js';
import type { KilledProcess, Survivor, TerminationReport } from '../report.js';
import type { TerminateOptions } from '../terminate-options.js';
import type { ProcessInfo, ProcessRole, ProcessTable } from '../types.js';
import { WindowsTreeTracker, terminateWindows } from '../windows/index.js';
import type { WindowsTerminateOptions } from '../windows/index.js';

export interface ReapOptions {
  /** The state directory's registry; records whose trees are confirmed dead are removed from it. */
  registry: Registry;
  /** The instance ids this supervisor manages: only their stale markers are reaped. */
  instanceIds: Iterable<string>;
  /** Markers of launches the current supervisor runs right now: never reaped, never reported. */
  liveMarkers?: ReadonlySet<string>;
  /** List what would be killed and signal nothing (records are kept). */
  dryRun?: boolean;
  /** Grace between SIGTERM and SIGKILL, passed to terminate. Default 5000. */
  graceMs?: number;
  /** Process-table reader; defaults to `snapshot()`. */
  readTable?: () => Promise<ProcessTable>;
  /** Marker reader (tests and other platforms); defaults to /proc/PID/environ. */
  readMarker?: CollectOptions['readMarker'];
  /**
   * The state directory of the supervisor reaping. When set, a stale marker counts as managed only if its carrier
   * was launched from this directory (`WARDEN_STATE_DIR`); another directory's trees are left alone.
   */
  stateDir?: string;
  /** How many trees are stopped at once. Default 4. */
  concurrency?: number;
  /** Whose rules apply: `win32` reaps from Windows tree records only. Default `process.platform` (tests replay win32). */
  platform?: NodeJS.Platform;
  /** Windows: passed to each `terminateWindows` (tests inject a killer and a clock). */
  windows?: WindowsTerminateOptions;
  /** Windows: pids a restored tree never owns. Default 0 (Idle), 4 (System) and this process. */
  protectedPids?: Iterable<number>;
}

/** One process found for a marker. */
export interface FoundProcess {
  pid: number;
  name: string;
  role: ProcessRole;
}

/**
 * One marker's leftovers and what was done:
 * `reaped` (terminated; see survivors), `would-reap` (dry run), `left-alone` (an instance we do not manage),
 * `nothing-left` (a registry record whose tree was already gone), `unprovable` (Windows: a registry record that
 * cannot prove which processes are its tree; nothing is killed, the record is kept, `problem` says why).
 */
export interface ReapEntry {
  marker: string;
  instanceId: string;
  /** How we know it is ours: a registry record, a stale marker of a managed instance, or neither (unmanaged). */
  source: 'registry' | 'stale-marker' | 'unmanaged';
  action: 'reaped' | 'would-reap' | 'left-alone' | 'nothing-left' | 'unprovable';
  found: FoundProcess[];
  killed: KilledProcess[];
  survivors: Survivor[];
  /** Whether the registry record was removed (registry entries only). */
  recordRemoved?: boolean;
  /** Why ownership cannot be proven (`unprovable` only), in words a user can act on. */
  problem?: string;
  /** Set when the record was written under another kernel boot: nothing was signalled, the record is forgotten. */
  staleBoot?: { recorded: string; now: string };
}

/** Everything a reap saw and did; `survivors` empty is the only success, read back from the table. */
export interface ReapReport {
  dryRun: boolean;
  entries: ReapEntry[];
  /** Every survivor of every reaped marker. */
  survivors: Array<Survivor & { marker: string }>;
  durationMs: number;
}

// Kills what earlier runs left (registry records, then stale markers of managed instances) and reports per marker.
export async function reapLeftovers(options: ReapOptions): Promise<ReapReport> {
  const started = performance.now();
  const readTable = options.readTable ?? (() => snapshot({ cmdline: true }));
  const collectOptions: CollectOptions = options.readMarker === undefined ? {} : { readMarker: options.readMarker };
  const terminateOptions: TerminateOptions = {
    ...(options.graceMs !== undefined && { graceMs: options.graceMs }),
    ...(options.readTable !== undefined && { readTable: options.readTable }),
    ...(options.readMarker !== undefined && { readMarker: options.readMarker }),
  };
  const dryRun = options.dryRun === true;
  const live = options.liveMarkers ?? new Set<string>();
  const managed = new Set(options.instanceIds);
  const concurrency = options.concurrency ?? 4;

  const onWindows = (options.platform ?? process.platform) === 'win32';

  // (a) Registry records: terminate re-proves ownership (root identity, marker, group), so a reused pid is never touched.
  const records = options.registry.list().filter((record) => !live.has(record.marker));
  const before = await readTable();
  const fromRegistry = await mapLimit(records, concurrency, async (record): Promise<ReapEntry> => {
    if (fromAnotherBoot(record.bootId)) return forgetPreviousBoot(record, dryRun, options.registry);
    if (onWindows) return reapWindowsRecord(record, before, options);
    const found = collectOwned(record, before, collectOptions).map(foundProcess);
    return reapRecordTree(record, found, dryRun, options.registry, () => terminate(record, terminateOptions));
  });

  // (b) Stale markers: carried by live processes, not a live launch of ours, not handled through the registry above.
  // Decision: markers of instance ids we do not manage are reported but never killed: they may belong to another
  // supervisor running with another stateDir, and a marker proves "Warden", not "this Warden".
  // Windows has no environment a process can read from another one: no markers, so this stage finds nothing there,
  // and reading /proc paths on Windows could only find something else (under Wine, Z:\proc is the Linux host's).
  const handled = new Set([...live, ...records.map((record) => record.marker)]);
  if (onWindows) return report(dryRun, fromRegistry, started);
  const table = dryRun ? before : await readTable();
  const byMarker = new Map<string, ProcessInfo[]>();
  for (const [pid, marker] of findMarked(table, collectOptions)) {
    const info = table.processes.get(pid);
    if (info === undefined || handled.has(marker)) continue;
    const group = byMarker.get(marker);
    if (group === undefined) byMarker.set(marker, [info]);
    else group.push(info);
  }
  const fromMarkers = await mapLimit([...byMarker], concurrency, async ([marker, members]): Promise<ReapEntry> => {
    const instanceId = parseMarker(marker)?.instanceId ?? '';
    const isManaged = managed.has(instanceId) && fromThisStateDir(members, options.stateDir);
    const owner = staleOwner(instanceId, marker, members);
    // Managed: what terminate would take (the carriers plus their unmarked descendants). Unmanaged: just the carriers.
    const found = (isManaged ? collectOwned(owner, table, collectOptions) : []).map(foundProcess);
    const entry: ReapEntry = {
      marker,
      instanceId,
      source: isManaged ? 'stale-marker' : 'unmanaged',
      action: isManaged ? (dryRun ? 'would-reap' : 'reaped') : 'left-alone',
      found: isManaged ? found : members.map((info) => foundProcess({ info, role: classifyRole(info) })),
      killed: [],
      survivors: [],
    };
    if (!isManaged || dryRun) return entry;
    const report = await terminate(owner, terminateOptions);
    entry.killed = report.killed;
    entry.survivors = report.survivors;
    return entry;
  });

  return report(dryRun, [...fromRegistry, ...fromMarkers], started);
}

function report(dryRun: boolean, entries: ReapEntry[], started: number): ReapReport {
  const survivors = entries.flatMap((entry) => entry.survivors.map((survivor) => ({ ...survivor, marker: entry.marker })));
  return { dryRun, entries, survivors, durationMs: performance.now() - started };
}

// Windows: stops what a record's tree tracker still proves ours (immediate: nobody is left to ask politely), or says
// why nothing can be proven. Never falls back to the root pid alone or to names.
async function reapWindowsRecord(record: LaunchRecord, table: ProcessTable, options: ReapOptions): Promise<ReapEntry> {
  const restored = restoreWindowsTree(record, table, options.protectedPids);
  if (!restored.ok) {
    return { marker: record.marker, instanceId: record.instanceId, source: 'registry', action: 'unprovable', problem: restored.problem, found: [], killed: [], survivors: [], recordRemoved: false };
  }
  const { tracker } = restored;
  return reapRecordTree(record, restored.owned.map(foundProcess), options.dryRun === true, options.registry, () =>
    terminateWindows(tracker, { ...(options.readTable !== undefined && { readTable: options.readTable }), ...options.windows, immediate: true }),
  );
}

// One registry record once its tree is known: nothing left, would-reap (dry run), or stopped. The record is
// forgotten only once its tree is confirmed dead; otherwise the next reap tries again.
// A record from before a reboot: its pids and start times name nothing of ours (every process of that boot is gone,
// and a pid, start time or process group may match a new process by chance), so nothing is signalled; it is forgotten.
async function forgetPreviousBoot(record: LaunchRecord, dryRun: boolean, registry: ReapOptions['registry']): Promise<ReapEntry> {
  const entry: ReapEntry = {
    marker: record.marker,
    instanceId: record.instanceId,
    source: 'registry',
    action: 'nothing-left',
    found: [],
    killed: [],
    survivors: [],
    staleBoot: { recorded: record.bootId as string, now: currentBootId() as string },
  };
  if (!dryRun) entry.recordRemoved = await registry.remove(record.marker);
  return entry;
}

async function reapRecordTree(record: LaunchRecord, found: FoundProcess[], dryRun: boolean, registry: ReapOptions['registry'], stop: () => Promise<TerminationReport>): Promise<ReapEntry> {
  const entry: ReapEntry = { marker: record.marker, instanceId: record.instanceId, source: 'registry', action: found.length === 0 ? 'nothing-left' : dryRun ? 'would-reap' : 'reaped', found, killed: [], survivors: [] };
  if (dryRun) return entry;
  if (found.length > 0) {
    const report = await stop();
    entry.killed = report.killed;
    entry.survivors = report.survivors;
  }
  entry.recordRemoved = entry.survivors.length === 0 && (await registry.remove(record.marker));
  return entry;
}

/** A launch's Windows tree rebuilt from its registry record, brought up to date with a listing; or why it cannot be. */
export type RestoredWindowsTree =
  | { ok: true; tracker: WindowsTreeTracker; owned: OwnedProcess[] }
  | { ok: false; problem: string };

// Rebuilds the tree tracker from the record and observes `table`: `owned` is what is alive and provably ours now.
//
// The record may be hours old. A process first listed now whose creator is no longer alive may be the child of a
// pid reused meanwhile, so the restored tracker first sees only what the record knew alive (deaths and reused
// pids are settled there), and only then the whole table: a newcomer is adopted only when its creator is a live
// member. (A child created in the gap by a member that died in the gap is therefore not taken: missed, never
// mistaken.)
export function restoreWindowsTree(record: LaunchRecord, table: ProcessTable, protectedPids?: Iterable<number>): RestoredWindowsTree {
  const windows = record.windows;
  if (windows === undefined) {
    return {
      ok: false,
      problem:
        `ownership cannot be proven on Windows: the record has no Windows tree record (written by an older Warden, or on ` +
        `another system), Windows has no environment marker another process can read, and the root pid ${record.root.pid} ` +
        'alone proves nothing (Windows reuses pids quickly). Nothing was killed, and nothing is ever matched by name: ' +
        'check the processes with Task Manager (Details), end the tree by pid, then `warden reap --forget <marker>`.',
    };
  }
  let tracker: WindowsTreeTracker;
  try {
    tracker = WindowsTreeTracker.fromRecord(windows, protectedPids === undefined ? {} : { protectedPids });
  } catch (error) {
    return { ok: false, problem: `ownership cannot be proven: ${(error as Error).message}. Nothing was killed.` };
  }
  if (!windows.members.some((member) => member.proof === 'root')) {
    return {
      ok: false,
      problem:
        `ownership cannot be proven: the supervisor was gone before it ever listed this tree, so the record knows no ` +
        `process but the root pid ${record.root.pid}, which alone proves nothing on Windows. Nothing was killed. ` +
        'Check with Task Manager (Details), end what is left by pid, then `warden reap --forget <marker>`.',
    };
  }
  const knownAlive = new Set<number>([
    ...windows.members.filter((member) => member.goneAt === undefined).map((member) => member.pid),
    ...windows.foreign.map((sighting) => sighting.pid),
  ]);
  const processes = new Map([...table.processes].filter(([pid]) => knownAlive.has(pid)));
  tracker.observe({ backend: table.backend, takenAt: table.takenAt, processes });
  return { ok: true, tracker, owned: tracker.owned(table) };
}

// Whether the marker's carriers were launched by a supervisor of `stateDir` (always true when none is given).
function fromThisStateDir(members: ProcessInfo[], stateDir: string | undefined): boolean {
  if (stateDir === undefined) return true;
  return members.some((info) => readEnvironVariable(info.pid, STATE_DIR_VARIABLE) === stateDir);
}

// An owner record for a stale marker: rooted at its oldest carrier, so the marker proof (started no earlier than
// the root) covers every carrier; its group too when that carrier leads one (as launch() makes the root do).
function staleOwner(instanceId: string, marker: string, members: ProcessInfo[]): OwnerRecord {
  const oldest = members.reduce((a, b) => ((b.startTime ?? Infinity) < (a.startTime ?? Infinity) || (b.startTime === a.startTime && b.pid < a.pid) ? b : a));
  // A carrier inside its launch cgroup (the cgroup backend): the cgroup is the owned set, clean-env members too.
  const cgroup = members.map((info) => launchCgroupOf(info.pid, marker)).find((path) => path !== undefined);
  return {
    instanceId,
    marker,
    root: { pid: oldest.pid, startTime: oldest.startTime },
    ...(oldest.pgid !== undefined && oldest.pgid === oldest.pid && { pgid: oldest.pgid }),
    ...(cgroup !== undefined && { cgroup }),
  };
}

function foundProcess(owned: Pick<OwnedProcess, 'info' | 'role'>): FoundProcess {
  return { pid: owned.info.pid, name: owned.info.name, role: owned.role };
}

// Runs `work` over `items` with at most `limit` at once, keeping the input order in the result.
async function mapLimit<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
