// Scenario tests of the instance machine with fake actors and a simulated clock.
import { describe, expect, test } from 'vitest';
import { backoffDelay, budgetExceeded, instanceContext } from '../../machines/index.js';
import type { RestartPolicy } from '../../machines/index.js';
import { InstanceHarness, POLICY, report } from './support/harness.js';
import type { HarnessOptions } from './support/harness.js';

const dead = () => 'dead' as const;

async function startHealthy(h: InstanceHarness): Promise<void> {
  await h.send({ type: 'START' });
  await h.report({ type: 'HEALTHY' });
  expect(h.value).toBe('running');
}

// Python dies; the stop protocol (auto) confirms the tree dead; the instance waits in `crashed` or ends `failed`.
async function crash(h: InstanceHarness): Promise<void> {
  await h.report({ type: 'PROCESS_EXITED', code: 1, signal: null });
}

function harness(restart: Partial<RestartPolicy>, options: HarnessOptions = {}): InstanceHarness {
  return new InstanceHarness({ terminate: dead, ...options, input: { ...options.input, restart } }).start();
}

describe('instance machine: crash, cleanup, restart', () => {
  test('a crashed Python is cleaned up (stopping, reason crash) before the restart, never after', async () => {
    const h = harness({});
    await startHealthy(h);
    await crash(h);
    expect(h.value).toBe('crashed');
    expect(h.terminates).toEqual([{ id: 'webui', reason: 'crash', attempt: 0 }]);
    expect(h.tree.alive).toBe(false);
    await h.clock.fireNext();
    expect(h.value).toEqual({ spawning: 'awaitingHealth' });
    expect(h.tree.launches).toBe(2);
    expect(h.tree.violations).toEqual([]);
    expect(h.context.lastExit).toEqual({ code: 1, signal: null, at: null });
    expect(h.context.restarts).toBe(1);
  });

  test('restart delays double from baseDelayMs up to maxDelayMs, jittered down by at most 10 %', async () => {
    const restart = { baseDelayMs: 1000, maxDelayMs: 8000, maxRestarts: 100, windowMs: 1e9, resetAfterMs: 1e9 };
    const h = harness(restart);
    await startHealthy(h);
    const delays: number[] = [];
    for (let n = 0; n < 6; n++) {
      await crash(h);
      const crashedAt = h.clock.now();
      await h.clock.fireNext();
      delays.push((h.launchTimes.at(-1) as number) - crashedAt);
      await h.report({ type: 'HEALTHY' });
    }
    const policy = { ...POLICY, ...restart };
    expect(delays).toEqual([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, policy, 42)));
    const caps = [1000, 2000, 4000, 8000, 8000, 8000];
    delays.forEach((delay, n) => {
      expect(delay).toBeLessThanOrEqual(caps[n] as number);
      expect(delay).toBeGreaterThanOrEqual(0.9 * (caps[n] as number));
    });
  });

  test('more than maxRestarts crashes within windowMs end in failed, and the machine agrees with budgetExceeded()', async () => {
    const restart = { baseDelayMs: 100, maxDelayMs: 100, jitter: 0, maxRestarts: 3, windowMs: 60_000, resetAfterMs: 1e9 };
    const policy = { ...POLICY, ...restart };
    const h = harness(restart);
    await startHealthy(h);
    for (let n = 0; n < 3; n++) {
      await crash(h);
      expect(budgetExceeded(h.launchTimes.slice(1), h.clock.now(), policy)).toBe(false);
      expect(h.value).toBe('crashed');
      await h.clock.fireNext();
      await h.report({ type: 'HEALTHY' });
    }
    await crash(h);
    expect(budgetExceeded(h.launchTimes.slice(1), h.clock.now(), policy)).toBe(true);
    expect(h.value).toBe('failed');
    expect(h.context.lastError).toMatch(/^restart budget spent: 3 restarts within 60000 ms \(maxRestarts 3\); last: process exited/);
    expect(h.tree.alive).toBe(false);
    expect(h.tree.launches).toBe(4);
  });

  test('a restart leaves the count windowMs later: crashes spread wider than the window never exhaust the budget', async () => {
    const restart = { baseDelayMs: 100, maxDelayMs: 100, jitter: 0, maxRestarts: 2, windowMs: 10_000, resetAfterMs: 1e9 };
    const policy = { ...POLICY, ...restart };
    const h = harness(restart);
    await startHealthy(h);
    const crashAndCheck = async (expected: 'crashed' | 'failed') => {
      await crash(h);
      expect(budgetExceeded(h.launchTimes.slice(1), h.clock.now(), policy)).toBe(expected === 'failed');
      expect(h.value).toBe(expected);
    };
    await crashAndCheck('crashed');
    await h.clock.fireNext(); // restart 1 at t=100
    await h.report({ type: 'HEALTHY' });
    await h.clock.advance(6_000);
    await crashAndCheck('crashed');
    await h.clock.fireNext(); // restart 2 at t=6200
    await h.report({ type: 'HEALTHY' });
    expect(h.context.restarts).toBe(2);
    await h.clock.advance(5_000); // restart 1 leaves the window at t=10100
    expect(h.context.restarts).toBe(1);
    await crashAndCheck('crashed');
    await h.clock.fireNext(); // restart 3 at t=11300: 2 in the window
    await h.report({ type: 'HEALTHY' });
    await crashAndCheck('failed');
  });

  test('after resetAfterMs of stable running the count and the backoff start over', async () => {
    const restart = { baseDelayMs: 1000, maxDelayMs: 60_000, maxRestarts: 5, windowMs: 1e9, resetAfterMs: 10_000 };
    const policy = { ...POLICY, ...restart };
    const h = harness(restart);
    await startHealthy(h);
    for (let n = 0; n < 2; n++) {
      await crash(h);
      await h.clock.fireNext();
      await h.report({ type: 'HEALTHY' });
    }
    expect(h.context.restarts).toBe(2);
    await h.clock.advance(9_999);
    expect(h.context.restarts).toBe(2);
    await h.clock.advance(1);
    expect(h.context.restarts).toBe(0);
    await crash(h);
    const crashedAt = h.clock.now();
    await h.clock.fireNext();
    expect((h.launchTimes.at(-1) as number) - crashedAt).toBe(backoffDelay(0, policy, 42));
  });

  test('a window expiry scheduled before a reset does not take a later restart off the count', async () => {
    const restart = { baseDelayMs: 100, maxDelayMs: 100, jitter: 0, maxRestarts: 1, windowMs: 20_000, resetAfterMs: 5_000 };
    const h = harness(restart);
    await startHealthy(h);
    await crash(h);
    await h.clock.fireNext(); // restart A at t=100, leaves the window at t=20100
    await h.report({ type: 'HEALTHY' });
    await h.clock.advance(5_000); // stable: count reset
    expect(h.context.restarts).toBe(0);
    await h.clock.advance(13_900); // t=19000
    await crash(h);
    await h.clock.fireNext(); // restart B at t=19100
    await h.report({ type: 'HEALTHY' });
    await h.clock.advance(1_400); // t=20500: A's expiry has fired and must not count
    expect(h.context.restarts).toBe(1);
    await crash(h);
    expect(h.value).toBe('failed');
  });

  test('with restart.onCrash false a crash still cleans up, then ends in failed', async () => {
    const h = harness({ onCrash: false });
    await startHealthy(h);
    await crash(h);
    expect(h.terminates).toEqual([{ id: 'webui', reason: 'crash', attempt: 0 }]);
    expect(h.value).toBe('failed');
    expect(h.context.lastError).toBe('crashed (restart disabled): process exited (code 1, signal none)');
    expect(h.tree.launches).toBe(1);
  });

  test('RESET leaves failed for idle with a fresh budget; START before RESET is ignored', async () => {
    const h = harness({ onCrash: false });
    await startHealthy(h);
    await crash(h);
    await h.send({ type: 'START' });
    expect(h.value).toBe('failed');
    await h.send({ type: 'RESET' });
    expect(h.value).toBe('idle');
    expect(h.context.lastError).toBeNull();
    expect(h.context.restarts).toBe(0);
    await startHealthy(h);
  });

  test('health failures, a startup timeout, a launch error and a monitor error all go through stopping (reason crash)', async () => {
    const healthFailed = harness({});
    await startHealthy(healthFailed);
    await healthFailed.report({ type: 'HEALTH_FAILED', reason: '3 pings timed out' });
    expect(healthFailed.context.lastError).toBe('health check failed: 3 pings timed out');

    const slow = harness({});
    await slow.send({ type: 'START' });
    await slow.clock.advance(60_000);
    expect(slow.context.lastError).toBe('not healthy within startupTimeoutMs (60000 ms)');

    const launchFails = harness({}, { autoLaunch: false });
    await launchFails.send({ type: 'START' });
    await launchFails.rejectLaunch(new Error('spawn ./webui.sh ENOENT'));
    expect(launchFails.context.lastError).toBe('launch failed: spawn ./webui.sh ENOENT');

    const monitorFails = harness({});
    await startHealthy(monitorFails);
    await monitorFails.failMonitor();
    expect(monitorFails.context.lastError).toBe('monitor failed: monitor lost the process table');

    for (const h of [healthFailed, slow, launchFails, monitorFails]) {
      expect(h.terminates).toEqual([{ id: 'webui', reason: 'crash', attempt: 0 }]);
      expect(h.value).toBe('crashed');
      expect(h.tree.violations).toEqual([]);
    }
  });
});

describe('instance machine: stop, restart and intent', () => {
  test('STOP during launch cancels the launch (its signal aborts) and stops whatever started', async () => {
    const h = new InstanceHarness({ autoLaunch: false }).start();
    await h.send({ type: 'START' });
    expect(h.value).toEqual({ spawning: 'launching' });
    await h.send({ type: 'STOP' });
    expect(h.launchSignals[0]?.aborted).toBe(true);
    expect(h.value).toEqual({ stopping: 'terminating' });
    expect(h.tree.alive).toBe(true);
    await h.resolveTerminate(report(false));
    expect(h.value).toBe('idle');
    expect(h.terminates).toEqual([{ id: 'webui', reason: 'stop', attempt: 0 }]);
  });

  test('RESTART is stop (confirmed) then start, never start then stop', async () => {
    const h = new InstanceHarness().start();
    await startHealthy(h);
    await h.send({ type: 'RESTART' });
    expect(h.value).toEqual({ stopping: 'terminating' });
    expect(h.tree.launches).toBe(1);
    await h.resolveTerminate(report(false));
    expect(h.value).toEqual({ spawning: 'awaitingHealth' });
    expect(h.log.filter((line) => /^(launch|terminate)/.test(line))).toEqual([
      'launch(attempt 0)',
      'terminate(restart, attempt 0)',
      'launch(attempt 0)',
    ]);
    expect(h.tree.violations).toEqual([]);
  });

  test('START during stopping means spawn once the tree is confirmed dead', async () => {
    const h = new InstanceHarness().start();
    await startHealthy(h);
    await h.send({ type: 'STOP' });
    await h.send({ type: 'START' });
    expect(h.value).toEqual({ stopping: 'terminating' });
    await h.resolveTerminate(report(false));
    expect(h.value).toEqual({ spawning: 'awaitingHealth' });
  });

  test('STOP during a restart\'s stopping means stay idle afterwards', async () => {
    const h = new InstanceHarness().start();
    await startHealthy(h);
    await h.send({ type: 'RESTART' });
    await h.send({ type: 'STOP' });
    await h.resolveTerminate(report(false));
    expect(h.value).toBe('idle');
    expect(h.tree.launches).toBe(1);
  });

  test('STOP during a crash cleanup means idle, not a restart', async () => {
    const h = new InstanceHarness().start();
    await startHealthy(h);
    await crash(h);
    await h.send({ type: 'STOP' });
    await h.resolveTerminate(report(false));
    expect(h.value).toBe('idle');
  });

  test('survivors keep the instance in stopping: an alert per attempt, escalated retries, then idle once none survive', async () => {
    const outcomes = ['survivor', 'survivor', 'dead'] as const;
    const h = new InstanceHarness({ terminate: ({ attempt }) => outcomes[attempt] ?? 'dead' }).start();
    await startHealthy(h);
    await h.send({ type: 'STOP' });
    expect(h.value).toEqual({ stopping: 'retrying' });
    expect(h.context.lastReport?.survivors).toHaveLength(1);
    await h.clock.advance(999);
    expect(h.terminates).toHaveLength(1);
    await h.clock.advance(1);
    expect(h.terminates).toHaveLength(2);
    await h.clock.advance(1000);
    expect(h.terminates.map((t) => t.attempt)).toEqual([0, 1, 2]);
    expect(h.value).toBe('idle');
    expect(h.alerts.map((a) => [a.kind, a.attempt])).toEqual([
      ['survivors', 0],
      ['survivors', 1],
    ]);
    expect(h.alerts[0]?.message).toMatch(/"webui" is not confirmed dead after terminate attempt 0: 4100 bash \(shell\) still alive/);
    expect(h.context.lastReport?.survivors).toEqual([]);
  });

  test('a terminate error is an alert and a retry, never a success', async () => {
    const outcomes = ['error', 'error', 'dead'] as const;
    const h = new InstanceHarness({ terminate: ({ attempt }) => outcomes[attempt] ?? 'dead' }).start();
    await startHealthy(h);
    await h.send({ type: 'STOP' });
    expect(h.value).toEqual({ stopping: 'retrying' });
    await h.clock.advance(2_000);
    expect(h.value).toBe('idle');
    expect(h.alerts.map((a) => a.kind)).toEqual(['terminate-failed', 'terminate-failed']);
  });

  test('a survivor that refuses our signals (EPERM) ends the stop at once: one attempt, a stop-stuck alert naming it, no retry timer', async () => {
    const h = new InstanceHarness({ autoLaunch: true }).start();
    await startHealthy(h);
    await h.send({ type: 'STOP' });
    const denied = { pid: 4100, name: 'bash', role: 'shell' as const, reason: 'permission denied (EPERM): the process belongs to another user', denied: true };
    await h.resolveTerminate({ ...report(true), survivors: [denied] });
    expect(h.value).toEqual({ stopping: 'stuck' });
    expect(h.terminates).toHaveLength(1);
    expect(h.alerts.map((a) => a.kind)).toEqual(['stop-stuck']);
    expect(h.alerts[0]?.survivors).toEqual([denied]);
    expect(h.alerts[0]?.message).toMatch(/^"webui" is not confirmed dead and Warden stopped retrying: 4100 bash \(shell: permission denied \(EPERM\)[^)]*\) still alive; every survivor refuses our signals \(EPERM\), so retrying cannot help/);
    // Nothing is pending: the machine does not loop on a tree it cannot kill, and it never left stopping.
    await h.clock.advance(60_000);
    expect(h.terminates).toHaveLength(1);
    expect(h.value).toEqual({ stopping: 'stuck' });
    expect(h.tree.launches).toBe(1);
  });

  test('survivors that might still die get maxStopAttempts attempts, then stop-stuck; a new STOP starts a fresh round', async () => {
    const h = new InstanceHarness({ terminate: () => 'survivor', input: { maxStopAttempts: 3 } }).start();
    await startHealthy(h);
    await h.send({ type: 'STOP' });
    await h.clock.advance(10_000);
    expect(h.terminates.map((t) => t.attempt)).toEqual([0, 1, 2]);
    expect(h.value).toEqual({ stopping: 'stuck' });
    expect(h.alerts.map((a) => a.kind)).toEqual(['survivors', 'survivors', 'stop-stuck']);
    expect(h.alerts[2]?.message).toContain('3 of 3 terminate attempts made');
    await h.send({ type: 'STOP' });
    expect(h.terminates.map((t) => t.attempt)).toEqual([0, 1, 2, 0]);
    expect(h.value).toEqual({ stopping: 'retrying' });
  });

  test('terminate errors are bounded too: the last allowed failure is stop-stuck, not another retry', async () => {
    const h = new InstanceHarness({ terminate: () => 'error', input: { maxStopAttempts: 2 } }).start();
    await startHealthy(h);
    await h.send({ type: 'STOP' });
    await h.clock.advance(10_000);
    expect(h.terminates).toHaveLength(2);
    expect(h.alerts.map((a) => a.kind)).toEqual(['terminate-failed', 'stop-stuck']);
    expect(h.alerts[1]?.message).toMatch(/the last attempt failed \(.+\); 2 of 2 terminate attempts made/);
    expect(h.value).toEqual({ stopping: 'stuck' });
  });

  test('a stuck stop that is asked to RESTART tries again and launches only once the tree is confirmed dead', async () => {
    let calls = 0;
    // The first attempt leaves a survivor (stuck, maxStopAttempts 1); the next one, after RESTART, confirms it dead.
    const h = new InstanceHarness({ terminate: () => (++calls === 1 ? 'survivor' : 'dead'), input: { maxStopAttempts: 1 } }).start();
    await startHealthy(h);
    await h.send({ type: 'STOP' });
    expect(h.value).toEqual({ stopping: 'stuck' });
    await h.send({ type: 'RESTART' });
    expect(h.tree.violations).toEqual([]);
    expect(h.tree.launches).toBe(2);
    expect(h.value).toEqual({ spawning: 'awaitingHealth' });
  });

  test('a terminate report without a survivors list is not taken as proof of death', async () => {
    const h = new InstanceHarness({ autoLaunch: true }).start();
    await startHealthy(h);
    await h.send({ type: 'STOP' });
    await h.resolveTerminate({ killed: [], escalated: false, durationMs: 1 } as never);
    expect(h.value).toEqual({ stopping: 'retrying' });
    expect(h.alerts[0]?.message).toMatch(/without a survivors list/);
  });

  test('context carries the status fields and survives JSON', async () => {
    const h = new InstanceHarness().start();
    await h.send({ type: 'START' });
    await h.report({ type: 'PIDS_DISCOVERED', pythonPid: 4102 });
    await h.report({ type: 'HEALTHY', at: 1234 });
    const context = h.context;
    expect(context).toMatchObject({ pid: 4100, shellPid: 4100, pythonPid: 4102, marker: 'webui:t0k3n', runningSince: 1234, desired: 'running' });
    expect(JSON.parse(JSON.stringify(context))).toEqual(context);
  });

  test('an invalid input names each bad field', () => {
    expect(() =>
      instanceContext({ id: 'webui', startupTimeoutMs: 1000, restart: { ...POLICY, baseDelayMs: -1, jitter: 2 } }),
    ).toThrow('Invalid instance "webui": restart.baseDelayMs must be a finite number >= 0, received -1; restart.jitter must be a fraction between 0 and 1, received 2');
    expect(() => instanceContext({ id: 'webui', startupTimeoutMs: 1000, restart: POLICY, maxStopAttempts: 0 })).toThrow('maxStopAttempts must be an integer >= 1, received 0');
  });
});
