// The subreaper shim: the root of a launch under the `subreaper` backend. It marks itself a child subreaper
// (prctl PR_SET_CHILD_SUBREAPER), runs the command, and stays alive while any descendant lives, so every orphan
// and every setsid escapee (environment cleared or not) is reparented to it and the tree walk from the root
// still finds it. It reaps those orphans' zombies (libuv reaps only the children it spawned).
//
//   node subreaper-main.js <application> [args…]
//
// fd 3 (a pipe the launcher reads; not inherited by the command): `ready {"pid"}` once the command runs,
// `exit {"code","signal"}` when the command itself exits (the supervisor's crash detection), `error {"message"}`.
// stdout/stderr are the command's (inherited). Exit code: the command's (128+N for signal N); 125 when the
// subreaper flag cannot be set, 127 when the command cannot start.
import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';

const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;
/** Safety net for a SIGCHLD coalesced while a scan ran: look again this often. */
const RESCAN_MS = 250;

const control = createWriteStream('', { fd: 3 });
// Run by hand without fd 3: the reports go nowhere, the shim still works.
control.on('error', () => undefined);
let leaving = false;
const report = (kind: 'ready' | 'exit' | 'error', fields: Record<string, unknown>): void => {
  control.write(`${kind} ${JSON.stringify(fields)}\n`);
};

interface Libc {
  prctl: (option: number, arg2: number, arg3: number, arg4: number, arg5: number) => number;
  waitpid: (pid: number, status: number[], options: number) => number;
}

function loadLibc(): Libc {
  const koffi = createRequire(import.meta.url)('koffi') as { load(path: string): { func(signature: string): unknown } };
  const libc = koffi.load('libc.so.6');
  return {
    prctl: libc.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)') as Libc['prctl'],
    waitpid: libc.func('int waitpid(int pid, _Out_ int *status, int options)') as Libc['waitpid'],
  };
}

const [application, ...args] = process.argv.slice(2);
if (application === undefined) {
  process.stderr.write('subreaper: usage: subreaper-main <application> [args…]\n');
  process.exit(2);
}

let libc: Libc;
try {
  libc = loadLibc();
  if (libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0) throw new Error('prctl(PR_SET_CHILD_SUBREAPER, 1) returned an error');
} catch (error) {
  report('error', { message: `cannot become a child subreaper: ${(error as Error).message}` });
  control.end(() => process.exit(125));
  throw error;
}

// The shim outlives signals meant for the tree: it leaves when the last descendant has gone (or by SIGKILL).
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => undefined);

// PROCESS LIFECYCLE: creates a subprocess
// Parent tracking: this shim is its parent and the subreaper of everything below it; the launcher's marker is in
//   the inherited environment; same process group as the shim (the launch's group).
// Cleanup handled by: the supervisor's stop protocol (terminate: the whole tree under this shim, found by the
//   ppid walk even after setsid/env -i), the sentinel and reap-at-next-start; this shim reaps orphan zombies.
// Known risks: a descendant that double-forks while the shim itself is SIGKILLed goes to init (marker only).
const child = spawn(application, args, { stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
let commandExit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
child.once('spawn', () => report('ready', { pid: child.pid }));
child.once('error', (error) => {
  report('error', { message: `cannot start ${application}: ${error.message}` });
  control.end(() => process.exit(127));
});
child.once('exit', (code, signal) => {
  commandExit = { code, signal };
  report('exit', { code, signal });
  scan();
});

// This process's children now (every thread's list: a reparented orphan may land on any of them).
function children(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync('/proc/self/task')) {
    try {
      for (const pid of readFileSync(`/proc/self/task/${task}/children`, 'utf8').split(' ')) if (pid.trim() !== '') pids.push(Number(pid));
    } catch {
      // a thread that ended mid-read
    }
  }
  return pids;
}

const isZombie = (pid: number): boolean => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
};

// Reaps orphan zombies (never the command: libuv owns that one) and leaves once nothing is left under us.
function scan(): void {
  const status = [0];
  let live = 0;
  for (const pid of children()) {
    if (pid !== child.pid && isZombie(pid)) libc.waitpid(pid, status, WNOHANG);
    else live += 1;
  }
  if (commandExit !== undefined && live === 0 && !leaving) {
    leaving = true;
    const { code, signal } = commandExit;
    const exitCode = code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
    control.end(() => process.exit(exitCode));
  }
}

process.on('SIGCHLD', scan);
setInterval(scan, RESCAN_MS);
