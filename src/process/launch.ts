// The one spawn point: starts an instance's command with our marker in a new process group, and tracks its tree.
import { randomBytes } from 'node:crypto';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import type { Logger } from 'pino';
import { rootLogger } from '../logging.js';
import { LaunchError } from './errors.js';
import { currentIdentity, identityHolds } from './identity.js';
import { JOB_READY_PREFIX, jobLauncherArgs } from './windows/job-launcher.js';
import { chooseContainment } from './containment.js';
import type { ContainmentChoice } from './containment.js';
import { startContained } from './posix/contained-launch.js';
import type { ContainedStart } from './posix/contained-launch.js';
import { collectOwned } from './ownership.js';
import type { CollectOptions, OwnedProcess, OwnerRecord } from './ownership.js';
import { nextReadSequence, snapshot } from './snapshot.js';
import { WindowsTreeTracker } from './windows/index.js';
import { MARKER_VARIABLE } from './types.js';
import type { ProcessIdentity, ProcessTable } from './types.js';

/** What to start. `command` is run directly (no shell interpolation); a relative path resolves against `cwd`. */
export interface LaunchSpec {
  instanceId: string;
  command: string;
  args?: readonly string[];
  cwd?: string;
  /** Added to the inherited environment. */
  env?: Readonly<Record<string, string>>;
  /**
   * The marker value to hand down, `<instanceId>:<token>`; generated when absent. A caller that must know the
   * marker before the first process exists (so a sampler never mistakes the new tree for a stale one) passes it.
   */
  marker?: string;
  /** Receives the tree's output lines; defaults to a child of the root logger. */
  logger?: Logger;
  /** How often to look for the shell parent and Python while they are still unknown. Default 100 ms; 0 disables. */
  discoverIntervalMs?: number;
  /** Receives every output line too (the runtime's per-start log files and tail), after the logger. */
  onOutput?: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Told whenever the shell parent or the Python process is identified (or replaced by a relaunch). */
  onRolesChanged?: (roles: { shell?: ProcessIdentity; python?: ProcessIdentity }) => void;
  /**
   * Windows: start the command inside a kill-on-close Job Object, through Warden's job launcher (default true).
   * The launch is refused, with nothing left running, when the job cannot be made; false runs without one.
   */
  windowsJob?: boolean;
  /** Windows: how long the job launcher may take to report the command contained. Default 30000 (node.exe cold start). */
  jobReadyTimeoutMs?: number;
  /**
   * POSIX: how the kernel holds the tree (containment.ts). Default `chooseContainment('auto')`: a cgroup v2 where
   * one is writable, else a child subreaper shim, else the marker alone. Pass a choice made once at start.
   */
  containment?: ContainmentChoice;
}

/** The Job Object around a Windows tree: the launcher holding it is the root (`root.pid`); `pid` is the command itself. */
export interface WindowsJobInfo {
  pid: number;
  /** The job's members when the command was assigned (before it ran: the command alone). */
  jobPids: number[];
}

/** How the root process ended. */
export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/** A launched tree: the ownership record plus what is learned while it runs. */
export interface TreeHandle extends OwnerRecord {
  /** The shell parent, when the command is a shell wrapper (it is then the root). */
  shell: ProcessIdentity | undefined;
  /** The newest Python process of the tree. */
  python: ProcessIdentity | undefined;
  /** Resolves when the root process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** Whether the root process has exited. */
  readonly hasExited: boolean;
  /** Windows: every pid ever seen in the tree (Windows never reparents); feed it every table with `identify`. */
  readonly windows: WindowsTreeTracker | undefined;
  /** Windows: the kill-on-close Job Object holding the tree, when launched with one (the default). */
  readonly windowsJob: WindowsJobInfo | undefined;
  /** How the tree is contained (backend, cgroup path, and the subreaper shim's command pid). */
  readonly containment: ContainmentChoice & { cgroup?: string; commandPid?: number };
  /** Re-identifies the shell parent and Python from a table; returns whether anything changed. */
  identify(table: ProcessTable, options?: CollectOptions & { owned?: OwnedProcess[] }): boolean;
  /** Stops the discovery timer; terminate does not need it. */
  dispose(): void;
}

const INSTANCE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// Resolves a command the way execve will, so a missing one is reported before anything starts.
export function resolveCommand(command: string, cwd: string, env: NodeJS.ProcessEnv): string {
  if (command.includes('/') || command.includes('\\') || isAbsolute(command)) {
    const path = resolve(cwd, command);
    checkExecutable(path, command);
    return path;
  }
  const searchPath = env.PATH ?? process.env.PATH ?? '';
  for (const dir of searchPath.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new LaunchError('COMMAND_NOT_FOUND', `command "${command}" was not found on PATH (${searchPath})`);
}

function checkExecutable(path: string, asGiven: string): void {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    throw new LaunchError('COMMAND_NOT_FOUND', `command "${asGiven}" does not exist (resolved to ${path})`);
  }
  if (!isFile) throw new LaunchError('COMMAND_NOT_FOUND', `command "${asGiven}" is not a file (resolved to ${path})`);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new LaunchError('COMMAND_NOT_EXECUTABLE', `command "${asGiven}" is not executable (${path}); chmod +x it or run it through its interpreter`);
  }
}

function checkCwd(cwd: string): void {
  let isDirectory = false;
  try {
    isDirectory = statSync(cwd).isDirectory();
  } catch {
    throw new LaunchError('CWD_NOT_FOUND', `working directory "${cwd}" does not exist`);
  }
  if (!isDirectory) throw new LaunchError('CWD_NOT_FOUND', `working directory "${cwd}" is not a directory`);
}

// The job launcher's ready line: `{ pid, jobPids }`, or undefined when the line is something else.
function parseJobReady(text: string): { pid: number; jobPids: number[] } | undefined {
  try {
    const value = JSON.parse(text) as { pid?: unknown; jobPids?: unknown };
    if (!Number.isInteger(value.pid) || !Array.isArray(value.jobPids)) return undefined;
    return { pid: value.pid as number, jobPids: value.jobPids.filter((p): p is number => Number.isInteger(p)) };
  } catch {
    return undefined;
  }
}

// A fresh marker value for an instance: `<instanceId>:<16 hex digits>`.
export function newMarker(instanceId: string): string {
  return `${instanceId}:${randomBytes(8).toString('hex')}`;
}

// Starts the tree; rejects with a LaunchError (and nothing running) when the command or cwd is unusable.
export async function launch(spec: LaunchSpec): Promise<TreeHandle> {
  if (!INSTANCE_ID.test(spec.instanceId)) {
    throw new LaunchError('INVALID_INSTANCE_ID', `instance id "${spec.instanceId}" must be 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  const cwd = resolve(spec.cwd ?? process.cwd());
  const prefix = `Cannot launch "${spec.instanceId}": `;
  let application: string;
  try {
    checkCwd(cwd);
    application = resolveCommand(spec.command, cwd, { ...process.env, ...spec.env });
  } catch (error) {
    if (error instanceof LaunchError) throw new LaunchError(error.code, prefix + error.message);
    throw error;
  }
  // Windows: what ran before the spawn is never ours (the tracker's creation-order guard against pid reuse).
  const baseline = process.platform === 'win32' ? await snapshot({ backend: 'ps-list', cmdline: false }) : undefined;
  const marker = spec.marker ?? newMarker(spec.instanceId);
  if (!marker.startsWith(`${spec.instanceId}:`) || marker.length <= spec.instanceId.length + 1 || /[\0=]/.test(marker)) {
    throw new LaunchError('INVALID_MARKER', `${prefix}marker "${marker}" must be "${spec.instanceId}:<token>"`);
  }
  const logger = (spec.logger ?? rootLogger).child({ instance: spec.instanceId });
  const useJob = process.platform === 'win32' && spec.windowsJob !== false;
  const containment = spec.containment ?? chooseContainment('auto', { instanceId: spec.instanceId, ...(spec.windowsJob !== undefined && { windowsJob: spec.windowsJob }) });
  // POSIX: the cgroup join step or the subreaper shim goes in front of the command (contained-launch.ts).
  let contained: ContainedStart | undefined;
  try {
    contained = process.platform === 'win32' ? undefined : startContained(containment, marker, application, spec.args ?? []);
  } catch (error) {
    throw new LaunchError('CONTAINMENT_FAILED', `${prefix}${(error as Error).message}`, { cause: error });
  }
  // Windows: node.exe runs the job launcher, which starts the command suspended inside the job.
  const file = useJob ? process.execPath : (contained?.file ?? spec.command);
  const args = useJob ? await jobLauncherArgs(application, [spec.command, ...(spec.args ?? [])]) : (contained?.args ?? [...(spec.args ?? [])]);

  // PROCESS LIFECYCLE: creates a subprocess
  // Parent tracking: root pid + start time, process group (detached: new session/group), marker env
  //   WARDEN_INSTANCE=<id>:<token> inherited by every descendant.
  // Cleanup handled by: terminate(handle) (the runtime's terminateTree), the sentinel when the supervisor
  //   dies, and reap-at-next-start from the registry.
  //   Containment (contained-launch.ts): `cgroup` — sh joins the launch cgroup, then execs the command, so the
  //   whole tree is born in it; `subreaper` — the root is a shim with PR_SET_CHILD_SUBREAPER that runs the command
  //   and adopts every orphan until the last descendant is gone.
  // Known risks: with the `marker` backend only, a descendant that clears its environment AND leaves the group
  //   AND is reparented escapes all three proofs (the cgroup and subreaper backends catch it).
  // Windows: the root is the job launcher (job-launcher.ts), tied to us by its stdin pipe and by Node's own
  //   kill-on-close job; when it ends, for any reason, the kernel ends the whole tree with its Job Object.
  const subprocess = execa(file, args, {
    cwd,
    env: { ...spec.env, [MARKER_VARIABLE]: marker },
    extendEnv: true,
    detached: process.platform !== 'win32',
    cleanup: false,
    // The job launcher's stdin is its tether: EOF there means we are gone (never written, never ended).
    // The subreaper shim reports on fd 3 (not inherited by the command).
    ...(contained?.control === true ? { stdio: ['ignore', 'pipe', 'pipe', 'pipe'] as const } : { stdin: useJob ? ('pipe' as const) : ('ignore' as const) }),
    buffer: false,
    reject: false,
    windowsHide: true,
  });

  try {
    await new Promise<void>((resolveSpawn, rejectSpawn) => {
      subprocess.once('spawn', () => resolveSpawn());
      subprocess.once('error', rejectSpawn);
    });
  } catch (error) {
    await subprocess;
    contained?.abandon();
    throw new LaunchError('SPAWN_FAILED', `${prefix}${(error as Error).message}`, { cause: error });
  }
  const pid = subprocess.pid as number;
  // Every read that begins from now on may see the root; an earlier one (a sampler's) never will.
  const readsFrom = nextReadSequence();
  const root = currentIdentity(pid) ?? { pid, startTime: undefined };

  let jobReady: ((info: WindowsJobInfo) => void) | undefined;
  const jobInfo = new Promise<WindowsJobInfo>((resolveReady) => {
    jobReady = resolveReady;
  });
  const earlyErrors: string[] = [];
  for (const [stream, level] of [[subprocess.stdout, 'info'], [subprocess.stderr, 'warn']] as const) {
    if (stream === null) continue;
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      if (useJob && jobReady !== undefined) {
        if (level === 'info' && line.startsWith(JOB_READY_PREFIX)) {
          const reported = parseJobReady(line.slice(JOB_READY_PREFIX.length));
          if (reported !== undefined) {
            jobReady(reported);
            jobReady = undefined;
            return;
          }
        }
        if (level === 'warn') earlyErrors.push(line);
      }
      logger[level]({ stream: level === 'info' ? 'stdout' : 'stderr', pid }, line);
      spec.onOutput?.(level === 'info' ? 'stdout' : 'stderr', line);
    });
  }

  // 'exit', not the execa promise: orphaned workers keep our output pipes open long after the root is gone.
  // Under the subreaper shim the command's own exit comes first, on the shim's fd 3 (the shim stays for orphans).
  let hasExited = false;
  let rootExited = false;
  const exited = new Promise<ExitInfo>((resolveExit) => {
    const settle = (code: number | null, signal: string | null): void => {
      hasExited = true;
      resolveExit({ code, signal });
    };
    subprocess.once('exit', (code, signal) => {
      rootExited = true;
      settle(code, signal);
    });
    contained?.onCommandExit?.(settle);
  });
  // The execa promise settles when the pipes close; with `reject: false` it never rejects, but keep it handled.
  subprocess.catch(() => undefined);

  let windowsJob: WindowsJobInfo | undefined;
  if (useJob) {
    const timeoutMs = spec.jobReadyTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      jobInfo,
      // After the launcher's exit, its stderr may still be in the pipe: wait for the streams to close (bounded).
      exited.then(() => Promise.race([new Promise((done) => subprocess.once('close', done)), new Promise((done) => setTimeout(done, 2000))])).then(() => 'exited' as const),
      new Promise<'timeout'>((done) => {
        timer = setTimeout(done, timeoutMs, 'timeout');
      }),
    ]);
    clearTimeout(timer);
    if (outcome === 'timeout' || outcome === 'exited') {
      // Our direct child, not yet reaped: its pid cannot have been reused. Ending it closes any job it made.
      if (!hasExited) subprocess.kill('SIGKILL');
      const exit = await exited;
      const why = outcome === 'timeout' ? `the job launcher did not report within ${timeoutMs} ms` : `the job launcher exited (code ${String(exit.code)}) before the command ran`;
      const said = earlyErrors.join(' | ');
      // The way out is named only when the job itself was the problem, not the command.
      const hint = outcome === 'timeout' || said.includes('Job Object') ? ' (windowsJob: false runs without one)' : '';
      throw new LaunchError('JOB_OBJECT_FAILED', `${prefix}cannot start "${spec.command}" inside a Job Object: ${why}${said !== '' ? `: ${said}` : ''}${hint}`);
    }
    windowsJob = outcome;
  }

  // POSIX: the root is in its cgroup / the shim runs the command, or nothing stays running and the launch is refused.
  let containedInfo: { commandPid?: number } = {};
  if (contained !== undefined) {
    try {
      containedInfo = await contained.confirm(subprocess, pid, exited);
    } catch (error) {
      // Our direct child, not yet reaped: its pid cannot have been reused.
      if (!rootExited) subprocess.kill('SIGKILL');
      await exited;
      contained.abandon();
      throw new LaunchError('CONTAINMENT_FAILED', `${prefix}${(error as Error).message}`, { cause: error });
    }
  }
  const commandPid = containedInfo.commandPid;
  const commandIdentity = commandPid === undefined ? root : (currentIdentity(commandPid) ?? { pid: commandPid, startTime: undefined });

  const windows = process.platform === 'win32' ? new WindowsTreeTracker({ root: { pid, startTime: undefined }, job: useJob, readsFrom, ...(baseline !== undefined && { baseline }) }) : undefined;
  let timer: NodeJS.Timeout | undefined;
  const handle: TreeHandle = {
    instanceId: spec.instanceId,
    marker,
    root,
    pgid: process.platform === 'win32' ? undefined : pid,
    ...(contained?.cgroup !== undefined && { cgroup: contained.cgroup }),
    containment: { ...containment, ...(contained?.cgroup !== undefined && { cgroup: contained.cgroup }), ...(commandPid !== undefined && { commandPid }) },
    shell: undefined,
    python: undefined,
    windows,
    windowsJob,
    exited,
    get hasExited() {
      return hasExited;
    },
    identify(table, collectOptions) {
      if (windows !== undefined) windows.observe(table);
      // A caller that already collected this table's owned set (the sampler) passes it, so it is not done twice.
      const owned = windows !== undefined ? windows.owned(table) : (collectOptions?.owned ?? collectOwned(handle, table, collectOptions));
      let changed = false;
      // The command: the root itself, or (subreaper shim) the shim's child.
      const rootInfo = owned.find((entry) => entry.info.pid === commandIdentity.pid);
      // The shell parent is the command, or (Windows, job launcher) the launcher's own child cmd.exe.
      const shellInfo = rootInfo?.role === 'shell' ? rootInfo : windowsJob !== undefined ? owned.find((entry) => entry.info.pid === windowsJob.pid && entry.role === 'shell') : undefined;
      if (handle.shell === undefined && shellInfo !== undefined) {
        handle.shell = shellInfo === rootInfo ? { pid: commandIdentity.pid, startTime: commandIdentity.startTime, clock: commandIdentity.clock } : { pid: shellInfo.info.pid, startTime: shellInfo.info.startTime, clock: table.backend };
        changed = true;
      }
      if (handle.python === undefined || !identityHolds(handle.python, table)) {
        const python = owned.find((entry) => entry.role === 'python');
        if (python !== undefined && python.info.pid !== handle.python?.pid) {
          handle.python = { pid: python.info.pid, startTime: python.info.startTime, clock: table.backend };
          changed = true;
        }
      }
      if (changed) spec.onRolesChanged?.({ ...(handle.shell && { shell: handle.shell }), ...(handle.python && { python: handle.python }) });
      return changed;
    },
    dispose() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };

  const interval = spec.discoverIntervalMs ?? 100;
  if (interval > 0) {
    const discover = async (): Promise<void> => {
      if (hasExited || handle.python !== undefined) return handle.dispose();
      handle.identify(await snapshot({ cmdline: true }));
    };
    timer = setInterval(() => void discover().catch((error: unknown) => logger.warn({ err: error }, 'role discovery failed')), interval);
    timer.unref();
    void exited.then(() => handle.dispose());
    void discover().catch((error: unknown) => logger.warn({ err: error }, 'role discovery failed'));
  }
  return handle;
}
