// The Python client StableNew uses (examples/stablenew), end to end against a real `warden run` child process.
import { execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startPiped } from './support/child.js';
import type { ChildResult, PipedChild } from './support/child.js';
import { tempDir, waitFor } from './support/processes.js';
import { cleanupRuntime, fakeInstance, freePort, pidsOfInstance } from './support/runtime.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLIENT_DIR = join(ROOT, 'examples/stablenew');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

type Finished = ChildResult;

/** A child this file started, with its output so far and a promise of its end. */
type Child = PipedChild;

/** A `warden run` this file started, and what a client needs to reach it. */
interface Warden extends Child {
  id: string;
  stateDir: string;
  url: string;
  token: string;
}

const children = new Set<Child>();
const servers = new Set<Server>();
let python = 'python3';

beforeAll(() => {
  // The interpreter itself: a version manager's `python3` is a bash shim, which would count as a shell in the tree.
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: synchronous child, awaited here.   Cleanup handled by: it exits by itself.   Known risks: none.
  python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim() || 'python3';
});

afterEach(async () => {
  // Only the children this file spawned, by handle: `warden run` gets SIGTERM (its shutdown stops and confirms
  // every tree), SIGKILL after 10 s; then anything still carrying this file's unique instance ids is killed.
  await Promise.all([...children].map((entry) => endChild(entry)));
  children.clear();
  for (const server of servers) server.closeAllConnections();
  await Promise.all([...servers].map((server) => new Promise<void>((done) => server.close(() => done()))));
  servers.clear();
  await cleanupRuntime();
});

const running = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

// SIGTERM, then SIGKILL through the same handle if it has not exited within 10 s.
async function endChild(entry: Child): Promise<void> {
  if (!running(entry.child)) return;
  entry.child.kill('SIGTERM');
  const ended = await Promise.race([entry.done.then(() => true), sleep(10_000).then(() => false)]);
  if (!ended && running(entry.child)) {
    entry.child.kill('SIGKILL');
    await entry.done;
  }
}

// Spawns a child with piped output (`warden run`, or a Python client under test), kept in `children`: afterEach →
// endChild (SIGTERM, SIGKILL after 10 s, by handle), then cleanupRuntime() sweeps this file's instance ids.
function startChild(command: string, args: string[], cwd = ROOT): Child {
  // PYTHONDONTWRITEBYTECODE: importing warden_client must not leave __pycache__ in examples/stablenew.
  const entry = startPiped(command, args, { cwd, env: { ...process.env, NO_COLOR: '1', PYTHONDONTWRITEBYTECODE: '1' } });
  children.add(entry);
  return entry;
}

// Runs a Python program to its end (killed by handle after `timeoutMs`).
async function runPython(args: string[], timeoutMs = 45_000): Promise<Finished> {
  const entry = startChild(python, args);
  const timer = setTimeout(() => entry.child.kill('SIGKILL'), timeoutMs);
  try {
    return await entry.done;
  } finally {
    clearTimeout(timer);
  }
}

// Starts `warden run --config <file>` over one fake WebUI (1 worker) and waits until its API answers.
async function startWarden(): Promise<Warden> {
  const instance = await fakeInstance({ args: ['--workers', '1'], env: { python_cmd: python } });
  const dir = tempDir('warden-pyclient-');
  const stateDir = join(dir, 'state');
  const file = join(dir, 'warden.config.json');
  const serverPort = await freePort();
  writeFileSync(
    file,
    JSON.stringify({
      stateDir,
      instances: [instance],
      watchdog: { sampleIntervalMs: 200 },
      server: { host: '127.0.0.1', port: serverPort },
    }),
  );
  const entry = startChild(process.execPath, ['--import', TSX, join(ROOT, 'src/cli.ts'), 'run', '--config', file]);
  const exitedEarly = entry.done.then((result) => {
    throw new Error(`warden run exited early: ${JSON.stringify(result)}`);
  });
  let token = '';
  let url = '';
  const answers = async (): Promise<boolean> => {
    if (!existsSync(join(stateDir, 'server.json')) || !existsSync(join(stateDir, 'token'))) return false;
    url = (JSON.parse(readFileSync(join(stateDir, 'server.json'), 'utf8')) as { url: string }).url;
    token = readFileSync(join(stateDir, 'token'), 'utf8').trim();
    try {
      const response = await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) });
      return response.status === 200;
    } catch {
      return false;
    }
  };
  await Promise.race([waitFor(answers, 20_000, 'warden run to serve /api/status'), exitedEarly]);
  expect(url).toBe(`http://127.0.0.1:${serverPort}`);
  return { ...entry, id: instance.id, stateDir, url, token };
}

// The instance's state as /api/status reports it.
async function stateOf(warden: Warden): Promise<string | undefined> {
  const response = await fetch(`${warden.url}/api/status`, { headers: { authorization: `Bearer ${warden.token}` }, signal: AbortSignal.timeout(2000) });
  const status = (await response.json()) as { instances: Array<{ id: string; state: string }> };
  return status.instances.find((instance) => instance.id === warden.id)?.state;
}

// A Python program that imports the client from examples/stablenew.
const withClient = (body: string): string => `import json, sys\nsys.path.insert(0, ${JSON.stringify(CLIENT_DIR)})\nfrom warden_client import WardenClient, WardenError\n${body}`;

describe('the StableNew Python client against warden run', () => {
  test('the controller starts, restarts and stops the WebUI and prints a termination report with survivors: 0', async () => {
    const warden = await startWarden();
    const result = await runPython([join(CLIENT_DIR, 'controller.py'), '--state-dir', warden.stateDir, '--instance', warden.id]);

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`connected to ${warden.url}`);
    expect(result.stdout).toMatch(new RegExp(`${warden.id}: running +pid \\d+ .*processes: python [1-9]\\d*, shell 1, total [1-9]`));
    expect(result.stdout).toMatch(/restart \(old tree\): stopped [1-9]\d* process(es)? in \d+ ms/);
    expect(result.stdout).toMatch(/stop: stopped [1-9]\d* process(es)? in \d+ ms \(escalated: (no|yes)\)/);
    expect(result.stdout).toContain(`${warden.id}: idle`);
    expect(result.stdout.match(/^survivors: 0$/gm)).toHaveLength(2);
    expect(result.stdout).not.toContain('SURVIVED');
    expect(result.stdout).toContain('ok: every tree was confirmed dead');
    // The events thread saw the restart go through stopping before the new tree was spawned.
    expect(result.stdout).toContain(`event: ${warden.id} running -> stopping`);
    // Stopped through the API: nothing carrying the instance's marker is left, and warden still serves.
    expect(pidsOfInstance(warden.id)).toEqual([]);
    expect(await stateOf(warden)).toBe('idle');
  }, 90_000);

  test('events() delivers the transitions of a restart asked through the client, with event ids', async () => {
    const warden = await startWarden();
    await waitFor(async () => (await stateOf(warden)) === 'running', 20_000, 'the instance to run');
    const script = withClient(`
client = WardenClient(state_dir=sys.argv[1])
instance = sys.argv[2]
first = None
states = []
with client.events() as stream:
    for event in stream:
        first = first or event["type"]
        data = event["data"]
        if event["type"] == "status":
            print(json.dumps({"accepted": client.restart(instance, wait=False)}), flush=True)
        elif event["type"] == "transition" and data["instance"] == instance and data["from"] != data["to"]:
            states.append(data["to"])
            if data["to"] == "running":
                print(json.dumps(event), flush=True)
                break
print(json.dumps({"closed": stream.closed, "first": first, "states": states}), flush=True)
`);
    const result = await runPython(['-c', script, warden.stateDir, warden.id]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines[0]).toEqual({ accepted: { accepted: true, instance: warden.id, action: 'restart' } });
    const running = lines[1] as { type: string; id: number; data: Record<string, unknown> };
    expect(running.type).toBe('transition');
    expect(running.id).toBeGreaterThan(0);
    expect(running.data).toMatchObject({ type: 'transition', instance: warden.id, from: 'spawning', to: 'running' });
    // Stop-then-start, never start-then-stop: the old tree went through stopping before anything was spawned.
    expect(lines[2]).toEqual({ closed: true, first: 'status', states: ['stopping', 'spawning', 'running'] });
  }, 60_000);

  test('refusals arrive as WardenError carrying the server code and HTTP status', async () => {
    const warden = await startWarden();
    const script = withClient(`
def code_of(call):
    try:
        call()
        return None
    except WardenError as error:
        return [error.code, error.status, sorted(error.details)]
client = WardenClient(state_dir=sys.argv[1], timeout=5)
print(json.dumps({
    "unknown": code_of(lambda: client.start("no-such-webui")),
    "badToken": code_of(lambda: WardenClient(url=client.url, token="0" * 64).status()),
    "badTimeout": code_of(lambda: client.stop(sys.argv[2], timeout_ms=0)),
    "notRunning": code_of(lambda: WardenClient(state_dir=sys.argv[1] + "-missing")),
    "unreachable": code_of(lambda: WardenClient(url="http://127.0.0.1:9", token="t", timeout=2).status()),
}))
`);
    const result = await runPython(['-c', script, warden.stateDir, warden.id]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      unknown: ['UNKNOWN_INSTANCE', 404, ['instanceId']],
      badToken: ['UNAUTHORIZED', 401, []],
      badTimeout: ['BAD_REQUEST', 400, []],
      notRunning: ['NOT_RUNNING', null, []],
      unreachable: ['UNREACHABLE', null, []],
    });
  }, 60_000);

  test('shutdown() stops every tree confirmed, ends the event stream with "shutdown", and warden run exits 0', async () => {
    const warden = await startWarden();
    await waitFor(async () => (await stateOf(warden)) === 'running', 20_000, 'the instance to run');
    expect(pidsOfInstance(warden.id).length).toBeGreaterThan(0);
    const script = withClient(`
client = WardenClient(state_dir=sys.argv[1])
terminations = []
with client.events() as stream:
    for event in stream:
        if event["type"] == "status":
            print(json.dumps(client.shutdown()), flush=True)
        elif event["type"] == "termination":
            terminations.append(event["data"]["report"]["survivors"])
        last = event["type"]
print(json.dumps({"last": last, "closed": stream.closed, "terminations": terminations}), flush=True)
`);
    const result = await runPython(['-c', script, warden.stateDir]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const [accepted, outcome] = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as unknown);
    expect(accepted).toEqual({ accepted: true, action: 'shutdown' });
    expect(outcome).toEqual({ last: 'shutdown', closed: true, terminations: [[]] });
    const exited = await warden.done;
    expect(exited.code).toBe(0);
    expect(pidsOfInstance(warden.id)).toEqual([]);
  }, 60_000);
});

describe('the Python client event stream', () => {
  test('a dropped stream is reopened with Last-Event-ID, so no event is missed or repeated', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const frame = (event: string, data: unknown, id?: number): string => `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
      if (seen.length === 1) {
        // The first connection breaks after two events, without a shutdown frame.
        res.end(`retry: 50\n\n${frame('status', { instances: [] })}${frame('transition', { to: 'spawning' }, 1)}: heartbeat\n\n${frame('transition', { to: 'running' }, 2)}`);
      } else {
        res.end(`${frame('status', { instances: [] })}${frame('transition', { to: 'stopping' }, 3)}${frame('shutdown', { type: 'shutdown' })}`);
      }
    });
    servers.add(server);
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
    const { port } = server.address() as AddressInfo;
    const script = withClient(`
client = WardenClient(url=sys.argv[1], token="secret")
for event in client.events():
    print(json.dumps([event["type"], event["id"], event["data"].get("to")]), flush=True)
`);
    const result = await runPython(['-c', script, `http://127.0.0.1:${port}`], 20_000);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n').map((line) => JSON.parse(line) as unknown)).toEqual([
      ['status', null, null],
      ['transition', 1, 'spawning'],
      ['transition', 2, 'running'],
      ['status', null, null],
      ['transition', 3, 'stopping'],
      ['shutdown', null, null],
    ]);
    expect(seen).toHaveLength(2);
    expect(seen[0]?.authorization).toBe('Bearer secret');
    expect(seen[0]?.['last-event-id']).toBeUndefined();
    expect(seen[1]?.['last-event-id']).toBe('2');
  }, 30_000);
});
