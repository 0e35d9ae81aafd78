// The TypeScript examples run as a user would run them: the embedded controller's shutdown sequence and the inspector.
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';
import { startPiped } from './support/child.js';
import type { PipedChild } from './support/child.js';
import { tempDir, waitFor } from './support/processes.js';
import { cleanupRuntime, freePort, pidsOfInstance, uniqueId } from './support/runtime.js';

const ROOT = resolve(import.meta.dirname, '..');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

type Example = PipedChild;

const examples = new Set<Example>();
const listeners = new Set<Server>();

afterEach(async () => {
  // Only the examples this file spawned, by handle: SIGTERM runs their shutdown sequence; SIGKILL after 10 s
  // (their sentinel then stops the tree). Then anything carrying this file's unique instance ids is killed.
  await Promise.all(
    [...examples].map(async (example) => {
      if (!running(example.child)) return;
      example.child.kill('SIGTERM');
      const ended = await Promise.race([example.done.then(() => true), sleep(10_000).then(() => false)]);
      if (!ended && running(example.child)) {
        example.child.kill('SIGKILL');
        await example.done;
      }
    }),
  );
  examples.clear();
  await Promise.all([...listeners].map((server) => new Promise<void>((done) => server.close(() => done()))));
  listeners.clear();
  await cleanupRuntime();
});

const running = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

// Runs `node --import tsx examples/<file> <args>`, as `npx tsx examples/<file>` would. Kept in `examples`:
// afterEach SIGTERMs it by handle (SIGKILL after 10 s), then cleanupRuntime() sweeps this file's instance ids.
function startExample(file: string, args: string[]): Example {
  const example = startPiped(process.execPath, ['--import', TSX, join(ROOT, 'examples', file), ...args], { cwd: ROOT });
  examples.add(example);
  return example;
}

// The flags every run gets: its own WebUI port, state directory and unique instance id.
async function ownFlags(): Promise<{ id: string; args: string[] }> {
  const id = uniqueId('example');
  return { id, args: ['--id', id, '--port', String(await freePort()), '--state-dir', join(tempDir('warden-example-'), 'state'), '--workers', '1'] };
}

describe('examples/embedded-controller.ts', () => {
  test('--once starts the fake WebUI, waits until healthy, shuts down with survivors: 0 and exits 0', async () => {
    const { id, args } = await ownFlags();
    const result = await startExample('embedded-controller.ts', ['--once', ...args]).done;

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`"${id}" is healthy: shell pid `);
    expect(result.stdout).toMatch(new RegExp(`"${id}" processes: python [1-9]\\d*, shell 1, total [1-9]`));
    expect(result.stdout).toContain('shutting down (--once)');
    expect(result.stdout).toContain(`${id}: idle, confirmed dead`);
    expect(result.stdout).toMatch(/shutdown complete in \d+ ms; survivors: 0\n$/);
    expect(pidsOfInstance(id)).toEqual([]);
  }, 60_000);

  test('SIGTERM runs the shutdown sequence: the tree is confirmed dead before the controller exits 0', async () => {
    const { id, args } = await ownFlags();
    const example = startExample('embedded-controller.ts', args);
    await waitFor(() => example.output.stdout.includes('supervising; Ctrl-C or SIGTERM') || !running(example.child), 30_000, 'the controller to supervise');
    const before = pidsOfInstance(id);
    expect(before.length).toBeGreaterThanOrEqual(2);

    example.child.kill('SIGTERM');
    const result = await example.done;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('shutting down (SIGTERM)');
    expect(result.stdout).toContain(`${id}: running → stopping`);
    expect(result.stdout).toMatch(/survivors: 0\n$/);
    expect(pidsOfInstance(id)).toEqual([]);
  }, 60_000);

  test('a start refused because the port already answers still ends with the shutdown sequence and exit 1', async () => {
    const { id, args } = await ownFlags();
    const port = Number(args[args.indexOf('--port') + 1]);
    // A listener of this test's own on the WebUI's port: Warden must refuse to start a second WebUI there.
    const blocker = createServer((socket) => socket.end());
    listeners.add(blocker);
    await new Promise<void>((done) => blocker.listen(port, '127.0.0.1', () => done()));

    const result = await startExample('embedded-controller.ts', ['--once', ...args]).done;
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`could not start: Cannot start "${id}": port ${port} already answers`);
    expect(result.stdout).toMatch(/survivors: 0\n$/);
    expect(pidsOfInstance(id)).toEqual([]);
  }, 60_000);

  test('a bad flag is one line on stderr and exit 2', async () => {
    const result = await startExample('embedded-controller.ts', ['--port', 'seventy']).done;
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe('embedded-controller: --port must be an integer from 1 to 65535 (got "seventy")\n');
  }, 30_000);
});

describe('examples/inspect.ts', () => {
  test('--once serves the local inspector bridge, feeds it the machines\' events, and shuts down with survivors: 0', async () => {
    const { id, args } = await ownFlags();
    const inspectPort = await freePort();
    const result = await startExample('inspect.ts', ['--once', '--inspect-port', String(inspectPort), ...args]).done;

    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`inspector: open http://localhost:${inspectPort} in a browser.`);
    expect(result.stdout).toContain('loads from https://stately.ai/inspect');
    expect(result.stdout).toContain(`inspector: the bridge page at http://localhost:${inspectPort} answers and embeds https://stately.ai/inspect`);
    expect(Number(/inspector: (\d+) inspection events so far/.exec(result.stdout)?.[1])).toBeGreaterThan(0);
    expect(result.stdout).toMatch(/survivors: 0\n$/);
    expect(pidsOfInstance(id)).toEqual([]);
    // The inspector's server is gone with the example: its port is free again.
    await waitFor(() => canListen(inspectPort), 5000, 'the inspector port to be free');
  }, 60_000);
});

function canListen(port: number): Promise<boolean> {
  return new Promise((resolveListen) => {
    const probe = createServer();
    probe.once('error', () => resolveListen(false));
    probe.listen(port, () => probe.close(() => resolveListen(true)));
  });
}
