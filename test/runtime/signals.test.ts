// Process-level faults of an embedding controller with handleSignals: SIGHUP (terminal closed) runs the confirmed
// shutdown like SIGTERM; an unhandled promise rejection is logged and the supervisor keeps running.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, test } from 'vitest';
import { tempDir, waitFor } from '../support/processes.js';
import { cleanupRuntime, fakeInstance, pidsOfInstance } from '../support/runtime.js';

const HOST = resolve(import.meta.dirname, '../fixtures/runtime/host.ts');
const hosts: ChildProcess[] = [];

afterEach(async () => {
  for (const host of hosts.splice(0)) if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
  await cleanupRuntime();
});

interface Host {
  child: ChildProcess;
  id: string;
  lines: Array<{ event: string; report?: { ok: boolean; survivors: unknown[] }; status?: { instances: Array<{ state: string }> } }>;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function startHost(env: Record<string, string>): Promise<Host> {
  const instance = await fakeInstance({ args: ['--workers', '1'] });
  const { port: _port, ...config } = instance;
  const stateDir = join(tempDir('warden-signals-'), 'state');
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: ChildProcess handle, stdin pipe.   Cleanup handled by: afterEach SIGKILL via the handle, then
  // cleanupRuntime() kills anything carrying the instance's unique marker.   Known risks: none past the test.
  const child = spawn(process.execPath, ['--import', 'tsx', HOST, JSON.stringify({ stateDir, instances: [config], watchdog: { sampleIntervalMs: 200 } })], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, WARDEN_LOG_LEVEL: 'error', HOST_HANDLE_SIGNALS: '1', ...env },
  });
  hosts.push(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines: Host['lines'] = [];
  createInterface({ input: child.stdout as NonNullable<typeof child.stdout> }).on('line', (text) => lines.push(JSON.parse(text) as Host['lines'][number]));
  const exited = new Promise<number | null>((done) => child.once('close', (code) => done(code)));
  await waitFor(() => lines.some((line) => line.event === 'running'), 30_000, `the host to run (stderr: ${stderr})`);
  return { child, id: config.id, lines, stderr: () => stderr, exited };
}

describe('process signals and faults', () => {
  test('SIGHUP runs the confirmed shutdown: trees dead, report ok, exit 0', async () => {
    const host = await startHost({});
    expect(pidsOfInstance(host.id).length).toBeGreaterThanOrEqual(2);
    host.child.kill('SIGHUP');
    expect(await host.exited).toBe(0);
    expect(host.lines.find((line) => line.event === 'shutdown')?.report).toMatchObject({ ok: true, survivors: [] });
    expect(pidsOfInstance(host.id)).toEqual([]);
  }, 60_000);

  test('an unhandled rejection is logged with its message and the supervisor keeps supervising, then shuts down clean', async () => {
    const host = await startHost({ HOST_REJECT: '1' });
    await waitFor(() => host.lines.some((line) => line.event === 'still-running'), 10_000, 'the host to survive the rejection');
    expect(host.lines.find((line) => line.event === 'still-running')?.status?.instances[0]?.state).toBe('running');
    expect(host.stderr()).toContain('stray rejection from the embedding app');
    expect(host.stderr()).toContain('unhandled promise rejection (logged; the supervisor keeps running)');
    host.child.kill('SIGTERM');
    expect(await host.exited).toBe(0);
    expect(pidsOfInstance(host.id)).toEqual([]);
  }, 60_000);
});
