// The supervisor on real trees: start through webui.sh, stop confirmed, restarts that never leave two trees behind.
import { describe, expect, test } from 'vitest';
import type { WardenEvent } from '../../src/index.js';
import { readStartTime } from '../../src/process/posix/procfs.js';
import { isAliveNow, startDecoy } from '../support/processes.js';
import { fakeInstance, makeSupervisor, pidsOfInstance, withDecoysUntouched } from '../support/runtime.js';

withDecoysUntouched();

describe('supervisor lifecycle', () => {
  test('instances[].maxStopAttempts reaches each live instance machine (default 5 where it is not set)', async () => {
    const bounded = { ...(await fakeInstance()), maxStopAttempts: 2 };
    const plain = await fakeInstance();
    const supervisor = makeSupervisor([bounded, plain]);
    await supervisor.ready();
    // The bound is read from the running instance actors themselves, not from the parsed config.
    const attemptsOf = (id: string): unknown => supervisor.actor.system.get(`instance:${id}`)?.getSnapshot().context.maxStopAttempts;
    expect(supervisor.config.instances.map((instance) => instance.maxStopAttempts)).toEqual([2, 5]);
    expect(attemptsOf(bounded.id)).toBe(2);
    expect(attemptsOf(plain.id)).toBe(5);
  });

  test('start tracks the shell parent; stop leaves no shell, no Python and no marked orphan anywhere', async () => {
    const decoy = await startDecoy('python3', ['launch.py', '--port', '0']);
    const instance = await fakeInstance({ args: ['--workers', '3'] });
    const supervisor = makeSupervisor([instance]);

    const running = await supervisor.start(instance.id);
    expect(running.state).toBe('running');
    expect(running.shellPid).toBe(running.pid);
    expect(running.pythonPid).not.toBeNull();
    const before = pidsOfInstance(instance.id);
    expect(before.length).toBeGreaterThanOrEqual(5);
    expect(before).toContain(running.shellPid);

    const report = await supervisor.stop(instance.id);

    expect(report.survivors).toEqual([]);
    expect(report.killed.map((entry) => entry.pid)).toEqual(expect.arrayContaining([running.shellPid, running.pythonPid]));
    expect(pidsOfInstance(instance.id)).toEqual([]);
    expect(supervisor.status().instances[0]?.state).toBe('idle');
    expect(isAliveNow(decoy.pid, decoy.startTime)).toBe(true);
  });

  test('ten restarts leave exactly one tree and nothing stale', async () => {
    const instance = await fakeInstance({ args: ['--workers', '2'] });
    const supervisor = makeSupervisor([instance]);
    await supervisor.start(instance.id);
    let maxTrees = 0;
    const subscription = supervisor.events$.subscribe((event) => {
      if (event.type === 'sample') maxTrees = Math.max(maxTrees, event.sample.counts.shell);
    });

    const shells = new Set<number>();
    for (let round = 0; round < 10; round += 1) {
      const status = await supervisor.restart(instance.id);
      expect(status.state).toBe('running');
      shells.add(status.shellPid as number);
    }
    subscription.unsubscribe();

    expect(shells.size).toBe(10);
    const alive = pidsOfInstance(instance.id);
    // One tree: the shell, its Python and 2 workers.
    expect(alive).toHaveLength(4);
    const status = supervisor.status();
    expect(status.watchdog.counts?.stale ?? 0).toBe(0);
    expect(maxTrees).toBeLessThanOrEqual(1);
  }, 120_000);

  test('a lost connection (hung WebUI) is answered by a restart whose old tree is confirmed dead first', async () => {
    const instance = await fakeInstance({ args: ['--workers', '1', '--hang-after', '1'], health: { intervalMs: 300, timeoutMs: 300, failureThreshold: 2 } });
    const supervisor = makeSupervisor([instance]);
    const events: WardenEvent[] = [];
    supervisor.events$.subscribe((event) => {
      if (event.type !== 'sample') events.push(event);
    });
    const first = await supervisor.start(instance.id);
    const firstStart = readStartTime(first.pid as number)?.startTime;

    // Liveness fails (2 × 150 ms timeouts), the tree goes through stopping (crash), then a new launch.
    await waitUntil(() => events.filter((event) => event.type === 'launch').length >= 2, 20_000);

    const launches = events.filter((event): event is Extract<WardenEvent, { type: 'launch' }> => event.type === 'launch');
    const crashStop = events.find((event): event is Extract<WardenEvent, { type: 'termination' }> => event.type === 'termination' && event.reason === 'crash');
    expect(crashStop).toBeDefined();
    expect(crashStop?.report.survivors).toEqual([]);
    expect(crashStop?.report.killed.map((entry) => entry.pid)).toContain(first.pid);
    // Ordering read from events$: the termination that confirmed the old tree dead precedes the second launch.
    expect(events.indexOf(crashStop as WardenEvent)).toBeLessThan(events.indexOf(launches[1] as WardenEvent));
    expect(isAliveNow(first.pid as number, firstStart)).toBe(false);
  }, 40_000);

  test('a crash loop follows the backoff, ends in failed at the budget, and never shows two trees', async () => {
    const instance = await fakeInstance({
      args: ['--exit-immediately'],
      restart: { baseDelayMs: 100, maxDelayMs: 800, maxRestarts: 3, windowMs: 60_000 },
    });
    const supervisor = makeSupervisor([instance]);
    const launches: number[] = [];
    let maxShells = 0;
    supervisor.events$.subscribe((event) => {
      if (event.type === 'launch') launches.push(event.at);
      if (event.type === 'sample') maxShells = Math.max(maxShells, event.sample.perInstance[instance.id]?.shell ?? 0);
    });

    await expect(supervisor.start(instance.id)).rejects.toMatchObject({ code: 'START_FAILED' });
    await waitUntil(() => supervisor.status().instances[0]?.state === 'failed', 20_000);

    // 1 start + 3 restarts, then the budget is spent.
    expect(launches).toHaveLength(4);
    const gaps = launches.slice(1).map((at, index) => at - (launches[index] as number));
    // Backoff grows: each gap at least the (jittered, ≥ 90 %) exponential delay 100, 200, 400 ms.
    expect(gaps[0]).toBeGreaterThanOrEqual(90);
    expect(gaps[1]).toBeGreaterThanOrEqual(180);
    expect(gaps[2]).toBeGreaterThanOrEqual(360);
    expect(maxShells).toBeLessThanOrEqual(1);
    expect(pidsOfInstance(instance.id)).toEqual([]);
  }, 40_000);
});

async function waitUntil(predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
