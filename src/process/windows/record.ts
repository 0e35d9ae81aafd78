// The tracker's durable record: plain JSON-safe data in the registry, and the validation that reads it back.
import { WardenError } from '../errors.js';
import type { ProcessIdentity } from '../types.js';

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


// Validates a record read back from disk; every bad field is named with its value.
export function parseRecord(value: unknown): WindowsTreeRecord {
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
