// A detached helper process tied to this one by its stdin pipe: the shape of the sentinel and the Windows guard.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdirSync } from 'node:fs';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { openNoFollowSync } from './state/statedir.js';

/** How a tethered helper ended. */
export interface TetheredExit {
  code: number | null;
  signal: string | null;
}

/** A started helper: its pipes and its end. EOF on its stdin tells it this process is gone. */
export interface Tethered {
  child: ChildProcess;
  stdin: Socket;
  stdout: Socket;
  /** Resolves once the helper has exited, or failed to spawn (never rejects). */
  exited: Promise<TetheredExit>;
}

export interface TetheredOptions {
  /** Appended to by the helper's stderr (created with its folder if missing). */
  logPath: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called once when it exits (or fails to spawn), before `exited` resolves. */
  onExit?: (exit: TetheredExit) => void;
  /** Called with a spawn or process error. */
  onError?: (error: Error) => void;
}

// Starts `execPath args` detached (own session on POSIX; outside Node's kill-on-close job on Windows), stdin and
// stdout piped, stderr appended to the log. The caller waits for its ready line, then unrefs it.
export function spawnTethered(execPath: string, args: string[], options: TetheredOptions): Tethered {
  mkdirSync(dirname(options.logPath), { recursive: true });
  // Never through a symlink: the log lives in the state directory, and a planted link would aim our writes elsewhere.
  const logFd = openNoFollowSync(options.logPath, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  let child: ChildProcess;
  try {
    // PROCESS LIFECYCLE: creates a subprocess
    // Parent tracking: the returned handle (pid), and the stdin pipe: EOF there is how the helper learns this
    //   process is gone.   Cleanup handled by: the caller (goodbye → the helper exits by itself; SIGKILL by
    //   handle or identity if it does not).   Known risks: a helper killed together with this process guards
    //   nothing; reap at the next start covers that.
    child = spawn(execPath, args, {
      ...(options.cwd !== undefined && { cwd: options.cwd }),
      ...(options.env !== undefined && { env: options.env }),
      // POSIX: a new session. Windows: its own (hidden) console, outside this process's job.
      detached: true,
      stdio: ['pipe', 'pipe', logFd],
      windowsHide: true,
    });
  } finally {
    closeSync(logFd);
  }
  const started = child;
  const exited = new Promise<TetheredExit>((resolveExit) => {
    let done = false;
    const onExit = (code: number | null, signal: string | null): void => {
      if (done) return;
      done = true;
      options.onExit?.({ code, signal });
      resolveExit({ code, signal });
    };
    started.once('exit', onExit);
    // A spawn that failed (no pid) emits only 'error'.
    started.once('error', (error) => {
      options.onError?.(error);
      if (started.pid === undefined) onExit(null, null);
    });
  });
  return { child: started, stdin: started.stdin as Socket, stdout: started.stdout as Socket, exited };
}
