// The data the machines exchange with the runtime: inputs, actor inputs/outputs, events. Plain JSON, no handles.

/** How an instance comes back after a crash: exponential backoff and a restart budget (systemd StartLimit / OTP intensity). */
export interface RestartPolicy {
  /** Restart after a crash at all; `false` sends a crashed instance straight to `failed`. */
  onCrash: boolean;
  /** Delay before the first restart in a window. */
  baseDelayMs: number;
  /** Upper bound of the (un-jittered) delay. */
  maxDelayMs: number;
  /** At most this many restarts within `windowMs`; the crash that would need one more ends in `failed`. */
  maxRestarts: number;
  windowMs: number;
  /** After this long in `running`, the restart count (and with it the backoff) starts over. */
  resetAfterMs: number;
  /** Fraction 0..1 taken off the delay at random (deterministic under the seed). Default 0.1. */
  jitter?: number;
}

/** One configured WebUI instance, as the instance machine needs it. */
export interface InstanceInput {
  id: string;
  /** From the start of `spawning` to `HEALTHY`, all included (launch and readiness). */
  startupTimeoutMs: number;
  restart: RestartPolicy;
  /** Seed of the backoff jitter. Default: a hash of `id`, so two instances never restart in lockstep. */
  seed?: number;
  /** Pause between a terminate attempt that left survivors (or failed) and the escalated retry. Default 1000. */
  retryStopDelayMs?: number;
  /** Terminate attempts per `stopping` before it gives up retrying and waits in `stopping.stuck`. Default 5. */
  maxStopAttempts?: number;
}

/** What `launchTree` resolves with once the tree is spawned (not yet healthy). */
export interface LaunchOutput {
  pid: number;
  pgid?: number;
  shellPid?: number;
  pythonPid?: number;
  /** The per-instance marker value, `<id>:<token>`. */
  marker: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
}

/** Input of `launchTree`. `attempt` is the number of restarts in the current window (0 on a fresh start). */
export interface LaunchInput {
  id: string;
  attempt: number;
}

/** Input of `monitorTree`: `startup` waits for readiness, `liveness` watches a running tree. */
export interface MonitorInput {
  id: string;
  phase: 'startup' | 'liveness';
}

/** Why an instance is in `stopping`; it picks where the instance goes once the tree is confirmed dead. */
export type StopReason = 'stop' | 'restart' | 'crash' | 'shutdown' | 'emergency';

/** Input of `terminateTree`. `attempt` 0 is the normal protocol; 1 and more are escalated retries (SIGKILL at once). */
export interface TerminateInput {
  id: string;
  reason: StopReason;
  attempt: number;
}

/** A process role as the process layer classifies it. */
export type ProcessRole = 'shell' | 'python' | 'other';

/** One process that died under the stop protocol, and the strongest signal it got. */
export interface KilledProcess {
  pid: number;
  name: string;
  role: ProcessRole;
  signal: string;
}

/** One owned process still alive when the stop protocol gave up. */
export interface Survivor {
  pid: number;
  name: string;
  role: ProcessRole;
  reason?: string;
  /** The kernel refused our signals (EPERM: another user's process): retrying cannot help. */
  denied?: boolean;
}

/** What `terminateTree` resolves with. Only an empty `survivors`, read back from the process table, lets `stopping` end. */
export interface TerminationReport {
  survivors: Survivor[];
  killed: KilledProcess[];
  escalated: boolean;
  durationMs: number;
}

/** What `monitorTree` sends back to the instance. `at` (ms since the epoch) is optional and only recorded. */
export type MonitorEvent =
  | { type: 'HEALTHY'; at?: number }
  | { type: 'PROCESS_EXITED'; code: number | null; signal: string | null; at?: number }
  | { type: 'HEALTH_FAILED'; reason: string; at?: number }
  | { type: 'PIDS_DISCOVERED'; shellPid?: number; pythonPid?: number };

/** Commands an instance accepts. `reason` on STOP tells `terminateTree` why (the supervisor uses shutdown/emergency). */
export type InstanceCommand =
  | { type: 'START' }
  | { type: 'STOP'; reason?: 'stop' | 'shutdown' | 'emergency' }
  | { type: 'RESTART' }
  | { type: 'RESET' };

/** The top-level states of an instance, as the status API and the supervisor name them. */
export type InstanceStateName = 'idle' | 'spawning' | 'running' | 'stopping' | 'crashed' | 'failed';

/** An alert an instance emits (and reports to its parent) when the stop protocol has not confirmed the tree dead. */
export interface InstanceAlert {
  type: 'ALERT';
  id: string;
  /** `stop-stuck`: no more retries (every survivor refuses our signals, or the attempts are spent); see `message`. */
  kind: 'survivors' | 'terminate-failed' | 'stop-stuck';
  attempt: number;
  message: string;
  survivors: Survivor[];
}

/** What an instance tells its parent (if it has one): every top-level state change, and every alert. */
export type InstanceNotification =
  | {
      type: 'INSTANCE_CHANGED';
      id: string;
      state: InstanceStateName;
      lastReport: TerminationReport | null;
      lastError: string | null;
      restarts: number;
    }
  | { type: 'INSTANCE_ALERT'; id: string; alert: InstanceAlert };

/** Watchdog levels, in rising order. */
export type WatchdogLevel = 'ok' | 'warning' | 'critical' | 'emergency';

/** Process counts the sampler reports. `python`, `shell`, `total` count processes proven ours (`stale` of them from earlier runs); `foreign` look-alikes are never ours. */
export interface ProcessCounts {
  python: number;
  shell: number;
  total: number;
  stale: number;
  foreign: number;
}

/** One sample of the process table, as counts. `windowMin` is the lowest `total` seen in the emergency window, and when. */
export interface SampleEvent {
  type: 'SAMPLE';
  at: number;
  counts: ProcessCounts;
  perInstance?: Record<string, { python: number; shell: number; total: number }>;
  windowMin?: { total: number; at: number };
}

/** A limit on python and shell counts: a level is reached when either count is above its limit. */
export interface CountLimit {
  python: number;
  shell: number;
}

/** Watchdog configuration; every field has the design's seed default. */
export interface WatchdogInput {
  /** Default python > 5 or shell > 2. */
  warning?: CountLimit;
  /** Default python > 10 or shell > 3. */
  critical?: CountLimit;
  /** The doubling rule's window. Default 300000 (5 minutes). */
  emergencyWindowMs?: number;
  /** Consecutive samples below the current level needed to step down. Default 3. */
  calmSamples?: number;
}

/** Every watchdog setting, resolved. */
export interface WatchdogThresholds {
  warning: CountLimit;
  critical: CountLimit;
  emergencyWindowMs: number;
  calmSamples: number;
}

/** What the watchdog tells its parent on every level change. */
export interface WatchdogAlert {
  type: 'ALERT';
  level: WatchdogLevel;
  previous: WatchdogLevel;
  counts: ProcessCounts;
  reason: string;
}

/** What the watchdog tells its parent when it rises to `critical` or `emergency`: act now. */
export interface RunawayEvent {
  type: 'RUNAWAY';
  level: 'critical' | 'emergency';
  counts: ProcessCounts;
  reason: string;
}

/** Supervisor input: the configured instances and the watchdog settings. */
export interface SupervisorInput {
  instances: InstanceInput[];
  watchdog?: WatchdogInput;
}
