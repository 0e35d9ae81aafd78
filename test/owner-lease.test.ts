// The owner lease's watcher on real processes: a dead owner, a reused pid, a closed lifeline, a stdin that is no pipe.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { OwnerLeaseError, checkLifeline, identifyOwner, watchOwner } from '../src/owner-lease.js';
import type { OwnerLease } from '../src/owner-lease.js';
import { tempDir } from './support/processes.js';

const children = new Set<ChildProcess>();
const leases = new Set<OwnerLease>();

afterEach(() => {
  for (const lease of leases) lease.release();
  leases.clear();
  // Only the sleepers this file spawned, by handle.
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
});

// A process standing in for the owner (StableNew).
function startOwner(): ChildProcess {
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: the ChildProcess handle.   Cleanup handled by: the test (SIGKILL by handle) and afterEach.   Known risks: none.
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.add(child);
  return child;
}

// Resolves with the reason the lease reports, or rejects after `ms`.
function lost(options: Parameters<typeof watchOwner>[0], ms = 3000): { lease: OwnerLease; reason: Promise<string> } {
  let lease: OwnerLease | undefined;
  const reason = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the lease reported nothing within ${ms} ms`)), ms);
    lease = watchOwner(options, (why) => {
      clearTimeout(timer);
      resolve(why);
    });
  });
  leases.add(lease!);
  return { lease: lease!, reason };
}

describe('the owner lease', () => {
  test('an owner pid that is not running is refused with OWNER_GONE', async () => {
    const owner = startOwner();
    const pid = owner.pid!;
    owner.kill('SIGKILL');
    await new Promise((resolve) => owner.once('exit', resolve));
    expect(() => identifyOwner(pid)).toThrow(OwnerLeaseError);
    expect(() => identifyOwner(pid)).toThrow(`--owner-pid ${pid}: no such process is running (the owner is already gone); nothing was started.`);
  });

  test('the death of the owner is reported within a few poll intervals', async () => {
    const owner = startOwner();
    const identity = identifyOwner(owner.pid!);
    const { reason } = lost({ owner: identity, intervalMs: 50 });
    const killedAt = Date.now();
    owner.kill('SIGKILL');
    expect(await reason).toBe(`owner pid ${owner.pid} exited`);
    expect(Date.now() - killedAt).toBeLessThan(2000);
  });

  test('a pid that now names another process (another start time) is not mistaken for the owner', async () => {
    const owner = startOwner();
    const identity = identifyOwner(owner.pid!);
    expect(identity.startTime).toBeDefined();
    // The same pid, alive, but with a start time that is not the owner's: what a reused pid looks like.
    const { reason } = lost({ owner: { ...identity, startTime: (identity.startTime ?? 0) + 1 }, intervalMs: 50 });
    expect(await reason).toBe(`owner pid ${owner.pid} exited (the pid now names another process)`);
    expect(owner.exitCode).toBeNull();
  });

  test('the end of the lifeline is reported, and a released lease reports nothing', async () => {
    const stdin = new PassThrough();
    const { reason } = lost({ lifeline: true, stdin });
    stdin.write('anything the owner writes is ignored\n');
    stdin.end();
    expect(await reason).toBe('the owner closed the lifeline (stdin reached end of file)');

    const quiet = new PassThrough();
    let called = false;
    const lease = watchOwner({ lifeline: true, stdin: quiet }, () => (called = true));
    lease.release();
    quiet.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(called).toBe(false);
  });

  test('a lifeline must be a pipe: a regular file is refused with LIFELINE_NOT_A_PIPE', () => {
    const file = join(tempDir('warden-lease-'), 'stdin.txt');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    try {
      expect(() => checkLifeline({ fd })).toThrow(expect.objectContaining({ code: 'LIFELINE_NOT_A_PIPE', message: expect.stringContaining('it is a file') }));
    } finally {
      closeSync(fd);
    }
  });
});
