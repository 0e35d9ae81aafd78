// A controller that dies without its shutdown (SIGKILL) leaves nothing behind: the sentinel, then the registry.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, test } from 'vitest';
import { snapshotProcSync } from '../../src/process/index.js';
import { readEnvironVariable, readStartTime } from '../../src/process/posix/procfs.js';
import { tempDir, waitFor } from '../support/processes.js';
import { fakeInstance, makeSupervisor, pidsOfInstance, withDecoysUntouched } from '../support/runtime.js';

const HOST = resolve(import.meta.dirname, '../fixtures/runtime/host.ts');
const hosts: ChildProcess[] = [];

afterEach(() => {
  for (const host of hosts.splice(0)) if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
});
withDecoysUntouched();

interface Host {
  child: ChildProcess;
  id: string;
  stateDir: string;
}

// Starts a controller process running Warden with one healthy instance.
async function startHost(env: Record<string, string> = {}): Promise<Host & { lines: string[] }> {
  const instance = await fakeInstance({ args: ['--workers', '1'] });
  const stateDir = join(tempDir('warden-host-'), 'state');
  const { port: _port, ...config } = instance;
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: ChildProcess handle (pid), stdin pipe.   Cleanup handled by: afterEach SIGKILL via the handle,
  // then cleanupRuntime() kills anything carrying the instance's unique marker.   Known risks: none past the test.
  const child = spawn(process.execPath, ['--import', 'tsx', HOST, JSON.stringify({ stateDir, instances: [config], watchdog: { sampleIntervalMs: 200 } })], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, WARDEN_LOG_LEVEL: 'error', ...env },
  });
  hosts.push(child);
  const lines: string[] = [];
  await new Promise<void>((resolveReady, rejectReady) => {
    const timer = setTimeout(() => rejectReady(new Error('host did not report running within 20 s')), 20_000);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      lines.push(line);
      if (line.includes('"running"')) {
        clearTimeout(timer);
        resolveReady();
      }
    });
    child.once('exit', (code) => rejectReady(new Error(`host exited early with ${code}`)));
  });
  return { child, id: instance.id, stateDir, lines };
}

function readLog(stateDir: string): string {
  try {
    return readFileSync(join(stateDir, 'sentinel.log'), 'utf8');
  } catch (error) {
    return String(error);
  }
}

// The sentinel of a state directory: the process whose argv names that directory's sentinel.log.
function sentinelOf(stateDir: string): { pid: number; startTime: number | undefined } | undefined {
  const table = snapshotProcSync(true);
  for (const info of table.processes.values()) {
    if (info.cmdline?.some((arg) => arg.includes('sentinel-main')) && info.cmdline.includes(join(stateDir, 'sentinel.log'))) {
      return { pid: info.pid, startTime: info.startTime };
    }
  }
  return undefined;
}

describe('force close', () => {
  test('a SIGKILLed controller leaves no tree: every one dead within 1 s, 10 of 10', async () => {
    const times: number[] = [];
    for (let batch = 0; batch < 2; batch += 1) {
      const started = await Promise.all(Array.from({ length: 5 }, () => startHost()));
      for (const host of started) {
        // Healthy means Python answers; its worker may still be starting.
        await waitFor(() => pidsOfInstance(host.id).length >= 3, 10_000, 'the worker to start');
        const killedAt = performance.now();
        host.child.kill('SIGKILL');
        while (pidsOfInstance(host.id).length > 0 && performance.now() - killedAt < 3000) {
          await new Promise((resolveTick) => setTimeout(resolveTick, 5));
        }
        times.push(performance.now() - killedAt);
        const left = pidsOfInstance(host.id);
        if (left.length > 0) console.log(`survivors ${left.join(' ')}; sentinel log:\n${readLog(host.stateDir)}`);
        expect(left).toEqual([]);
      }
    }
    times.sort((a, b) => a - b);
    const median = ((times[4] as number) + (times[5] as number)) / 2;
    console.log(`force close: SIGKILL → last tree process dead, 10 trials: median ${median.toFixed(0)} ms, max ${(times[9] as number).toFixed(0)} ms`);
    expect(times.every((ms) => ms <= 1000)).toBe(true);
  }, 120_000);

  test('with the sentinel SIGKILLed too, the next start reaps the leftovers before spawning', async () => {
    const host = await startHost();
    const sentinel = sentinelOf(host.stateDir);
    expect(sentinel).toBeDefined();
    const leftovers = pidsOfInstance(host.id);
    // The sentinel is ours: found by its own log path in our state directory, identity re-checked before the signal.
    if (sentinel !== undefined && readStartTime(sentinel.pid)?.startTime === sentinel.startTime) process.kill(sentinel.pid, 'SIGKILL');
    host.child.kill('SIGKILL');
    await new Promise((resolveLater) => setTimeout(resolveLater, 300));
    expect(pidsOfInstance(host.id).length).toBeGreaterThanOrEqual(3);

    const { port: _port, ...config } = await fakeInstance({ id: host.id, args: ['--workers', '1'] });
    const next = makeSupervisor([config], { stateDir: host.stateDir });
    const events: string[] = [];
    next.events$.subscribe((event) => events.push(event.type));
    const status = await next.start(host.id);

    expect(leftovers.filter((pid) => readStartTime(pid) !== undefined && readStartTime(pid)?.state !== 'Z')).toEqual([]);
    expect(events.indexOf('reap')).toBeLessThan(events.indexOf('launch'));
    const alive = pidsOfInstance(host.id);
    expect(alive).toContain(status.shellPid);
    expect(alive.every((pid) => readEnvironVariable(pid, 'WARDEN_INSTANCE') !== undefined)).toBe(true);
  }, 60_000);

  test('with handleSignals, SIGTERM runs the shutdown once: trees confirmed dead, onShutdown sees the report, exit 0', async () => {
    const host = await startHost({ HOST_HANDLE_SIGNALS: '1' });
    expect(pidsOfInstance(host.id).length).toBeGreaterThanOrEqual(2);
    const exited = new Promise<number | null>((resolveExit) => host.child.once('close', (code) => resolveExit(code)));

    host.child.kill('SIGTERM');
    const code = await exited;

    expect(code).toBe(0);
    const shutdown = host.lines.map((line) => JSON.parse(line) as { event: string; report?: { ok: boolean; survivors: unknown[] } }).find((line) => line.event === 'shutdown');
    expect(shutdown?.report).toMatchObject({ ok: true, survivors: [] });
    expect(pidsOfInstance(host.id)).toEqual([]);
  }, 60_000);
});
