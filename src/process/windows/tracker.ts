// The Windows strategy of the stop protocol: ownership by every pid ever seen in the tree, then per-pid taskkill.
//
// Windows never reparents: an orphan keeps its dead parent's pid as ppid, so a walk down from the live
// cmd.exe misses it. The tracker therefore remembers every process that ever was (transitively) a child
// of the root, follows ppid through dead parents, and uses the listing in which a pid first appeared as
// its creation order, because Windows reuses pids quickly and fastlist gives no start time.
import { WardenError } from '../errors.js';
import type { OwnedProcess } from '../ownership.js';
import { classifyRole } from '../roles.js';
import { nextReadSequence } from '../snapshot.js';
import type { ProcessIdentity, ProcessInfo, ProcessTable } from '../types.js';
import { parseRecord } from './record.js';
import type { ForeignSighting, TrackedProcess, WindowsTreeRecord } from './record.js';

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
