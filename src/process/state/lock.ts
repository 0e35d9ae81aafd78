// The supervisor lock: one live supervisor per state directory; a lock left by a dead one is taken over, race-safely.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, readFileSync } from 'node:fs';
import { link, open, readdir, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WardenError } from '../errors.js';
import { currentBootId, fromAnotherBoot } from '../posix/boot.js';
import { currentIdentity, identityHoldsNow } from '../identity.js';
import { ensureStateDir, openNoFollow, openNoFollowSync } from './statedir.js';

/** Who holds a lock: the supervisor process, its start time (Linux: clock ticks since boot) and where it runs. */
export interface LockHolder {
  pid: number;
  startTime: number | undefined;
  hostname: string;
  /** When the holder process started, ISO 8601 UTC to the second. */
  startedAt: string;
  /** The kernel boot id the holder ran under (Linux): a lock from before a reboot is stale whatever its pid says. */
  bootId?: string;
}

/** Why a lock was taken over: its holder exited, its pid now names another process, or the file was unreadable. */
export type TakeoverReason = 'holder-dead' | 'pid-reused' | 'unreadable';

/** A held supervisor lock. */
export interface Lock {
  /** The lock file, `<stateDir>/supervisor.lock`. */
  readonly path: string;
  readonly stateDir: string;
  /** This process, as written in the lock file. */
  readonly holder: LockHolder;
  /** The dead (or reused-pid) holder whose stale lock was replaced, when it was readable. */
  readonly takenOverFrom?: LockHolder;
  /** Set when a stale lock was replaced. */
  readonly takeoverReason?: TakeoverReason;
  /** Whether the lock file still holds our identity. */
  isHeld(): boolean;
  /** Removes the lock file only if it still holds our identity; resolves with whether it did. */
  release(): Promise<boolean>;
}

export interface AcquireLockOptions {
  /** How long to wait for another contender's takeover in progress before giving up. Default 3000. */
  timeoutMs?: number;
  /** How old an unparseable lock file must be before it counts as stale (a writer may be mid-write). Default 1000. */
  settleMs?: number;
}

/** Refused: a live supervisor (or one on another host, which cannot be checked) holds the state directory. */
export class SupervisorLockedError extends WardenError {
  readonly holder: LockHolder;
  readonly stateDir: string;
  readonly lockPath: string;
  constructor(holder: LockHolder, stateDir: string, lockPath: string) {
    const local = holder.hostname === hostname();
    super(
      'SUPERVISOR_LOCKED',
      local
        ? `Another Warden supervisor (pid ${holder.pid}, started ${holder.startedAt}) already holds ${stateDir}; stop it first or use another stateDir`
        : `Another Warden supervisor (pid ${holder.pid} on host "${holder.hostname}", started ${holder.startedAt}) holds ${stateDir} and cannot be ` +
            `checked from this host ("${hostname()}"); stop it first, use another stateDir, or delete ${lockPath} if it is gone`,
    );
    this.holder = holder;
    this.stateDir = stateDir;
    this.lockPath = lockPath;
  }
}

const LOCK_NAME = 'supervisor.lock';

/** The lock file's content: the holder plus a random nonce that tells two lock files apart. */
interface LockContent extends LockHolder {
  nonce: string;
}

/** One read of a lock (or claim) file. `key` identifies this exact file content. */
interface LockRead {
  content: LockContent | undefined;
  key: string;
  mtimeMs: number;
}

type Verdict = { kind: 'live' } | { kind: 'settling' } | { kind: 'stale'; reason: TakeoverReason };

// Takes the state directory's lock for this process; refuses with SupervisorLockedError while a live holder has it.
export async function acquireLock(stateDir: string, options: AcquireLockOptions = {}): Promise<Lock> {
  const dir = resolve(stateDir);
  await ensureStateDir(dir);
  const path = join(dir, LOCK_NAME);
  const mine = ownContent();
  const timeoutMs = options.timeoutMs ?? 3000;
  const settleMs = options.settleMs ?? 1000;
  const deadline = Date.now() + timeoutMs;
  let busyWith: string | undefined;

  for (let attempt = 0; ; attempt += 1) {
    if (attempt > 0 && Date.now() > deadline) {
      throw new WardenError('SUPERVISOR_LOCK_BUSY', `Could not take ${path} within ${timeoutMs} ms: ${busyWith ?? 'it kept changing'}; try again`);
    }
    if (await createExclusive(path, mine)) {
      await removeLeftovers(dir);
      return heldLock(path, dir, mine, undefined);
    }
    const current = await readLockFile(path);
    if (current === undefined) continue; // released between our create and our read
    const verdict = judge(current, settleMs);
    if (verdict.kind === 'live') throw new SupervisorLockedError(holderOf(current.content as LockContent), dir, path);
    if (verdict.kind === 'settling') {
      busyWith = 'its content is still being written';
      await sleep(20);
      continue;
    }
    const outcome = await takeOver(path, current, mine, settleMs);
    if (outcome.kind === 'acquired') {
      await removeLeftovers(dir);
      return heldLock(path, dir, mine, { from: current.content && holderOf(current.content), reason: verdict.reason });
    }
    if (outcome.kind === 'busy') {
      busyWith = outcome.why;
      await sleep(20);
    }
  }
}

// Decides whether a lock file's holder is alive; an unparseable file gets `settleMs` to finish being written.
function judge(read: LockRead, settleMs: number): Verdict {
  const content = read.content;
  if (content === undefined) return Date.now() - read.mtimeMs < settleMs ? { kind: 'settling' } : { kind: 'stale', reason: 'unreadable' };
  // Another host's process table is invisible from here: its lock can never be proven stale.
  if (content.hostname !== hostname()) return { kind: 'live' };
  // Pids and start times restart at every boot: a holder from an earlier boot is dead, even if its pid matches now.
  if (fromAnotherBoot(content.bootId)) return { kind: 'stale', reason: 'holder-dead' };
  if (identityHoldsNow({ pid: content.pid, startTime: content.startTime, clock: 'proc' })) return { kind: 'live' };
  const now = currentIdentity(content.pid);
  const reused = now !== undefined && content.startTime !== undefined && now.startTime !== content.startTime;
  return { kind: 'stale', reason: reused ? 'pid-reused' : 'holder-dead' };
}

/**
 * Replaces a stale lock with ours so that, of any number of contenders, exactly one does it:
 * 1. claim this stale lock by exclusively creating `supervisor.lock.takeover-<key>-<n>` (key: the stale file's nonce);
 *    a claim whose claimer died is skipped by claiming generation n+1, never deleted (deleting would race);
 * 2. re-read the lock: if it is no longer the stale one, someone finished first (a nonce never comes back);
 * 3. rename a complete file of ours over it. While we hold the claim nobody else may touch a stale lock and its
 *    dead holder cannot, so what we replace is the stale lock, and the path is never empty for another to grab.
 */
async function takeOver(
  path: string,
  stale: LockRead,
  mine: LockContent,
  settleMs: number,
): Promise<{ kind: 'acquired' } | { kind: 'changed' } | { kind: 'busy'; why: string }> {
  const claimBase = `${path}.takeover-${stale.key}`;
  let claim: string | undefined;
  for (let generation = 0; generation < 32 && claim === undefined; generation += 1) {
    const candidate = `${claimBase}-${generation}`;
    if (await createFile(candidate, JSON.stringify(mine))) {
      claim = candidate;
      break;
    }
    const other = await readLockFile(candidate);
    if (other === undefined) return { kind: 'changed' };
    if (other.content === undefined) {
      // A claim still being written, or one whose claimer died mid-write.
      if (Date.now() - other.mtimeMs < settleMs) return { kind: 'busy', why: 'a takeover claim is still being written' };
      continue;
    }
    if (identityHoldsNow({ pid: other.content.pid, startTime: other.content.startTime, clock: 'proc' })) {
      return { kind: 'busy', why: `process ${other.content.pid} is taking over the stale lock` };
    }
  }
  if (claim === undefined) return { kind: 'busy', why: 'too many abandoned takeover claims' };
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    if ((await readLockFile(path))?.key !== stale.key) return { kind: 'changed' };
    await writeComplete(temp, `${JSON.stringify(mine)}\n`, 'wx');
    try {
      await rename(temp, path);
    } catch (error) {
      // Windows refuses to replace a file another process has open; the caller retries until its deadline.
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EPERM' || code === 'EACCES' || code === 'EBUSY') return { kind: 'busy', why: `the stale lock could not be replaced (${code})` };
      throw error;
    }
    return { kind: 'acquired' };
  } finally {
    await rm(temp, { force: true });
    await rm(claim, { force: true });
  }
}

// Creates `path` with `content` only if it does not exist: hard link of a complete temp file (never seen half-written),
// or `open(wx)` where the filesystem has no hard links. Resolves false when it already exists.
async function createExclusive(path: string, content: LockContent): Promise<boolean> {
  const text = `${JSON.stringify(content)}\n`;
  const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeComplete(temp, text, 'wx');
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw error;
    return createFile(path, text);
  } finally {
    await rm(temp, { force: true });
  }
}

// Exclusive create-and-write (`wx`); false when the file exists.
async function createFile(path: string, text: string): Promise<boolean> {
  try {
    await writeComplete(path, text, 'wx');
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

async function writeComplete(path: string, text: string, flags: string): Promise<void> {
  const file = await open(path, flags, 0o644);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
}

// Reads a lock or claim file; undefined when it does not exist.
async function readLockFile(path: string): Promise<LockRead | undefined> {
  let raw: string;
  let mtimeMs: number;
  let ino: number;
  try {
    // Never through a symlink: a planted link must not make us judge (or take over) someone else's file.
    const file = await openNoFollow(path, constants.O_RDONLY);
    try {
      const info = await file.stat();
      mtimeMs = info.mtimeMs;
      ino = info.ino;
      raw = await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const content = parseContent(raw);
  const key = content?.nonce ?? `raw${ino}x${createHash('sha256').update(raw).digest('hex').slice(0, 16)}`;
  return { content, key, mtimeMs };
}

function parseContent(raw: string): LockContent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const validStart = v.startTime === undefined || v.startTime === null || (typeof v.startTime === 'number' && Number.isInteger(v.startTime));
  if (typeof v.pid !== 'number' || !Number.isInteger(v.pid) || v.pid <= 0 || !validStart) return undefined;
  if (typeof v.hostname !== 'string' || typeof v.startedAt !== 'string' || typeof v.nonce !== 'string' || !/^[0-9a-f]{8,64}$/.test(v.nonce)) return undefined;
  const bootId = typeof v.bootId === 'string' && v.bootId !== '' ? v.bootId : undefined;
  return { pid: v.pid, startTime: typeof v.startTime === 'number' ? v.startTime : undefined, hostname: v.hostname, startedAt: v.startedAt, nonce: v.nonce, ...(bootId !== undefined && { bootId }) };
}

function holderOf(content: LockContent): LockHolder {
  return { pid: content.pid, startTime: content.startTime, hostname: content.hostname, startedAt: content.startedAt, ...(content.bootId !== undefined && { bootId: content.bootId }) };
}

// This process as a lock holder, with a fresh nonce.
function ownContent(): LockContent {
  const started = new Date(Date.now() - process.uptime() * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    pid: process.pid,
    startTime: currentIdentity(process.pid)?.startTime,
    hostname: hostname(),
    startedAt: started,
    ...(currentBootId() !== undefined && { bootId: currentBootId() }),
    nonce: randomBytes(16).toString('hex'),
  };
}

function heldLock(path: string, stateDir: string, mine: LockContent, takeover: { from: LockHolder | undefined; reason: TakeoverReason } | undefined): Lock {
  const isHeld = (): boolean => {
    try {
      const fd = openNoFollowSync(path, constants.O_RDONLY);
      try {
        return parseContent(readFileSync(fd, 'utf8'))?.nonce === mine.nonce;
      } finally {
        closeSync(fd);
      }
    } catch {
      return false;
    }
  };
  return {
    path,
    stateDir,
    holder: holderOf(mine),
    ...(takeover?.from !== undefined && { takenOverFrom: takeover.from }),
    ...(takeover !== undefined && { takeoverReason: takeover.reason }),
    isHeld,
    // While we live nobody else may replace our lock, so check-then-remove cannot race with a contender.
    async release() {
      if (!isHeld()) return false;
      await rm(path, { force: true });
      return true;
    },
  };
}

// Removes temp and claim files left by processes that died mid-acquire (their pid is gone).
async function removeLeftovers(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!name.startsWith(`${LOCK_NAME}.`)) continue;
    const kind = /^supervisor\.lock\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    const full = join(dir, name);
    if (kind !== null) {
      const pid = Number(kind[1]);
      if (pid !== process.pid && !identityHoldsNow({ pid, startTime: undefined })) await rm(full, { force: true });
      continue;
    }
    if (name.startsWith(`${LOCK_NAME}.takeover-`)) {
      // Any claim here is on a lock that no longer exists (ours replaced it), so an abandoned one is safe to delete.
      const claim = await readLockFile(full);
      const claimer = claim?.content;
      const abandoned = claimer === undefined
        ? claim !== undefined && Date.now() - claim.mtimeMs > 60_000
        : !identityHoldsNow({ pid: claimer.pid, startTime: claimer.startTime, clock: 'proc' });
      if (abandoned) await rm(full, { force: true });
    }
  }
}
