// The durable registry: every launch recorded in `<stateDir>/registry.json`, rewritten atomically on each change.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { WardenError } from '../errors.js';
import { currentBootId } from '../posix/boot.js';
import { currentIdentity, identityHoldsNow } from '../identity.js';
import { parseMarker } from '../ownership.js';
import { ensureStateDir, openNoFollow } from './statedir.js';
import type { OwnerRecord } from '../ownership.js';
import type { ProcessIdentity } from '../types.js';
import { WindowsTreeTracker } from '../windows/index.js';
import type { WindowsTreeRecord } from '../windows/index.js';

/** One launch as recorded on disk: enough to re-prove ownership of its tree after the supervisor is gone. */
export type LaunchRecord = OwnerRecord & {
  /** The shell parent's pid, once identified. */
  shellPid?: number;
  /** The newest Python's pid, once identified. */
  pythonPid?: number;
  /** Milliseconds since the epoch when the launch was recorded. */
  launchedAt: number;
  /** The supervisor that launched it. */
  supervisor: { pid: number; startTime: number | undefined };
  /** The kernel boot id when it was launched (Linux): a record from another boot never names a live process. */
  bootId?: string;
  /**
   * Windows: the tree tracker's record (`WindowsTreeTracker.toJSON()`: every pid ever seen in the tree, dead ones
   * included), rewritten whenever the tracker adopts a process. Windows has no readable environment marker and
   * never reparents, so after the supervisor is gone this is the only proof of which processes were its tree.
   */
  windows?: WindowsTreeRecord;
};

/** What `update` may change: everything but the marker and instance it identifies. */
export type LaunchRecordPatch = Partial<Omit<LaunchRecord, 'marker' | 'instanceId'>>;

/** Thrown when the registry file cannot be used; `code` says why, the message names the file. */
export class RegistryError extends WardenError {}

/** A registry file that is not valid JSON of the expected shape; it was moved aside to `movedTo`, never discarded. */
export class RegistryCorruptError extends RegistryError {
  readonly file: string;
  readonly movedTo: string;
  constructor(file: string, movedTo: string, problem: string) {
    super(
      'REGISTRY_CORRUPT',
      `The Warden registry ${file} is unreadable (${problem}); it was moved to ${movedTo}, so the next start begins with an empty registry. ` +
        (process.platform === 'win32'
          ? 'On Windows a tree cannot be proven ours without its record (no readable markers): the moved file still lists its pids for you to check.'
          : 'Trees it listed are still found by their markers (`warden audit`, `warden reap`).'),
    );
    this.file = file;
    this.movedTo = movedTo;
  }
}

const FILE_NAME = 'registry.json';
const FORMAT_VERSION = 1;

// The registry of one state directory. One writer at a time (the supervisor holding the lock); writes are serialized.
export class Registry {
  /** The registry file, `<stateDir>/registry.json`. */
  readonly path: string;
  private records: LaunchRecord[];
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(readonly stateDir: string, records: LaunchRecord[]) {
    this.path = join(stateDir, FILE_NAME);
    this.records = records;
  }

  // Opens (creating the state directory, mode 0700) and loads the registry; a corrupt file is moved aside and reported.
  static async open(stateDir: string): Promise<Registry> {
    await ensureStateDir(stateDir);
    await removeAbandonedTemps(stateDir);
    return new Registry(stateDir, await load(join(stateDir, FILE_NAME)));
  }

  // A copy of every record, oldest launch first.
  list(): LaunchRecord[] {
    return structuredClone(this.records);
  }

  // The record of one marker, if any.
  get(marker: string): LaunchRecord | undefined {
    const found = this.records.find((record) => record.marker === marker);
    return found === undefined ? undefined : structuredClone(found);
  }

  // Records a launch (replacing any record with the same marker) and persists it before resolving.
  add(record: LaunchRecord): Promise<void> {
    const problem = validateRecord(record, 'record');
    if (problem !== undefined) return Promise.reject(new RegistryError('REGISTRY_INVALID_RECORD', `Cannot record launch: ${problem}`));
    return this.mutate((records) => [...records.filter((entry) => entry.marker !== record.marker), structuredClone(record)]);
  }

  // Changes a recorded launch (e.g. its shell or Python pid); resolves with the new record, or undefined if none matched.
  async update(marker: string, patch: LaunchRecordPatch): Promise<LaunchRecord | undefined> {
    let updated: LaunchRecord | undefined;
    await this.mutate((records) => {
      const index = records.findIndex((entry) => entry.marker === marker);
      const current = records[index];
      if (current === undefined) return undefined;
      const next: LaunchRecord = { ...current, ...structuredClone(patch), marker: current.marker, instanceId: current.instanceId };
      const problem = validateRecord(next, 'record');
      if (problem !== undefined) throw new RegistryError('REGISTRY_INVALID_RECORD', `Cannot update launch ${marker}: ${problem}`);
      updated = next;
      return records.map((entry, i) => (i === index ? next : entry));
    });
    return updated === undefined ? undefined : structuredClone(updated);
  }

  // Forgets a launch (its tree was confirmed dead); resolves with whether a record was removed.
  async remove(marker: string): Promise<boolean> {
    let removed = false;
    await this.mutate((records) => {
      if (!records.some((entry) => entry.marker === marker)) return undefined;
      removed = true;
      return records.filter((entry) => entry.marker !== marker);
    });
    return removed;
  }

  // Applies a change after every earlier one; memory follows the disk only once the write succeeded.
  private mutate(change: (records: LaunchRecord[]) => LaunchRecord[] | undefined): Promise<void> {
    const run = async (): Promise<void> => {
      const next = change(this.records);
      if (next === undefined) return;
      await writeAtomic(this.path, `${JSON.stringify({ version: FORMAT_VERSION, records: next }, null, 2)}\n`);
      this.records = next;
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }
}

// Builds the record of a launch just made by this process (the supervisor), with its Windows tree record if it has one.
export function launchRecord(
  owner: OwnerRecord & { shell?: ProcessIdentity | undefined; python?: ProcessIdentity | undefined; windows?: WindowsTreeTracker | undefined },
): LaunchRecord {
  const self = currentIdentity(process.pid);
  return {
    instanceId: owner.instanceId,
    marker: owner.marker,
    root: { ...owner.root },
    ...(owner.pgid !== undefined && { pgid: owner.pgid }),
    ...(owner.cgroup !== undefined && { cgroup: owner.cgroup }),
    ...(owner.shell !== undefined && { shellPid: owner.shell.pid }),
    ...(owner.python !== undefined && { pythonPid: owner.python.pid }),
    launchedAt: Date.now(),
    supervisor: { pid: process.pid, startTime: self?.startTime },
    ...(currentBootId() !== undefined && { bootId: currentBootId() }),
    ...(owner.windows !== undefined && { windows: owner.windows.toJSON() }),
  };
}

// Writes a file so readers only ever see the old or the new content: temp file in the same dir, fsync, rename.
export async function writeAtomic(path: string, content: string): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const file = await open(temp, 'wx', 0o600);
    try {
      await file.writeFile(content);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(path.slice(0, Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'))) || '.');
}

// Makes a rename durable (POSIX); directories cannot be opened for sync on Windows, which is fine to skip.
export async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // best effort: the rename itself is already atomic
  }
}

// Deletes temp files left by writers that died mid-write (their pid is gone); a live writer's temp is left alone.
async function removeAbandonedTemps(stateDir: string): Promise<void> {
  const prefix = `${FILE_NAME}.tmp-`;
  for (const name of await readdir(stateDir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    const writerMayBeAlive = Number.isInteger(pid) && pid > 0 && (pid === process.pid || identityHoldsNow({ pid, startTime: undefined }));
    if (!writerMayBeAlive) await rm(join(stateDir, name), { force: true });
  }
}

// Reads and validates the file; missing means empty; anything unreadable is moved aside and thrown.
async function load(path: string): Promise<LaunchRecord[]> {
  let text: string;
  try {
    // Opened without following a symlink; owner and mode are checked on the file actually opened.
    const file = await openNoFollow(path, constants.O_RDONLY);
    try {
      const info = await file.stat();
      checkTrusted(path, info.uid, info.mode);
      text = await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  let problem: string | undefined;
  let records: LaunchRecord[] = [];
  try {
    const parsed: unknown = JSON.parse(text);
    problem = validateFile(parsed);
    if (problem === undefined) records = (parsed as { records: LaunchRecord[] }).records;
  } catch (error) {
    problem = text.length === 0 ? 'the file is empty' : `not valid JSON: ${(error as Error).message}`;
  }
  if (problem === undefined) return records;
  const movedTo = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await rename(path, movedTo);
  throw new RegistryCorruptError(path, movedTo, problem);
}

// The registry decides what gets signalled, so only a file the current user owns and alone can write is trusted.
function checkTrusted(path: string, uid: number, mode: number): void {
  if (typeof process.getuid !== 'function') return;
  const me = process.getuid();
  if (uid !== me) {
    throw new RegistryError('REGISTRY_UNTRUSTED', `The Warden registry ${path} belongs to uid ${uid}, not to the current user (uid ${me}); refusing to act on it. Run Warden as its owner or remove the file.`);
  }
  if ((mode & 0o022) !== 0) {
    throw new RegistryError('REGISTRY_UNTRUSTED', `The Warden registry ${path} is writable by other users (mode ${(mode & 0o777).toString(8)}); refusing to act on it. Run \`chmod 600 ${path}\` after checking its content.`);
  }
}

// Returns the first problem of a parsed file, as `records[2].root.pid: expected …`, or undefined when it is valid.
function validateFile(value: unknown): string | undefined {
  if (!isObject(value)) return `expected an object with "version" and "records" (got ${describe(value)})`;
  if (value.version !== FORMAT_VERSION) return `version: expected ${FORMAT_VERSION} (got ${describe(value.version)})`;
  if (!Array.isArray(value.records)) return `records: expected an array (got ${describe(value.records)})`;
  const markers = new Set<string>();
  for (const [index, record] of value.records.entries()) {
    const problem = validateRecord(record, `records[${index}]`);
    if (problem !== undefined) return problem;
    const marker = (record as LaunchRecord).marker;
    if (markers.has(marker)) return `records[${index}].marker: duplicate marker "${marker}"`;
    markers.add(marker);
  }
  return undefined;
}

// Returns the first problem of one record, or undefined when it is a valid LaunchRecord.
function validateRecord(value: unknown, at: string): string | undefined {
  if (!isObject(value)) return `${at}: expected an object (got ${describe(value)})`;
  if (typeof value.instanceId !== 'string' || value.instanceId === '') return `${at}.instanceId: expected a non-empty string (got ${describe(value.instanceId)})`;
  if (typeof value.marker !== 'string' || parseMarker(value.marker)?.instanceId !== value.instanceId) {
    return `${at}.marker: expected "${String(value.instanceId)}:<token>" (got ${describe(value.marker)})`;
  }
  if (!isObject(value.root)) return `${at}.root: expected an object (got ${describe(value.root)})`;
  const checks: Array<[string, unknown, boolean]> = [
    ['root.pid', value.root.pid, false],
    ['root.startTime', value.root.startTime, true],
    ['pgid', value.pgid, true],
    ['shellPid', value.shellPid, true],
    ['pythonPid', value.pythonPid, true],
    ['launchedAt', value.launchedAt, false],
  ];
  if (value.root.clock !== undefined && value.root.clock !== 'proc' && value.root.clock !== 'ps-list') {
    return `${at}.root.clock: expected "proc" or "ps-list" (got ${describe(value.root.clock)})`;
  }
  if (!isObject(value.supervisor)) return `${at}.supervisor: expected an object (got ${describe(value.supervisor)})`;
  checks.push(['supervisor.pid', value.supervisor.pid, false], ['supervisor.startTime', value.supervisor.startTime, true]);
  for (const [field, fieldValue, optional] of checks) {
    if (optional && fieldValue === undefined) continue;
    if (typeof fieldValue !== 'number' || !Number.isInteger(fieldValue) || fieldValue < 0) {
      return `${at}.${field}: expected a non-negative integer (got ${describe(fieldValue)})`;
    }
  }
  if (value.cgroup !== undefined && (typeof value.cgroup !== 'string' || !value.cgroup.startsWith('/'))) return `${at}.cgroup: expected an absolute cgroup path (got ${describe(value.cgroup)})`;
  if (value.bootId !== undefined && (typeof value.bootId !== 'string' || value.bootId === '')) return `${at}.bootId: expected a non-empty string (got ${describe(value.bootId)})`;
  if (value.windows !== undefined) return validateWindowsRecord(value.windows, value.root.pid, `${at}.windows`);
  return undefined;
}

// The Windows tree record must restore (the tracker's own checks name the bad field) and be of this launch's root.
function validateWindowsRecord(value: unknown, rootPid: unknown, at: string): string | undefined {
  try {
    WindowsTreeTracker.fromRecord(value, { protectedPids: [] });
  } catch (error) {
    return `${at}: ${(error as Error).message}`;
  }
  const treeRoot = (value as WindowsTreeRecord).root.pid;
  if (treeRoot !== rootPid) return `${at}.root.pid: expected the launch's root.pid ${describe(rootPid)} (got ${describe(treeRoot)})`;
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
