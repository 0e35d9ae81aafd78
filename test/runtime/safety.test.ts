// Start safety, the supervisor lock, and reaping what earlier runs left: refused or reaped before anything spawns.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ForeignInstanceError, PortInUseError, SupervisorLockedError } from '../../src/index.js';
import type { WardenEvent } from '../../src/index.js';
import { launch } from '../../src/process/index.js';
import { FAKE_WEBUI_DIR, isAliveNow, ownForCleanup, startDecoy, tempDir } from '../support/processes.js';
import { fakeInstance, makeSupervisor, pidsOfInstance, withDecoysUntouched } from '../support/runtime.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});
withDecoysUntouched();

// Plants a tree carrying a marker of `id` with a token no live launch has: what an earlier, crashed run leaves.
async function plantLeftover(id: string, stateDir: string, workers = 0): Promise<void> {
  const dir = tempDir('warden-leftover-');
  const handle = await launch({
    instanceId: id,
    command: './webui.sh',
    args: ['-f', '--port', '0', '--workers', String(workers)],
    cwd: FAKE_WEBUI_DIR,
    env: { FAKE_WEBUI_STATE_DIR: dir, WARDEN_STATE_DIR: stateDir },
    discoverIntervalMs: 0,
  });
  ownForCleanup(handle);
}

describe('start safety', () => {
  test('a port already answered by a foreign server is refused and nothing is spawned', async () => {
    const instance = await fakeInstance();
    const server = createServer((_request, response) => response.end('{}'));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(instance.port, '127.0.0.1', resolve));
    const supervisor = makeSupervisor([instance]);

    const attempt = supervisor.start(instance.id);

    await expect(attempt).rejects.toBeInstanceOf(PortInUseError);
    await expect(attempt).rejects.toMatchObject({ code: 'PORT_IN_USE', message: expect.stringContaining(`port ${instance.port}`) });
    await expect(attempt).rejects.toMatchObject({ message: expect.stringContaining(`pid ${process.pid}`) });
    expect(pidsOfInstance(instance.id)).toEqual([]);
  });

  test('a foreign look-alike running the same webui.sh is refused, named, and left alive', async () => {
    const instance = await fakeInstance();
    const lookalike = await startDecoy('bash', [instance.command, '-f', '--port', '0']);
    const supervisor = makeSupervisor([instance]);

    const attempt = supervisor.start(instance.id);

    await expect(attempt).rejects.toBeInstanceOf(ForeignInstanceError);
    await expect(attempt).rejects.toMatchObject({ message: expect.stringContaining(`pid ${lookalike.pid}`) });
    expect(pidsOfInstance(instance.id)).toEqual([]);
    expect(isAliveNow(lookalike.pid, lookalike.startTime)).toBe(true);
  });
});

describe('the supervisor lock', () => {
  test('a second supervisor on the same state directory is refused, naming the holder', async () => {
    const stateDir = join(tempDir('warden-state-'), 'state');
    const first = makeSupervisor([await fakeInstance()], { stateDir });
    await first.ready();
    const secondInstance = await fakeInstance();
    const second = makeSupervisor([secondInstance], { stateDir });

    const attempt = second.start(secondInstance.id);

    await expect(attempt).rejects.toBeInstanceOf(SupervisorLockedError);
    await expect(attempt).rejects.toMatchObject({ message: expect.stringContaining(`pid ${process.pid}`) });
    expect(pidsOfInstance(secondInstance.id)).toEqual([]);
  });

  test('a lock left by a dead supervisor is taken over', async () => {
    const stateDir = join(tempDir('warden-state-'), 'state');
    mkdirSync(stateDir, { recursive: true });
    // A real pid that has exited: the holder of a stale lock.
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: synchronous child; it has exited when spawnSync returns (that is the point: a dead pid).   Cleanup handled by: itself.   Known risks: none.
    const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
    writeFileSync(join(stateDir, 'supervisor.lock'), JSON.stringify({ pid: Number(dead), startTime: 1, hostname: (await import('node:os')).hostname(), startedAt: new Date().toISOString(), nonce: 'dead' }));
    const instance = await fakeInstance();
    const supervisor = makeSupervisor([instance], { stateDir });

    const status = await supervisor.start(instance.id);

    expect(status.state).toBe('running');
  });
});

describe('leftovers of earlier runs', () => {
  test('trees an earlier run left are reaped at start, before anything is spawned', async () => {
    const instance = await fakeInstance();
    const stateDir = join(tempDir('warden-state-'), 'state');
    await plantLeftover(instance.id, stateDir, 1);
    await plantLeftover(instance.id, stateDir, 1);
    // Two trees of bash, launch.py and a worker each.
    await waitUntil(() => pidsOfInstance(instance.id).length >= 6, 10_000);
    const leftovers = pidsOfInstance(instance.id);
    const supervisor = makeSupervisor([instance], { stateDir });
    const events: WardenEvent[] = [];
    supervisor.events$.subscribe((event) => events.push(event));

    const status = await supervisor.start(instance.id);

    expect(leftovers.filter((pid) => isAliveNow(pid, undefined))).toEqual([]);
    const reap = events.findIndex((event) => event.type === 'reap');
    const launched = events.findIndex((event) => event.type === 'launch');
    expect(reap).toBeGreaterThanOrEqual(0);
    expect(reap).toBeLessThan(launched);
    expect(pidsOfInstance(instance.id)).toContain(status.shellPid);
  });

  test('20 runaway trees carrying our marker are detected and brought to at most one tree within 2 sample intervals', async () => {
    const instance = await fakeInstance();
    const sampleIntervalMs = 500;
    const stateDir = join(tempDir('warden-state-'), 'state');
    const supervisor = makeSupervisor([instance], { stateDir, watchdog: { sampleIntervalMs } });
    await supervisor.start(instance.id);
    const samples: Array<{ at: number; stale: number; shells: number }> = [];
    supervisor.events$.subscribe((event) => {
      if (event.type === 'sample') samples.push({ at: event.at, stale: event.sample.counts.stale, shells: event.sample.counts.shell });
    });

    const plantingFrom = Date.now();
    await Promise.all(Array.from({ length: 20 }, () => plantLeftover(instance.id, stateDir)));
    const planted = Date.now();
    // The first plants may be found (and reaped) while the last ones are still starting: the two intervals count
    // from the later of the first detection and the last sample taken before every plant was running.
    await waitUntil(() => samples.some((sample) => sample.at > plantingFrom && sample.stale > 0), 5000);
    const firstSeen = samples.findIndex((sample) => sample.at > plantingFrom && sample.stale > 0);
    await waitUntil(() => samples.some((sample) => sample.at > planted), 5000);
    const base = Math.max(firstSeen, samples.findIndex((sample) => sample.at > planted) - 1);
    await waitUntil(() => samples.length > base + 2, 5000);

    const two = samples[base + 2];
    expect(two?.stale).toBe(0);
    expect(two?.shells).toBeLessThanOrEqual(1);
    // Nothing of this instance is left but (at most) its one live tree.
    const shells = pidsOfInstance(instance.id).length;
    expect(shells).toBeLessThanOrEqual(2);
    expect(supervisor.status().orphanedDetected).toBeGreaterThanOrEqual(20);
  }, 60_000);
});

describe('two supervisors, one instance id', () => {
  test("a tree of the same instance id launched from another state directory is never reaped as stale", async () => {
    const instance = await fakeInstance();
    const otherStateDir = join(tempDir('warden-other-'), 'state');
    await plantLeftover(instance.id, otherStateDir, 1);
    const theirs = await settledPids(instance.id, 3);
    const supervisor = makeSupervisor([instance], { watchdog: { sampleIntervalMs: 200 } });
    let samples = 0;
    supervisor.events$.subscribe((event) => {
      if (event.type === 'sample') samples += 1;
    });

    await supervisor.start(instance.id);
    await waitUntil(() => samples >= 3, 5000);

    expect(theirs.filter((pid) => isAliveNow(pid, undefined))).toEqual(theirs);
    expect(supervisor.status().orphanedDetected).toBe(0);
  });
});

// The instance's marked pids once the set stops changing (pyenv's shim forks short-lived helpers while starting).
async function settledPids(id: string, atLeast: number): Promise<number[]> {
  let previous = '';
  for (let round = 0; round < 100; round += 1) {
    const now = pidsOfInstance(id).sort((a, b) => a - b);
    if (now.length >= atLeast && now.join(' ') === previous) return now;
    previous = now.join(' ');
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  throw new Error(`the processes of ${id} did not settle`);
}

async function waitUntil(predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
