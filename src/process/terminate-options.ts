// The options of `terminate()`, shared by every strategy (signals, cgroup, Windows) so none imports another.
import type { CollectOptions } from './ownership.js';
import type { ProcessTable } from './types.js';
import type { WindowsKillExecutor } from './windows/kill.js';
import type { WindowsTreeTracker } from './windows/index.js';

/** How a stop runs: grace, polite request, polling; each strategy reads the fields that mean something to it. */
export interface TerminateOptions {
  /** How long processes get between SIGTERM and SIGKILL. Default 5000. */
  graceMs?: number;
  /**
   * A polite request while the tree still runs (e.g. the WebUI's server-stop). Resolving `false` or rejecting
   * means it was not delivered: the protocol then goes straight on to signals without the polite wait.
   */
  beforeSignals?: () => Promise<unknown>;
  /** How long to wait for the tree to exit by itself after `beforeSignals`. Default: `graceMs`. */
  politeWaitMs?: number;
  /**
   * What shell wrappers get while the tree is frozen. Default `SIGKILL`: a wrapper holds no state worth a
   * graceful exit, and one that survives SIGTERM (a `trap '' TERM`, or cmd.exe, which gets no signals) is
   * exactly what relaunches Python behind our back. `SIGTERM` treats wrappers like everything else.
   */
  shellSignal?: 'SIGKILL' | 'SIGTERM';
  /** Skip SIGTERM: SIGKILL at once (the escalated retry and the second-signal fast path). */
  immediate?: boolean;
  /** Polled while waiting out the grace: returning true cuts the grace short (a second Ctrl-C). */
  shouldHurry?: () => boolean;
  /** Re-read interval while waiting. Default 20. */
  pollIntervalMs?: number;
  /** How long to keep re-reading and SIGKILLing after the grace before reporting survivors. Default 5000. */
  confirmTimeoutMs?: number;
  /** Process-table reader; defaults to `snapshot({ cmdline: false })`. */
  readTable?: () => Promise<ProcessTable>;
  /** Marker reader, passed to ownership (tests and non-Linux platforms). */
  readMarker?: CollectOptions['readMarker'];
  /** Windows: the launch's tree tracker (required on win32, where POSIX signals like SIGSTOP do not exist). */
  windowsTracker?: WindowsTreeTracker;
  /** Windows: how processes are ended. Default `taskkillExecutor()` (`taskkill /pid N /F`). */
  windowsKiller?: WindowsKillExecutor;
}
