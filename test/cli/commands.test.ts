// `warden audit`, `reap`, `status`, `run` and the error paths, as real child processes against real planted processes.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { startPiped } from '../support/child.js';
import type { ChildResult } from '../support/child.js';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { snapshotProcSync } from '../../src/process/index.js';
import { acquireLock } from '../../src/process/state/lock.js';
import type { Lock } from '../../src/process/state/lock.js';
import { readEnvironVariable, readStartTime } from '../../src/process/posix/procfs.js';

const ROOT = resolve(import.meta.dirname, '../..');
const FAKE = join(ROOT, 'examples/fake-webui');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

type CliResult = ChildResult;

const children = new Set<ChildProcess>();
const instanceIds = new Set<string>();
const dirs = new Set<string>();
const locks = new Set<Lock>();
let python = 'python3';

beforeAll(() => {
  // The interpreter itself: a version manager's `python3` is a bash shim, which would count as a shell.
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: synchronous child, awaited here.   Cleanup handled by: it exits by itself.   Known risks: none.
  python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim() || 'python3';
});

afterEach(async () => {
  for (const child of children) child.kill('SIGKILL'); // only the CLI processes this file spawned, by handle
  children.clear();
  for (const lock of locks) await lock.release();
  locks.clear();
  await sleep(200);
  for (const id of instanceIds) {
    // Every process carrying this test's unique instance id in its marker was started by this test (or its CLI).
    for (const pid of pidsOfInstance(id)) killQuietly(pid);
  }
  instanceIds.clear();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs.clear();
});

// Runs `node --import tsx src/cli.ts <args>`; `onStdout` sees the output so far as it comes.
// Registered in `children` until it exits; afterEach SIGKILLs it by handle if it still runs, then sweeps markers.
function startCli(args: string[], options: { cwd?: string; onStdout?: (text: string) => void } = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const piped = startPiped(process.execPath, ['--import', TSX, join(ROOT, 'src/cli.ts'), ...args], {
    cwd: options.cwd ?? ROOT,
    ...(options.onStdout !== undefined && { onStdout: options.onStdout }),
  });
  children.add(piped.child);
  return { child: piped.child, done: piped.done.finally(() => children.delete(piped.child)) };
}

const cli = (args: string[], cwd?: string): Promise<CliResult> => startCli(args, cwd === undefined ? {} : { cwd }).done;

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-cli-'));
  dirs.add(dir);
  return dir;
}

function uniqueId(prefix = 'cli'): string {
  const id = `${prefix}-${randomBytes(3).toString('hex')}`;
  instanceIds.add(id);
  return id;
}

// A config file with one instance (never launched by audit/reap) and optional watchdog thresholds; stateDir is <dir>/state.
function writeConfig(dir: string, id: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, 'warden.config.json');
  writeFileSync(file, JSON.stringify({ stateDir: 'state', instances: [{ id, command: './webui.sh' }], ...extra }, null, 2));
  return file;
}

/** A process this test planted: what an earlier, crashed run would leave (a stale marker, outside any tree). */
interface Planted {
  pid: number;
  startTime: number | undefined;
}

// Starts `count` sleeping `worker.py` processes carrying WARDEN_INSTANCE=<id>:<token> and WARDEN_STATE_DIR=<stateDir>
// (what a supervisor of that state dir hands down), each in its own session.
async function plant(id: string, count: number, stateDir: string): Promise<Planted[]> {
  const marker = `${id}:${randomBytes(8).toString('hex')}`;
  const planted: Planted[] = [];
  for (let index = 0; index < count; index += 1) {
    // PROCESS LIFECYCLE: creates a subprocess (a planted stray)
    // Parent tracking: pid + start time; the marker of this test's unique instance id.
    // Cleanup handled by: the CLI under test (reap), else afterEach's sweep by marker of this test's instance id.
    // Known risks: none beyond the test.
    const child = spawn(python, [join(FAKE, 'worker.py'), '--index', String(index)], {
      env: { ...process.env, WARDEN_INSTANCE: marker, WARDEN_STATE_DIR: stateDir },
      detached: true,
      stdio: 'ignore',
    });
    child.unref();
    planted.push({ pid: child.pid as number, startTime: undefined });
  }
  // Ready once every one of them shows the marker in /proc (after exec).
  const deadline = Date.now() + 5000;
  while (pidsOfInstance(id).filter((pid) => readEnvironVariable(pid, 'WARDEN_INSTANCE') === marker).length < count) {
    if (Date.now() > deadline) throw new Error(`planted processes of ${id} did not start`);
    await sleep(20);
  }
  for (const entry of planted) entry.startTime = readStartTime(entry.pid)?.startTime;
  return planted;
}

function alive(entry: Planted): boolean {
  const now = readStartTime(entry.pid);
  return now !== undefined && now.state !== 'Z' && (entry.startTime === undefined || now.startTime === entry.startTime);
}

function pidsOfInstance(id: string): number[] {
  const pids: number[] = [];
  for (const info of snapshotProcSync(false).processes.values()) {
    if (info.state === 'Z') continue;
    if (readEnvironVariable(info.pid, 'WARDEN_INSTANCE')?.startsWith(`${id}:`) === true) pids.push(info.pid);
  }
  return pids;
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

const noStack = (text: string): void => {
  expect(text).not.toMatch(/^\s+at /m);
  expect(text).not.toMatch(/Error:/);
};

describe('warden audit', () => {
  test('a clean machine (for this config) is ok: exit 0', async () => {
    const dir = tempDir();
    const config = writeConfig(dir, uniqueId());
    const result = await cli(['audit', '--config', config, '--json']);

    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { level: string; stale: unknown[]; owned: unknown[] };
    expect(report).toMatchObject({ level: 'ok', stale: [], owned: [] });
  });

  test('a few stale processes of a configured instance are a warning (exit 1), even under the count thresholds', async () => {
    const dir = tempDir();
    const id = uniqueId();
    const config = writeConfig(dir, id);
    const planted = await plant(id, 3, join(dir, 'state'));

    const json = await cli(['audit', '--config', config, '--json']);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as { level: string; reason: string; counts: { python: number; stale: number }; stale: Array<{ instanceId: string; processes: Array<{ pid: number }> }> };
    expect(report.level).toBe('warning');
    expect(report.counts).toMatchObject({ python: 3, stale: 3 });
    expect(report.stale[0]?.instanceId).toBe(id);
    expect(report.stale.flatMap((group) => group.processes.map((entry) => entry.pid)).sort()).toEqual(planted.map((entry) => entry.pid).sort());

    const text = await cli(['audit', '--config', config]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('Stale: ours, left by an earlier run');
    expect(text.stdout).toContain('WARNING: 3 stale processes left by an earlier run');
    // Audit never kills.
    expect(planted.every(alive)).toBe(true);
  });

  test('stale processes above the configured critical threshold are critical: exit 2', async () => {
    const dir = tempDir();
    const id = uniqueId();
    const config = writeConfig(dir, id, { watchdog: { warning: { python: 1, shell: 1 }, critical: { python: 2, shell: 2 } } });
    await plant(id, 3, join(dir, 'state'));

    const result = await cli(['audit', '--config', config]);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('CRITICAL: python 3 > 2');
  });

  test('markers of instance ids not in the config are reported as unmanaged and never counted', async () => {
    const dir = tempDir();
    const config = writeConfig(dir, uniqueId());
    const other = uniqueId('other');
    await plant(other, 2, join(dir, 'state'));

    const result = await cli(['audit', '--config', config, '--json']);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { unmanaged: Array<{ instanceId: string; processes: unknown[] }>; counts: { stale: number } };
    expect(report.counts.stale).toBe(0);
    expect(report.unmanaged.find((group) => group.instanceId === other)?.processes).toHaveLength(2);
  });
});

describe('warden reap', () => {
  test('--dry-run lists the planted strays and kills nothing', async () => {
    const dir = tempDir();
    const id = uniqueId();
    const config = writeConfig(dir, id);
    const planted = await plant(id, 3, join(dir, 'state'));

    const result = await cli(['reap', '--config', config, '--dry-run']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('would reap');
    for (const entry of planted) expect(result.stdout).toContain(String(entry.pid));
    expect(result.stdout).toContain('would kill 3 processes of 1 marker');
    await sleep(300);
    expect(planted.every(alive)).toBe(true);
  });

  test('kills the strays of a configured instance, proves them dead, and leaves other markers alone', async () => {
    const dir = tempDir();
    const id = uniqueId();
    const config = writeConfig(dir, id);
    const planted = await plant(id, 3, join(dir, 'state'));
    const other = uniqueId('other');
    const bystanders = await plant(other, 1, join(dir, 'state'));

    const result = await cli(['reap', '--config', config, '--json', '--grace-ms', '500']);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { survivors: unknown[]; entries: Array<{ instanceId: string; action: string; killed: Array<{ pid: number }> }> };
    expect(report.survivors).toEqual([]);
    const reaped = report.entries.find((entry) => entry.instanceId === id);
    expect(reaped?.action).toBe('reaped');
    expect(reaped?.killed.map((entry) => entry.pid).sort()).toEqual(planted.map((entry) => entry.pid).sort());
    expect(report.entries.find((entry) => entry.instanceId === other)?.action).toBe('left-alone');
    expect(planted.some(alive)).toBe(false);
    expect(bystanders.every(alive)).toBe(true);

    const after = await cli(['audit', '--config', config]);
    expect(after.code).toBe(0);
  });

  test('refuses while a live supervisor holds the state directory: exit 75, nothing killed', async () => {
    const dir = tempDir();
    const id = uniqueId();
    const config = writeConfig(dir, id);
    const planted = await plant(id, 2, join(dir, 'state'));
    // This test process plays the live supervisor: it takes the real lock on the config's stateDir.
    locks.add(await acquireLock(join(dir, 'state')));

    for (const args of [['reap', '--config', config], ['reap', '--config', config, '--dry-run']]) {
      const result = await cli(args);
      expect(result.code).toBe(75);
      expect(result.stderr).toMatch(/^warden: refusing to reap: a live Warden supervisor \(pid \d+/);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(planted.every(alive)).toBe(true);
  });

  test('without a config it reaps nothing but what --instance names, and creates no state directory', async () => {
    const dir = tempDir();
    const id = uniqueId();
    const planted = await plant(id, 2, join(dir, '.warden'));

    const plain = await cli(['reap'], dir);
    expect(plain.code).toBe(0);
    expect(planted.every(alive)).toBe(true);

    const named = await cli(['reap', '--instance', id], dir);
    expect(named.code).toBe(0);
    expect(named.stdout).toContain('killed 2 processes of 1 marker; survivors: 0');
    expect(planted.some(alive)).toBe(false);
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: synchronous `test -e`, awaited here.   Cleanup handled by: it exits by itself.   Known risks: none.
    expect(() => execFileSync('test', ['-e', join(dir, '.warden')])).toThrow();
  });
});

describe('state directories', () => {
  test('strays of a configured id launched from another state dir are left alone, unless --all-state-dirs', async () => {
    const dir = tempDir();
    const id = uniqueId();
    const config = writeConfig(dir, id);
    const elsewhere = await plant(id, 2, join(tempDir(), 'another-state'));

    const audit = await cli(['audit', '--config', config, '--json']);
    expect(audit.code).toBe(0);
    const report = JSON.parse(audit.stdout) as { stale: unknown[]; unmanaged: Array<{ instanceId: string; why: string; processes: unknown[] }> };
    expect(report.stale).toEqual([]);
    expect(report.unmanaged.find((group) => group.instanceId === id)).toMatchObject({ why: 'other-state-dir', processes: [expect.anything(), expect.anything()] });

    const reap = await cli(['reap', '--config', config]);
    expect(reap.code).toBe(0);
    expect(reap.stdout).toContain('left alone');
    expect(reap.stdout).toContain('another-state, not this one');
    expect(elsewhere.every(alive)).toBe(true);

    const wide = await cli(['reap', '--config', config, '--all-state-dirs', '--grace-ms', '500']);
    expect(wide.code).toBe(0);
    expect(wide.stdout).toContain('killed 2 processes of 1 marker; survivors: 0');
    expect(elsewhere.some(alive)).toBe(false);
  });
});

describe('errors are one line and an exit code, never a stack trace', () => {
  test('a bad config names the field and exits 64', async () => {
    const dir = tempDir();
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ instances: [{ id: 'x', command: './webui.sh', restart: { baseDelayMs: 5000, maxDelayMs: 100 } }] }));

    for (const command of ['run', 'audit', 'reap', 'status']) {
      const result = await cli([command, '--config', file]);
      expect(result.code).toBe(64);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`warden: invalid config ${file}: instances[0].restart.maxDelayMs: must be ≥ baseDelayMs (got 100)\n`);
    }
  });

  test('a missing config file, an unknown option and a bad option value exit 64 with one line', async () => {
    const missing = await cli(['run', '--config', '/nonexistent/warden.config.json']);
    expect(missing.code).toBe(64);
    expect(missing.stderr).toBe('warden: Config file /nonexistent/warden.config.json does not exist\n');

    const unknown = await cli(['audit', '--bogus']);
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toBe("warden: unknown option '--bogus'\n");

    const value = await cli(['reap', '--grace-ms', 'soon']);
    expect(value.code).toBe(64);
    expect(value.stderr.trim().split('\n')).toHaveLength(1);
    noStack(value.stderr);
  });

  test('status with nothing running says so and exits 69', async () => {
    const dir = tempDir();
    const result = await cli(['status'], dir);
    expect(result.code).toBe(69);
    expect(result.stderr).toBe(`warden: no \`warden run\` is serving ${join(dir, '.warden')}: it has no server.json (looked in ./.warden; pass --config or --state-dir)\n`);
  });
});

describe('warden run', () => {
  test('supervises a WebUI, answers `warden status`, and SIGTERM shuts down with survivors 0 and exit 0', async () => {
    const dir = tempDir();
    const id = uniqueId('clirun');
    const port = await freePort();
    const file = join(dir, 'warden.config.json');
    writeFileSync(
      file,
      JSON.stringify({
        stateDir: 'state',
        instances: [
          {
            id,
            command: join(FAKE, 'webui.sh'),
            args: ['-f', '--port', String(port), '--workers', '2'],
            env: { FAKE_WEBUI_STATE_DIR: dir, python_cmd: python },
            health: { url: `http://127.0.0.1:${port}/internal/ping`, intervalMs: 200, timeoutMs: 150 },
            startupTimeoutMs: 20_000,
            stopGraceMs: 2000,
          },
        ],
        watchdog: { sampleIntervalMs: 200 },
        server: { port: 0 },
      }),
    );
    let ready!: () => void;
    const running = new Promise<void>((resolveReady) => {
      ready = resolveReady;
    });
    const run = startCli(['run', '--config', file], { onStdout: (text) => text.includes('1 of 1 instance running') && ready() });
    await Promise.race([running, run.done.then((result) => Promise.reject(new Error(`warden run exited early: ${JSON.stringify(result)}`)))]);

    const status = await cli(['status', '--config', file]);
    expect(status.code).toBe(0);
    const json = JSON.parse((await cli(['status', '--config', file, '--json'])).stdout) as {
      instances: Array<{ id: string; state: string; containment: { backend: string; reason: string; cgroup: string | null } | null }>;
    };
    expect(json.instances).toEqual([expect.objectContaining({ id, state: 'running', profile: 'generic', port, ready: true })]);
    // The human output shows what --json says: profile, port, ready and the containment backend chosen at start,
    // then the reason for that backend and the live launch's cgroup (whichever backend this machine offers).
    const containment = json.instances[0]?.containment;
    expect(containment?.backend).toMatch(/^(cgroup|subreaper|marker)$/);
    expect(status.stdout).toMatch(/INSTANCE\s+STATE\s+DETAIL\s+SHELL\s+PYTHON\s+PY#\s+SH#\s+RESTARTS\s+PROFILE\s+PORT\s+READY\s+CONTAINMENT\s+LAST ERROR/);
    expect(status.stdout).toMatch(new RegExp(`${id}\\s+running\\s+running\\s+\\d+\\s+\\d+\\s+3\\s+1\\s+0\\s+generic\\s+${port}\\s+yes\\s+${containment?.backend}\\n`));
    const cgroup = containment?.cgroup;
    expect(status.stdout).toContain(`${id} containment ${containment?.backend}: ${containment?.reason}${cgroup ? `  (cgroup ${cgroup})` : ''}\n`);
    if (containment?.backend === 'cgroup') expect(cgroup).toMatch(/^\//);
    expect(pidsOfInstance(id).length).toBe(4);

    run.child.kill('SIGTERM');
    const result = await run.done;
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`${id} running → stopping (shutdown)`);
    expect(result.stdout).toMatch(/shutdown: 1 tree stopped \(4 processes\), survivors 0/);
    expect(pidsOfInstance(id)).toEqual([]);
    const after = await cli(['status', '--config', file]);
    expect(after.code).toBe(69);
  }, 60_000);
});

// `warden run --no-sentinel`: a killed run leaves its tree to the registry (the incident, on purpose), and
// `warden reap` then stops it from the registry record alone (moved here from its own file: same fixtures).
test('warden run --no-sentinel, killed with SIGKILL, leaves its tree running; warden reap stops it from the registry alone', async () => {
  const dir = tempDir();
  const id = uniqueId('nosentinel');
  const file = join(dir, 'warden.config.json');
  writeFileSync(
    file,
    JSON.stringify({
      stateDir: 'state',
      instances: [{ id, command: join(FAKE, 'webui.sh'), args: ['-f', '--port', '0', '--workers', '2'], env: { FAKE_WEBUI_STATE_DIR: dir, python_cmd: python }, startupTimeoutMs: 20_000 }],
      watchdog: { sampleIntervalMs: 200 },
      server: { port: 0 },
    }),
  );
  let ready!: () => void;
  const running = new Promise<void>((resolveReady) => {
    ready = resolveReady;
  });
  const run = startCli(['run', '--config', file, '--no-sentinel'], { onStdout: (text) => text.includes('1 of 1 instance running') && ready() });
  await Promise.race([running, run.done.then((result) => Promise.reject(new Error(`warden run exited early: ${JSON.stringify(result)}`)))]);
  // The whole tree: bash webui.sh, launch.py, 2 workers.
  const deadline = Date.now() + 10_000;
  while (pidsOfInstance(id).length < 4 && Date.now() < deadline) await sleep(50);
  const tree = pidsOfInstance(id);
  expect(tree).toHaveLength(4);
  expect(run.child.pid).toBeDefined();

  run.child.kill('SIGKILL');
  const result = await run.done;
  expect(result.signal).toBe('SIGKILL');
  expect(result.stdout).toContain('sentinel    off (--no-sentinel)');
  // With a sentinel the tree would be gone within a few hundred ms (test/runtime/force-close.test.ts); here it stays.
  await sleep(1000);
  expect(pidsOfInstance(id)).toEqual(tree);
  const registry = JSON.parse(readFileSync(join(dir, 'state', 'registry.json'), 'utf8')) as { records: Array<{ instanceId: string; marker: string }> };
  expect(registry.records.map((record) => record.instanceId)).toEqual([id]);
  expect(existsSync(join(dir, 'state', 'sentinel.log'))).toBe(false);

  // --forget drops only records Warden cannot prove: this one it can (its tree is right there), so it refuses.
  const marker = registry.records[0]?.marker as string;
  const forgetProvable = await cli(['reap', '--config', file, '--forget', marker]);
  expect(forgetProvable.code).toBe(64);
  expect(forgetProvable.stderr).toContain(`--forget ${marker}: Warden can prove this record's tree (a reap would do: would-reap); run \`warden reap\` instead`);
  const forgetUnknown = await cli(['reap', '--config', file, '--forget', `${id}:0000`]);
  expect(forgetUnknown.code).toBe(64);
  expect(forgetUnknown.stderr).toContain(`--forget ${id}:0000: no registry record has this marker (records: ${marker})`);
  expect(pidsOfInstance(id)).toEqual(tree);
  expect((JSON.parse(readFileSync(join(dir, 'state', 'registry.json'), 'utf8')) as { records: unknown[] }).records).toHaveLength(1);

  const reap = await cli(['reap', '--config', file, '--json']);
  expect(reap.code).toBe(0);
  const report = JSON.parse(reap.stdout) as { entries: Array<{ instanceId: string; source: string; action: string; recordRemoved?: boolean; killed: unknown[]; survivors: unknown[] }> };
  expect(report.entries.filter((entry) => entry.instanceId === id)).toEqual([expect.objectContaining({ source: 'registry', action: 'reaped', recordRemoved: true, survivors: [] })]);
  // Trees of other instances on this machine (other test files run in parallel) are reported, never touched.
  for (const entry of report.entries.filter((other) => other.instanceId !== id)) expect(entry).toMatchObject({ action: 'left-alone', killed: [] });
  expect(pidsOfInstance(id)).toEqual([]);
}, 60_000);
