// The force-close guard, the Windows sentinel.
//
// A controller killed from Task Manager gets no chance to stop anything, and Node's kill-on-close job ends
// only its direct child (the root cmd.exe): python.exe and its workers live on with stale ppids. The guard
// is a second, detached node.exe (outside that job) that the controller feeds with its trees' records over
// a pipe. It keeps its own tracker per tree, re-reading the table itself, so it knows every pid ever seen in
// the tree when the controller goes. EOF on the pipe without a goodbye means the controller is gone: the
// guard stops every tracked tree with `terminateWindows` (immediate: nobody is left to wait for) and exits.
// Proven under Wine (test/windows); the same code is what runs on real Windows.
import { WardenError } from '../errors.js';
import { snapshot } from '../snapshot.js';
import { spawnTethered } from '../tethered.js';
import { WindowsTreeTracker, sequencedReader } from './tracker.js';
import type { WindowsTreeRecord } from './record.js';
import { terminateWindows } from './terminate.js';
import type { WindowsTerminateOptions } from './terminate.js';

/** One line of the controller → guard pipe (newline-delimited JSON). */
export type WindowsGuardMessage =
  | { type: 'track'; record: WindowsTreeRecord }
  | { type: 'untrack'; rootPid: number }
  | { type: 'goodbye' };

/** The flag that makes this module run as the guard process (`node guard.js --warden-windows-guard <log>`). */
export const WINDOWS_GUARD_FLAG = '--warden-windows-guard';
/** What the guard writes on its stdout once it reads its pipe. */
export const WINDOWS_GUARD_READY = 'ready';

/** How to start a guard. */
export interface WindowsGuardOptions {
  /** JSON-lines log of the guard (created if missing): its start, every tracked tree, every cleanup report. */
  logPath: string;
  /** The program that runs the guard. Default `process.execPath` (node.exe). */
  execPath?: string;
  /** How long to wait for the guard's ready line. Default 15000 (a cold node.exe start under Wine takes seconds). */
  readyTimeoutMs?: number;
  /** How long `goodbye()` waits for the guard to exit. Default 5000. */
  goodbyeTimeoutMs?: number;
}

/** A running guard, tied to this process by its stdin pipe. */
export interface WindowsGuard {
  readonly pid: number;
  readonly logPath: string;
  /** Resolves when the guard process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  /** Hands a tree to the guard; resolves true once the line is in the pipe, false if the guard is gone. */
  track(tracker: WindowsTreeTracker): Promise<boolean>;
  /** Stops guarding the tree with this root (it was stopped normally). */
  untrack(rootPid: number): Promise<boolean>;
  /** Lets the guard exit without killing anything, and waits for it. Idempotent. */
  goodbye(): Promise<void>;
}

// The command that runs this module as the guard: the built .js with plain node, or the .ts source through tsx.
async function guardArgs(logPath: string): Promise<string[]> {
  const { fileURLToPath, pathToFileURL } = await import('node:url');
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    const { createRequire } = await import('node:module');
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    return ['--import', tsx, here, WINDOWS_GUARD_FLAG, logPath];
  }
  return [here, WINDOWS_GUARD_FLAG, logPath];
}

// Starts the guard detached (outside this process's kill-on-close job) and resolves once it reads its pipe.
export async function startWindowsGuard(options: WindowsGuardOptions): Promise<WindowsGuard> {
  const { createInterface } = await import('node:readline');
  const logPath = options.logPath;
  // PROCESS LIFECYCLE: creates a subprocess (through spawnTethered)
  // Parent tracking: the guard's pid, and its stdin pipe (EOF = this controller is gone).
  // Cleanup handled by: goodbye() (the guard exits without killing); without a goodbye it stops the tracked
  //   trees and exits by itself (hard deadline in runWindowsGuard).
  // Known risks: a guard killed together with the controller (someone ends both) guards nothing; reap at the
  //   next start from the registry record covers it.
  let hasExited = false;
  const { child, stdin, stdout, exited } = spawnTethered(options.execPath ?? process.execPath, await guardArgs(logPath), {
    logPath,
    onExit: () => {
      hasExited = true;
    },
  });
  stdin.on('error', () => undefined);
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const ready = await new Promise<boolean>((resolveReady) => {
    const timer = setTimeout(() => resolveReady(false), readyTimeoutMs);
    const lines = createInterface({ input: stdout });
    lines.on('line', (line) => {
      if (line.trim() === WINDOWS_GUARD_READY) {
        clearTimeout(timer);
        lines.close();
        resolveReady(true);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      resolveReady(false);
    });
  });
  if (!ready) {
    if (!hasExited) child.kill();
    await exited;
    throw new WardenError('GUARD_NOT_READY', `The Windows force-close guard did not start within ${readyTimeoutMs} ms (see ${logPath})`);
  }
  const pid = child.pid as number;
  stdout.destroy();
  stdin.unref();
  child.unref();

  let released = false;
  const send = (message: WindowsGuardMessage): Promise<boolean> =>
    new Promise((resolveSend) => {
      if (released || hasExited || !stdin.writable) {
        resolveSend(false);
        return;
      }
      stdin.write(`${JSON.stringify(message)}\n`, (error) => resolveSend(error == null));
    });
  return {
    pid,
    logPath,
    exited,
    track: (tracker) => send({ type: 'track', record: tracker.toJSON() }),
    untrack: (rootPid) => send({ type: 'untrack', rootPid }),
    async goodbye() {
      if (released || hasExited) return;
      await send({ type: 'goodbye' });
      released = true;
      child.ref();
      const timer = new Promise<'timeout'>((resolveTimer) => setTimeout(resolveTimer, options.goodbyeTimeoutMs ?? 5000, 'timeout').unref());
      try {
        if ((await Promise.race([exited, timer])) === 'timeout') {
          // Still our child and not yet reaped: its pid cannot have been reused.
          child.kill();
          await exited;
        }
      } finally {
        child.unref();
      }
    },
  };
}

/** How the guard process behaves; the defaults are what `startWindowsGuard` runs. */
export interface WindowsGuardRunOptions {
  logPath: string;
  /** Lines from the controller. Default: this process's stdin. */
  input?: NodeJS.ReadableStream;
  /** Where the ready line goes. Default: this process's stdout. */
  output?: NodeJS.WritableStream;
  /** How often the guard re-reads the table to follow the trees. Default 250. */
  pollIntervalMs?: number;
  /** The guard never outlives a cleanup by more than this. Default 20000. */
  hardDeadlineMs?: number;
  /** Options passed to each stop (reader, killer...). Default: immediate, fastlist, per-pid taskkill. */
  terminate?: WindowsTerminateOptions;
}

// The guard's main loop: follows the tracked trees until a goodbye (exit 0) or EOF (stop them all, exit 0/1).
export async function runWindowsGuard(options: WindowsGuardRunOptions): Promise<number> {
  const { appendFileSync } = await import('node:fs');
  const { createInterface } = await import('node:readline');
  const log = (event: string, fields: Record<string, unknown> = {}): void => {
    try {
      appendFileSync(options.logPath, `${JSON.stringify({ time: new Date().toISOString(), pid: process.pid, event, ...fields })}\n`);
    } catch {
      // nowhere left to report it
    }
  };
  const readTable = options.terminate?.readTable ?? sequencedReader(() => snapshot({ backend: 'ps-list', cmdline: false }));
  const trackers = new Map<number, WindowsTreeTracker>();
  let stopping = false;
  let polling: Promise<void> = Promise.resolve();
  const poll = (): Promise<void> => {
    polling = polling.then(async () => {
      if (stopping || trackers.size === 0) return;
      try {
        const table = await readTable();
        for (const tracker of trackers.values()) tracker.observe(table);
      } catch (error) {
        log('read-failed', { error: String(error) });
      }
    });
    return polling;
  };
  const timer = setInterval(() => void poll(), options.pollIntervalMs ?? 250);
  log('start', { pollIntervalMs: options.pollIntervalMs ?? 250 });

  const outcome = await new Promise<'goodbye' | 'eof'>((resolveOutcome) => {
    const lines = createInterface({ input: options.input ?? process.stdin, crlfDelay: Infinity });
    let said: 'goodbye' | undefined;
    lines.on('line', (line) => {
      let message: WindowsGuardMessage;
      try {
        message = JSON.parse(line) as WindowsGuardMessage;
      } catch {
        log('bad-message', { line: line.slice(0, 200) });
        return;
      }
      if (message.type === 'goodbye') {
        said = 'goodbye';
        lines.close();
      } else if (message.type === 'untrack') {
        trackers.delete(message.rootPid);
        log('untrack', { rootPid: message.rootPid });
      } else if (message.type === 'track') {
        try {
          const rootPid = message.record.root.pid;
          // The guard's own tracker keeps following the tree; a later record of the same root adds nothing.
          if (!trackers.has(rootPid)) trackers.set(rootPid, WindowsTreeTracker.fromRecord(message.record));
          log('track', { rootPid, members: message.record.members.length });
          void poll();
        } catch (error) {
          log('bad-record', { error: String(error) });
        }
      }
    });
    lines.once('close', () => resolveOutcome(said ?? 'eof'));
    (options.output ?? process.stdout).write(`${WINDOWS_GUARD_READY}\n`);
  });
  clearInterval(timer);
  if (outcome === 'goodbye') {
    log('goodbye');
    return 0;
  }
  // The controller is gone without a goodbye: stop every tree, from the freshest listing on.
  await polling;
  stopping = true;
  log('controller-gone', { trees: [...trackers.keys()] });
  const deadline = setTimeout(() => {
    log('hard-deadline');
    process.exit(1);
  }, options.hardDeadlineMs ?? 20_000);
  let failed = false;
  for (const [rootPid, tracker] of trackers) {
    try {
      const report = await terminateWindows(tracker, { immediate: true, confirmTimeoutMs: 10_000, ...options.terminate, readTable });
      if (report.survivors.length > 0) failed = true;
      log('stopped', { rootPid, report });
    } catch (error) {
      failed = true;
      log('stop-failed', { rootPid, error: String(error) });
    }
  }
  clearTimeout(deadline);
  return failed ? 1 : 0;
}

// Run as the guard process only when started as `node <this file> --warden-windows-guard <log>`.
if (process.argv[2] === WINDOWS_GUARD_FLAG && typeof process.argv[3] === 'string' && process.argv[1] !== undefined) {
  const { fileURLToPath } = await import('node:url');
  const { resolve } = await import('node:path');
  if (resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    const code = await runWindowsGuard({ logPath: process.argv[3] });
    process.exit(code);
  }
}
