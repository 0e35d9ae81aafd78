// A process the stopper may not signal (EPERM: another user's) ends the stop with a report naming it, at once:
// no wait for the confirmation timeout, no endless retry, and the process itself is left exactly as it was.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { readStartTime } from '../../src/process/posix/procfs.js';
import type { TerminationReport } from '../../src/process/terminate.js';
import { startPiped } from '../support/child.js';
import { isAliveNow, waitFor } from '../support/processes.js';

const AS_USER = resolve(import.meta.dirname, '../fixtures/terminate/as-user.ts');
const ROOT = resolve(import.meta.dirname, '../..');
// Two unprivileged uids: the stopper runs as one, the victim as the other, so the kernel refuses every signal.
const STOPPER_UID = 65534;
const VICTIM_UID = 65533;
const children: ChildProcess[] = [];

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); // our own children, by handle
});

describe('terminate against EPERM', () => {
  test('a root process of another user is reported as a denied survivor, the stop ends well before confirmTimeoutMs, and the process lives on', async () => {
    expect(process.getuid?.(), 'this test needs root to run processes as two other uids').toBe(0);
    // PROCESS LIFECYCLE: creates a subprocess (the victim, as uid 65533)
    // Parent tracking: our ChildProcess handle.   Cleanup handled by: afterEach SIGKILL by handle.   Known risks: none.
    const victim = spawn('sleep', ['60'], { uid: VICTIM_UID, gid: VICTIM_UID, stdio: 'ignore' });
    children.push(victim);
    const pid = victim.pid as number;
    await waitFor(() => readStartTime(pid)?.startTime !== undefined, 5000, 'the victim to start');
    const startTime = readStartTime(pid)?.startTime;
    const record = { instanceId: 'eperm', marker: `eperm:${randomBytes(8).toString('hex')}`, root: { pid, startTime, clock: 'proc' } };
    const confirmTimeoutMs = 10_000;

    // PROCESS LIFECYCLE: creates a subprocess (the stopper: starts as root, drops to uid 65534 before it signals)
    // Parent tracking: startPiped's handle, awaited.   Cleanup handled by: afterEach SIGKILL by handle.   Known risks: none.
    const stopper = startPiped(process.execPath, ['--import', 'tsx', AS_USER, String(STOPPER_UID), JSON.stringify(record), JSON.stringify({ graceMs: 200, confirmTimeoutMs })], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/tmp', NO_COLOR: '1' },
    });
    children.push(stopper.child);
    const result = await stopper.done;
    expect(result.code, result.stderr).toBe(0);
    const { uid, report } = JSON.parse(result.stdout) as { uid: number; report: TerminationReport };
    expect(uid).toBe(STOPPER_UID);
    expect(report.survivors).toEqual([{ pid, name: 'sleep', role: 'other', reason: 'permission denied (EPERM): the process belongs to another user', denied: true }]);
    expect(report.killed).toEqual([]);
    // It gave up because nothing could change, not because the confirmation ran out.
    expect(report.durationMs).toBeLessThan(confirmTimeoutMs);
    expect(isAliveNow(pid, startTime)).toBe(true);
    expect(readStartTime(pid)?.state).not.toBe('T');
  });
});
