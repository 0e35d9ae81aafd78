// How Windows processes are ended: per-pid taskkill (the default) or TerminateProcess through process.kill.
import { execa } from 'execa';

/** What one kill attempt did. `gone`: nothing to kill; `denied`: refused (another user's or elevated process). */
export interface WindowsKillResult {
  outcome: 'killed' | 'gone' | 'denied' | 'failed';
  /** The tool's message, for the report. */
  detail?: string;
}

/** How processes are forcibly ended; injected so tests and Wine can replace it. */
export interface WindowsKillExecutor {
  /** Ends exactly one pid (`taskkill /pid N /F`). */
  kill(pid: number): Promise<WindowsKillResult>;
  /** Ends a pid and its live descendants (`taskkill /pid N /T /F`); absent where the tool cannot. */
  killTree?: (pid: number) => Promise<WindowsKillResult>;
}

/** Options of the taskkill executor. */
export interface TaskkillOptions {
  /** The taskkill binary. Default `taskkill`. */
  command?: string;
  /** Offer `/T` tree kills. Default true; false for Wine, whose taskkill accepts `/T` but ignores it. */
  tree?: boolean;
  /** Per-call limit before the taskkill process itself is killed. Default 10000. */
  timeoutMs?: number;
}

// Ends pids with `taskkill /pid N /F` (and `/T` for tree passes); never throws, reports the outcome.
export function taskkillExecutor(options: TaskkillOptions = {}): WindowsKillExecutor {
  const command = options.command ?? 'taskkill';
  const timeout = options.timeoutMs ?? 10_000;
  const run = async (pid: number, tree: boolean): Promise<WindowsKillResult> => {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: taskkill.exe is a short-lived direct child, awaited right here; it is never one of
    //   the instance's processes (its ppid is this process, which the tracker never adopts).
    // Cleanup handled by: this await (reject: false), execa's `timeout` + `forceKillAfterDelay`, and
    //   execa's exit cleanup if this process ends first.
    // Known risks: taskkill has no creation-time check, so a pid that dies and is reused between the
    //   listing and this call would be hit; the caller kills right after a fresh listing to keep that
    //   window to one listing interval. Exit code 128 also covers "access denied" on some builds (Wine):
    //   the confirming re-read still reports such a process as a survivor.
    const result = await execa(command, ['/pid', String(pid), ...(tree ? ['/T'] : []), '/F'], {
      reject: false,
      windowsHide: true,
      stdin: 'ignore',
      timeout,
      forceKillAfterDelay: 1000,
      encoding: 'utf8',
    });
    const detail = `${result.stdout}\n${result.stderr}`.trim();
    if (result.exitCode === 0) return { outcome: 'killed', detail };
    if (result.exitCode === 128) return { outcome: 'gone', detail };
    if (/denied/i.test(detail)) return { outcome: 'denied', detail };
    return { outcome: 'failed', detail: detail !== '' ? detail : result.shortMessage ?? `${command} exited with ${String(result.exitCode)}` };
  };
  const executor: WindowsKillExecutor = { kill: (pid) => run(pid, false) };
  if (options.tree !== false) executor.killTree = (pid) => run(pid, true);
  return executor;
}

// Ends pids with `process.kill` (TerminateProcess on Windows): no subprocess per kill, no tree kills.
export function processKillExecutor(): WindowsKillExecutor {
  return {
    kill: async (pid) => {
      try {
        process.kill(pid, 'SIGKILL');
        return { outcome: 'killed' };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ESRCH') return { outcome: 'gone' };
        if (code === 'EPERM') return { outcome: 'denied', detail: (error as Error).message };
        return { outcome: 'failed', detail: (error as Error).message };
      }
    },
  };
}
