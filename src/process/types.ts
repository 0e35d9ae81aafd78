// Shared shapes of the operating-system boundary. Plain data: safe to log, serialize and record.

/** One row of the process table. Fields a backend cannot read are `undefined`, never guessed. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Process group id (POSIX). */
  pgid: number | undefined;
  /** Session id (POSIX). */
  sid: number | undefined;
  /**
   * Start time in the backend's own unit (Linux: clock ticks since boot, `/proc/PID/stat` field 22).
   * Only compared with start times from the same backend; `undefined` when the backend cannot tell.
   */
  startTime: number | undefined;
  /** One-letter kernel state (`R`, `S`, `D`, `T`, `Z`, ...); `undefined` when unknown. */
  state: string | undefined;
  /** Executable name (`comm` on Linux, image name on Windows). */
  name: string;
  /** Full argument vector, when readable. */
  cmdline: string[] | undefined;
  uid: number | undefined;
}

/** The process table at one instant, keyed by pid. */
export interface ProcessTable {
  /** Which reader produced it: `proc` (Linux /proc) or `ps-list`. */
  backend: 'proc' | 'ps-list';
  /** Milliseconds since the epoch when the read finished. */
  takenAt: number;
  /** The order in which this table's read began among every `snapshot()` of this process (1, 2, …): trackers
   *  that must see listings in order skip a table older than one they already saw, whatever order reads finish in. */
  sequence?: number;
  processes: Map<number, ProcessInfo>;
}

/** A pid together with the start time it had when we recorded it: a reused pid never matches. */
export interface ProcessIdentity {
  pid: number;
  startTime: number | undefined;
  /** Which table's unit `startTime` is in; start times are compared only against tables of the same backend. */
  clock?: ProcessTable['backend'] | undefined;
}

/** What a process is to a WebUI instance. */
export type ProcessRole = 'shell' | 'python' | 'other';

/** The per-instance environment marker, `WARDEN_INSTANCE=<id>:<token>`. */
export const MARKER_VARIABLE = 'WARDEN_INSTANCE';

/**
 * The state directory of the supervisor that launched a tree, handed down beside the marker. A marker proves
 * "some Warden"; this proves "this Warden": stale processes are reaped only by the supervisor of the same directory.
 */
export const STATE_DIR_VARIABLE = 'WARDEN_STATE_DIR';
