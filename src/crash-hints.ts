// Crash hints: names the cause of a crash from the last lines of output (and how the root ended), with the lines.
// Pure: no I/O. The kernel's OOM message is read elsewhere (src/logs/kernel-oom.ts) and passed in.

/** A cause Warden recognises. */
export type CrashCause = 'cuda-oom' | 'port-in-use' | 'module-not-found' | 'torch-no-gpu' | 'oom-killed';

/** One recognised cause and the output lines that show it. */
export interface CrashHint {
  cause: CrashCause;
  /** What it means, in words a user can act on. */
  message: string;
  lines: string[];
}

/** How the tree ended, as far as the hints need it. */
export interface CrashExit {
  code: number | null;
  signal: string | null;
  /** True when the root is a shell wrapper: its code 137 (128 + 9) is a child killed by SIGKILL. */
  rootIsShell?: boolean;
  /** True when Warden itself sent SIGKILL (a stop, not a crash); then SIGKILL says nothing. */
  killedByWarden?: boolean;
  /** Kernel log lines naming one of the tree's pids as killed by the OOM killer, when the kernel log is readable. */
  kernelOom?: string[] | null;
}

interface Pattern {
  cause: Exclude<CrashCause, 'oom-killed'>;
  message: string;
  match: RegExp;
}

// The messages as PyTorch, Python, uvicorn/Gradio and A1111 print them.
const PATTERNS: readonly Pattern[] = [
  {
    cause: 'cuda-oom',
    message: 'CUDA out of memory: the GPU ran out of VRAM (try --medvram/--lowvram, a smaller batch or resolution)',
    match: /CUDA out of memory|OutOfMemoryError: CUDA|CUDA error: out of memory|HIP out of memory/,
  },
  {
    cause: 'port-in-use',
    message: 'the port is already in use by another process (stop it or pick another port)',
    match: /address already in use|\[Errno 98\]|\[WinError 10048\]|Cannot find empty port in range|only one usage of each socket address/i,
  },
  {
    cause: 'module-not-found',
    message: 'a Python module is missing (the venv is incomplete or the wrong Python runs)',
    match: /ModuleNotFoundError: No module named|ImportError: No module named/,
  },
  {
    cause: 'torch-no-gpu',
    message: 'PyTorch cannot use the GPU (driver, CUDA build of torch, or add --skip-torch-cuda-test)',
    match: /Torch is not able to use GPU|Torch not compiled with CUDA enabled|Found no NVIDIA driver|no CUDA GPUs are available|CUDA driver version is insufficient/,
  },
];

/** How many matching lines a hint quotes at most (a traceback may repeat a message many times). */
const MAX_HINT_LINES = 5;

// The causes recognised in `lines` (oldest first) and in the exit; empty when nothing is recognised.
export function crashHints(lines: readonly string[], exit?: CrashExit): CrashHint[] {
  const hints: CrashHint[] = [];
  for (const pattern of PATTERNS) {
    const matched = lines.filter((line) => pattern.match.test(line));
    if (matched.length > 0) hints.push({ cause: pattern.cause, message: pattern.message, lines: matched.slice(-MAX_HINT_LINES) });
  }
  const oom = oomKilled(exit);
  if (oom !== undefined) hints.push(oom);
  return hints;
}

// SIGKILL that Warden did not send: the OOM killer is the usual sender; the kernel log says so when readable.
function oomKilled(exit: CrashExit | undefined): CrashHint | undefined {
  if (exit === undefined || exit.killedByWarden === true) return undefined;
  const sigkill = exit.signal === 'SIGKILL' || (exit.rootIsShell === true && exit.code === 137);
  if (!sigkill) return undefined;
  const kernel = exit.kernelOom ?? null;
  if (kernel !== null && kernel.length > 0) {
    return { cause: 'oom-killed', message: 'killed by the kernel\'s OOM killer (the machine ran out of RAM)', lines: kernel.slice(-MAX_HINT_LINES) };
  }
  const how = exit.signal === 'SIGKILL' ? 'killed by SIGKILL' : 'a child was killed by SIGKILL (wrapper exit code 137)';
  const why = kernel === null ? 'the kernel log is not readable' : 'the kernel log names none of its pids';
  return { cause: 'oom-killed', message: `${how}, not by Warden (possibly the OOM killer; ${why})`, lines: [] };
}
