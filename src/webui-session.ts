// What the runtime knows about one instance's current start beyond its process tree: the launch plan (argv,
// env, port, URLs per profile), its output log and tail, readiness, in-app relaunches and the crash hints.
import { join } from 'node:path';
import { portRangeOf } from './config/index.js';
import type { InstanceConfig } from './config/index.js';
import { crashHints } from './crash-hints.js';
import type { CrashHint } from './crash-hints.js';
import { kernelOomLines } from './logs/kernel-oom.js';
import { OutputLog } from './logs/output-log.js';
import type { OutputLine } from './logs/output-log.js';
import type { Logger } from './logging.js';
import { pickPort } from './port-discovery.js';
import { checkOverrides, planLaunch } from './profiles.js';
import type { LaunchPlan, StartOverrides, WebuiProfile } from './profiles.js';
import type { ExitInfo, TreeHandle } from './process/index.js';

/** How many of the current start's last lines the crash hints read. */
const HINT_LINES = 200;

/** The fields `status()` shows for the session. */
export interface SessionStatus {
  profile: WebuiProfile;
  /** The port of the current (or last) start; the configured one before any start; null when unknown. */
  port: number | null;
  /** The app's origin, e.g. `http://127.0.0.1:7860`. */
  url: string | null;
  /** Ready per profile (A1111: API answers or "Running on local URL"; ComfyUI: /object_info); false unless running. */
  ready: boolean;
  launchProfile: string | null;
  /** The current start's log file. */
  logFile: string | null;
}

/** The current start of one instance, beside its machine. */
export class WebuiSession {
  readonly output: OutputLog;
  plan: LaunchPlan | undefined;
  /** The overrides of the last start/restart command; crash relaunches keep them. */
  overrides: StartOverrides | undefined;
  /** The next launch follows a restart or a crash (A1111: SD_WEBUI_RESTARTING=1). */
  restarting = false;
  ready = false;
  /** The profile's ready line was printed by the current Python. */
  lineSeen = false;
  /** Counts the profile's relaunch lines: the app restarted itself in place (A1111 tmp/restart). */
  relaunches = 0;
  /** Every pid the current start's tree had as root, shell or Python (for the kernel's OOM lines). */
  readonly seenPids = new Set<number>();
  lastHints: CrashHint[] = [];
  /** The port this instance holds from its pick until its tree is confirmed dead (no other instance gets it). */
  claimedPort: number | null = null;

  constructor(
    readonly config: InstanceConfig,
    stateDir: string,
    logger: Logger,
  ) {
    this.output = new OutputLog({
      dir: join(stateDir, 'logs', config.id),
      maxBytes: config.logs.maxBytes,
      keepFiles: config.logs.keepFiles,
      onError: (error) => logger.warn({ err: error }, 'the output log file cannot be written; output is kept in memory only'),
    });
  }

  // Checks overrides now (an unknown launch profile is refused before any command is sent).
  checkOverrides(overrides: StartOverrides | undefined): void {
    checkOverrides(this.config.id, this.config, overrides);
  }

  // Decides this start: port picked from the range, argv, env, URLs.
  async prepare(takenPorts: ReadonlySet<number>): Promise<LaunchPlan> {
    const range = portRangeOf(this.config);
    const fixed = typeof this.config.port === 'number' ? this.config.port : null;
    const port = range === null ? fixed : await pickPort(this.config.id, range, takenPorts);
    const plan = planLaunch(this.config.id, this.config, port, this.overrides, this.restarting, range !== null);
    this.plan = plan;
    this.claimedPort = port;
    this.ready = false;
    this.lineSeen = false;
    this.seenPids.clear();
    this.lastHints = [];
    return plan;
  }

  // Opens the start's log file, once nothing refused the start.
  beginLog(): void {
    this.output.begin(new Date());
  }

  // Called after a launch succeeded: the restart environment applied to that launch only.
  launched(handle: TreeHandle): void {
    this.restarting = false;
    this.seenPids.add(handle.root.pid);
  }

  // One output line of the tree.
  noteOutput(stream: OutputLine['stream'], line: string): void {
    this.output.write(stream, line);
    if (this.plan?.readyLine?.test(line) === true) this.lineSeen = true;
    if (this.plan?.relaunchLine?.test(line) === true) {
      this.relaunches += 1;
      // A fresh Python prints the ready line again once it is up.
      this.lineSeen = false;
    }
  }

  // The causes recognised in the current start's last lines and in how the root ended (before Warden signalled).
  hints(handle: TreeHandle, exit: ExitInfo | undefined): CrashHint[] {
    if (handle.python !== undefined) this.seenPids.add(handle.python.pid);
    const lines = this.output.currentStart(HINT_LINES).map((line) => line.text);
    const rootIsShell = handle.shell !== undefined && handle.shell.pid === handle.root.pid;
    const sigkill = exit !== undefined && (exit.signal === 'SIGKILL' || (rootIsShell && exit.code === 137));
    this.lastHints = crashHints(
      lines,
      exit === undefined ? undefined : { code: exit.code, signal: exit.signal, rootIsShell, killedByWarden: false, kernelOom: sigkill ? kernelOomLines(this.seenPids) : null },
    );
    return this.lastHints;
  }

  // The session's part of status().
  status(running: boolean): SessionStatus {
    const configured = typeof this.config.port === 'number' ? this.config.port : null;
    const health = this.config.health !== null ? new URL(this.config.health.url) : null;
    const before = configured !== null ? `http://${health?.hostname ?? '127.0.0.1'}:${configured}` : health !== null && portRangeOf(this.config) === null ? health.origin : null;
    const url = this.plan?.url ?? before;
    return {
      profile: this.config.profile,
      port: this.plan?.port ?? configured,
      url,
      ready: running && this.ready,
      launchProfile: this.plan?.launchProfile ?? null,
      logFile: this.output.file,
    };
  }
}

// `reason`, then what the hints name: "process exited (code 1) — CUDA out of memory: …".
export function withHints(reason: string, hints: readonly CrashHint[]): string {
  return hints.length === 0 ? reason : `${reason}; ${hints.map((hint) => hint.message).join('; ')}`;
}
