// Unit tests (no Wine) for what the Wine suite found: fastlist rows without a name, and the force-close guard's
// loop (track, follow the tree itself, stop it on EOF; kill nothing after a goodbye). Runs in `npm test`.
import { PassThrough } from 'node:stream';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { WindowsTreeTracker, runWindowsGuard } from '../../src/process/windows/index.js';
import type { WindowsKillExecutor } from '../../src/process/windows/index.js';
import type { ProcessInfo, ProcessTable } from '../../src/process/types.js';

const row = (pid: number, ppid: number, name: string | undefined): ProcessInfo => ({
  pid, ppid, name: name as string, pgid: undefined, sid: undefined, startTime: undefined, state: undefined, cmdline: undefined, uid: undefined,
});
const table = (rows: ProcessInfo[]): ProcessTable => ({ backend: 'ps-list', takenAt: Date.now(), processes: new Map(rows.map((r) => [r.pid, r])) });

// A tiny fake OS: the world's rows minus what was killed.
function fakeOs(initial: ProcessInfo[]) {
  let world = [...initial];
  const killed: number[] = [];
  const readTable = async (): Promise<ProcessTable> => table(world);
  const killer: WindowsKillExecutor = {
    kill: async (pid) => {
      if (!world.some((r) => r.pid === pid)) return { outcome: 'gone' };
      world = world.filter((r) => r.pid !== pid);
      killed.push(pid);
      return { outcome: 'killed' };
    },
  };
  return { readTable, killer, killed, set: (rows: ProcessInfo[]) => (world = [...rows]) };
}

let dir: string | undefined;
afterEach(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('fastlist rows without a name (measured under Wine: name is undefined, not "")', () => {
  test('the tracker adopts them, takes the name later, and reports them owned', () => {
    const tracker = new WindowsTreeTracker({ root: { pid: 100, startTime: undefined } });
    tracker.observe(table([row(100, 8, 'cmd.exe'), row(104, 100, undefined)]));
    const owned = tracker.owned(table([row(100, 8, 'cmd.exe'), row(104, 100, undefined), row(108, 104, undefined)]));
    expect(owned.map((o) => o.info.pid)).toEqual([100, 104, 108]);
    expect(owned.every((o) => typeof o.info.name === 'string')).toBe(true);
    const later = tracker.owned(table([row(100, 8, 'cmd.exe'), row(104, 100, 'python.exe'), row(108, 104, 'python.exe')]));
    expect(later.map((o) => `${o.info.pid} ${o.info.name} ${o.role}`)).toEqual(['100 cmd.exe shell', '104 python.exe python', '108 python.exe python']);
  });
});

describe('runWindowsGuard', () => {
  const tree = [row(8, 0, 'node.exe'), row(100, 8, 'cmd.exe'), row(104, 100, 'python.exe'), row(108, 104, 'python.exe'), row(200, 1, 'python.exe')];

  test('EOF without a goodbye: stops the tracked tree, including children born after the record, never a stranger', async () => {
    dir = mkdtempSync(join(tmpdir(), 'guard-'));
    const os = fakeOs(tree);
    const tracker = new WindowsTreeTracker({ root: { pid: 100, startTime: undefined } });
    tracker.observe(await os.readTable());
    const input = new PassThrough();
    const output = new PassThrough();
    const done = runWindowsGuard({ logPath: join(dir, 'guard.log'), input, output, pollIntervalMs: 5, terminate: { readTable: os.readTable, killer: os.killer, pollIntervalMs: 1, sleep: async () => undefined } });
    input.write(`${JSON.stringify({ type: 'track', record: tracker.toJSON() })}\n`);
    await new Promise((r) => setTimeout(r, 30));
    // The controller dies: Node's job ends cmd.exe; python.exe has started another worker meanwhile.
    os.set([row(8, 0, 'node.exe'), row(104, 100, 'python.exe'), row(108, 104, 'python.exe'), row(112, 104, 'python.exe'), row(200, 1, 'python.exe')]);
    await new Promise((r) => setTimeout(r, 30));
    input.end();
    expect(await done).toBe(0);
    expect(os.killed.sort()).toEqual([104, 108, 112]);
    const events = readFileSync(join(dir, 'guard.log'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event);
    expect(events).toEqual(['start', 'track', 'controller-gone', 'stopped']);
  });

  test('goodbye: exits without killing anything', async () => {
    dir = mkdtempSync(join(tmpdir(), 'guard-'));
    const os = fakeOs(tree);
    const tracker = new WindowsTreeTracker({ root: { pid: 100, startTime: undefined } });
    tracker.observe(await os.readTable());
    const input = new PassThrough();
    const done = runWindowsGuard({ logPath: join(dir, 'guard.log'), input, output: new PassThrough(), pollIntervalMs: 5, terminate: { readTable: os.readTable, killer: os.killer } });
    input.write(`${JSON.stringify({ type: 'track', record: tracker.toJSON() })}\n`);
    input.write(`${JSON.stringify({ type: 'goodbye' })}\n`);
    expect(await done).toBe(0);
    expect(os.killed).toEqual([]);
  });
});
