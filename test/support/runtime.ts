// Test helpers for the runtime: configs that run the fake WebUI on a free port, and cleanup of every supervisor made.
import { randomBytes } from 'node:crypto';
import { cpSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createSupervisor } from '../../src/index.js';
import type { Supervisor, SupervisorOptions } from '../../src/index.js';
import { snapshotProcSync } from '../../src/process/index.js';
import { readEnvironVariable } from '../../src/process/posix/procfs.js';
import { afterEach, beforeEach, expect } from 'vitest';
import { FAKE_WEBUI_DIR, cleanupProcesses, isAliveNow, startDecoy, tempDir } from './processes.js';
import type { Decoy } from './processes.js';

const supervisors = new Set<Supervisor>();
const instanceIds = new Set<string>();

// A port nobody listens on right now, never handed out twice in this run: each vitest worker draws from its own
// band below the kernel's ephemeral range (32768+), so neither a process binding port 0 nor another test file can
// take an instance's port while it is between a stop and a start.
const band = 20_000 + (Number(process.env.VITEST_POOL_ID ?? '0') % 6) * 2000;
let nextPort = band + Math.floor(Math.random() * 1000);
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const port = nextPort;
    nextPort = nextPort + 1 >= band + 2000 ? band : nextPort + 1;
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port found in ${band}–${band + 1999}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

// A unique instance id, so "every process carrying this id's marker" is this test's and nobody else's.
export function uniqueId(prefix = 'webui'): string {
  const id = `${prefix}-${randomBytes(3).toString('hex')}`;
  instanceIds.add(id);
  return id;
}

export interface FakeInstanceOptions {
  id?: string;
  args?: string[];
  env?: Record<string, string>;
  restart?: Record<string, unknown>;
  health?: Record<string, unknown> | false;
  startupTimeoutMs?: number;
  stopGraceMs?: number;
}

// One instance config running examples/fake-webui/webui.sh on a free port, in its own temp cwd.
export async function fakeInstance(options: FakeInstanceOptions = {}): Promise<Record<string, unknown> & { id: string; port: number; cwd: string; command: string }> {
  const id = options.id ?? uniqueId();
  const port = await freePort();
  const cwd = tempDir('warden-cwd-');
  // Each instance runs its own copy of the fake WebUI: a look-alike of one test (same script path, no marker) must
  // not read as a foreign instance to another test file running in parallel.
  const script = join(cwd, 'fake-webui');
  cpSync(FAKE_WEBUI_DIR, script, { recursive: true, filter: (source) => !source.includes('__pycache__') && !source.endsWith('/tmp') });
  return {
    id,
    port,
    cwd,
    command: join(script, 'webui.sh'),
    // -f first: like A1111's webui.sh, the fake refuses root without it (the tests run as root).
    args: ['-f', '--port', String(port), ...(options.args ?? [])],
    env: { FAKE_WEBUI_STATE_DIR: cwd, ...options.env },
    ...(options.health !== false && {
      // Generous enough for a loaded CI machine: a slow answer must not read as a hung WebUI.
      health: { url: `http://127.0.0.1:${port}/internal/ping`, intervalMs: 1000, timeoutMs: 1000, failureThreshold: 3, ...options.health },
    }),
    startupTimeoutMs: options.startupTimeoutMs ?? 15_000,
    stopGraceMs: options.stopGraceMs ?? 2000,
    restart: { onCrash: true, baseDelayMs: 100, maxDelayMs: 400, maxRestarts: 5, windowMs: 60_000, resetAfterMs: 600_000, ...options.restart },
  };
}

// A supervisor over the given instances with fast sampling; shut down by cleanupRuntime().
export function makeSupervisor(instances: Array<Record<string, unknown>>, extra: { stateDir?: string; watchdog?: Record<string, unknown> } = {}, options: SupervisorOptions = {}): Supervisor {
  const supervisor = createSupervisor(
    {
      stateDir: extra.stateDir ?? join(tempDir('warden-state-'), 'state'),
      // fakeInstance's `port` is for the test to know; an instance with a WebUI profile configures it for real.
      instances: instances.map(({ port, ...rest }) => ('profile' in rest ? { port, ...rest } : rest)),
      watchdog: { sampleIntervalMs: 200, ...extra.watchdog },
    },
    options,
  );
  supervisors.add(supervisor);
  return supervisor;
}

// Live processes carrying a marker of this instance id (any token): what "no orphans anywhere" checks.
export function pidsOfInstance(id: string): number[] {
  const table = snapshotProcSync(false);
  const pids: number[] = [];
  for (const info of table.processes.values()) {
    if (info.state === 'Z') continue;
    if (readEnvironVariable(info.pid, 'WARDEN_INSTANCE')?.startsWith(`${id}:`) === true) pids.push(info.pid);
  }
  return pids;
}

// Shuts down every supervisor made, then kills anything still carrying one of this file's unique instance ids.
export async function cleanupRuntime(): Promise<void> {
  await Promise.all([...supervisors].map((supervisor) => supervisor.shutdown().catch(() => undefined)));
  supervisors.clear();
  for (const id of instanceIds) {
    for (const pid of pidsOfInstance(id)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  instanceIds.clear();
  await cleanupProcesses();
}

// Every test of the calling file runs beside two look-alikes started without our marker (a `python3 launch.py`
// and a `bash webui.sh` in the fake WebUI's own directory); after each test both must still be alive.
export function withDecoysUntouched(): void {
  let decoys: Decoy[] = [];
  beforeEach(async () => {
    decoys = [
      await startDecoy('python3', ['launch.py', '--port', '0']),
      await startDecoy('bash', ['webui.sh', '-f', '--port', '0']),
    ];
  });
  afterEach(async () => {
    try {
      const touched = decoys.filter((decoy) => !isAliveNow(decoy.pid, decoy.startTime)).map((decoy) => decoy.pid);
      expect(touched, 'decoys started without the marker must survive').toEqual([]);
    } finally {
      await cleanupRuntime();
    }
  });
}
