// The supervisor's public surface: its events, status, reports, options and the Supervisor interface.
import type { Observable } from 'rxjs';
import type { Actor, InspectionEvent, Observer } from 'xstate';
import type { supervisorMachine } from '../../machines/index.js';
import type {
  InstanceContext,
  InstanceStateName,
  SupervisorOutput,
  TerminationReport as MachineReport,
  WatchdogLevel } from '../../machines/index.js';
import type { WardenConfig } from '../config/index.js';
import type { Logger } from '../logging.js';
import type { TerminationReport } from '../process/index.js';
import type { ReapReport } from '../process/state/reap.js';
import type { ContainmentChoice } from '../process/containment.js';
import type { RoleCounts, Sample } from '../sampler.js';
import type { CrashHint } from '../crash-hints.js';
import type { OutputLine } from '../logs/output-log.js';
import type { StartOverrides } from '../profiles.js';
import type { SessionStatus } from '../webui-session.js';

/** Everything that happens, in order, for `events$` subscribers (dashboards, tests, the CLI). */
export type WardenEvent =
  | { type: 'transition'; at: number; instance: string; from: InstanceStateName | null; to: InstanceStateName; detail: string }
  | { type: 'sample'; at: number; sample: Sample }
  | { type: 'launch'; at: number; instance: string; pid: number; marker: string }
  | { type: 'termination'; at: number; instance: string; reason: string; report: TerminationReport; hints?: CrashHint[] }
  | { type: 'stale-reaped'; at: number; instance: string; marker: string; pids: number[]; report: TerminationReport }
  | { type: 'reap'; at: number; report: ReapReport }
  | { type: 'alert'; at: number; source: 'watchdog' | 'instance' | 'supervisor'; level: WatchdogLevel | 'error'; message: string; instance?: string }
  | { type: 'emergency'; at: number; level: string; reason: string }
  | { type: 'bundle'; at: number; path: string };

/** A termination report as status() keeps it; a crash's carries the causes recognised in its output. */
export type InstanceReport = MachineReport & { hints?: CrashHint[] };

/** What `logs()` answers: the newest lines (across starts, oldest first) and the current start's log file. */
export interface InstanceLogs {
  id: string;
  lines: OutputLine[];
  file: string | null;
}

/** One instance as `status()` shows it. */
export interface InstanceStatus extends SessionStatus {
  id: string;
  state: InstanceStateName;
  /** The full state path, e.g. `spawning.awaitingHealth`. */
  detail: string;
  pid: number | null;
  shellPid: number | null;
  pythonPid: number | null;
  restarts: number;
  desired: 'running' | 'stopped';
  lastExit: InstanceContext['lastExit'];
  lastError: string | null;
  lastReport: InstanceReport | null;
  stopReason: string | null;
  counts: RoleCounts;
  /** How the kernel holds the tree (chosen at start; `null` before): backend, why, and the live launch's cgroup. */
  containment: { backend: ContainmentChoice['backend']; reason: string; cgroup: string | null } | null;
}

/** The whole supervisor as `status()` shows it. */
export interface SupervisorStatus {
  instances: InstanceStatus[];
  watchdog: { level: WatchdogLevel; counts: Sample['counts'] | null };
  holdRestarts: boolean;
  orphanedDetected: number;
}

/** What `shutdown()` observed. `ok` only when every tree was read back dead. */
export interface ShutdownReport {
  ok: boolean;
  instances: SupervisorOutput['instances'];
  survivors: Array<{ instance: string; pid: number; name: string; role: string }>;
  durationMs: number;
}

export interface SupervisorOptions {
  /** Base directory for relative paths in a config object. Default process.cwd(). */
  baseDir?: string;
  /** Logger; default: pino to stderr at WARDEN_LOG_LEVEL, with a tail kept for diagnostic bundles. */
  logger?: Logger;
  /** Start the sentinel that kills every tree if this process dies without shutdown. Default true. */
  sentinel?: boolean;
  /**
   * Install SIGINT/SIGTERM handlers: the first runs shutdown(), a second forces the SIGKILL fast path. Default false.
   * With an object: `onShutdown` runs with the report before the process exits (`exit: false` keeps it alive).
   */
  handleSignals?: boolean | { exit?: boolean; onShutdown?: (report: ShutdownReport) => void | Promise<void> };
  /** Passed to the root actor (e.g. `@statelyai/inspect`'s `inspector.inspect`). */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** How long `shutdown()` waits for confirmed stops before reporting what survived. Default: longest grace + 30 s. */
  shutdownTimeoutMs?: number;
}

/** The public surface (DESIGN.md). */
export interface Supervisor {
  readonly config: WardenConfig;
  /** The root actor, for inspection. */
  readonly actor: Actor<typeof supervisorMachine>;
  readonly events$: Observable<WardenEvent>;
  /** Takes the lock, reaps what earlier runs left, starts the sentinel and the sampler. `start()` calls it. */
  ready(): Promise<void>;
  /**
   * Resolves when the instance is running (healthy and, per profile, ready); rejects with the reason if it ends
   * crashed or failed. `args` replace the configured args for this start (and its crash relaunches); a
   * `launchProfile` brings its args and env. On a running instance, overrides are refused: use restart.
   */
  start(id: string, overrides?: StartOverrides): Promise<InstanceStatus>;
  /** Resolves with the termination report once the shell parent and the Python tree are confirmed dead. */
  stop(id: string, options?: { timeoutMs?: number }): Promise<MachineReport>;
  /** Stop (confirmed), then start, with the same overrides as start(). */
  restart(id: string, overrides?: StartOverrides): Promise<InstanceStatus>;
  /** The newest `tail` output lines (default 100, at most 10000) and the current log file. */
  logs(id: string, options?: { tail?: number }): InstanceLogs;
  /** Every output line of the instance as it arrives; completes at shutdown. */
  output$(id: string): Observable<OutputLine>;
  /** Leaves `failed` (or lifts the emergency hold when `id` is absent). */
  reset(id?: string): void;
  status(): SupervisorStatus;
  shutdown(): Promise<ShutdownReport>;
}
