// The Windows Job Object launcher's logic, behind the same JobApi interface the real koffi binding implements
// (the real binding runs under Wine in `npm run test:windows`: test/windows/scenarios.wine.ts). Here: the
// order of the Win32 calls (suspended → assigned → ready line → resumed), refusal without ever running the
// command, the tether (EOF ends the launcher, hence the job), exit-code pass-through, Node-compatible
// command-line quoting, and the stop protocol ending the launcher first.
import { PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { JobObjectError, quoteWindowsArgument, windowsCommandLine } from '../../src/process/windows/job-object.js';
import type { JobApi, SuspendedProcess } from '../../src/process/windows/job-object.js';
import { JOB_FAILED_EXIT, JOB_READY_PREFIX, runJobLauncher } from '../../src/process/windows/job-launcher.js';
import { WindowsTreeTracker, terminateWindows } from '../../src/process/windows/index.js';
import type { WindowsKillExecutor } from '../../src/process/windows/index.js';
import type { ProcessInfo, ProcessTable } from '../../src/process/types.js';

// ---------------------------------------------------------------------------------------------------------
// Command lines: what CommandLineToArgvW / the MSVC runtime make of them

// The MSVC runtime's argument parser (argv[1..]; argv[0] follows other rules and is not quoted-escaped here).
function parseWindowsArguments(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i += 1;
    if (i >= line.length) break;
    let arg = '';
    let quoted = false;
    for (; i < line.length; i += 1) {
      const char = line[i] as string;
      if (char === '\\') {
        let run = 0;
        while (line[i] === '\\') {
          run += 1;
          i += 1;
        }
        if (line[i] === '"') {
          arg += '\\'.repeat(Math.floor(run / 2));
          if (run % 2 === 1) arg += '"';
          else quoted = !quoted;
        } else {
          arg += '\\'.repeat(run);
          i -= 1;
        }
      } else if (char === '"') {
        quoted = !quoted;
      } else if ((char === ' ' || char === '\t') && !quoted) {
        break;
      } else {
        arg += char;
      }
    }
    args.push(arg);
  }
  return args;
}

describe('Windows command lines (the quoting Node/libuv use for CreateProcessW)', () => {
  test('known cases', () => {
    expect(quoteWindowsArgument('')).toBe('""');
    expect(quoteWindowsArgument('/d')).toBe('/d');
    expect(quoteWindowsArgument('C:\\stable diffusion\\webui-user.bat')).toBe('"C:\\stable diffusion\\webui-user.bat"');
    expect(quoteWindowsArgument('say "hi"')).toBe('"say \\"hi\\""');
    expect(quoteWindowsArgument('C:\\dir with space\\')).toBe('"C:\\dir with space\\\\"');
    expect(quoteWindowsArgument('a\\\\"b c')).toBe('"a\\\\\\\\\\"b c"');
    expect(windowsCommandLine('cmd.exe', ['/d', '/s', '/c', 'C:\\sd webui\\webui-user.bat'])).toBe('cmd.exe /d /s /c "C:\\sd webui\\webui-user.bat"');
  });

  test('every argument survives the round trip through the MSVC runtime parser (2000 random arguments)', () => {
    const alphabet = ['a', 'Z', '1', ' ', '\t', '"', '\\', '\\\\', '/', ':', 'é', '%', '^', '&'];
    // mulberry32: a seeded generator whose low bits are not periodic (a plain LCG never produced `\"`).
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const args: string[] = [];
    for (let i = 0; i < 2000; i += 1) {
      let arg = '';
      for (let length = random(12); length > 0; length -= 1) arg += alphabet[random(alphabet.length)];
      args.push(arg);
    }
    expect(args.filter((arg) => arg.includes('\\"') && arg.includes(' ')).length).toBeGreaterThan(20);
    for (let i = 0; i < args.length; i += 50) {
      const chunk = args.slice(i, i + 50);
      const line = windowsCommandLine('node.exe', chunk);
      expect(parseWindowsArguments(line).slice(1)).toEqual(chunk);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// The launcher, over a fake Win32

interface FakeOptions {
  failCreate?: boolean;
  failSpawn?: boolean;
  failAssign?: boolean;
}

class FakeWin32 implements JobApi {
  readonly calls: string[] = [];
  exit: number | undefined;
  constructor(private readonly options: FakeOptions = {}) {}
  createKillOnCloseJob(): unknown {
    this.calls.push('createJob');
    if (this.options.failCreate === true) throw new JobObjectError('JOB_OBJECT_CALL_FAILED', 'CreateJobObjectW failed with Win32 error 5');
    return 'job';
  }
  spawnSuspended(application: string, commandLine: string): SuspendedProcess {
    this.calls.push(`spawnSuspended ${application} | ${commandLine}`);
    if (this.options.failSpawn === true) throw new JobObjectError('JOB_OBJECT_CALL_FAILED', `CreateProcessW(${application}) failed with Win32 error 2`);
    return { pid: 4242, process: 'process', thread: 'thread' };
  }
  assign(job: unknown, process: unknown): void {
    this.calls.push(`assign ${String(job)} ${String(process)}`);
    if (this.options.failAssign === true) throw new JobObjectError('JOB_OBJECT_CALL_FAILED', 'AssignProcessToJobObject failed with Win32 error 5');
  }
  resume(thread: unknown): void {
    this.calls.push(`resume ${String(thread)}`);
  }
  exitCode(): number | undefined {
    return this.exit;
  }
  processIds(): number[] {
    return [4242];
  }
  terminateJob(job: unknown, exitCode: number): void {
    this.calls.push(`terminateJob ${String(job)} ${exitCode}`);
    this.exit = exitCode;
  }
  terminateProcess(process: unknown, exitCode: number): void {
    this.calls.push(`terminateProcess ${String(process)} ${exitCode}`);
  }
  closeHandle(handle: unknown): void {
    this.calls.push(`close ${String(handle)}`);
  }
}

function launcherWith(api: FakeWin32, control = new PassThrough()) {
  const out: string[] = [];
  const err: string[] = [];
  const running = runJobLauncher({
    application: 'C:\\Windows\\System32\\cmd.exe',
    argv: ['cmd.exe', '/d', '/s', '/c', 'C:\\sd webui\\webui-user.bat'],
    api,
    control,
    writeOut: (text) => {
      out.push(text);
      api.calls.push('ready line');
    },
    writeErr: (text) => err.push(text),
    pollIntervalMs: 5,
  });
  return { running, out, err, control };
}

describe('the job launcher', () => {
  test('creates the job, starts the command suspended, assigns it, says so, and only then resumes it', async () => {
    const api = new FakeWin32();
    const { running, out } = launcherWith(api);
    await new Promise((done) => setTimeout(done, 20));
    api.exit = 3;
    expect(await running).toBe(3);
    expect(api.calls).toEqual([
      'createJob',
      'spawnSuspended C:\\Windows\\System32\\cmd.exe | cmd.exe /d /s /c "C:\\sd webui\\webui-user.bat"',
      'assign job process',
      'ready line',
      'resume thread',
      'close thread',
    ]);
    expect(out).toEqual([`${JOB_READY_PREFIX}{"pid":4242,"jobPids":[4242]}\n`]);
  });

  test('a command that cannot be assigned to the job is ended while still suspended: it never runs', async () => {
    const api = new FakeWin32({ failAssign: true });
    const { running, out, err } = launcherWith(api);
    expect(await running).toBe(JOB_FAILED_EXIT);
    expect(api.calls).toContain(`terminateProcess process ${JOB_FAILED_EXIT}`);
    expect(api.calls.some((call) => call.startsWith('resume'))).toBe(false);
    expect(out).toEqual([]);
    expect(err.join('')).toMatch(/cannot assign C:\\Windows\\System32\\cmd\.exe \(pid 4242\) to the Job Object: AssignProcessToJobObject failed with Win32 error 5/);
  });

  test('no job, no command: a failed CreateJobObject refuses before anything is started', async () => {
    const api = new FakeWin32({ failCreate: true });
    const { running, err } = launcherWith(api);
    expect(await running).toBe(JOB_FAILED_EXIT);
    expect(api.calls).toEqual(['createJob']);
    expect(err.join('')).toContain('cannot create a Job Object: CreateJobObjectW failed with Win32 error 5');
  });

  test('a command that cannot be started is reported with the Win32 error', async () => {
    const api = new FakeWin32({ failSpawn: true });
    const { running, err } = launcherWith(api);
    expect(await running).toBe(JOB_FAILED_EXIT);
    expect(err.join('')).toContain('CreateProcessW(C:\\Windows\\System32\\cmd.exe) failed with Win32 error 2');
  });

  test('EOF on the tether (the controller is gone) ends the launcher while the command still runs', async () => {
    const api = new FakeWin32();
    const { running, control } = launcherWith(api);
    await new Promise((done) => setTimeout(done, 20));
    control.end();
    expect(await running).toBe(1);
    // Exiting is the whole mechanism: the job handle closes and the kernel ends the members.
    expect(api.exit).toBeUndefined();
  });

  test('"terminate" on the tether ends the whole job, then the launcher', async () => {
    const api = new FakeWin32();
    const { running, control } = launcherWith(api);
    await new Promise((done) => setTimeout(done, 20));
    control.write('terminate\n');
    expect(await running).toBe(1);
    expect(api.calls).toContain('terminateJob job 1');
  });
});

// ---------------------------------------------------------------------------------------------------------
// The stop protocol with a job launcher as the root

const row = (pid: number, ppid: number, name: string): ProcessInfo => ({
  pid, ppid, name, pgid: undefined, sid: undefined, uid: undefined, startTime: undefined, state: undefined, cmdline: undefined,
});
const table = (rows: ProcessInfo[], sequence: number): ProcessTable => ({ backend: 'ps-list', takenAt: sequence, sequence, processes: new Map(rows.map((r) => [r.pid, r])) });

describe('Windows stop with a Job Object', () => {
  const WARDEN = 100;
  const tree = [row(200, WARDEN, 'node.exe'), row(210, 200, 'cmd.exe'), row(220, 210, 'python.exe'), row(230, 220, 'python.exe')];
  const decoys = [row(300, 1, 'cmd.exe'), row(310, 300, 'python.exe')];

  test('the launcher comes first in the owned set (before cmd.exe), and the record says the tree had a job', () => {
    const tracker = new WindowsTreeTracker({ root: { pid: 200, startTime: undefined }, job: true, protectedPids: [0, 4, WARDEN] });
    const owned = tracker.owned(table([...tree, ...decoys], 1));
    expect(owned.map((entry) => entry.info.pid)).toEqual([200, 210, 220, 230]);
    const record = JSON.parse(JSON.stringify(tracker)) as unknown;
    expect(record).toMatchObject({ job: true });
    expect(WindowsTreeTracker.fromRecord(record).job).toBe(true);
    expect(() => WindowsTreeTracker.fromRecord({ ...(record as object), job: 'yes' })).toThrow('Windows tree record: "job" is invalid, received "yes"');
    const plain = new WindowsTreeTracker({ root: { pid: 210, startTime: undefined }, protectedPids: [0, 4, WARDEN] });
    expect(JSON.parse(JSON.stringify(plain))).not.toHaveProperty('job');
  });

  test('ending the launcher ends the job: one kill, the rest confirmed gone from the next listing, decoys untouched', async () => {
    const tracker = new WindowsTreeTracker({ root: { pid: 200, startTime: undefined }, job: true, protectedPids: [0, 4, WARDEN] });
    tracker.observe(table([...tree, ...decoys], 1));
    let jobClosed = false;
    let sequence = 1;
    const killed: number[] = [];
    const killer: WindowsKillExecutor = {
      kill: async (pid) => {
        killed.push(pid);
        if (pid === 200) jobClosed = true;
        return { outcome: 'killed' };
      },
    };
    const report = await terminateWindows(tracker, {
      immediate: true,
      killer,
      readTable: async () => table(jobClosed ? decoys : [...tree, ...decoys], (sequence += 1)),
      sleep: async () => undefined,
    });
    expect(killed).toEqual([200]);
    expect(report.survivors).toEqual([]);
    expect(report.killed).toEqual([
      { pid: 200, name: 'node.exe', role: 'other', signal: 'SIGKILL' },
      { pid: 210, name: 'cmd.exe', role: 'shell', signal: 'none' },
      { pid: 220, name: 'python.exe', role: 'python', signal: 'none' },
      { pid: 230, name: 'python.exe', role: 'python', signal: 'none' },
    ]);
  });

  test('if the job did not end a member, the per-pid sweep still does', async () => {
    const tracker = new WindowsTreeTracker({ root: { pid: 200, startTime: undefined }, job: true, protectedPids: [0, 4, WARDEN] });
    tracker.observe(table([...tree, ...decoys], 1));
    const alive = new Set([200, 210, 220, 230]);
    let sequence = 1;
    const killed: number[] = [];
    const report = await terminateWindows(tracker, {
      immediate: true,
      killer: {
        kill: async (pid) => {
          killed.push(pid);
          alive.delete(pid);
          return { outcome: 'killed' };
        },
      },
      readTable: async () => table([...tree.filter((r) => alive.has(r.pid)), ...decoys], (sequence += 1)),
      sleep: async () => undefined,
    });
    expect(killed).toEqual([200, 210, 220, 230]);
    expect(report.survivors).toEqual([]);
  });
});

describe('read order (every snapshot() table carries the order its read began)', () => {
  test('a table read before the launch baseline is never observed: it would make the new root look dead', () => {
    const baseline = table([row(300, 1, 'cmd.exe')], 5);
    const tracker = new WindowsTreeTracker({ root: { pid: 200, startTime: undefined }, baseline, protectedPids: [0, 4] });
    const withRoot = table([row(200, 100, 'node.exe'), row(210, 200, 'cmd.exe'), row(300, 1, 'cmd.exe')], 7);
    // Read before the spawn (sequence 4), delivered late by a slow reader: skipped.
    expect(tracker.observe(table([row(300, 1, 'cmd.exe')], 4))).toEqual([]);
    expect(tracker.listings).toBe(1);
    expect(tracker.owned(withRoot).map((entry) => entry.info.pid)).toEqual([210, 200]);
    // And after a newer table, an older one is skipped too.
    expect(tracker.observe(table([row(300, 1, 'cmd.exe')], 6))).toEqual([]);
    expect(tracker.owned(withRoot).map((entry) => entry.info.pid)).toEqual([210, 200]);
  });

  test('a table whose read began after the baseline but before the spawn (readsFrom) is never observed either', () => {
    const baseline = table([row(300, 1, 'cmd.exe')], 5);
    const tracker = new WindowsTreeTracker({ root: { pid: 200, startTime: undefined }, baseline, readsFrom: 8, protectedPids: [0, 4] });
    expect(tracker.observe(table([row(300, 1, 'cmd.exe')], 7))).toEqual([]);
    expect(tracker.owned(table([row(200, 100, 'node.exe'), row(300, 1, 'cmd.exe')], 8)).map((entry) => entry.info.pid)).toEqual([200]);
  });

  test('snapshot() numbers its tables in the order the reads began', async () => {
    const { snapshot } = await import('../../src/process/snapshot.js');
    const first = snapshot({ cmdline: false });
    const second = snapshot({ cmdline: false });
    const [a, b] = await Promise.all([first, second]);
    expect(a.sequence).toBeTypeOf('number');
    expect(b.sequence).toBe((a.sequence as number) + 1);
  });
});

describe('ps-list reads (the Windows process table)', () => {
  test('a failed start of the lister is retried; three failures in a row are reported, naming the cause', async () => {
    const { readPsList, PS_LIST_RETRY_DELAYS_MS } = await import('../../src/process/snapshot.js');
    let calls = 0;
    const flaky = async () => {
      calls += 1;
      if (calls < 3) throw Object.assign(new Error('spawn UNKNOWN'), { code: 'UNKNOWN' });
      return [{ pid: 1, ppid: 0, name: 'init' }];
    };
    expect(await readPsList(flaky)).toEqual([{ pid: 1, ppid: 0, name: 'init' }]);
    expect(calls).toBe(3);
    calls = -10;
    await expect(readPsList(flaky)).rejects.toThrow(`Cannot list processes through ps-list after ${PS_LIST_RETRY_DELAYS_MS.length + 1} attempts: spawn UNKNOWN`);
  });
});
