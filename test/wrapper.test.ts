// The fake WebUI's webui.sh behaves like A1111's (root refusal and -f, venv_dir, the tmp/restart loop), and Warden
// supervising it through an in-app restart, a stop and its own SIGKILL leaves exactly one tree, or none.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { snapshotProcSync } from '../src/process/index.js';
import { readEnvironVariable } from '../src/process/posix/procfs.js';
import { startPiped } from './support/child.js';
import type { PipedChild } from './support/child.js';
import { FAKE_WEBUI_DIR, tempDir, waitFor } from './support/processes.js';
import { cleanupRuntime, fakeInstance, freePort, makeSupervisor, pidsOfInstance } from './support/runtime.js';

const ROOT = resolve(import.meta.dirname, '..');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const WEBUI_SH = join(FAKE_WEBUI_DIR, 'webui.sh');

let python = 'python3';
const children = new Set<ChildProcess>();
const pipedChildren = new Set<PipedChild>();

beforeAll(() => {
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: synchronous child, awaited here.   Cleanup handled by: it exits by itself.   Known risks: none.
  python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim() || 'python3';
});

afterEach(async () => {
  // Only what this file spawned, by handle (SIGKILL to the wrapper's own process group), then every pid carrying
  // one of this file's unique instance ids or test markers.
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  children.clear();
  for (const entry of pipedChildren) {
    if (entry.child.exitCode === null && entry.child.signalCode === null) {
      entry.child.kill('SIGKILL');
      await entry.done;
    }
  }
  pipedChildren.clear();
  for (const pid of markedWith('WRAPPER_TEST')) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await cleanupRuntime();
});

interface Run {
  child: ChildProcess;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  marker: string;
  stateDir: string;
}

// Runs `bash webui.sh <args>` in its own process group with a unique WRAPPER_TEST marker.
function runWrapper(args: string[], env: Record<string, string> = {}, script = WEBUI_SH): Run {
  const marker = `wrapper-${Math.random().toString(16).slice(2)}`;
  const stateDir = tempDir('warden-wrapper-');
  const environment: NodeJS.ProcessEnv = { ...process.env, WRAPPER_TEST: marker, FAKE_WEBUI_STATE_DIR: stateDir, python_cmd: python, ...env };
  delete environment.COMMANDLINE_ARGS;
  delete environment.VIRTUAL_ENV;
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: own process group (detached) and the WRAPPER_TEST marker.   Cleanup handled by: afterEach
  //   (group SIGKILL by the handle's pid, then every pid carrying this file's markers).   Known risks: none.
  const child = spawn('bash', [script, ...args], { detached: true, env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.once('exit', (code, signal) => done({ code, signal })));
  return { child, stdout: () => out, exited, marker, stateDir };
}

// Live pids whose environment carries WRAPPER_TEST=<marker> (or any of this file's markers without one).
function markedWith(variable: string, value?: string): number[] {
  const pids: number[] = [];
  for (const info of snapshotProcSync(false).processes.values()) {
    if (info.state === 'Z') continue;
    const found = readEnvironVariable(info.pid, variable);
    if (found !== undefined && (value === undefined ? found.startsWith('wrapper-') : found === value)) pids.push(info.pid);
  }
  return pids;
}

// The instance's processes by role: what "exactly one tree" means, read from /proc.
function treeOf(id: string): { shells: number[]; launchers: number[]; workers: number[] } {
  const shells: number[] = [];
  const launchers: number[] = [];
  const workers: number[] = [];
  const table = snapshotProcSync(true);
  for (const pid of pidsOfInstance(id)) {
    const cmdline = table.processes.get(pid)?.cmdline?.join(' ') ?? '';
    if (cmdline.includes('webui.sh')) shells.push(pid);
    else if (cmdline.includes('launch.py')) launchers.push(pid);
    else if (cmdline.includes('worker.py')) workers.push(pid);
  }
  return { shells, launchers, workers };
}

const clean = (text: string): string => text.replace(/\x1b\[[0-9;]*m/g, '');

describe("webui.sh behaves like A1111's", () => {
  test('as root without -f it refuses, with A1111\'s message, and launches no Python', async () => {
    expect(process.getuid?.()).toBe(0); // this suite runs as root; the refusal below is only reachable as root
    const run = runWrapper(['--port', '0']);
    expect(await run.exited).toEqual({ code: 1, signal: null });
    expect(clean(run.stdout())).toContain('ERROR: This script must not be launched as root, aborting...');
    expect(run.stdout()).not.toContain('Launching launch.py...');
  });

  test('-f counts only as a leading flag (getopts), and is passed on to launch.py', async () => {
    const late = runWrapper(['--port', '0', '-f']);
    expect(await late.exited).toEqual({ code: 1, signal: null });
    expect(clean(late.stdout())).toContain('must not be launched as root');

    const early = runWrapper(['-f', '--port', '0', '--exit-immediately']);
    // Python exits 1; the wrapper's loop ends with status 0, exactly like A1111's.
    expect(await early.exited).toEqual({ code: 0, signal: null });
    expect(clean(early.stdout())).toContain('Running on root user');
    expect(early.stdout()).toContain('Launching Web UI with arguments: -f --port 0 --exit-immediately');
  });

  test('venv_dir="-" runs the given python; a venv_dir is activated and its bin/python is used', async () => {
    const none = runWrapper(['-f', '--port', '0', '--exit-immediately'], { venv_dir: '-' });
    await none.exited;
    expect(none.stdout()).toContain('python venv already activate or run without venv: \n');

    // A prepared venv (activate + bin/python), so nothing is installed: the wrapper sources it and runs its python.
    const venv = join(tempDir('warden-venv-'), 'venv');
    mkdirSync(join(venv, 'bin'), { recursive: true });
    writeFileSync(join(venv, 'bin', 'activate'), `export VIRTUAL_ENV=${JSON.stringify(venv)}\nexport WRAPPER_VENV_ACTIVE=1\n`);
    symlinkSync(python, join(venv, 'bin', 'python'));
    const active = runWrapper(['-f', '--port', '0', '--startup-delay', '30'], { venv_dir: venv });
    await waitFor(() => active.stdout().includes('Loading fake model'), 10_000, 'launch.py to start from the venv');
    const launcher = markedWith('WRAPPER_TEST', active.marker).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('launch.py'));
    expect(launcher).toBeDefined();
    expect(readFileSync(`/proc/${launcher}/cmdline`, 'utf8').split('\0')[0]).toBe(join(venv, 'bin', 'python'));
    expect(readEnvironVariable(launcher!, 'WRAPPER_VENV_ACTIVE')).toBe('1');
    expect(clean(active.stdout())).toContain('Create and activate python venv');

    // A venv_dir without bin/activate: A1111's "Cannot activate python venv" and exit 1, nothing launched.
    const broken = join(tempDir('warden-venv-'), 'broken');
    mkdirSync(broken);
    const refused = runWrapper(['-f', '--port', '0'], { venv_dir: broken });
    expect(await refused.exited).toEqual({ code: 1, signal: null });
    expect(clean(refused.stdout())).toContain('ERROR: Cannot activate python venv, aborting...');
    expect(refused.stdout()).not.toContain('Launching launch.py...');
  }, 30_000);

  test('server-restart: tmp/restart relaunches Python under the same bash, with SD_WEBUI_RESTART and SD_WEBUI_RESTARTING=1', async () => {
    const portFile = join(tempDir('warden-wrapper-port-'), 'port');
    const run = runWrapper(['-f', '--port', '0', '--port-file', portFile, '--workers', '1']);
    await waitFor(() => existsSync(portFile), 10_000, 'the first launch to listen');
    const firstPort = readFileSync(portFile, 'utf8').trim();
    const before = markedWith('WRAPPER_TEST', run.marker);
    const firstWorker = before.find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('worker.py'));
    expect(readEnvironVariable(firstWorker!, 'SD_WEBUI_RESTART')).toBe('tmp/restart');
    expect(readEnvironVariable(firstWorker!, 'SD_WEBUI_RESTARTING')).toBeUndefined();

    const reply = await fetch(`http://127.0.0.1:${firstPort}/sdapi/v1/server-restart`, { method: 'POST' });
    expect(reply.status).toBe(200);
    await reply.text();
    await waitFor(() => run.stdout().split('Launching launch.py...').length === 3 && run.stdout().split('Running on local URL').length === 3, 10_000, 'the relaunch');
    const relaunchedWorker = await (async () => {
      for (let i = 0; i < 100; i += 1) {
        const found = markedWith('WRAPPER_TEST', run.marker).find((pid) => !before.includes(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('worker.py'));
        if (found !== undefined) return found;
        await sleep(50);
      }
      return undefined;
    })();
    expect(relaunchedWorker).toBeDefined();
    // launch.py consumed tmp/restart (the wrapper will not loop again by itself) and marked the relaunch.
    expect(existsSync(join(run.stateDir, 'tmp', 'restart'))).toBe(false);
    expect(readEnvironVariable(relaunchedWorker!, 'SD_WEBUI_RESTARTING')).toBe('1');
    expect(run.child.exitCode).toBeNull();
  }, 30_000);
});

describe('Warden supervising the A1111-style wrapper', () => {
  test('an in-app restart (server-restart → tmp/restart → relaunch) leaves exactly one tree, still tracked; a stop leaves none', async () => {
    const instance = await fakeInstance({ args: ['--workers', '2'], env: { python_cmd: python } });
    const supervisor = makeSupervisor([instance]);
    await supervisor.ready();
    await supervisor.start(instance.id);
    await waitFor(() => treeOf(instance.id).workers.length === 2, 10_000, 'two workers');
    const first = treeOf(instance.id);
    expect(first.shells).toHaveLength(1);
    expect(first.launchers).toHaveLength(1);

    const reply = await fetch(`http://127.0.0.1:${instance.port}/sdapi/v1/server-restart`, { method: 'POST' });
    expect(reply.status).toBe(200);
    await reply.text();
    // The relaunched Python is up (a new launch.py under the same bash) with its two workers, the old ones are gone.
    await waitFor(() => {
      const now = treeOf(instance.id);
      return now.launchers.length === 1 && now.launchers[0] !== first.launchers[0] && now.workers.length === 2 && !now.workers.some((pid) => first.workers.includes(pid));
    }, 15_000, 'the relaunched tree');
    const second = treeOf(instance.id);
    expect(second.shells).toEqual(first.shells);
    expect(second.launchers).toHaveLength(1);
    // Warden kept it as the same instance: still running, same shell pid, no restart counted, and its health passes.
    await waitFor(async () => (await fetch(`http://127.0.0.1:${instance.port}/internal/ping`).then((r) => r.ok, () => false)), 10_000, 'the relaunched WebUI to answer');
    await sleep(1500); // more than a health interval: a lost tree would show as crashed by now
    const status = supervisor.status().instances.find((entry) => entry.id === instance.id);
    expect(status?.state).toBe('running');
    expect(status?.pid).toBe(first.shells[0]);
    expect(status?.restarts).toBe(0);

    const report = await supervisor.stop(instance.id);
    expect(report.survivors).toEqual([]);
    // The stop killed the relaunched Python and its workers, not the old (already gone) ones.
    const killed = report.killed.map((entry) => entry.pid);
    expect(killed).toEqual(expect.arrayContaining([...second.shells, ...second.launchers, ...second.workers]));
    expect(pidsOfInstance(instance.id)).toEqual([]);
  }, 60_000);

  test('warden run SIGKILLed: its sentinel leaves zero processes of the wrapper tree', async () => {
    const instance = await fakeInstance({ args: ['--workers', '2'], env: { python_cmd: python } });
    const dir = tempDir('warden-wrapper-run-');
    const file = join(dir, 'warden.config.json');
    writeFileSync(file, JSON.stringify({ stateDir: join(dir, 'state'), instances: [instance], watchdog: { sampleIntervalMs: 200 }, server: { host: '127.0.0.1', port: await freePort() } }));
    const run = startPiped(process.execPath, ['--import', TSX, join(ROOT, 'src/cli.ts'), 'run', '--config', file], { cwd: ROOT });
    pipedChildren.add(run);
    await waitFor(() => run.output.stdout.includes('1 of 1 instance running') || run.child.exitCode !== null, 30_000, 'warden run to start the instance');
    await waitFor(() => treeOf(instance.id).workers.length === 2, 10_000, 'two workers');
    expect(treeOf(instance.id).shells).toHaveLength(1);

    run.child.kill('SIGKILL');
    await run.done;
    // No shutdown ran: only the sentinel (its pipe closed without a goodbye) can have ended the tree.
    await waitFor(() => pidsOfInstance(instance.id).length === 0, 10_000, 'the sentinel to kill the wrapper tree');
    expect(pidsOfInstance(instance.id)).toEqual([]);
  }, 60_000);
});
