// Real-process tests of the fake WebUI itself (examples/fake-webui): bash webui.sh → python3
// launch.py → worker.py. Every test spawns its own tree in its own process group with a random
// environment marker, and afterEach kills exactly that: the group plus any process whose
// /proc/PID/environ carries the marker (which catches orphans and the setsid daemon).
import { test, expect, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FAKE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'fake-webui');
const WEBUI_SH = join(FAKE_DIR, 'webui.sh');
const MARKER_VAR = 'FAKE_WEBUI_TEST';
const READY_MS = 10_000;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Tree {
  child: ChildProcess;
  bashPid: number;
  marker: string;
  stateDir: string;
  lines: string[];
  errLines: string[];
  exited: Promise<Exit>;
}

const started: Tree[] = [];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Stat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
}

// /proc/PID/stat: "pid (comm) state ppid pgrp session ..."; comm may contain spaces and ")".
function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    state: fields[0] ?? '?',
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    session: Number(fields[3]),
  };
}

function livePids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

function childrenOf(ppid: number): number[] {
  return livePids().filter((pid) => {
    const stat = readStat(pid);
    return stat !== undefined && stat.ppid === ppid && stat.state !== 'Z';
  });
}

function environHas(pid: number, entry: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(entry);
  } catch {
    return false; // gone, or not ours to read
  }
}

// Living (non-zombie) processes carrying this exact marker: provably ours.
function markedPids(marker: string): number[] {
  const entry = `${MARKER_VAR}=${marker}`;
  return livePids().filter((pid) => pid !== process.pid && readStat(pid)?.state !== 'Z' && environHas(pid, entry));
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

function collectLines(stream: NodeJS.ReadableStream | null): string[] {
  const lines: string[] = [];
  let buffer = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    buffer += chunk;
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
  });
  return lines;
}

function startFake(args: string[]): Tree {
  const marker = randomBytes(12).toString('hex');
  const stateDir = mkdtempSync(join(tmpdir(), 'fake-webui-test-'));
  const env: NodeJS.ProcessEnv = { ...process.env, [MARKER_VAR]: marker, FAKE_WEBUI_STATE_DIR: stateDir };
  delete env.COMMANDLINE_ARGS; // launch.py would append it
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: own process group (detached) + a random FAKE_WEBUI_TEST marker in the environment.   Cleanup handled by: afterEach (group SIGKILL, then every pid carrying the marker).   Known risks: none past the test.
  const child = spawn('bash', [WEBUI_SH, '-f', '--port', '0', '--port-file', join(stateDir, 'port'), ...args], {
    detached: true, // own session and process group: pgid === bash pid
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error('spawn failed');
  const lines = collectLines(child.stdout);
  const errLines = collectLines(child.stderr); // also drains: a full pipe must never block the fake
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const tree: Tree = { child, bashPid: child.pid, marker, stateDir, lines, errLines, exited };
  started.push(tree);
  return tree;
}

async function waitFor<T>(what: string | (() => string), probe: () => T | undefined, timeoutMs = READY_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(25);
  }
}

// Resolves with the capture groups of the `nth` (1-based) stdout (or stderr) line matching `re`.
function waitForLine(tree: Tree, re: RegExp, nth = 1, from: 'stdout' | 'stderr' = 'stdout'): Promise<RegExpMatchArray> {
  const lines = from === 'stdout' ? tree.lines : tree.errLines;
  return waitFor(() => `${from} line ${re} #${nth} (got:\n${lines.join('\n')})`, () => {
    const matches = lines.map((line) => line.match(re)).filter((m): m is RegExpMatchArray => m !== null);
    return matches[nth - 1];
  });
}

const RUNNING = /^Running on local URL: {2}http:\/\/127\.0\.0\.1:(\d+)$/;

async function waitRunning(tree: Tree, nth = 1): Promise<number> {
  const m = await waitForLine(tree, RUNNING, nth);
  return Number(m[1]);
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    sleep(ms).then(() => {
      throw new Error(`timed out: ${what}`);
    }),
  ]);
}

// The launch.py process that bash is currently waiting on.
function pythonOf(bashPid: number): number | undefined {
  return childrenOf(bashPid).find((pid) => cmdline(pid).some((arg) => arg.endsWith('launch.py')));
}

afterEach(async () => {
  const trees = started.splice(0);
  for (const tree of trees) {
    try {
      process.kill(-tree.bashPid, 'SIGKILL'); // the whole process group we created
    } catch {
      // already gone
    }
    // Orphans keep the group but may outlive it being signalled before they were forked;
    // the setsid daemon has left the group: the marker proves both are ours.
    const deadline = Date.now() + 5_000;
    for (;;) {
      const remaining = markedPids(tree.marker);
      if (remaining.length === 0) break;
      for (const pid of remaining) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // raced with its exit
        }
      }
      if (Date.now() > deadline) throw new Error(`could not clean up marked processes ${remaining.join(', ')}`);
      await sleep(25);
    }
    tree.child.stdout?.destroy();
    tree.child.stderr?.destroy();
    rmSync(tree.stateDir, { recursive: true, force: true });
  }
});

test('answers the A1111 endpoints over real HTTP and runs workers as children of python', async () => {
  const tree = startFake(['--workers', '2']);
  const port = await waitRunning(tree);
  expect(Number(readFileSync(join(tree.stateDir, 'port'), 'utf8').trim())).toBe(port);

  const base = `http://127.0.0.1:${port}`;
  const ping = await fetch(`${base}/internal/ping`);
  expect(ping.status).toBe(200);
  expect(await ping.json()).toEqual({});

  const progress = (await (await fetch(`${base}/sdapi/v1/progress`)).json()) as Record<string, unknown>;
  expect(progress).toMatchObject({ progress: 0, eta_relative: 0, current_image: null, textinfo: null });
  expect(progress.state).toBeTypeOf('object');
  expect((await fetch(`${base}/sdapi/v1/options`)).status).toBe(200);
  const missing = await fetch(`${base}/no/such/path`);
  expect(missing.status).toBe(404);
  expect(await missing.json()).toEqual({ detail: 'Not Found' });

  const python = pythonOf(tree.bashPid);
  expect(python).toBeDefined();
  const workerPids = (await Promise.all([waitForLine(tree, /^worker 0 started pid (\d+)$/), waitForLine(tree, /^worker 1 started pid (\d+)$/)])).map(
    (m) => Number(m[1]),
  );
  for (const pid of workerPids) {
    const stat = readStat(pid);
    expect(stat?.ppid).toBe(python);
    expect(stat?.pgrp).toBe(tree.bashPid); // still in the group we created
    expect(environHas(pid, `${MARKER_VAR}=${tree.marker}`)).toBe(true);
  }
  expect(childrenOf(python!).sort()).toEqual([...workerPids].sort());
});

test('server-restart makes bash relaunch python: new python pid, same bash pid', async () => {
  const tree = startFake(['--workers', '1']);
  const port = await waitRunning(tree);
  const firstPython = pythonOf(tree.bashPid);
  expect(firstPython).toBeDefined();

  const res = await fetch(`http://127.0.0.1:${port}/sdapi/v1/server-restart`, { method: 'POST' });
  expect(res.status).toBe(200);
  await res.text();

  const secondPort = await waitRunning(tree, 2);
  const secondPython = await waitFor('relaunched python', () => {
    const pid = pythonOf(tree.bashPid);
    return pid !== undefined && pid !== firstPython ? pid : undefined;
  });
  expect(secondPython).not.toBe(firstPython);
  expect(alive(tree.bashPid)).toBe(true);
  expect(readStat(tree.bashPid)?.state).not.toBe('Z');
  expect(tree.lines.filter((line) => line === 'Launching launch.py...')).toHaveLength(2);
  // The wrapper removed tmp/restart before relaunching, and the new python answers.
  const ping = await fetch(`http://127.0.0.1:${secondPort}/internal/ping`);
  expect(await ping.json()).toEqual({});
});

test('server-stop ends python (workers first) and bash exits 0', async () => {
  const tree = startFake(['--workers', '2']);
  const port = await waitRunning(tree);
  await waitForLine(tree, /^worker 1 started pid \d+$/);

  const res = await fetch(`http://127.0.0.1:${port}/sdapi/v1/server-stop`, { method: 'POST' });
  expect(res.status).toBe(200);
  await res.text();

  expect(await withTimeout(tree.exited, 8_000, 'bash exit')).toEqual({ code: 0, signal: null });
  await waitFor('no marked process left', () => (markedPids(tree.marker).length === 0 ? true : undefined), 3_000);
});

test('--exit-immediately: python exits 1 and bash exits 0 after it, like A1111 (a crash loop in the making)', async () => {
  const tree = startFake(['--workers', '2', '--exit-immediately']);
  // A1111's loop ends on `KEEP_GOING=0`: the wrapper's status is 0 whatever Python's was, so 0 never means "clean".
  expect(await withTimeout(tree.exited, 8_000, 'bash exit')).toEqual({ code: 0, signal: null });
  expect(tree.errLines).toContain('RuntimeError: fake startup failure (--exit-immediately)');
  expect(tree.lines.some((line) => RUNNING.test(line))).toBe(false);
});

test('--crash-after: bash exits (status 0, like A1111) and the workers survive as marked orphans', async () => {
  const tree = startFake(['--workers', '2', '--crash-after', '1.0']);
  await waitRunning(tree);
  const python = pythonOf(tree.bashPid);
  expect(python).toBeDefined();
  const workerPids = childrenOf(python!);
  expect(workerPids).toHaveLength(2);

  expect(await withTimeout(tree.exited, 8_000, 'bash exit')).toEqual({ code: 0, signal: null });
  for (const pid of workerPids) {
    const stat = readStat(pid);
    expect(stat).toBeDefined();
    expect(stat?.ppid).not.toBe(python); // reparented
    expect(environHas(pid, `${MARKER_VAR}=${tree.marker}`)).toBe(true);
  }
});

test('--daemon-grandchild escapes the session but keeps the marker', async () => {
  const tree = startFake(['--daemon-grandchild']);
  await waitRunning(tree);
  const daemon = Number((await waitForLine(tree, /^daemon started pid (\d+)$/))[1]);
  const python = pythonOf(tree.bashPid);

  const bashStat = readStat(tree.bashPid);
  const daemonStat = readStat(daemon);
  expect(bashStat?.session).toBe(tree.bashPid); // detached: true made bash a session leader
  expect(daemonStat).toBeDefined();
  expect(daemonStat?.session).not.toBe(bashStat?.session);
  expect(daemonStat?.pgrp).not.toBe(tree.bashPid); // killpg(bash) cannot reach it
  expect(daemonStat?.ppid).not.toBe(python); // double fork: reparented
  expect(environHas(daemon, `${MARKER_VAR}=${tree.marker}`)).toBe(true);
  expect(markedPids(tree.marker)).toContain(daemon);
});

test('--hang-after: the process lives on but ping stops answering', async () => {
  const tree = startFake(['--hang-after', '0.5']);
  const port = await waitRunning(tree);
  const url = `http://127.0.0.1:${port}/internal/ping`;
  const first = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  expect(await first.json()).toEqual({});

  await waitForLine(tree, /^hanging now/, 1, 'stderr');
  await expect(fetch(url, { signal: AbortSignal.timeout(700) })).rejects.toThrow();
  const python = pythonOf(tree.bashPid);
  expect(python).toBeDefined();
  expect(alive(python!)).toBe(true);
  expect(alive(tree.bashPid)).toBe(true);
});
