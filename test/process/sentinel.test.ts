// The sentinel on real processes: a supervisor (fixture host) that is SIGKILLed leaves no tree behind within 1 s,
// a goodbye or an untrack leaves trees alone, and nothing without our marker is ever touched.
import { spawn } from 'node:child_process';
import type { ChildProcess, ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, test } from 'vitest';
import { signalProcess, terminate } from '../../src/process/index.js';
import type { OwnerRecord, ProcessIdentity } from '../../src/process/index.js';
import { readProcess, readStartTime } from '../../src/process/posix/procfs.js';
import { cleanupProcesses, isAliveNow, launchFakeWebui, markedPids, pidsWithVariable, startDecoy, tempDir, waitFor } from '../support/processes.js';

const HOST = resolve(import.meta.dirname, '../fixtures/sentinel/host.ts');
const SENTINEL_MAIN = resolve(import.meta.dirname, '../../src/process/state/sentinel-main.ts');
/** bash webui.sh → launch.py → 2 workers. */
const TREE_SIZE = 4;

interface HostLine {
  event: string;
  identity?: ProcessIdentity;
  logPath?: string;
  record?: OwnerRecord;
  marker?: string;
}

/** A running fixture supervisor and everything it told us about. */
interface Host {
  child: ChildProcessWithoutNullStreams;
  stateDir: string;
  sentinel: ProcessIdentity;
  logPath: string;
  trees: OwnerRecord[];
  /** The next stdout line with this event. */
  next(event: string, timeoutMs?: number): Promise<HostLine>;
  stderr(): string;
}

// Everything the tests started, for afterEach: hosts (our children), sentinels (pid + start time), tree records.
const hosts = new Set<Host>();

async function startHost(trees = 1, mode: 'wait' | 'return' = 'wait'): Promise<Host> {
  const stateDir = tempDir('warden-sentinel-');
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: our unreaped ChildProcess; it prints its sentinel's identity and each tree's record.
  // Cleanup handled by: cleanupHost() from afterEach (trees by terminate, sentinel by identity, host by handle).
  // Known risks: none beyond the test; if this runner dies the host sees stdin EOF and exits, and its sentinel
  //   then stops its trees.
  const child = spawn(process.execPath, ['--import', 'tsx', HOST, stateDir, String(trees), mode], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const queue: HostLine[] = [];
  const waiters: Array<() => void> = [];
  let stdoutEnded = false;
  const host: Host = {
    child,
    stateDir,
    sentinel: { pid: 0, startTime: undefined },
    logPath: '',
    trees: [],
    async next(event, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const index = queue.findIndex((line) => line.event === event);
        if (index >= 0) return queue.splice(index, 1)[0] as HostLine;
        if (Date.now() > deadline || stdoutEnded) {
          throw new Error(`host did not report "${event}" within ${timeoutMs} ms (exit ${child.exitCode}/${child.signalCode}); stderr:\n${stderr}`);
        }
        await Promise.race([new Promise<void>((wake) => waiters.push(wake)), sleep(100)]);
      }
    },
    stderr: () => stderr,
  };
  hosts.add(host);
  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (text) => {
    const line = JSON.parse(text) as HostLine;
    // Registered the moment we hear of them, so afterEach can clean them up whatever fails later.
    if (line.event === 'sentinel' && line.identity !== undefined) {
      host.sentinel = line.identity;
      host.logPath = line.logPath ?? '';
    }
    if (line.event === 'tree' && line.record !== undefined) host.trees.push(line.record);
    queue.push(line);
    for (const wake of waiters.splice(0)) wake();
  }).on('close', () => {
    stdoutEnded = true;
    for (const wake of waiters.splice(0)) wake();
  });
  await host.next('ready');
  for (const tree of host.trees) await waitFor(() => settledTree(markedPids(tree.marker)), 10_000, `the settled tree of ${tree.instanceId}`);
  return host;
}

// Whether the pids are exactly the settled tree: the script's subshells and pyenv's shim steps are over, and
// launch.py has no fork left that is not yet a worker.
const settledTree = (pids: number[]): boolean => {
  const scripts = pids.map((pid) => readProcess(pid, true)?.cmdline?.find((arg) => arg.endsWith('.py'))?.split('/').pop());
  return pids.length === TREE_SIZE && scripts.filter((script) => script === 'launch.py').length === 1 && scripts.filter((script) => script === 'worker.py').length === 2;
};

const hostExited = (host: Host): Promise<void> =>
  host.child.exitCode !== null || host.child.signalCode !== null ? Promise.resolve() : new Promise((done) => host.child.once('exit', () => done()));

// Trees first (by their ownership proofs), then the sentinel (by pid + start time), then the host (our child).
async function cleanupHost(host: Host): Promise<void> {
  const stopTrees = async (): Promise<void> => {
    for (const tree of host.trees) {
      await terminate(tree, { immediate: true, confirmTimeoutMs: 3000 }).catch(() => undefined);
      for (const pid of markedPids(tree.marker)) signalProcess({ pid, startTime: readStartTime(pid)?.startTime }, 'SIGKILL');
    }
  };
  await stopTrees();
  if (host.sentinel.pid > 1) signalProcess(host.sentinel, 'SIGKILL');
  if (host.child.exitCode === null && host.child.signalCode === null) host.child.kill('SIGKILL');
  await hostExited(host);
  await stopTrees();
  hosts.delete(host);
}

// Processes a test spawned directly (a sentinel without a host, a stand-in supervisor): our unreaped children.
const children = new Set<ChildProcess>();

afterEach(async () => {
  for (const host of [...hosts]) await cleanupHost(host);
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  await cleanupProcesses();
});

// Every process of the tree right now, with its start time, so a death is told apart from a reused pid.
const treeMembers = (tree: OwnerRecord): ProcessIdentity[] =>
  markedPids(tree.marker).map((pid) => ({ pid, startTime: readStartTime(pid)?.startTime }));
const alive = (members: ProcessIdentity[]): ProcessIdentity[] => members.filter((member) => isAliveNow(member.pid, member.startTime));

// Usually the pipe's EOF; under load the sentinel's supervisor check can see the SIGKILLed (multi-threaded) host
// as a zombie before its last thread has closed the pipe. Both run the same cleanup.
const SUPERVISOR_DIED = expect.stringMatching(/^(pipe-closed|supervisor-gone)$/);

type LogLine = { event: string; reason?: string; survivors?: number; trees?: unknown };
const sentinelLog = (host: Host): LogLine[] =>
  readFileSync(host.logPath, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);

// Polls until none of the members and nothing carrying the markers is alive; returns how long it took.
async function msUntilDead(members: ProcessIdentity[], markers: string[], since: number, timeoutMs = 5000): Promise<number> {
  for (;;) {
    if (alive(members).length === 0 && markers.every((marker) => markedPids(marker).length === 0)) return performance.now() - since;
    if (performance.now() - since > timeoutMs) return Infinity;
    await sleep(5);
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 === 1 ? (sorted[Math.floor(middle)] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

describe('sentinel', () => {
  test('a SIGKILLed supervisor leaves no tree behind: all dead within 1 s, 10 of 10, and the sentinel exits', async () => {
    const timings: number[] = [];
    // Hosts start five at a time (startup is the slow part); each is then killed alone, so trials do not overlap.
    for (let batch = 0; batch < 2; batch += 1) {
      const batchHosts = await Promise.all(Array.from({ length: 5 }, () => startHost()));
      for (const host of batchHosts) {
        const trial = timings.length + 1;
        const tree = host.trees[0] as OwnerRecord;
        const members = treeMembers(tree);
        expect(members.length).toBe(TREE_SIZE);

        const killedAt = performance.now();
        host.child.kill('SIGKILL');
        const elapsed = await msUntilDead(members, [tree.marker], killedAt);
        timings.push(elapsed);

        expect(elapsed, `trial ${trial}: last process of the tree died ${elapsed.toFixed(0)} ms after the SIGKILL`).toBeLessThanOrEqual(1000);
        await waitFor(() => !isAliveNow(host.sentinel.pid, host.sentinel.startTime), 5000, 'the sentinel to exit by itself');
        expect(sentinelLog(host).find((line) => line.event === 'report')).toMatchObject({ reason: SUPERVISOR_DIED, survivors: 0 });
        await cleanupHost(host);
      }
    }
    console.log(
      `sentinel: supervisor SIGKILL → last tree process dead, median ${median(timings).toFixed(0)} ms over ${timings.length} trials ` +
        `(min ${Math.min(...timings).toFixed(0)}, max ${Math.max(...timings).toFixed(0)}): ${timings.map((ms) => ms.toFixed(0)).join(', ')} ms`,
    );
  }, 60_000);

  test('after a goodbye the sentinel exits and the tree is left alone, even when the supervisor dies next', async () => {
    const host = await startHost();
    const tree = host.trees[0] as OwnerRecord;
    const members = treeMembers(tree);

    host.child.stdin.write('goodbye\n');
    await host.next('goodbye-done');
    expect(isAliveNow(host.sentinel.pid, host.sentinel.startTime)).toBe(false);
    expect(sentinelLog(host).map((line) => line.event)).toContain('goodbye');

    host.child.kill('SIGKILL');
    await hostExited(host);
    await sleep(1000);
    expect(alive(members)).toEqual(members);
    expect(sentinelLog(host).some((line) => line.event === 'cleanup' || line.event === 'report')).toBe(false);

    const report = await terminate(tree, { graceMs: 1000 });
    expect(report.survivors).toEqual([]);
    expect(markedPids(tree.marker)).toEqual([]);
  });

  test('an untracked tree survives the supervisor SIGKILL while a tracked one dies', async () => {
    const host = await startHost(2);
    const [kept, guarded] = host.trees as [OwnerRecord, OwnerRecord];
    const keptMembers = treeMembers(kept);
    const guardedMembers = treeMembers(guarded);

    host.child.stdin.write(`untrack ${kept.marker}\n`);
    expect(await host.next('untracked')).toMatchObject({ marker: kept.marker, delivered: true });

    const killedAt = performance.now();
    host.child.kill('SIGKILL');
    expect(await msUntilDead(guardedMembers, [guarded.marker], killedAt)).toBeLessThanOrEqual(1000);
    await waitFor(() => !isAliveNow(host.sentinel.pid, host.sentinel.startTime), 5000, 'the sentinel to exit by itself');
    expect(alive(keptMembers)).toEqual(keptMembers);
    expect(sentinelLog(host).find((line) => line.event === 'report')).toMatchObject({ reason: SUPERVISOR_DIED, survivors: 0 });

    const report = await terminate(kept, { graceMs: 1000 });
    expect(report.survivors).toEqual([]);
  });

  test('a look-alike WebUI without our marker survives the cleanup untouched', async () => {
    const decoy = await startDecoy('bash', ['webui.sh', '-f', '--port', '0', '--workers', '2']);
    await waitFor(() => settledTree(pidsWithVariable('DECOY_TOKEN', decoy.token)), 10_000, 'the settled decoy tree');
    const decoyMembers = pidsWithVariable('DECOY_TOKEN', decoy.token).map((pid) => ({ pid, startTime: readStartTime(pid)?.startTime }));
    const host = await startHost();
    const tree = host.trees[0] as OwnerRecord;
    const members = treeMembers(tree);

    const killedAt = performance.now();
    host.child.kill('SIGKILL');
    expect(await msUntilDead(members, [tree.marker], killedAt)).toBeLessThanOrEqual(1000);
    await waitFor(() => !isAliveNow(host.sentinel.pid, host.sentinel.startTime), 5000, 'the sentinel to exit by itself');

    expect(alive(decoyMembers)).toEqual(decoyMembers);
  });

  test('the sentinel never keeps its supervisor alive, and exits by itself once the supervisor is gone', async () => {
    const host = await startHost(0, 'return');
    await waitFor(() => host.child.exitCode !== null, 5000, 'the host to end on its own with the sentinel running');
    expect(host.child.exitCode).toBe(0);
    await waitFor(() => !isAliveNow(host.sentinel.pid, host.sentinel.startTime), 5000, 'the sentinel to exit by itself');
    expect(sentinelLog(host).find((line) => line.event === 'report')).toMatchObject({ reason: SUPERVISOR_DIED, survivors: 0, trees: [] });
  });

  test('a Ctrl-C or hangup sent to the sentinel does not stop it from doing its job', async () => {
    const host = await startHost();
    const tree = host.trees[0] as OwnerRecord;
    const members = treeMembers(tree);

    expect(signalProcess(host.sentinel, 'SIGINT')).toBe('sent');
    expect(signalProcess(host.sentinel, 'SIGHUP')).toBe('sent');
    await waitFor(() => sentinelLog(host).filter((line) => line.event === 'signal-ignored').length === 2, 2000, 'the sentinel to log both signals');
    expect(isAliveNow(host.sentinel.pid, host.sentinel.startTime)).toBe(true);

    const killedAt = performance.now();
    host.child.kill('SIGKILL');
    expect(await msUntilDead(members, [tree.marker], killedAt)).toBeLessThanOrEqual(1000);
    await waitFor(() => !isAliveNow(host.sentinel.pid, host.sentinel.startTime), 5000, 'the sentinel to exit by itself');
  });

  test('a supervisor that is gone is noticed even while another process still holds its end of the pipe', async () => {
    const tree = await launchFakeWebui(['--workers', '2']);
    await waitFor(() => settledTree(markedPids(tree.marker)), 10_000, 'the settled tree');
    const members = treeMembers(tree);
    // PROCESS LIFECYCLE: creates a subprocess (a stand-in supervisor) and the sentinel itself
    // Parent tracking: both are our unreaped children; the sentinel's stdin pipe stays open in this test process.
    // Cleanup handled by: afterEach (SIGKILL through the ChildProcess handles); the tree by cleanupProcesses.
    // Known risks: none beyond the test.
    const supervisor = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.add(supervisor);
    const supervisorStart = readStartTime(supervisor.pid as number)?.startTime;
    const logPath = resolve(tempDir('warden-sentinel-'), 'sentinel.log');
    const sentinel = spawn(
      process.execPath,
      ['--import', 'tsx', SENTINEL_MAIN, '--log', logPath, '--supervisor-pid', String(supervisor.pid), '--supervisor-start', String(supervisorStart)],
      { stdio: ['pipe', 'pipe', 'ignore'] },
    );
    children.add(sentinel);
    const sentinelExited = new Promise<number | null>((done) => sentinel.once('exit', (code) => done(code)));
    await new Promise<void>((ready) => createInterface({ input: sentinel.stdout as NonNullable<typeof sentinel.stdout> }).once('line', () => ready()));
    const record: OwnerRecord = { instanceId: tree.instanceId, marker: tree.marker, root: tree.root, pgid: tree.pgid };
    sentinel.stdin?.write(`${JSON.stringify({ type: 'track', record })}\n`);
    await waitFor(() => readFileSync(logPath, 'utf8').includes('"event":"track"'), 5000, 'the sentinel to take the record');

    const killedAt = performance.now();
    supervisor.kill('SIGKILL');
    // The supervisor is polled every 200 ms, so this path is slower than a closed pipe but still within the second.
    expect(await msUntilDead(members, [tree.marker], killedAt)).toBeLessThanOrEqual(1000);
    expect(await sentinelExited).toBe(0);
    const log = readFileSync(logPath, 'utf8');
    expect(log).toContain('"reason":"supervisor-gone"');
    expect(log).toContain('"survivors":0');
  });
});
