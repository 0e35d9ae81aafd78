// The supervisor lock: a live holder in another process is named and refused; a dead or reused-pid holder is taken over.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, test } from 'vitest';
import { SupervisorLockedError, acquireLock } from '../../src/process/state/lock.js';
import { readStartTime } from '../../src/process/posix/procfs.js';
import { cleanupProcesses, isAliveNow, tempDir, waitFor } from '../support/processes.js';

const REPO = resolve(import.meta.dirname, '../..');
const HOLDER = join(REPO, 'test/fixtures/lock/hold-lock.ts');

/** A plain child process of this test, with the start time that proves it is still the same process. */
interface Child {
  child: ChildProcess;
  pid: number;
  startTime: number | undefined;
  exited: Promise<void>;
}
const children: Child[] = [];

afterEach(async () => {
  for (const entry of children.splice(0)) {
    if (entry.startTime !== undefined && isAliveNow(entry.pid, entry.startTime)) process.kill(entry.pid, 'SIGKILL');
  }
  await cleanupProcesses();
});

function track(child: ChildProcess): Child {
  const pid = child.pid as number;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const entry = { child, pid, startTime: readStartTime(pid)?.startTime, exited };
  children.push(entry);
  return entry;
}

/** What the holder fixture prints once it has tried to acquire. */
interface HolderResult {
  result: 'acquired' | 'refused';
  pid: number;
  takenOverFrom?: number | null;
  code?: string | null;
  message?: string;
}

// Starts the fixture in its own Node process; resolves with its first line (acquired or refused).
function startHolder(stateDir: string, startAt?: number): { holder: Child; result: Promise<HolderResult> } {
  const args = ['--import', 'tsx', HOLDER, stateDir, ...(startAt === undefined ? [] : [String(startAt)])];
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: track() keeps the ChildProcess handle.   Cleanup handled by: afterEach kills every tracked child by its handle.   Known risks: none past the test.
  const holder = track(spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] }));
  const result = new Promise<HolderResult>((done, fail) => {
    const lines = createInterface({ input: holder.child.stdout as NodeJS.ReadableStream });
    lines.once('line', (line) => done(JSON.parse(line) as HolderResult));
    void holder.exited.then(() => fail(new Error(`lock holder ${holder.pid} exited without a result`)));
  });
  return { holder, result };
}

// A live process with no lock of its own: its pid is what a reused pid looks like.
function startSleeper(): Child {
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: track() keeps the ChildProcess handle.   Cleanup handled by: afterEach kills every tracked child by its handle.   Known risks: none past the test.
  return track(spawn('sleep', ['60'], { stdio: 'ignore' }));
}

function writeLockFile(stateDir: string, holder: { pid: number; startTime: number | undefined; hostname?: string }): void {
  const content = { hostname: hostname(), startedAt: '2026-01-01T00:00:00Z', nonce: randomBytes(16).toString('hex'), ...holder };
  writeFileSync(join(stateDir, 'supervisor.lock'), JSON.stringify(content));
}

const lockFile = (stateDir: string): { pid: number; startTime: number } =>
  JSON.parse(readFileSync(join(stateDir, 'supervisor.lock'), 'utf8')) as { pid: number; startTime: number };

describe('supervisor lock', () => {
  test('a second supervisor is refused while the holder lives, naming it; once the holder is killed, the next one takes over', async () => {
    const stateDir = tempDir();
    const { holder, result } = startHolder(stateDir);
    expect(await result).toMatchObject({ result: 'acquired', pid: holder.pid, takenOverFrom: null });
    const held = lockFile(stateDir);
    expect(held).toMatchObject({ pid: holder.pid, startTime: holder.startTime, hostname: hostname() });

    const refusal = await acquireLock(stateDir).then(() => undefined, (error: unknown) => error);
    expect(refusal).toBeInstanceOf(SupervisorLockedError);
    const locked = refusal as SupervisorLockedError;
    expect(locked.code).toBe('SUPERVISOR_LOCKED');
    expect(locked.holder.pid).toBe(holder.pid);
    expect(locked.message).toMatch(
      new RegExp(`^Another Warden supervisor \\(pid ${holder.pid}, started \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\) already holds ${stateDir}; stop it first or use another stateDir$`),
    );
    expect(lockFile(stateDir)).toEqual(held);

    // The holder dies without releasing (a crashed supervisor).
    expect(isAliveNow(holder.pid, holder.startTime)).toBe(true);
    process.kill(holder.pid, 'SIGKILL');
    await holder.exited;

    const lock = await acquireLock(stateDir);
    expect(lock.takenOverFrom?.pid).toBe(holder.pid);
    expect(lock.takenOverFrom?.startTime).toBe(holder.startTime);
    expect(lock.takeoverReason).toBe('holder-dead');
    expect(lockFile(stateDir)).toMatchObject({ pid: process.pid, startTime: readStartTime(process.pid)?.startTime });
    expect(readdirSync(stateDir)).toEqual(['supervisor.lock']);
    expect(await lock.release()).toBe(true);
  });

  test('a lock naming a live pid whose start time differs (a reused pid) is taken over, and that process is untouched', async () => {
    const stateDir = tempDir();
    const sleeper = startSleeper();
    expect(sleeper.startTime).toBeTypeOf('number');
    writeLockFile(stateDir, { pid: sleeper.pid, startTime: (sleeper.startTime as number) - 500 });

    const lock = await acquireLock(stateDir);
    expect(lock.takeoverReason).toBe('pid-reused');
    expect(lock.takenOverFrom?.pid).toBe(sleeper.pid);
    expect(lock.holder.pid).toBe(process.pid);
    expect(isAliveNow(sleeper.pid, sleeper.startTime)).toBe(true);
    await lock.release();
  });

  test('the same pid with the same start time is a live holder, even when that process never took the lock itself', async () => {
    const stateDir = tempDir();
    const sleeper = startSleeper();
    writeLockFile(stateDir, { pid: sleeper.pid, startTime: sleeper.startTime });
    await expect(acquireLock(stateDir)).rejects.toMatchObject({ code: 'SUPERVISOR_LOCKED', holder: { pid: sleeper.pid } });
  });

  test('of six supervisors racing for one stale lock, exactly one wins and the others name the winner', async () => {
    const stateDir = tempDir();
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: track() keeps the handle; `node -e ''` exits at once.   Cleanup handled by: itself / afterEach.   Known risks: none.
    const gone = track(spawn(process.execPath, ['-e', '']));
    await gone.exited;
    writeLockFile(stateDir, { pid: gone.pid, startTime: gone.startTime });

    const startAt = Date.now() + 2500;
    const contenders = Array.from({ length: 6 }, () => startHolder(stateDir, startAt));
    const results = await Promise.all(contenders.map((contender) => contender.result));

    const winners = results.filter((entry) => entry.result === 'acquired');
    expect(winners).toHaveLength(1);
    const winner = winners[0] as HolderResult;
    expect(winner.takenOverFrom).toBe(gone.pid);
    for (const loser of results.filter((entry) => entry.result === 'refused')) {
      expect(loser.code).toBe('SUPERVISOR_LOCKED');
      expect(loser.message).toContain(`pid ${winner.pid},`);
    }
    expect(lockFile(stateDir).pid).toBe(winner.pid);
    await waitFor(() => readdirSync(stateDir).length === 1, 5000, 'only the lock file to remain');
    expect(readdirSync(stateDir)).toEqual(['supervisor.lock']);
  });

  test('release removes the lock only while it still holds our identity', async () => {
    const stateDir = tempDir();
    const lock = await acquireLock(stateDir);
    expect(lock.isHeld()).toBe(true);
    expect(await lock.release()).toBe(true);
    expect(readdirSync(stateDir)).toEqual([]);
    expect(await lock.release()).toBe(false);

    // Someone else's lock now sits at the path: our release must leave it.
    const again = await acquireLock(stateDir);
    const sleeper = startSleeper();
    writeLockFile(stateDir, { pid: sleeper.pid, startTime: sleeper.startTime });
    const theirs = readFileSync(join(stateDir, 'supervisor.lock'), 'utf8');
    expect(again.isHeld()).toBe(false);
    expect(await again.release()).toBe(false);
    expect(readFileSync(join(stateDir, 'supervisor.lock'), 'utf8')).toBe(theirs);
  });

  test('an unreadable lock file is taken over once it is older than the settle time; a fresh one is waited for', async () => {
    const stateDir = tempDir();
    const path = join(stateDir, 'supervisor.lock');
    writeFileSync(path, '{"pid": 12');
    const old = new Date(Date.now() - 10_000);
    utimesSync(path, old, old);
    const lock = await acquireLock(stateDir);
    expect(lock.takeoverReason).toBe('unreadable');
    expect(lock.takenOverFrom).toBeUndefined();
    await lock.release();

    writeFileSync(path, '');
    const began = Date.now();
    const waited = await acquireLock(stateDir, { settleMs: 400 });
    expect(Date.now() - began).toBeGreaterThanOrEqual(350);
    expect(waited.takeoverReason).toBe('unreadable');
    await waited.release();
  });

  test('a lock held on another host is refused: its holder cannot be checked from here', async () => {
    const stateDir = tempDir();
    writeLockFile(stateDir, { pid: 4312, startTime: 1, hostname: 'render-box' });
    await expect(acquireLock(stateDir)).rejects.toThrow(/pid 4312 on host "render-box".*delete .*supervisor\.lock if it is gone/);
  });
});
