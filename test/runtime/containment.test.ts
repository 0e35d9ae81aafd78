// The supervisor on each escape-proof containment backend: crash loops leave nothing, a SIGKILLed supervisor
// leaves nothing (the sentinel uses the same backend), and reap kills by cgroup after a force close.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, test } from 'vitest';
import { launch, snapshotProcSync } from '../../src/process/index.js';
import { createMetrics } from '../../src/server/metrics.js';
import { cgroupExists } from '../../src/process/posix/cgroup.js';
import { chooseContainment } from '../../src/process/containment.js';
import type { ContainmentChoice } from '../../src/process/containment.js';
import { readStartTime } from '../../src/process/posix/procfs.js';
import { reapLeftovers } from '../../src/process/state/reap.js';
import { Registry, launchRecord } from '../../src/process/state/registry.js';
import { isAliveNow, ownForCleanup, tempDir, waitFor } from '../support/processes.js';
import { fakeInstance, makeSupervisor, uniqueId, withDecoysUntouched } from '../support/runtime.js';

const HOST = resolve(import.meta.dirname, '../fixtures/runtime/host.ts');
// Only the backends that hold an escapee: the marker backend's gap is asserted in test/process/containment.test.ts.
const backends: ContainmentChoice[] = [];
for (const request of ['cgroup', 'subreaper'] as const) {
  try {
    backends.push(chooseContainment(request));
  } catch (error) {
    console.log(`containment backend ${request} UNAVAILABLE here: ${(error as Error).message}`);
  }
}
console.log(`runtime containment tests run on: ${backends.map((choice) => choice.backend).join(', ')}`);
const ESCAPE_SCRIPT = 'setsid env -i sh -c "sleep 600 & echo \\$! > \\"\\$0\\"" "$1"; exec sleep 600';

const hosts: ChildProcess[] = [];
const strays: Array<{ pid: number; startTime: number | undefined }> = [];
afterEach(() => {
  for (const host of hosts.splice(0)) if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
  for (const stray of strays.splice(0)) if (isAliveNow(stray.pid, stray.startTime)) process.kill(stray.pid, 'SIGKILL');
});
withDecoysUntouched();

// Live Pythons whose command line runs a script from `dir` (each instance runs its own copy of the fake). Only
// Python itself counts: a pyenv shim (`bash pyenv exec python3 …launch.py`) is a moment of the same launch.
function processesUnder(dir: string, script: string): number[] {
  const pids: number[] = [];
  for (const info of snapshotProcSync(true).processes.values()) {
    if (info.state === 'Z' || !info.name.startsWith('python')) continue;
    if (info.cmdline?.some((arg) => arg.startsWith(dir) && arg.endsWith(script)) === true) pids.push(info.pid);
  }
  // A fork of launch.py that has not exec'd worker.py yet still shows launch.py's argv: a child of a counted
  // process is that moment of the same tree, not a second one.
  const counted = new Set(pids);
  const table = snapshotProcSync(false);
  return pids.filter((pid) => !counted.has(table.processes.get(pid)?.ppid ?? 0));
}

async function readEscapee(pidFile: string): Promise<{ pid: number; startTime: number | undefined }> {
  await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() !== '', 10_000, 'the escapee to write its pid');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const escapee = { pid, startTime: readStartTime(pid)?.startTime };
  strays.push(escapee);
  return escapee;
}

describe.each(backends.map((choice) => [choice.backend, choice] as const))('%s backend under the supervisor', (backend) => {
  test(`a WebUI whose worker has a clean environment crashes and is restarted 5 times: one tree at a time, 0 leftovers (backend ${backend})`, async () => {
    const instance = await fakeInstance({ args: ['--workers', '1', '--clean-env-worker', '--crash-after', '1'], restart: { maxRestarts: 20 } });
    const supervisor = makeSupervisor([{ ...instance, containment: backend }]);
    let maxWorkers = 0;
    let maxLaunches = 0;
    let worst = '';
    const watcher = setInterval(() => {
      maxWorkers = Math.max(maxWorkers, processesUnder(instance.cwd, 'worker.py').length);
      const launches = processesUnder(instance.cwd, 'launch.py');
      if (launches.length > maxLaunches) {
        const table = snapshotProcSync(true);
        worst = launches.map((pid) => { const info = table.processes.get(pid); return `${pid} ppid ${info?.ppid} ${info?.state} start ${info?.startTime} ${info?.cmdline?.join(' ')}`; }).join('\n');
      }
      maxLaunches = Math.max(maxLaunches, launches.length);
    }, 20);
    try {
      await supervisor.start(instance.id);
      expect(supervisor.status().instances[0]?.containment?.backend).toBe(backend);
      const metrics = createMetrics(supervisor, { defaultMetrics: false });
      expect(await metrics.render()).toContain(`warden_instance_containment{instance="${instance.id}",backend="${backend}"} 1`);
      metrics.close();
      await waitFor(() => (supervisor.status().instances[0]?.restarts ?? 0) >= 5, 60_000, '5 crash-restarts');
      await supervisor.stop(instance.id);
    } finally {
      clearInterval(watcher);
    }
    console.log(`crash loop on ${backend}: at most ${maxWorkers} worker(s) and ${maxLaunches} launch.py alive at once over 5 restarts`);
    if (maxLaunches > 1) console.log(worst);
    expect(maxWorkers).toBe(1);
    expect(maxLaunches).toBe(1);
    expect(processesUnder(instance.cwd, '.py')).toEqual([]);
  }, 90_000);

  test(`a SIGKILLed supervisor leaves no setsid env -i escapee: the sentinel stops it on the same backend (backend ${backend})`, async () => {
    const id = uniqueId('escape');
    const cwd = tempDir('warden-escape-');
    const pidFile = join(cwd, 'escapee.pid');
    const stateDir = join(cwd, 'state');
    const config = { stateDir, instances: [{ id, command: '/bin/sh', args: ['-c', ESCAPE_SCRIPT, 'warden-test', pidFile], cwd, containment: backend }], watchdog: { sampleIntervalMs: 200 } };
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: ChildProcess handle.   Cleanup handled by: afterEach SIGKILL via the handle; the escapee by
    //   its recorded pid + start time.   Known risks: none past the test.
    const host = spawn(process.execPath, ['--import', 'tsx', HOST, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, WARDEN_LOG_LEVEL: 'error' } });
    hosts.push(host);
    await new Promise<void>((resolveReady, rejectReady) => {
      const timer = setTimeout(() => rejectReady(new Error('host did not report running within 20 s')), 20_000);
      createInterface({ input: host.stdout as NodeJS.ReadableStream }).on('line', (line) => {
        if (line.includes('"running"')) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      host.once('exit', (code) => rejectReady(new Error(`host exited early with ${code}`)));
    });
    const escapee = await readEscapee(pidFile);
    const record = new Promise<{ cgroup?: string }>((resolveRecord) => {
      void Registry.open(stateDir).then((registry) => resolveRecord(registry.list()[0] ?? {}));
    });
    const { cgroup } = await record;
    if (backend === 'cgroup') expect(cgroup).toMatch(/\/warden\//);

    const killedAt = performance.now();
    host.kill('SIGKILL');
    await waitFor(() => !isAliveNow(escapee.pid, escapee.startTime), 5000, 'the escapee to die with the supervisor');
    console.log(`force close on ${backend}: SIGKILL → escapee dead in ${(performance.now() - killedAt).toFixed(0)} ms`);
    if (cgroup !== undefined) await waitFor(() => !cgroupExists(cgroup), 5000, 'the sentinel to remove the cgroup');
  }, 60_000);
});

describe('config', () => {
  test('an unknown containment backend is a ConfigError naming the field and the value, before anything runs', () => {
    expect(() => makeSupervisor([{ id: 'webui', command: '/bin/true', containment: 'jail' }])).toThrow(/containment/);
    expect(() => makeSupervisor([{ id: 'webui', command: '/bin/true', containment: 'jail' }])).toThrow(/jail/);
  });
});

describe('reap by cgroup', () => {
  test('a registry record with a cgroup is reaped by the cgroup after a force close: escapee dead, cgroup removed, record gone', async () => {
    const cgroupChoice = backends.find((choice) => choice.backend === 'cgroup');
    expect(cgroupChoice, 'a writable cgroup v2 hierarchy on this machine (see the backend line above)').toBeDefined();
    const cwd = tempDir('warden-reap-');
    const pidFile = join(cwd, 'escapee.pid');
    const id = uniqueId('reap');
    const tree = await launch({ instanceId: id, command: '/bin/sh', args: ['-c', ESCAPE_SCRIPT, 'warden-test', pidFile], cwd, containment: cgroupChoice as ContainmentChoice, discoverIntervalMs: 0 });
    ownForCleanup(tree);
    const escapee = await readEscapee(pidFile);
    const registry = await Registry.open(join(cwd, 'state'));
    await registry.add(launchRecord(tree));
    expect(registry.list()[0]?.cgroup).toBe(tree.cgroup);

    const report = await reapLeftovers({ registry, instanceIds: [id], graceMs: 500 });

    const entry = report.entries.find((candidate) => candidate.marker === tree.marker);
    expect(entry).toMatchObject({ source: 'registry', action: 'reaped', survivors: [], recordRemoved: true });
    expect(entry?.found.map((found) => found.pid)).toContain(escapee.pid);
    expect(isAliveNow(escapee.pid, escapee.startTime)).toBe(false);
    expect(cgroupExists(tree.cgroup as string)).toBe(false);
  });

  test('a stale tree with no record left is stopped by the launch cgroup its marker carriers live in: the env -i escapee too', async () => {
    const cgroupChoice = backends.find((choice) => choice.backend === 'cgroup');
    expect(cgroupChoice, 'a writable cgroup v2 hierarchy on this machine').toBeDefined();
    const cwd = tempDir('warden-stale-');
    const pidFile = join(cwd, 'escapee.pid');
    const id = uniqueId('stale');
    const tree = await launch({ instanceId: id, command: '/bin/sh', args: ['-c', ESCAPE_SCRIPT, 'warden-test', pidFile], cwd, containment: cgroupChoice as ContainmentChoice, discoverIntervalMs: 0 });
    ownForCleanup(tree);
    const escapee = await readEscapee(pidFile);
    const registry = await Registry.open(join(cwd, 'state'));

    const report = await reapLeftovers({ registry, instanceIds: [id], graceMs: 500 });

    expect(report.entries.find((candidate) => candidate.marker === tree.marker)).toMatchObject({ source: 'stale-marker', action: 'reaped', survivors: [] });
    expect(isAliveNow(escapee.pid, escapee.startTime)).toBe(false);
    expect(cgroupExists(tree.cgroup as string)).toBe(false);
  });
});
