// The Windows strategy of the stop protocol: ownership by every pid ever seen in the tree, then per-pid taskkill.
//
// Windows never reparents: an orphan keeps its dead parent's pid as ppid, so a walk down from the live
// cmd.exe misses it. The tracker therefore remembers every process that ever was (transitively) a child
// of the root, follows ppid through dead parents, and uses the listing in which a pid first appeared as
// its creation order, because Windows reuses pids quickly and fastlist gives no start time.
import { setTimeout as sleepFor } from 'node:timers/promises';
import { execa } from 'execa';
import { WardenError } from './errors.js';
import type { OwnedProcess } from './ownership.js';
import { classifyRole } from './roles.js';
import { nextReadSequence, snapshot } from './snapshot.js';
import { spawnTethered } from './tethered.js';
import type { KilledProcess, Survivor, TerminationReport } from './terminate.js';
import type { ProcessIdentity, ProcessInfo, ProcessTable } from './types.js';

/** One process the tracker proved ours, alive or dead: plain data, persisted in the registry. */
export interface TrackedProcess {
  pid: number;
  /** The creator's pid at creation time; Windows never changes it, even when the creator dies. */
  ppid: number;
  /** Image name; `''` until a listing gives it (fastlist shows starting processes without one). */
  name: string;
  /** Start time in the table's unit, when the reader gives one (fastlist does not). */
  startTime: number | undefined;
  /** Index of the listing that first showed it: the creation-order proxy. */
  firstSeen: number;
  /** Index of the last listing that showed it alive; -1 if never seen (a root that died before the first listing). */
  lastSeen: number;
  /** `takenAt` of that listing. */
  lastSeenAt: number | undefined;
  /** Index of the first listing that no longer showed it (or showed its pid held by another process); `undefined` while alive. */
  goneAt: number | undefined;
  /** Distance from the root; 0 for the root. */
  depth: number;
  /** `root`: the process we spawned; `tree`: created by a process already proven ours. */
  proof: 'root' | 'tree';
}

/** A live process judged not ours whose pid or ppid collides with a member's: kept so a restore cannot adopt it. */
export interface ForeignSighting {
  pid: number;
  ppid: number;
  name: string;
  firstSeen: number;
}

/** Everything the tracker knows, as JSON-safe data (`JSON.stringify(tracker)` produces it). */
export interface WindowsTreeRecord {
  version: 1;
  root: ProcessIdentity;
  /** How many listings were observed (the next listing gets this index). */
  listings: number;
  /** `takenAt` of the last observed listing (diagnostics: how fresh the record is). */
  lastTakenAt: number | undefined;
  /** Every process ever proven ours, alive or dead, in the order they were adopted. */
  members: TrackedProcess[];
  foreign: ForeignSighting[];
  /** True when the root is Warden's job launcher, holding a kill-on-close Job Object around the tree. */
  job?: boolean;
}

/** How to build a tracker. */
export interface WindowsTreeTrackerOptions {
  /** The `cmd.exe` we spawned (its pid; a start time only helps when the reader provides start times). */
  root: ProcessIdentity;
  /** A listing read just before the spawn: everything in it is older than the root, hence never ours. */
  baseline?: ProcessTable;
  /** Pids never owned whatever the table says. Default: 0 (Idle), 4 (System) and this process. */
  protectedPids?: Iterable<number>;
  /** The root is Warden's job launcher (job-launcher.ts): ending it ends the whole tree, so it goes first. */
  job?: boolean;
  /** Tables whose read began before this `ProcessTable.sequence` (taken right after the spawn) predate the root: never observed. */
  readsFrom?: number;
}

// Internal: the latest process seen at one pid, ours (member) or not.
interface Sighting {
  pid: number;
  ppid: number;
  name: string;
  startTime: number | undefined;
  firstSeen: number;
  lastSeen: number;
  goneAt: number | undefined;
  member: TrackedProcess | undefined;
}

// Wraps a reader so its tables carry the order their reads began (as `snapshot()`'s tables already do);
// trackers skip a table older than one already seen.
export function sequencedReader(readTable: () => Promise<ProcessTable>): () => Promise<ProcessTable> {
  return async () => {
    const sequence = nextReadSequence();
    const table = await readTable();
    table.sequence = sequence;
    return table;
  };
}

// fastlist gives a starting process no name at all (ps-list then reports `name: undefined`, measured under
// Wine 8.0 about one listing in five): every name read from a table goes through this.
const nameOf = (row: ProcessInfo): string => (typeof row.name === 'string' ? row.name : '');

const sameName = (a: string, b: string): boolean => a === '' || b === '' || a.toLowerCase() === b.toLowerCase();

// The sighting that stands for a member at its pid.
const memberSighting = (member: TrackedProcess): Sighting => ({
  pid: member.pid, ppid: member.ppid, name: member.name, startTime: member.startTime,
  firstSeen: member.firstSeen, lastSeen: member.lastSeen, goneAt: member.goneAt, member,
});

// Tracks every process ever created under the root, across dead parents, and tells which live ones are ours.
export class WindowsTreeTracker {
  readonly root: ProcessIdentity;
  /** The root holds a kill-on-close Job Object around the tree (see WindowsTreeTrackerOptions.job). */
  readonly job: boolean;
  private readonly protectedPids: Set<number>;
  private readonly members: TrackedProcess[] = [];
  private readonly memberPids = new Set<number>();
  private readonly latest = new Map<number, Sighting>();
  private listingCount = 0;
  private lastTakenAt: number | undefined;
  private rootPending = true;
  private readonly observedTables = new WeakSet<ProcessTable>();
  private reading: Promise<unknown> = Promise.resolve();
  private lastSequence = 0;

  constructor(options: WindowsTreeTrackerOptions) {
    const pid = options.root.pid;
    if (!Number.isInteger(pid) || pid <= 0) {
      throw new WardenError('INVALID_OPTION', `WindowsTreeTracker: "root.pid" must be a positive integer, received ${String(pid)}`);
    }
    this.root = { ...options.root };
    this.job = options.job === true;
    this.protectedPids = new Set(options.protectedPids ?? [0, 4, process.pid]);
    if (options.baseline !== undefined) {
      // Everything alive before the spawn is older than the root: remembered as foreign.
      const index = this.beginListing(options.baseline);
      // A table whose read began before the baseline's knows nothing of the root: never observed.
      if (options.baseline.sequence !== undefined) this.lastSequence = options.baseline.sequence;
      for (const info of options.baseline.processes.values()) this.latest.set(info.pid, this.sighting(info, index, undefined));
    }
    if (options.readsFrom !== undefined) this.lastSequence = Math.max(this.lastSequence, options.readsFrom);
  }

  // Rebuilds a tracker from `toJSON()` output (e.g. read back from the registry); throws naming the bad field.
  static fromRecord(record: unknown, options: { protectedPids?: Iterable<number> } = {}): WindowsTreeTracker {
    const valid = parseRecord(record);
    const tracker = new WindowsTreeTracker({ root: valid.root, job: valid.job === true, ...(options.protectedPids !== undefined && { protectedPids: options.protectedPids }) });
    tracker.listingCount = valid.listings;
    tracker.lastTakenAt = valid.lastTakenAt;
    tracker.rootPending = !valid.members.some((member) => member.proof === 'root');
    for (const member of valid.members) {
      tracker.remember(member);
      const current = tracker.latest.get(member.pid);
      // The latest generation at a pid wins; members are stored in adoption order.
      if (current === undefined || current.firstSeen <= member.firstSeen) tracker.latest.set(member.pid, memberSighting(member));
    }
    for (const foreign of valid.foreign) {
      const current = tracker.latest.get(foreign.pid);
      if (current !== undefined && current.firstSeen > foreign.firstSeen) continue;
      tracker.latest.set(foreign.pid, {
        ...foreign,
        startTime: undefined,
        lastSeen: valid.listings - 1,
        goneAt: undefined,
        member: undefined,
      });
    }
    return tracker;
  }

  /** How many listings have been observed. */
  get listings(): number {
    return this.listingCount;
  }

  /** How many processes were ever proven ours (never decreases): it changes exactly when `toJSON().members` gains one. */
  get adoptions(): number {
    return this.members.length;
  }

  // Reads a table and observes it, one read at a time per tracker, so concurrent callers never interleave.
  refresh(readTable: () => Promise<ProcessTable>): Promise<ProcessTable> {
    const next = this.reading.then(async () => {
      const table = await readTable();
      this.observe(table);
      return table;
    });
    this.reading = next.catch(() => undefined);
    return next;
  }

  // Records one listing: follows deaths, pid reuse and newcomers; returns the members adopted from it.
  // Listings must come in the order they were read: an older listing would make new members look dead,
  // and when they show again they would be judged as reused pids. Overlapping readers (the sampler and a
  // stop) go through `sequencedReader`, whose older tables are skipped here, or through `refresh`.
  observe(table: ProcessTable): TrackedProcess[] {
    if (this.observedTables.has(table)) return [];
    const sequence = table.sequence;
    if (sequence !== undefined) {
      if (sequence < this.lastSequence) return [];
      this.lastSequence = sequence;
    }
    const index = this.beginListing(table);
    const rows = table.processes;

    // 1. Deaths and continuations of everything we knew alive; a changed ppid/name/start means a new process.
    const candidates = new Map<number, ProcessInfo>();
    for (const sighting of this.latest.values()) {
      if (sighting.goneAt !== undefined) continue;
      const row = rows.get(sighting.pid);
      if (row !== undefined && this.sameProcess(sighting, row)) {
        this.continueSighting(sighting, row, index, table.takenAt);
      } else {
        this.markGone(sighting, index);
      }
    }
    for (const row of rows.values()) {
      const known = this.latest.get(row.pid);
      if (known === undefined || known.goneAt !== undefined) candidates.set(row.pid, row);
    }

    // 2. The root, at the first listing after the spawn: the process at its pid is ours unless its start time differs.
    const adopted: TrackedProcess[] = [];
    if (this.rootPending) {
      this.rootPending = false;
      const row = rows.get(this.root.pid);
      const rootStartComparable = this.root.startTime !== undefined && row?.startTime !== undefined && (this.root.clock ?? 'proc') === table.backend;
      const startMatches = row !== undefined && (!rootStartComparable || row.startTime === this.root.startTime);
      if (row !== undefined && startMatches && !this.protectedPids.has(row.pid)) {
        const previous = this.latest.get(row.pid);
        if (previous !== undefined && previous.goneAt === undefined) this.markGone(previous, index);
        adopted.push(this.adopt(row, index, table.takenAt, 0, 'root'));
        candidates.delete(row.pid);
      } else {
        // Spawned but not listed (or its pid is already someone else's): the root died before this listing.
        const member: TrackedProcess = {
          pid: this.root.pid, ppid: 0, name: '', startTime: this.root.startTime,
          firstSeen: index, lastSeen: -1, lastSeenAt: undefined, goneAt: index, depth: 0, proof: 'root',
        };
        this.remember(member);
        if (row === undefined) this.latest.set(member.pid, memberSighting(member));
      }
    }

    // 3. Newcomers, parents before children (a parent may be new in this same listing).
    let progress = true;
    while (progress && candidates.size > 0) {
      progress = false;
      for (const [pid, row] of candidates) {
        const verdict = this.judge(row, index, candidates);
        if (verdict === 'wait') continue;
        candidates.delete(pid);
        progress = true;
        if (verdict === 'foreign') this.latest.set(pid, this.sighting(row, index, undefined));
        else adopted.push(this.adopt(row, index, table.takenAt, verdict.depth + 1, 'tree'));
      }
    }
    for (const row of candidates.values()) this.latest.set(row.pid, this.sighting(row, index, undefined));

    // 4. Forget dead foreign processes unless their pid was once ours (they can still shadow a dead member).
    for (const [pid, sighting] of this.latest) {
      if (sighting.member === undefined && sighting.goneAt !== undefined && !this.isMemberPid(pid)) this.latest.delete(pid);
    }
    return adopted;
  }

  // The live processes of the table proven ours: tracked cmd.exe parents first, then top-down by depth.
  owned(table: ProcessTable): OwnedProcess[] {
    this.observe(table);
    const owned: OwnedProcess[] = [];
    for (const row of table.processes.values()) {
      const sighting = this.latest.get(row.pid);
      const member = sighting?.member;
      if (sighting === undefined || member === undefined || sighting.goneAt !== undefined || !this.sameProcess(sighting, row)) continue;
      const name = nameOf(row) !== '' ? nameOf(row) : member.name;
      const info: ProcessInfo = { ...row, name };
      owned.push({ info, role: classifyRole(info), proofs: [member.proof], depth: member.depth });
    }
    // The job launcher first (ending it ends the whole job at once), then shells (no relaunch loop), then the rest.
    const rank = (entry: OwnedProcess): number => (this.job && entry.proofs[0] === 'root' ? -1 : entry.role === 'shell' ? 0 : 1);
    const firstSeen = (entry: OwnedProcess): number => this.latest.get(entry.info.pid)?.firstSeen ?? 0;
    owned.sort((a, b) => rank(a) - rank(b) || a.depth - b.depth || firstSeen(a) - firstSeen(b) || a.info.pid - b.info.pid);
    return owned;
  }

  // The live member at a pid (the generation currently holding it), if that process is ours.
  memberAt(pid: number): TrackedProcess | undefined {
    const sighting = this.latest.get(pid);
    return sighting?.goneAt === undefined ? sighting?.member : undefined;
  }

  // Every process ever proven ours, alive or dead (copies), in adoption order.
  history(): TrackedProcess[] {
    return this.members.map((member) => ({ ...member }));
  }

  // The registry's view: plain data that `fromRecord` turns back into an equivalent tracker.
  toJSON(): WindowsTreeRecord {
    const foreign: ForeignSighting[] = [];
    for (const sighting of this.latest.values()) {
      if (sighting.member !== undefined || sighting.goneAt !== undefined) continue;
      if (!this.isMemberPid(sighting.pid) && !this.isMemberPid(sighting.ppid)) continue;
      foreign.push({ pid: sighting.pid, ppid: sighting.ppid, name: sighting.name, firstSeen: sighting.firstSeen });
    }
    return {
      version: 1,
      root: { ...this.root },
      listings: this.listingCount,
      lastTakenAt: this.lastTakenAt,
      members: this.history(),
      foreign: foreign.sort((x, y) => x.pid - y.pid),
      ...(this.job && { job: true }),
    };
  }

  // Whether a newcomer is a child of a member: adopted (with its parent's depth), foreign, or waiting on a new parent.
  private judge(row: ProcessInfo, index: number, pending: Map<number, ProcessInfo>): { depth: number } | 'foreign' | 'wait' {
    if (this.protectedPids.has(row.pid) || row.ppid === row.pid) return 'foreign';
    if (pending.has(row.ppid)) return 'wait';
    const parent = this.latest.get(row.ppid);
    const member = parent?.member;
    if (parent === undefined || member === undefined) return 'foreign';
    // Older than its supposed parent (when the reader gives start times): the parent's pid was reused.
    if (row.startTime !== undefined && member.startTime !== undefined && row.startTime < member.startTime) return 'foreign';
    if (parent.goneAt === undefined) return { depth: member.depth };
    // The parent died in the same interval in which the child appeared: creation order inside one interval is
    // unknown, and a parent that spawns and dies between two listings is the relaunch race, so the tree wins.
    // A child first seen in a later listing was created by whoever held the pid after our process died.
    return parent.goneAt === index ? { depth: member.depth } : 'foreign';
  }

  private adopt(row: ProcessInfo, index: number, takenAt: number, depth: number, proof: TrackedProcess['proof']): TrackedProcess {
    const member: TrackedProcess = {
      pid: row.pid, ppid: row.ppid, name: nameOf(row), startTime: row.startTime,
      firstSeen: index, lastSeen: index, lastSeenAt: takenAt, goneAt: undefined, depth, proof,
    };
    this.remember(member);
    this.latest.set(row.pid, memberSighting(member));
    return member;
  }

  private sighting(row: ProcessInfo, index: number, member: TrackedProcess | undefined): Sighting {
    return { pid: row.pid, ppid: row.ppid, name: nameOf(row), startTime: row.startTime, firstSeen: index, lastSeen: index, goneAt: undefined, member };
  }

  private sameProcess(sighting: Sighting, row: ProcessInfo): boolean {
    if (sighting.ppid !== row.ppid || !sameName(sighting.name, nameOf(row))) return false;
    return sighting.startTime === undefined || row.startTime === undefined || sighting.startTime === row.startTime;
  }

  private continueSighting(sighting: Sighting, row: ProcessInfo, index: number, takenAt: number): void {
    sighting.lastSeen = index;
    if (sighting.name === '' && nameOf(row) !== '') sighting.name = nameOf(row);
    if (sighting.startTime === undefined) sighting.startTime = row.startTime;
    const member = sighting.member;
    if (member !== undefined) {
      member.lastSeen = index;
      member.lastSeenAt = takenAt;
      member.name = sighting.name;
      member.startTime = sighting.startTime;
    }
  }

  private markGone(sighting: Sighting, index: number): void {
    sighting.goneAt = index;
    if (sighting.member !== undefined) sighting.member.goneAt = index;
  }

  private beginListing(table: ProcessTable): number {
    this.observedTables.add(table);
    this.lastTakenAt = table.takenAt;
    const index = this.listingCount;
    this.listingCount += 1;
    return index;
  }

  private remember(member: TrackedProcess): void {
    this.members.push(member);
    this.memberPids.add(member.pid);
  }

  private isMemberPid(pid: number): boolean {
    return this.memberPids.has(pid);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Killing

/** What one kill attempt did. `gone`: nothing to kill; `denied`: refused (another user's or elevated process). */
export interface WindowsKillResult {
  outcome: 'killed' | 'gone' | 'denied' | 'failed';
  /** The tool's message, for the report. */
  detail?: string;
}

/** How processes are forcibly ended; injected so tests and Wine can replace it. */
export interface WindowsKillExecutor {
  /** Ends exactly one pid (`taskkill /pid N /F`). */
  kill(pid: number): Promise<WindowsKillResult>;
  /** Ends a pid and its live descendants (`taskkill /pid N /T /F`); absent where the tool cannot. */
  killTree?: (pid: number) => Promise<WindowsKillResult>;
}

/** Options of the taskkill executor. */
export interface TaskkillOptions {
  /** The taskkill binary. Default `taskkill`. */
  command?: string;
  /** Offer `/T` tree kills. Default true; false for Wine, whose taskkill accepts `/T` but ignores it. */
  tree?: boolean;
  /** Per-call limit before the taskkill process itself is killed. Default 10000. */
  timeoutMs?: number;
}

// Ends pids with `taskkill /pid N /F` (and `/T` for tree passes); never throws, reports the outcome.
export function taskkillExecutor(options: TaskkillOptions = {}): WindowsKillExecutor {
  const command = options.command ?? 'taskkill';
  const timeout = options.timeoutMs ?? 10_000;
  const run = async (pid: number, tree: boolean): Promise<WindowsKillResult> => {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: taskkill.exe is a short-lived direct child, awaited right here; it is never one of
    //   the instance's processes (its ppid is this process, which the tracker never adopts).
    // Cleanup handled by: this await (reject: false), execa's `timeout` + `forceKillAfterDelay`, and
    //   execa's exit cleanup if this process ends first.
    // Known risks: taskkill has no creation-time check, so a pid that dies and is reused between the
    //   listing and this call would be hit; the caller kills right after a fresh listing to keep that
    //   window to one listing interval. Exit code 128 also covers "access denied" on some builds (Wine):
    //   the confirming re-read still reports such a process as a survivor.
    const result = await execa(command, ['/pid', String(pid), ...(tree ? ['/T'] : []), '/F'], {
      reject: false,
      windowsHide: true,
      stdin: 'ignore',
      timeout,
      forceKillAfterDelay: 1000,
      encoding: 'utf8',
    });
    const detail = `${result.stdout}\n${result.stderr}`.trim();
    if (result.exitCode === 0) return { outcome: 'killed', detail };
    if (result.exitCode === 128) return { outcome: 'gone', detail };
    if (/denied/i.test(detail)) return { outcome: 'denied', detail };
    return { outcome: 'failed', detail: detail !== '' ? detail : result.shortMessage ?? `${command} exited with ${String(result.exitCode)}` };
  };
  const executor: WindowsKillExecutor = { kill: (pid) => run(pid, false) };
  if (options.tree !== false) executor.killTree = (pid) => run(pid, true);
  return executor;
}

// Ends pids with `process.kill` (TerminateProcess on Windows): no subprocess per kill, no tree kills.
export function processKillExecutor(): WindowsKillExecutor {
  return {
    kill: async (pid) => {
      try {
        process.kill(pid, 'SIGKILL');
        return { outcome: 'killed' };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ESRCH') return { outcome: 'gone' };
        if (code === 'EPERM') return { outcome: 'denied', detail: (error as Error).message };
        return { outcome: 'failed', detail: (error as Error).message };
      }
    },
  };
}

/** Options of the Windows stop protocol; everything that touches the OS is injectable. */
export interface WindowsTerminateOptions {
  /** A polite request while the tree still runs (A1111's `POST /sdapi/v1/server-stop`); failures are ignored. */
  beforeSignals?: () => Promise<unknown>;
  /** How long to wait for the tree to leave by itself after `beforeSignals`. Default 5000. */
  politeWaitMs?: number;
  /** Skip the polite step and kill at once. */
  immediate?: boolean;
  /** Re-read interval. Default 100 (a fastlist read costs tens of milliseconds). */
  pollIntervalMs?: number;
  /** How long to keep re-reading and killing before reporting survivors. Default 10000. */
  confirmTimeoutMs?: number;
  /** Polled during the polite wait: returning true cuts it short (a second Ctrl-C). */
  shouldHurry?: () => boolean;
  /** Process-table reader. Default: `snapshot({ backend: 'ps-list', cmdline: false })` (fastlist), sequenced. */
  readTable?: () => Promise<ProcessTable>;
  /** Kill executor. Default `taskkillExecutor()`. */
  killer?: WindowsKillExecutor;
  /** Run the extra `/T` pass when the executor offers one. Default true. */
  treeKill?: boolean;
  /** Monotonic clock in milliseconds. Default `performance.now`. */
  now?: () => number;
  /** Sleep. Default `timers/promises` setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

// Per-process bookkeeping of one stop: the strongest thing done to it and the last refusal.
interface KillLedger {
  owned: OwnedProcess;
  signal: KilledProcess['signal'];
  refusal: WindowsKillResult | undefined;
}

// Stops every process the tracker proves ours (cmd.exe parents first, then top-down) and re-reads until none remains.
export async function terminateWindows(tracker: WindowsTreeTracker, options: WindowsTerminateOptions = {}): Promise<TerminationReport> {
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? ((ms: number) => sleepFor(ms).then(() => undefined));
  const readTable = options.readTable ?? sequencedReader(() => snapshot({ backend: 'ps-list', cmdline: false }));
  const killer = options.killer ?? taskkillExecutor();
  const pollMs = options.pollIntervalMs ?? 100;
  const treeKill = options.treeKill !== false;
  const started = now();
  let reads = 0;
  let lastTable: ProcessTable | undefined;

  // One entry per process generation (pid + the listing it first appeared in), so a reused pid is a new entry.
  const ledger = new Map<string, KillLedger>();
  const keyOf = (owned: OwnedProcess): string => `${owned.info.pid}@${tracker.memberAt(owned.info.pid)?.firstSeen ?? -1}`;
  const collect = async (): Promise<OwnedProcess[]> => {
    reads += 1;
    lastTable = await tracker.refresh(readTable);
    const owned = tracker.owned(lastTable);
    for (const entry of owned) {
      const key = keyOf(entry);
      const known = ledger.get(key);
      if (known === undefined) ledger.set(key, { owned: entry, signal: 'none', refusal: undefined });
      else known.owned = entry; // a later listing may have given the name
    }
    return owned;
  };
  const record = (owned: OwnedProcess, result: WindowsKillResult): void => {
    const entry = ledger.get(keyOf(owned));
    if (entry === undefined) return;
    if (result.outcome === 'killed') {
      entry.signal = 'SIGKILL';
      entry.refusal = undefined;
    } else if ((result.outcome === 'denied' || result.outcome === 'failed') && entry.signal !== 'SIGKILL') {
      // After a successful kill, Windows refuses TerminateProcess on the exiting process: not a refusal.
      entry.refusal = result;
    }
  };

  let current = await collect();
  let escalated = options.immediate === true;

  // 0. Ask politely while the tree still runs (console programs get no SIGTERM), then let it leave by itself.
  if (options.beforeSignals !== undefined && current.length > 0 && options.immediate !== true) {
    try {
      await options.beforeSignals();
    } catch {
      // A refused or failed polite request only means we go on to kills.
    }
    const politeDeadline = now() + (options.politeWaitMs ?? 5000);
    while (current.length > 0 && now() < politeDeadline && options.shouldHurry?.() !== true) {
      await sleep(pollMs);
      current = await collect();
    }
  }

  // 1–5. Kill the job launcher (if any), cmd.exe parents next, then every owned pid top-down; re-read; newcomers join the next round.
  const confirmDeadline = now() + (options.confirmTimeoutMs ?? 10_000);
  for (let round = 0; current.length > 0; round += 1) {
    if (round > 0 && now() >= confirmDeadline) break;
    escalated = true;
    // The extra /T pass, only for subtrees in which every live process is ours (taskkill /T follows ppid
    // and may not check creation times, so a foreign process with a stale ppid would be hit).
    if (round > 0 && treeKill && killer.killTree !== undefined && lastTable !== undefined) {
      const tops = whollyOwnedSubtrees(current, lastTable);
      for (const { top, members } of tops) {
        const result = await killer.killTree(top.info.pid);
        record(top, result);
        if (result.outcome === 'killed') for (const member of members) record(member, result);
      }
      if (tops.length > 0) {
        current = await collect();
        if (current.length === 0) break;
      }
    }
    const [first] = current;
    if (tracker.job && first !== undefined && first.info.pid === tracker.root.pid) {
      // The job launcher: ending it closes the Job Object, and the kernel ends every member in one step.
      record(first, await killer.kill(first.info.pid));
      await sleep(pollMs);
      current = await collect();
      if (current.length === 0) break;
    }
    for (const owned of current) record(owned, await killer.kill(owned.info.pid));
    await sleep(pollMs);
    current = await collect();
  }

  const survivors = current.map((owned): Survivor => ({
    pid: owned.info.pid,
    name: owned.info.name,
    role: owned.role,
    reason: survivalReason(ledger.get(keyOf(owned))),
  }));
  const survivorKeys = new Set(current.map(keyOf));
  const killed: KilledProcess[] = [];
  for (const [key, entry] of ledger) {
    if (survivorKeys.has(key)) continue;
    killed.push({ pid: entry.owned.info.pid, name: entry.owned.info.name, role: entry.owned.role, signal: entry.signal });
  }
  return { survivors, killed, escalated, durationMs: now() - started, reads };
}

// Top-most owned processes whose whole live ppid-subtree in the table is owned: safe targets for taskkill /T.
function whollyOwnedSubtrees(owned: OwnedProcess[], table: ProcessTable): { top: OwnedProcess; members: OwnedProcess[] }[] {
  const children = new Map<number, number[]>();
  for (const info of table.processes.values()) {
    if (info.pid === info.ppid) continue;
    const siblings = children.get(info.ppid);
    if (siblings === undefined) children.set(info.ppid, [info.pid]);
    else siblings.push(info.pid);
  }
  const byPid = new Map(owned.map((entry) => [entry.info.pid, entry]));
  // The owned members of the subtree, or undefined as soon as one live descendant is not ours.
  const subtreeIfOurs = (pid: number): OwnedProcess[] | undefined => {
    const stack = [pid];
    const visited = new Set<number>();
    const members: OwnedProcess[] = [];
    while (stack.length > 0) {
      const next = stack.pop() as number;
      if (visited.has(next)) continue;
      visited.add(next);
      const entry = byPid.get(next);
      if (entry === undefined) return undefined;
      members.push(entry);
      stack.push(...(children.get(next) ?? []));
    }
    return members;
  };
  const subtrees: { top: OwnedProcess; members: OwnedProcess[] }[] = [];
  for (const entry of owned) {
    if (byPid.has(entry.info.ppid)) continue;
    const members = subtreeIfOurs(entry.info.pid);
    if (members !== undefined) subtrees.push({ top: entry, members });
  }
  return subtrees;
}

function survivalReason(entry: KillLedger | undefined): string {
  if (entry?.signal === 'SIGKILL') {
    return 'terminated but still listed: Windows keeps a process until its pending I/O (often a GPU driver call) completes';
  }
  const refusal = entry?.refusal;
  const detail = refusal?.detail !== undefined && refusal.detail !== '' ? `: ${refusal.detail}` : '';
  if (refusal?.outcome === 'denied') return `access denied: taskkill /F was refused (another user's, elevated or protected process)${detail}`;
  if (refusal?.outcome === 'failed') return `kill failed${detail}`;
  return 'still listed after taskkill /F and the confirmation timeout';
}

// ---------------------------------------------------------------------------------------------------------
// Record validation

function parseRecord(value: unknown): WindowsTreeRecord {
  const fail = (field: string, received: unknown): never => {
    throw new WardenError('INVALID_RECORD', `Windows tree record: "${field}" is invalid, received ${JSON.stringify(received) ?? String(received)}`);
  };
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const int = (v: unknown, field: string, min: number): number => (Number.isInteger(v) && (v as number) >= min ? (v as number) : fail(field, v));
  const optionalNumber = (v: unknown, field: string): number | undefined => (v === undefined || v === null ? undefined : typeof v === 'number' && Number.isFinite(v) ? v : fail(field, v));
  const text = (v: unknown, field: string): string => (typeof v === 'string' ? v : fail(field, v));

  if (!isObject(value)) return fail('(record)', value);
  if (value.version !== 1) fail('version', value.version);
  if (!isObject(value.root)) fail('root', value.root);
  const rootValue = value.root as Record<string, unknown>;
  const clock = rootValue.clock;
  if (clock !== undefined && clock !== null && clock !== 'proc' && clock !== 'ps-list') fail('root.clock', clock);
  const root: ProcessIdentity = {
    pid: int(rootValue.pid, 'root.pid', 1),
    startTime: optionalNumber(rootValue.startTime, 'root.startTime'),
    ...(clock === 'proc' || clock === 'ps-list' ? { clock } : {}),
  };
  const listings = int(value.listings, 'listings', 0);
  const lastTakenAt = optionalNumber(value.lastTakenAt, 'lastTakenAt');
  if (!Array.isArray(value.members)) fail('members', value.members);
  const members = (value.members as unknown[]).map((entry, i): TrackedProcess => {
    const at = `members[${i}]`;
    if (!isObject(entry)) return fail(at, entry);
    const proof = entry.proof === 'root' || entry.proof === 'tree' ? entry.proof : fail(`${at}.proof`, entry.proof);
    const goneAt = entry.goneAt === undefined || entry.goneAt === null ? undefined : int(entry.goneAt, `${at}.goneAt`, 0);
    return {
      pid: int(entry.pid, `${at}.pid`, 1),
      ppid: int(entry.ppid, `${at}.ppid`, 0),
      name: text(entry.name, `${at}.name`),
      startTime: optionalNumber(entry.startTime, `${at}.startTime`),
      firstSeen: int(entry.firstSeen, `${at}.firstSeen`, 0),
      lastSeen: int(entry.lastSeen, `${at}.lastSeen`, -1),
      lastSeenAt: optionalNumber(entry.lastSeenAt, `${at}.lastSeenAt`),
      goneAt,
      depth: int(entry.depth, `${at}.depth`, 0),
      proof,
    };
  });
  if (!Array.isArray(value.foreign)) fail('foreign', value.foreign);
  const foreign = (value.foreign as unknown[]).map((entry, i): ForeignSighting => {
    const at = `foreign[${i}]`;
    if (!isObject(entry)) return fail(at, entry);
    return {
      pid: int(entry.pid, `${at}.pid`, 0),
      ppid: int(entry.ppid, `${at}.ppid`, 0),
      name: text(entry.name, `${at}.name`),
      firstSeen: int(entry.firstSeen, `${at}.firstSeen`, 0),
    };
  });
  if (value.job !== undefined && typeof value.job !== 'boolean') fail('job', value.job);
  return { version: 1, root, listings, lastTakenAt, members, foreign, ...(value.job === true && { job: true }) };
}

// ---------------------------------------------------------------------------------------------------------
// The force-close guard: the Windows sentinel
//
// A controller killed from Task Manager gets no chance to stop anything, and Node's kill-on-close job ends
// only its direct child (the root cmd.exe): python.exe and its workers live on with stale ppids. The guard
// is a second, detached node.exe (outside that job) that the controller feeds with its trees' records over
// a pipe. It keeps its own tracker per tree, re-reading the table itself, so it knows every pid ever seen in
// the tree when the controller goes. EOF on the pipe without a goodbye means the controller is gone: the
// guard stops every tracked tree with `terminateWindows` (immediate: nobody is left to wait for) and exits.
// Proven under Wine (test/windows); the same code is what runs on real Windows.

/** One line of the controller → guard pipe (newline-delimited JSON). */
export type WindowsGuardMessage =
  | { type: 'track'; record: WindowsTreeRecord }
  | { type: 'untrack'; rootPid: number }
  | { type: 'goodbye' };

/** The flag that makes this module run as the guard process (`node windows.js --warden-windows-guard <log>`). */
export const WINDOWS_GUARD_FLAG = '--warden-windows-guard';
/** What the guard writes on its stdout once it reads its pipe. */
export const WINDOWS_GUARD_READY = 'ready';

/** How to start a guard. */
export interface WindowsGuardOptions {
  /** JSON-lines log of the guard (created if missing): its start, every tracked tree, every cleanup report. */
  logPath: string;
  /** The program that runs the guard. Default `process.execPath` (node.exe). */
  execPath?: string;
  /** How long to wait for the guard's ready line. Default 15000 (a cold node.exe start under Wine takes seconds). */
  readyTimeoutMs?: number;
  /** How long `goodbye()` waits for the guard to exit. Default 5000. */
  goodbyeTimeoutMs?: number;
}

/** A running guard, tied to this process by its stdin pipe. */
export interface WindowsGuard {
  readonly pid: number;
  readonly logPath: string;
  /** Resolves when the guard process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Hands a tree to the guard; resolves true once the line is in the pipe, false if the guard is gone. */
  track(tracker: WindowsTreeTracker): Promise<boolean>;
  /** Stops guarding the tree with this root (it was stopped normally). */
  untrack(rootPid: number): Promise<boolean>;
  /** Lets the guard exit without killing anything, and waits for it. Idempotent. */
  goodbye(): Promise<void>;
}

// The command that runs this module as the guard: the built .js with plain node, or the .ts source through tsx.
async function guardArgs(logPath: string): Promise<string[]> {
  const { fileURLToPath, pathToFileURL } = await import('node:url');
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    const { createRequire } = await import('node:module');
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    return ['--import', tsx, here, WINDOWS_GUARD_FLAG, logPath];
  }
  return [here, WINDOWS_GUARD_FLAG, logPath];
}

// Starts the guard detached (outside this process's kill-on-close job) and resolves once it reads its pipe.
export async function startWindowsGuard(options: WindowsGuardOptions): Promise<WindowsGuard> {
  const { createInterface } = await import('node:readline');
  const logPath = options.logPath;
  // PROCESS LIFECYCLE: creates a subprocess (through spawnTethered)
  // Parent tracking: the guard's pid, and its stdin pipe (EOF = this controller is gone).
  // Cleanup handled by: goodbye() (the guard exits without killing); without a goodbye it stops the tracked
  //   trees and exits by itself (hard deadline in runWindowsGuard).
  // Known risks: a guard killed together with the controller (someone ends both) guards nothing; reap at the
  //   next start from the registry record covers it.
  let hasExited = false;
  const { child, stdin, stdout, exited } = spawnTethered(options.execPath ?? process.execPath, await guardArgs(logPath), {
    logPath,
    onExit: () => {
      hasExited = true;
    },
  });
  stdin.on('error', () => undefined);
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const ready = await new Promise<boolean>((resolveReady) => {
    const timer = setTimeout(() => resolveReady(false), readyTimeoutMs);
    const lines = createInterface({ input: stdout });
    lines.on('line', (line) => {
      if (line.trim() === WINDOWS_GUARD_READY) {
        clearTimeout(timer);
        lines.close();
        resolveReady(true);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      resolveReady(false);
    });
  });
  if (!ready) {
    if (!hasExited) child.kill();
    await exited;
    throw new WardenError('GUARD_NOT_READY', `The Windows force-close guard did not start within ${readyTimeoutMs} ms (see ${logPath})`);
  }
  const pid = child.pid as number;
  stdout.destroy();
  stdin.unref();
  child.unref();

  let released = false;
  const send = (message: WindowsGuardMessage): Promise<boolean> =>
    new Promise((resolveSend) => {
      if (released || hasExited || !stdin.writable) {
        resolveSend(false);
        return;
      }
      stdin.write(`${JSON.stringify(message)}\n`, (error) => resolveSend(error == null));
    });
  return {
    pid,
    logPath,
    exited,
    track: (tracker) => send({ type: 'track', record: tracker.toJSON() }),
    untrack: (rootPid) => send({ type: 'untrack', rootPid }),
    async goodbye() {
      if (released || hasExited) return;
      await send({ type: 'goodbye' });
      released = true;
      child.ref();
      const timer = new Promise<'timeout'>((resolveTimer) => setTimeout(resolveTimer, options.goodbyeTimeoutMs ?? 5000, 'timeout').unref());
      try {
        if ((await Promise.race([exited, timer])) === 'timeout') {
          // Still our child and not yet reaped: its pid cannot have been reused.
          child.kill();
          await exited;
        }
      } finally {
        child.unref();
      }
    },
  };
}

/** How the guard process behaves; the defaults are what `startWindowsGuard` runs. */
export interface WindowsGuardRunOptions {
  logPath: string;
  /** Lines from the controller. Default: this process's stdin. */
  input?: NodeJS.ReadableStream;
  /** Where the ready line goes. Default: this process's stdout. */
  output?: NodeJS.WritableStream;
  /** How often the guard re-reads the table to follow the trees. Default 250. */
  pollIntervalMs?: number;
  /** The guard never outlives a cleanup by more than this. Default 20000. */
  hardDeadlineMs?: number;
  /** Options passed to each stop (reader, killer...). Default: immediate, fastlist, per-pid taskkill. */
  terminate?: WindowsTerminateOptions;
}

// The guard's main loop: follows the tracked trees until a goodbye (exit 0) or EOF (stop them all, exit 0/1).
export async function runWindowsGuard(options: WindowsGuardRunOptions): Promise<number> {
  const { appendFileSync } = await import('node:fs');
  const { createInterface } = await import('node:readline');
  const log = (event: string, fields: Record<string, unknown> = {}): void => {
    try {
      appendFileSync(options.logPath, `${JSON.stringify({ time: new Date().toISOString(), pid: process.pid, event, ...fields })}\n`);
    } catch {
      // nowhere left to report it
    }
  };
  const readTable = options.terminate?.readTable ?? sequencedReader(() => snapshot({ backend: 'ps-list', cmdline: false }));
  const trackers = new Map<number, WindowsTreeTracker>();
  let stopping = false;
  let polling: Promise<void> = Promise.resolve();
  const poll = (): Promise<void> => {
    polling = polling.then(async () => {
      if (stopping || trackers.size === 0) return;
      try {
        const table = await readTable();
        for (const tracker of trackers.values()) tracker.observe(table);
      } catch (error) {
        log('read-failed', { error: String(error) });
      }
    });
    return polling;
  };
  const timer = setInterval(() => void poll(), options.pollIntervalMs ?? 250);
  log('start', { pollIntervalMs: options.pollIntervalMs ?? 250 });

  const outcome = await new Promise<'goodbye' | 'eof'>((resolveOutcome) => {
    const lines = createInterface({ input: options.input ?? process.stdin, crlfDelay: Infinity });
    let said: 'goodbye' | undefined;
    lines.on('line', (line) => {
      let message: WindowsGuardMessage;
      try {
        message = JSON.parse(line) as WindowsGuardMessage;
      } catch {
        log('bad-message', { line: line.slice(0, 200) });
        return;
      }
      if (message.type === 'goodbye') {
        said = 'goodbye';
        lines.close();
      } else if (message.type === 'untrack') {
        trackers.delete(message.rootPid);
        log('untrack', { rootPid: message.rootPid });
      } else if (message.type === 'track') {
        try {
          const rootPid = message.record.root.pid;
          // The guard's own tracker keeps following the tree; a later record of the same root adds nothing.
          if (!trackers.has(rootPid)) trackers.set(rootPid, WindowsTreeTracker.fromRecord(message.record));
          log('track', { rootPid, members: message.record.members.length });
          void poll();
        } catch (error) {
          log('bad-record', { error: String(error) });
        }
      }
    });
    lines.once('close', () => resolveOutcome(said ?? 'eof'));
    (options.output ?? process.stdout).write(`${WINDOWS_GUARD_READY}\n`);
  });
  clearInterval(timer);
  if (outcome === 'goodbye') {
    log('goodbye');
    return 0;
  }
  // The controller is gone without a goodbye: stop every tree, from the freshest listing on.
  await polling;
  stopping = true;
  log('controller-gone', { trees: [...trackers.keys()] });
  const deadline = setTimeout(() => {
    log('hard-deadline');
    process.exit(1);
  }, options.hardDeadlineMs ?? 20_000);
  let failed = false;
  for (const [rootPid, tracker] of trackers) {
    try {
      const report = await terminateWindows(tracker, { immediate: true, confirmTimeoutMs: 10_000, ...options.terminate, readTable });
      if (report.survivors.length > 0) failed = true;
      log('stopped', { rootPid, report });
    } catch (error) {
      failed = true;
      log('stop-failed', { rootPid, error: String(error) });
    }
  }
  clearTimeout(deadline);
  return failed ? 1 : 0;
}

// Run as the guard process only when started as `node <this file> --warden-windows-guard <log>`.
if (process.argv[2] === WINDOWS_GUARD_FLAG && typeof process.argv[3] === 'string' && process.argv[1] !== undefined) {
  const { fileURLToPath } = await import('node:url');
  const { resolve } = await import('node:path');
  if (resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const code = await runWindowsGuard({ logPath: process.argv[3] });
    process.exit(code);
  }
}
