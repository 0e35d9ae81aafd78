// The owned set of a launch: every process we can prove is ours (tree with start time, marker, process group).
import { cgroup2Mounts, cgroupMembers, isLaunchCgroup } from './posix/cgroup.js';
import { hasProcfs, readEnvironVariable } from './posix/procfs.js';
import { comparableStart, identityHolds } from './identity.js';
import { classifyRole } from './roles.js';
import { MARKER_VARIABLE } from './types.js';
import type { ProcessIdentity, ProcessInfo, ProcessRole, ProcessTable } from './types.js';

/** Everything needed to prove ownership of a launch's processes; plain data, stored in the registry. */
export interface OwnerRecord {
  instanceId: string;
  /** The full marker value, `<instanceId>:<token>`, inherited by every descendant. */
  marker: string;
  /** The process we spawned, with the start time it had. */
  root: ProcessIdentity;
  /** The launch's process group (POSIX; equals the root pid). */
  pgid?: number | undefined;
  /**
   * The launch's cgroup v2 (the `cgroup` containment backend). When set, membership is THE proof: the owned set
   * is the cgroup's members and nothing outside it is ever owned (cgroup.ts, collectCgroupOwned).
   */
  cgroup?: string | undefined;
}

/** Why a process is ours. */
export type OwnershipProof = 'root' | 'tree' | 'marker' | 'group' | 'cgroup';

/** One owned process, with its role and the proofs that make it ours. */
export interface OwnedProcess {
  info: ProcessInfo;
  role: ProcessRole;
  proofs: OwnershipProof[];
  /** Distance from the top of its owned subtree; signalling goes top-down. */
  depth: number;
}

export interface CollectOptions {
  /** Reads a process's marker; defaults to /proc/PID/environ on Linux. Injected for tests and other platforms. */
  readMarker?: (pid: number) => string | undefined;
  /**
   * The cgroup2 mounts (cgroup2Mounts()) the cgroup backend checks a record's path against; read from mountinfo
   * when absent. A sampler classifying several launches against one table reads mountinfo once and passes it.
   */
  cgroupMounts?: readonly string[];
}

// The processes we must never own, whatever a table says: this process and its ancestors. Worked out once per
// table (a sample asks for every launch and for the markers).
const protectedCache = new WeakMap<ProcessTable, ReadonlySet<number>>();
function protectedPids(table: ProcessTable): ReadonlySet<number> {
  const cached = protectedCache.get(table);
  if (cached !== undefined) return cached;
  const protectedSet = new Set<number>([0, 1, process.pid]);
  let cursor = table.processes.get(process.pid)?.ppid;
  while (cursor !== undefined && cursor > 1 && !protectedSet.has(cursor)) {
    protectedSet.add(cursor);
    cursor = table.processes.get(cursor)?.ppid;
  }
  protectedCache.set(table, protectedSet);
  return protectedSet;
}

// Index of children by parent pid, built once per table.
const childrenCache = new WeakMap<ProcessTable, Map<number, number[]>>();
export function childrenOf(table: ProcessTable): Map<number, number[]> {
  let children = childrenCache.get(table);
  if (children === undefined) {
    children = new Map();
    for (const info of table.processes.values()) {
      const siblings = children.get(info.ppid);
      if (siblings === undefined) children.set(info.ppid, [info.pid]);
      else siblings.push(info.pid);
    }
    childrenCache.set(table, children);
  }
  return children;
}

const defaultReadMarker = (pid: number): string | undefined =>
  hasProcfs ? readEnvironVariable(pid, MARKER_VARIABLE) : undefined;

// Every live process of the table proven to belong to the owner, shells first, then top-down.
export function collectOwned(owner: OwnerRecord, table: ProcessTable, options: CollectOptions = {}): OwnedProcess[] {
  const readMarker = options.readMarker ?? defaultReadMarker;
  if (owner.cgroup !== undefined && table.backend === 'proc') return collectCgroupOwned(owner, owner.cgroup, table, readMarker, options.cgroupMounts);
  const excluded = protectedPids(table);
  const proofs = new Map<number, Set<OwnershipProof>>();
  const prove = (pid: number, proof: OwnershipProof): boolean => {
    if (excluded.has(pid)) return false;
    const info = table.processes.get(pid);
    if (info === undefined || info.state === 'Z' || info.state === 'X') return false;
    let set = proofs.get(pid);
    const isNew = set === undefined;
    if (set === undefined) proofs.set(pid, (set = new Set()));
    set.add(proof);
    return isNew;
  };
  const rootStart = comparableStart(owner.root, table) ? owner.root.startTime : undefined;
  const startedAfterRoot = (info: ProcessInfo): boolean =>
    rootStart === undefined || info.startTime === undefined || info.startTime >= rootStart;

  // 1. The root, while its identity holds.
  const rootAlive = identityHolds(owner.root, table);
  if (rootAlive) prove(owner.root.pid, 'root');

  // 2. The marker: catches orphans reparented to init and daemons that left the group.
  // Only processes that started no earlier than the root can carry a marker it handed down.
  for (const info of table.processes.values()) {
    if (proofs.has(info.pid) || !startedAfterRoot(info)) continue;
    if (readMarker(info.pid) === owner.marker) prove(info.pid, 'marker');
  }

  // 3. The process group, while it is provably still the group we created: its leader's identity
  // holds, or a process already proven ours is a member (a pgid is never reused while it has members).
  if (owner.pgid !== undefined) {
    const groupIsOurs =
      (rootAlive && owner.pgid === owner.root.pid) ||
      [...proofs.keys()].some((pid) => table.processes.get(pid)?.pgid === owner.pgid);
    if (groupIsOurs) {
      for (const info of table.processes.values()) {
        if (info.pgid === owner.pgid && startedAfterRoot(info)) prove(info.pid, 'group');
      }
    }
  }

  // 4. Descendants of anything proven ours (a live parent's children are really its children).
  const children = childrenOf(table);
  const queue = [...proofs.keys()];
  while (queue.length > 0) {
    const pid = queue.pop() as number;
    for (const child of children.get(pid) ?? []) {
      const info = table.processes.get(child);
      if (info === undefined || !startedAfterRoot(info)) continue;
      if (prove(child, 'tree')) queue.push(child);
    }
  }

  return orderForSignalling(proofs, table);
}

// The cgroup backend: the members of the launch cgroup (and its sub-cgroups), and nothing else. A record naming a
// cgroup Warden did not make for this marker owns nothing (a corrupt registry never aims cgroup.kill elsewhere).
// The marker is only the cross-check here: a member carrying it says so in its proofs; one without it is still ours.
function collectCgroupOwned(
  owner: OwnerRecord,
  cgroup: string,
  table: ProcessTable,
  readMarker: (pid: number) => string | undefined,
  mounts: readonly string[] = cgroup2Mounts(),
): OwnedProcess[] {
  if (!isLaunchCgroup(cgroup, owner.marker, mounts)) return [];
  const excluded = protectedPids(table);
  const proofs = new Map<number, Set<OwnershipProof>>();
  for (const pid of cgroupMembers(cgroup)) {
    const info = table.processes.get(pid);
    if (excluded.has(pid) || info === undefined || info.state === 'Z' || info.state === 'X') continue;
    const set = new Set<OwnershipProof>(['cgroup']);
    if (pid === owner.root.pid && identityHolds(owner.root, table)) set.add('root');
    if (readMarker(pid) === owner.marker) set.add('marker');
    proofs.set(pid, set);
  }
  return orderForSignalling(proofs, table);
}

// Shells first (so a relaunch loop cannot start Python behind our back), then parents before children.
function orderForSignalling(proofs: Map<number, Set<OwnershipProof>>, table: ProcessTable): OwnedProcess[] {
  const depthOf = (pid: number): number => {
    let depth = 0;
    let cursor = table.processes.get(pid)?.ppid;
    while (cursor !== undefined && proofs.has(cursor) && depth < 64) {
      depth += 1;
      cursor = table.processes.get(cursor)?.ppid;
    }
    return depth;
  };
  const owned: OwnedProcess[] = [];
  for (const [pid, set] of proofs) {
    const info = table.processes.get(pid) as ProcessInfo;
    owned.push({ info, role: classifyRole(info), proofs: [...set], depth: depthOf(pid) });
  }
  const rank = (p: OwnedProcess): number => (p.role === 'shell' ? 0 : 1);
  owned.sort((a, b) => rank(a) - rank(b) || a.depth - b.depth || a.info.pid - b.info.pid);
  return owned;
}

// Parses a marker value `<instanceId>:<token>`; the id itself may contain ':'.
export function parseMarker(value: string): { instanceId: string; token: string } | undefined {
  const cut = value.lastIndexOf(':');
  if (cut <= 0 || cut === value.length - 1) return undefined;
  return { instanceId: value.slice(0, cut), token: value.slice(cut + 1) };
}

// Every live process in the table that carries any Warden marker, with its value (for audits and stale detection).
export function findMarked(table: ProcessTable, options: CollectOptions = {}): Map<number, string> {
  const readMarker = options.readMarker ?? defaultReadMarker;
  const excluded = protectedPids(table);
  const marked = new Map<number, string>();
  for (const info of table.processes.values()) {
    if (excluded.has(info.pid) || info.state === 'Z' || info.state === 'X') continue;
    const value = readMarker(info.pid);
    if (value !== undefined) marked.set(info.pid, value);
  }
  return marked;
}
