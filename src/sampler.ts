// The RxJS sampler: interval → process table (never overlapping) → per-instance counts, stale and foreign processes.
import { EMPTY, Observable, catchError, defer, exhaustMap, interval, share, startWith } from 'rxjs';
import { MARKER_VARIABLE, STATE_DIR_VARIABLE, classifyRole, collectOwned, findMarked, parseMarker, readEnvironVariable, snapshot } from './process/index.js';
import { lookalikeCandidates, lookalikesAmong } from './process/lookalikes.js';
import { cgroup2MountsCovering } from './process/posix/cgroup.js';
import { hasProcfs } from './process/posix/procfs.js';
import type { Lookalike, LookalikeMemo, LookalikeProfile, OwnedProcess, OwnerRecord, ProcessRole, ProcessTable } from './process/index.js';
import type { WindowsTreeTracker } from './process/windows/index.js';

/** Counts of one instance's owned processes. */
export interface RoleCounts {
  python: number;
  shell: number;
  other: number;
  total: number;
}

/** Processes carrying one of our instances' markers that belong to no live launch: left by an earlier launch or run. */
export interface StaleGroup {
  instanceId: string;
  marker: string;
  processes: Array<{ pid: number; ppid: number; name: string; role: ProcessRole; startTime: number | undefined }>;
}

/** One reading of the process table, as the watchdog and the dashboard see it. */
export interface Sample {
  at: number;
  /** Totals over every instance's owned processes plus stale ones (foreign look-alikes are counted apart). */
  counts: { python: number; shell: number; total: number; stale: number; foreign: number };
  perInstance: Record<string, RoleCounts>;
  stale: StaleGroup[];
  foreign: Lookalike[];
  /** The smallest total seen within the emergency window (for the doubling rule). */
  windowMin: { total: number; at: number };
  /** How long the read and classification took. */
  durationMs: number;
}

/** What the sampler needs to know about each configured instance at sampling time. */
export interface SampledInstance {
  id: string;
  /** The live launch, if any. */
  owner: OwnerRecord | undefined;
  /** Windows: the live launch's tree tracker; it proves ownership there (and sees every sampled table). */
  windows?: WindowsTreeTracker | undefined;
  profile: LookalikeProfile;
}

export interface SamplerOptions {
  intervalMs: number;
  emergencyWindowMs: number;
  /** Read at each sample: the configured instances and their live launches. */
  instances: () => SampledInstance[];
  /** This supervisor's state directory: only trees launched from it can be stale here. */
  stateDir?: string;
  /** Markers of launches that are live or being launched right now (never stale). */
  liveMarkers: () => ReadonlySet<string>;
  /** Reads the table; defaults to snapshot(). */
  readTable?: () => Promise<ProcessTable>;
  /**
   * Sees each raw table after classification (the runtime re-identifies shell and Python from it), with each
   * instance's owned set and the instances as they stood when the read began (the launches this table may show).
   */
  onTable?: (table: ProcessTable, ownedById: ReadonlyMap<string, OwnedProcess[]>, instances: readonly SampledInstance[]) => void;
  /** Told about a sample that failed (a process listing that could not be read); sampling goes on at the next tick. */
  onSampleError?: (error: unknown) => void;
}

const emptyCounts = (): RoleCounts => ({ python: 0, shell: 0, other: 0, total: 0 });

// A shell counts as a shell parent only when its parent is not a shell of the same set: `$(...)` subshells and
// other forks of a wrapper are part of that wrapper, not another wrapper (webui.sh forks several while starting).
function countedRole(role: ProcessRole, ppid: number, shells: ReadonlySet<number>): ProcessRole {
  return role === 'shell' && shells.has(ppid) ? 'other' : role;
}

// Classifies one table: owned counts per instance, stale marked groups, foreign look-alikes.
export function classifyTable(
  table: ProcessTable,
  instances: SampledInstance[],
  liveMarkers: ReadonlySet<string>,
  stateDir?: string,
  readMarker?: (pid: number) => string | undefined,
  memo: LookalikeMemo = new Map(),
): Pick<Sample, 'perInstance' | 'stale' | 'foreign'> & { counted: Set<number>; ownedById: Map<string, OwnedProcess[]> } {
  const perInstance: Record<string, RoleCounts> = {};
  const ownedById = new Map<string, OwnedProcess[]>();
  const counted = new Set<number>();
  // Every marker is read once per table, then shared by every instance's ownership proof.
  const markers = findMarked(table, readMarker === undefined ? {} : { readMarker });
  const markerOf = (pid: number): string | undefined => markers.get(pid);
  // mountinfo is read again only for a launch cgroup the last read does not cover (cgroup2MountsCovering).
  for (const instance of instances) {
    const counts = emptyCounts();
    if (instance.owner !== undefined) {
      // Windows: every pid ever seen in the tree, orphans with a dead parent's ppid included (no markers there).
      const owned =
        instance.windows !== undefined
          ? instance.windows.owned(table)
          : collectOwned(instance.owner, table, {
              readMarker: markerOf,
              ...(instance.owner.cgroup !== undefined && table.backend === 'proc' && { cgroupMounts: cgroup2MountsCovering(instance.owner.cgroup) }),
            });
      ownedById.set(instance.id, owned);
      const shells = new Set(owned.filter((entry) => entry.role === 'shell').map((entry) => entry.info.pid));
      for (const entry of owned) {
        if (counted.has(entry.info.pid)) continue;
        counted.add(entry.info.pid);
        counts[countedRole(entry.role, entry.info.ppid, shells)] += 1;
        counts.total += 1;
      }
    }
    perInstance[instance.id] = counts;
  }
  const managed = new Set(instances.map((instance) => instance.id));
  const staleByMarker = new Map<string, StaleGroup>();
  const markedPids = new Set<number>();
  for (const [pid, marker] of markers) {
    markedPids.add(pid);
    if (counted.has(pid) || liveMarkers.has(marker)) continue;
    const parsed = parseMarker(marker);
    // Markers of instances we do not manage may belong to another supervisor: never ours to reap.
    if (parsed === undefined || !managed.has(parsed.instanceId)) continue;
    // Same id, another state directory: another supervisor's tree, never ours to reap.
    if (stateDir !== undefined && readEnvironVariable(pid, STATE_DIR_VARIABLE) !== stateDir) continue;
    const info = table.processes.get(pid);
    if (info === undefined) continue;
    let group = staleByMarker.get(marker);
    if (group === undefined) staleByMarker.set(marker, (group = { instanceId: parsed.instanceId, marker, processes: [] }));
    group.processes.push({ pid, ppid: info.ppid, name: info.name, role: classifyRole(info), startTime: info.startTime });
  }
  const foreign: Lookalike[] = [];
  const seenForeign = new Set<number>();
  // One pass over the table for every instance's look-alike check, not one per instance.
  const candidates = lookalikeCandidates(table, markedPids, memo);
  for (const instance of instances) {
    for (const lookalike of lookalikesAmong(candidates, instance.profile)) {
      if (seenForeign.has(lookalike.pid)) continue;
      seenForeign.add(lookalike.pid);
      foreign.push(lookalike);
    }
  }
  return { perInstance, stale: [...staleByMarker.values()], foreign, counted, ownedById };
}


// A stream of samples every `intervalMs`; a slow read skips ticks instead of piling up (exhaustMap).
export function createSampler(options: SamplerOptions): Observable<Sample> {
  // argv is read later only for the few shells and Pythons that might be look-alikes.
  const readTable = options.readTable ?? (() => snapshot({ cmdline: false, uid: false }));
  const history: Array<{ at: number; total: number }> = [];
  // A process's marker comes from its environment at exec: cached per pid with its start time and name (an exec
  // changes the name), so a steady table costs no environment reads and no allocation. terminate() never uses it.
  const markerCache = new Map<number, { startTime: number | undefined; name: string; marker: string | undefined }>();
  const lookalikeMemo: LookalikeMemo = new Map();
  const sampleOnce = async (): Promise<Sample> => {
    const started = performance.now();
    // The launches as they stand when the read begins: one made during the read may be missing from this table
    // (a Windows tree tracker would take its root for dead), so it is neither counted nor fed this table.
    const instances = options.instances();
    const table = await readTable();
    const cachedMarker = (pid: number): string | undefined => {
      const info = table.processes.get(pid);
      const cached = markerCache.get(pid);
      if (cached !== undefined && info !== undefined && cached.startTime === info.startTime && cached.name === info.name) return cached.marker;
      const marker = readEnvironVariable(pid, MARKER_VARIABLE);
      if (info !== undefined) markerCache.set(pid, { startTime: info.startTime, name: info.name, marker });
      return marker;
    };
    const { perInstance, stale, foreign, ownedById } = classifyTable(table, instances, options.liveMarkers(), options.stateDir, hasProcfs ? cachedMarker : undefined, lookalikeMemo);
    options.onTable?.(table, ownedById, instances);
    // Pids gone from the table leave both caches (a reused pid brings a new start time anyway).
    for (const pid of markerCache.keys()) if (!table.processes.has(pid)) markerCache.delete(pid);
    for (const pid of lookalikeMemo.keys()) if (!table.processes.has(pid)) lookalikeMemo.delete(pid);
    let python = 0;
    let shell = 0;
    let total = 0;
    for (const counts of Object.values(perInstance)) {
      python += counts.python;
      shell += counts.shell;
      total += counts.total;
    }
    let staleCount = 0;
    for (const group of stale) {
      const shells = new Set(group.processes.filter((entry) => entry.role === 'shell').map((entry) => entry.pid));
      for (const entry of group.processes) {
        staleCount += 1;
        total += 1;
        const role = countedRole(entry.role, entry.ppid, shells);
        if (role === 'python') python += 1;
        if (role === 'shell') shell += 1;
      }
    }
    const at = table.takenAt;
    history.push({ at, total });
    while (history.length > 0 && (history[0]?.at ?? at) < at - options.emergencyWindowMs) history.shift();
    let windowMin = { total, at };
    for (const entry of history) if (entry.total < windowMin.total) windowMin = entry;
    return {
      at,
      counts: { python, shell, total, stale: staleCount, foreign: foreign.length },
      perInstance,
      stale,
      foreign,
      windowMin,
      durationMs: performance.now() - started,
    };
  };
  return interval(options.intervalMs).pipe(
    startWith(-1),
    // One failed read skips one sample: a watchdog that stops sampling for good would guard nothing.
    exhaustMap(() =>
      defer(sampleOnce).pipe(
        catchError((error: unknown) => {
          options.onSampleError?.(error);
          return EMPTY;
        }),
      ),
    ),
    share(),
  );
}
