// The stop protocol on real trees of the fake WebUI: every owned process dies, read back from /proc; nothing else is touched.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { collectOwned, snapshotProcSync, terminate } from '../../src/process/index.js';
import type { OwnedProcess } from '../../src/process/index.js';
import {
  cleanupProcesses,
  isAliveNow,
  launchFakeWebui,
  markedPids,
  ownedNow,
  startDecoy,
  waitFor,
  waitForPythons,
} from '../support/processes.js';

afterEach(cleanupProcesses);

// Still alive as the same process (pid + start time): a pid reused by another test's process does not count.
const aliveOf = (entries: OwnedProcess[]): number[] =>
  entries.filter((entry) => isAliveNow(entry.info.pid, entry.info.startTime)).map((entry) => entry.info.pid);

describe('terminate on a real webui.sh tree', () => {
  test('a shell wrapper, its Python and 8 workers all die and none is left carrying the marker', async () => {
    const tree = await launchFakeWebui(['--workers', '8']);
    const before = await waitForPythons(tree, 9);
    expect(before[0]?.role).toBe('shell');
    expect(before[0]?.info.pid).toBe(tree.root.pid);

    const report = await terminate(tree, { graceMs: 3000 });

    expect(report.survivors).toEqual([]);
    expect(report.killed.map((entry) => entry.pid).sort()).toEqual(expect.arrayContaining(before.map((entry) => entry.info.pid)));
    expect(report.killed.find((entry) => entry.pid === tree.root.pid)).toMatchObject({ role: 'shell', signal: 'SIGKILL' });
    // A cooperative Python tree gets SIGTERM and the grace; nothing needed escalation.
    expect(report.killed.filter((entry) => entry.role === 'python').every((entry) => entry.signal === 'SIGTERM')).toBe(true);
    expect(report.escalated).toBe(false);
    expect(markedPids(tree.marker)).toEqual([]);
    expect(aliveOf(before)).toEqual([]);
  });

  test('workers orphaned by a SIGKILLed Python and the Python the wrapper relaunched all die', async () => {
    const tree = await launchFakeWebui(['--workers', '8']);
    const first = await waitForPythons(tree, 9);
    const firstPython = first.find((entry) => entry.role === 'python' && entry.info.ppid === tree.root.pid);
    expect(firstPython).toBeDefined();
    const orphans = first.filter((entry) => entry.role === 'python' && entry.info.ppid === firstPython?.info.pid);
    expect(orphans).toHaveLength(8);

    // Ask the wrapper to relaunch, then kill the middle Python: its workers are reparented away from the tree.
    mkdirSync(join(tree.stateDir, 'tmp'), { recursive: true });
    writeFileSync(join(tree.stateDir, 'tmp', 'restart'), '');
    process.kill(firstPython?.info.pid as number, 'SIGKILL');
    await waitFor(() => ownedNow(tree).some((entry) => entry.role === 'python' && entry.info.ppid === tree.root.pid && entry.info.pid !== firstPython?.info.pid), 10_000, 'the relaunched python');
    await waitForPythons(tree, 17);
    const orphanNow = snapshotProcSync(false).processes.get(orphans[0]?.info.pid as number);
    expect(orphanNow?.ppid).not.toBe(firstPython?.info.pid);

    const everything = ownedNow(tree);
    const report = await terminate(tree, { graceMs: 3000 });

    expect(report.survivors).toEqual([]);
    expect(aliveOf(everything)).toEqual([]);
    expect(aliveOf(orphans)).toEqual([]);
    expect(markedPids(tree.marker)).toEqual([]);
  });

  test('a relaunch loop with tmp/restart kept present launches no Python once terminate begins', async () => {
    // The wrapper traps SIGTERM and carries on looping, like a wrapper that would relaunch behind a careless kill.
    const tree = await launchFakeWebui(['--workers', '2'], undefined, { FAKE_WEBUI_TRAP_TERM: '1' });
    await waitForPythons(tree, 3);
    const restartFile = join(tree.stateDir, 'tmp', 'restart');
    mkdirSync(join(tree.stateDir, 'tmp'), { recursive: true });
    // Keep the restart request alive the whole time, as a wedged wrapper would see it.
    const keeper = setInterval(() => writeFileSync(restartFile, ''), 2);
    const pythonStarts: number[] = [];
    const watcher = setInterval(() => {
      for (const entry of ownedNow(tree)) if (entry.role === 'python' && entry.info.startTime !== undefined) pythonStarts.push(entry.info.startTime);
    }, 5);
    try {
      const beganAt = ticksNow();
      const report = await terminate(tree, { graceMs: 2000 });
      expect(report.survivors).toEqual([]);
      // The fake's launch.py consumes tmp/restart as it starts (like A1111's prepare_environment), so presence is
      // checked once the keeper stops: nothing is left alive to consume the request.
      clearInterval(keeper);
      writeFileSync(restartFile, '');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(existsSync(restartFile)).toBe(true);
      // 2 ticks of slack: the tick clock has 10 ms resolution.
      expect(pythonStarts.filter((start) => start > beganAt + 2)).toEqual([]);
      expect(markedPids(tree.marker)).toEqual([]);
    } finally {
      clearInterval(keeper);
      clearInterval(watcher);
    }
  });

  test('a tree that ignores SIGTERM is SIGKILLed after the grace period and the report says escalated', async () => {
    const tree = await launchFakeWebui(['--workers', '2', '--ignore-sigterm']);
    await waitForPythons(tree, 3);
    // Wait until each Python has actually installed SIG_IGN, or a just-started worker would die of SIGTERM.
    await waitFor(() => ownedNow(tree).filter((entry) => entry.role === 'python' && ignoresSigterm(entry.info.pid)).length === 3, 10_000, 'SIGTERM to be ignored');
    const graceMs = 600;

    const report = await terminate(tree, { graceMs });

    expect(report.survivors).toEqual([]);
    expect(report.escalated).toBe(true);
    expect(report.durationMs).toBeGreaterThanOrEqual(graceMs);
    const pythons = report.killed.filter((entry) => entry.role === 'python');
    expect(pythons).toHaveLength(3);
    expect(pythons.every((entry) => entry.signal === 'SIGKILL')).toBe(true);
    expect(markedPids(tree.marker)).toEqual([]);
  });

  test('a polite request that was not delivered skips the polite wait and goes straight to signals', async () => {
    const tree = await launchFakeWebui(['--workers', '1']);
    await waitForPythons(tree, 2);

    const report = await terminate(tree, { graceMs: 3000, politeWaitMs: 10_000, beforeSignals: async () => false });

    expect(report.survivors).toEqual([]);
    // The bound is the feature: without the skip this stop would sit out the 10 s polite wait.
    expect(report.durationMs).toBeLessThan(5000);
    expect(report.killed.some((entry) => entry.signal === 'SIGTERM')).toBe(true);
  });

  test('shouldHurry cuts the grace short: a tree ignoring SIGTERM is SIGKILLed long before the grace ends', async () => {
    const tree = await launchFakeWebui(['--workers', '1', '--ignore-sigterm']);
    await waitForPythons(tree, 2);
    await waitFor(() => ownedNow(tree).filter((entry) => entry.role === 'python' && ignoresSigterm(entry.info.pid)).length === 2, 10_000, 'SIGTERM to be ignored');
    const hurryAt = Date.now() + 300;

    const report = await terminate(tree, { graceMs: 30_000, shouldHurry: () => Date.now() >= hurryAt });

    expect(report.survivors).toEqual([]);
    expect(report.escalated).toBe(true);
    expect(report.durationMs).toBeLessThan(10_000);
    expect(markedPids(tree.marker)).toEqual([]);
  });

  test('a daemon grandchild that escaped with setsid is found by the marker and killed', async () => {
    const tree = await launchFakeWebui(['--daemon-grandchild']);
    // The final daemon runs `worker.py --daemon` in a session of its own (the double fork's middle child is transient).
    let daemon: OwnedProcess | undefined;
    await waitFor(() => {
      daemon = ownedNow(tree).find((entry) => entry.info.sid !== tree.root.pid && entry.info.cmdline?.includes('--daemon') === true);
      return daemon !== undefined;
    }, 10_000, 'the daemon grandchild');
    const daemonPid = daemon?.info.pid as number;
    expect(daemon?.proofs).toContain('marker');
    expect(daemon?.info.pgid).not.toBe(tree.pgid);

    const report = await terminate(tree, { graceMs: 2000 });

    expect(report.survivors).toEqual([]);
    expect(report.killed.map((entry) => entry.pid)).toContain(daemonPid);
    expect(isAliveNow(daemonPid, daemon?.info.startTime)).toBe(false);
    expect(markedPids(tree.marker)).toEqual([]);
  });

  test('look-alikes started without the marker in the same directory survive every terminate', async () => {
    const lookalikePython = await startDecoy('python3', ['launch.py', '--port', '0', '--workers', '1']);
    const lookalikeShell = await startDecoy('bash', ['webui.sh', '-f', '--port', '0']);
    const tree = await launchFakeWebui(['--workers', '2', '--daemon-grandchild']);
    await waitForPythons(tree, 3);

    const owned = ownedNow(tree).map((entry) => entry.info.pid);
    expect(owned).not.toContain(lookalikePython.pid);
    expect(owned).not.toContain(lookalikeShell.pid);
    const report = await terminate(tree, { graceMs: 2000 });

    expect(report.survivors).toEqual([]);
    expect(isAliveNow(lookalikePython.pid, lookalikePython.startTime)).toBe(true);
    expect(isAliveNow(lookalikeShell.pid, lookalikeShell.startTime)).toBe(true);
    expect(report.killed.map((entry) => entry.pid)).not.toContain(lookalikePython.pid);
  });

  test('a record whose pid now belongs to another process (other start time) is not signalled', async () => {
    const stranger = await startDecoy('python3', ['launch.py', '--port', '0']);
    const staleRecord = {
      instanceId: 'webui',
      marker: 'webui:0000000000000000',
      root: { pid: stranger.pid, startTime: (stranger.startTime ?? 1) - 1, clock: 'proc' as const },
      pgid: stranger.pid,
    };
    expect(collectOwned(staleRecord, snapshotProcSync(false))).toEqual([]);

    const report = await terminate(staleRecord, { graceMs: 500 });

    expect(report.killed).toEqual([]);
    expect(report.survivors).toEqual([]);
    expect(isAliveNow(stranger.pid, stranger.startTime)).toBe(true);
  });

  test('the ps-list backend, forced on Linux, sees the same tree as /proc', async () => {
    const tree = await launchFakeWebui(['--workers', '8']);
    await waitForPythons(tree, 9);
    const { snapshot } = await import('../../src/process/index.js');
    const fromProc = collectOwned(tree, await snapshot({ backend: 'proc' })).map((entry) => entry.info.pid).sort();
    const fromPsList = collectOwned(tree, await snapshot({ backend: 'ps-list' })).map((entry) => entry.info.pid).sort();
    expect(fromProc.length).toBeGreaterThanOrEqual(10);
    expect(fromPsList).toEqual(fromProc);
  });
});

// Whether the process's ignored-signal mask (/proc/PID/status SigIgn) includes SIGTERM (15).
function ignoresSigterm(pid: number): boolean {
  try {
    const mask = /SigIgn:\s*([0-9a-f]+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '0';
    return (BigInt(`0x${mask}`) & (1n << 14n)) !== 0n;
  } catch {
    return false;
  }
}

// Clock ticks since boot right now, the unit of /proc start times (USER_HZ is 100 on Linux).
function ticksNow(): number {
  return Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100);
}
