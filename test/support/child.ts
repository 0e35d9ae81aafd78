// A child process with piped output, collected as it comes: the shape every end-to-end test drives.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

/** How a piped child ended, with everything it printed. */
export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running piped child: its handle, its output so far, and its end. */
export interface PipedChild {
  child: ChildProcess;
  output: { stdout: string; stderr: string };
  done: Promise<ChildResult>;
}

export interface PipedOptions {
  cwd?: string;
  /** The whole environment (default: this process's, with NO_COLOR=1). */
  env?: NodeJS.ProcessEnv;
  /** Sees the stdout so far each time more arrives. */
  onStdout?: (stdout: string, child: ChildProcess) => void;
  /** Run as this user and group (root only): for tests of what another user may do. */
  uid?: number;
  gid?: number;
}

// Spawns `command args` with stdin ignored and stdout/stderr collected. The caller registers it for cleanup.
export function startPiped(command: string, args: string[], options: PipedOptions = {}): PipedChild {
  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: the returned ChildProcess handle.   Cleanup handled by: the calling test file's afterEach,
  //   by that handle, then a sweep of its unique instance ids' markers.   Known risks: none past the test.
  const child = spawn(command, args, {
    ...(options.cwd !== undefined && { cwd: options.cwd }),
    env: options.env ?? { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid !== undefined && { uid: options.uid }),
    ...(options.gid !== undefined && { gid: options.gid }),
  });
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output.stdout += chunk;
    options.onStdout?.(output.stdout, child);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output.stderr += chunk;
  });
  const done = new Promise<ChildResult>((resolveDone) => {
    child.once('close', (code, signal) => resolveDone({ code, signal, ...output }));
  });
  return { child, output, done };
}
