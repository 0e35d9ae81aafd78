// createSupervisor: the machines in machines/ wired to real processes, the sampler, the registry, the lock and the sentinel.
import { join } from 'node:path';
import { Subject, type Observable, type Subscription } from 'rxjs';
import { createActor, fromCallback, fromPromise } from 'xstate';
import type { Actor, AnyActorRef, EventObject, InspectionEvent, Observer } from 'xstate';
import { instanceKey, instanceMachine, supervisorMachine } from '../machines/index.js';
import type {
  EmergencyInput,
  InstanceContext,
  InstanceStateName,
  LaunchInput,
  LaunchOutput,
  MonitorEvent,
  MonitorInput,
  SupervisorOutput,
  TerminateInput,
  TerminationReport as MachineReport,
  WatchdogLevel,
} from '../machines/index.js';
import { parseConfig } from './config/index.js';
import type { InstanceConfig, WardenConfig } from './config/index.js';
import { writeDiagnosticBundle } from './diagnostics.js';
import { CommandRefusedError, ShutDownError, StartError, StopIncompleteError, StopTimeoutError, UnknownInstanceError, WardenError } from './errors.js';
import { postQuietly, probeHealth } from './health.js';
import { createTailedLogger } from './logging.js';
import type { LogTail, Logger } from './logging.js';
import { preflight } from './preflight.js';
import { STATE_DIR_VARIABLE, launch, newMarker, snapshot, terminate } from './process/index.js';
import type { TerminationReport, TreeHandle } from './process/index.js';
import { acquireLock } from './process/state/lock.js';
import type { Lock } from './process/state/lock.js';
import { reapLeftovers } from './process/state/reap.js';
import type { ReapReport } from './process/state/reap.js';
import { Registry, launchRecord } from './process/state/registry.js';
import { chooseContainment } from './process/containment.js';
import { launchCgroupOf } from './process/posix/cgroup.js';
import type { ContainmentChoice } from './process/containment.js';
import { keepSentinel } from './process/state/sentinel-keeper.js';
import { startWindowsGuard } from './process/windows/index.js';
import type { WindowsGuard } from './process/windows/index.js';
import type { Sentinel } from './process/state/sentinel.js';
import { createSampler } from './sampler.js';
import type { RoleCounts, Sample, StaleGroup } from './sampler.js';
import type { CrashHint } from './crash-hints.js';
import type { OutputLine } from './logs/output-log.js';
import { probeReadiness } from './profiles.js';
import type { LaunchPlan, StartOverrides } from './profiles.js';
import { WebuiSession, withHints } from './webui-session.js';
import type { SessionStatus } from './webui-session.js';

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

/** Per-instance runtime state that must not live in machine context (OS handles). */
interface InstanceRuntime {
  config: InstanceConfig;
  logger: Logger;
  handle: TreeHandle | undefined;
  /** The launch in flight, so a STOP during spawning waits for whatever it started. */
  launching: Promise<unknown> | undefined;
  /** A marker handed to a launch that has not returned yet: never stale. */
  pendingMarker: string | undefined;
  /** Why the last launch was refused before spawning (port in use, foreign instance). */
  refusal: WardenError | undefined;
  /** Sends PIDS_DISCOVERED to the current monitor, if one runs. */
  notifyRoles: ((shellPid?: number, pythonPid?: number) => void) | undefined;
  counts: RoleCounts;
  /** Windows: the tracker's `adoptions` when its record last went to the registry (-1: write it again). */
  windowsPersisted: number;
  /** Plan, output log, readiness and crash hints of the current start. */
  session: WebuiSession;
  /** The containment backend chosen in ready() (before anything spawns). */
  containment: ContainmentChoice | undefined;
}

const EVENT_HISTORY = 200;
/** The most lines `logs()` answers (the in-memory tail's size). */
const MAX_TAIL = 10_000;
/** Samples kept for the diagnostic bundle (a minute at the default 1 Hz), apart from the event history. */
const SAMPLE_HISTORY = 60;
const emptyCounts = (): RoleCounts => ({ python: 0, shell: 0, other: 0, total: 0 });
const topState = (value: unknown): InstanceStateName =>
  (typeof value === 'string' ? value : Object.keys(value as object)[0]) as InstanceStateName;
const statePath = (value: unknown): string => {
  if (typeof value === 'string') return value;
  const [key, inner] = Object.entries(value as Record<string, unknown>)[0] ?? ['?', ''];
  return `${key}.${statePath(inner)}`;
};

// Validates the config (throwing ConfigError naming each bad field) and builds a supervisor; nothing runs until start().
export function createSupervisor(input: unknown, options: SupervisorOptions = {}): Supervisor {
  const config = parseConfig(input, options.baseDir === undefined ? {} : { baseDir: options.baseDir });
  const tailed = options.logger === undefined ? createTailedLogger() : undefined;
  const logger: Logger = options.logger ?? (tailed as { logger: Logger }).logger;
  const logTail: LogTail = tailed?.tail ?? { lines: () => [] };
  const events = new Subject<WardenEvent>();
  const history: WardenEvent[] = [];
  // The last samples, apart: one a second would otherwise push every transition and report out of `history`.
  const recentSamples: WardenEvent[] = [];
  const publish = (event: WardenEvent): void => {
    const kept = event.type === 'sample' ? recentSamples : history;
    kept.push(event);
    if (kept.length > (event.type === 'sample' ? SAMPLE_HISTORY : EVENT_HISTORY)) kept.shift();
    events.next(event);
  };

  const runtimes = new Map<string, InstanceRuntime>();
  for (const instance of config.instances) {
    runtimes.set(instance.id, {
      config: instance,
      logger: logger.child({ instance: instance.id }),
      handle: undefined,
      launching: undefined,
      pendingMarker: undefined,
      refusal: undefined,
      notifyRoles: undefined,
      counts: emptyCounts(),
      windowsPersisted: -1,
      session: new WebuiSession(instance, config.stateDir, logger.child({ instance: instance.id })),
      containment: undefined,
    });
  }
  const runtimeOf = (id: string): InstanceRuntime => {
    const runtime = runtimes.get(id);
    if (runtime === undefined) throw new UnknownInstanceError(id, [...runtimes.keys()]);
    return runtime;
  };

  let registry: Registry | undefined;
  let lock: Lock | undefined;
  let sentinel: Sentinel | undefined;
  // Windows: the sentinel's counterpart (Windows has no environment markers to read, so it tracks pid trees).
  let windowsGuard: WindowsGuard | undefined;
  let sampling: Subscription | undefined;
  let lastSample: Sample | undefined;
  let orphanedDetected = 0;
  let hurry = false;
  let shutdownPromise: Promise<ShutdownReport> | undefined;
  const reapingStale = new Set<string>();
  let portPicks: Promise<unknown> = Promise.resolve();

  // Windows: rewrites the launch's tree record in the registry when its tracker adopted a process since the last
  // write (a force-closed supervisor's next start reaps from it); nothing is written while nothing changed.
  const persistWindowsTree = (runtime: InstanceRuntime, handle: TreeHandle): void => {
    const tracker = handle.windows;
    if (tracker === undefined || registry === undefined || tracker.adoptions === runtime.windowsPersisted) return;
    runtime.windowsPersisted = tracker.adoptions;
    // No record to update (removed after a confirmed stop) is fine; a failed write is retried at the next sample.
    registry.update(handle.marker, { windows: tracker.toJSON() }).catch((error: unknown) => {
      if (runtime.handle === handle) runtime.windowsPersisted = -1;
      runtime.logger.error({ err: error }, 'registry update failed (Windows tree record)');
    });
  };

  const liveMarkers = (): Set<string> => {
    const markers = new Set<string>();
    for (const runtime of runtimes.values()) {
      if (runtime.handle !== undefined) markers.add(runtime.handle.marker);
      if (runtime.pendingMarker !== undefined) markers.add(runtime.pendingMarker);
    }
    return markers;
  };

  // ── The machines' side effects, as real actors ───────────────────────────────────────────────────────────

  const launchTree = fromPromise<LaunchOutput, LaunchInput>(async ({ input }) => {
    const runtime = runtimeOf(input.id);
    const work = (async (): Promise<LaunchOutput> => {
      runtime.refusal = undefined;
      const { config: instance, session } = runtime;
      let plan: LaunchPlan;
      try {
        // One pick at a time: two instances sharing a range must not both bind-test the same free port.
        const picked = portPicks.then(() => session.prepare(portsInUse(runtime)));
        portPicks = picked.catch(() => undefined);
        plan = await picked;
        await preflight({ id: instance.id, cwd: instance.cwd, command: instance.command, port: typeof instance.port === 'number' ? instance.port : undefined });
      } catch (error) {
        session.claimedPort = null;
        if (error instanceof WardenError) runtime.refusal = error;
        throw error;
      }
      session.beginLog();
      const marker = newMarker(instance.id);
      runtime.pendingMarker = marker;
      // Guard the marker before the first process exists: a SIGKILL between spawn and the full record must not
      // leave an untracked tree (pid 0 = marker proof only, until the root is known).
      await sentinel?.track({ instanceId: instance.id, marker, root: { pid: 0, startTime: undefined } });
      try {
        const handle = await launch({
          instanceId: instance.id,
          command: instance.command,
          args: plan.args,
          cwd: instance.cwd,
          env: { ...plan.env, [STATE_DIR_VARIABLE]: config.stateDir },
          marker,
          logger: runtime.logger,
          windowsJob: instance.windowsJob,
          onOutput: (stream, line) => session.noteOutput(stream, line),
          ...(runtime.containment !== undefined && { containment: runtime.containment }),
          onRolesChanged: (roles) => {
            for (const role of [roles.shell, roles.python]) if (role !== undefined) session.seenPids.add(role.pid);
            runtime.notifyRoles?.(roles.shell?.pid, roles.python?.pid);
            void registry?.update(marker, { ...(roles.shell && { shellPid: roles.shell.pid }), ...(roles.python && { pythonPid: roles.python.pid }) }).catch((error: unknown) => runtime.logger.error({ err: error }, 'registry update failed'));
          },
        });
        runtime.handle = handle;
        session.launched(handle);
        const record = { instanceId: handle.instanceId, marker: handle.marker, root: handle.root, pgid: handle.pgid, ...(handle.cgroup !== undefined && { cgroup: handle.cgroup }) };
        // Windows: the record carries the tree tracker's record; the sampler rewrites it whenever the tracker adopts.
        runtime.windowsPersisted = handle.windows?.adoptions ?? -1;
        await registry?.add(launchRecord(handle));
        await sentinel?.track(record);
        if (handle.windows !== undefined) await windowsGuard?.track(handle.windows);
        publish({ type: 'launch', at: Date.now(), instance: instance.id, pid: handle.root.pid, marker });
        runtime.logger.info({ pid: handle.root.pid, marker }, 'launched');
        return {
          pid: handle.root.pid,
          ...(handle.pgid !== undefined && { pgid: handle.pgid }),
          ...(handle.shell !== undefined && { shellPid: handle.shell.pid }),
          ...(handle.python !== undefined && { pythonPid: handle.python.pid }),
          marker,
          startedAt: Date.now(),
        };
      } catch (error) {
        if (runtime.handle?.marker !== marker) await sentinel?.untrack(marker);
        throw error;
      } finally {
        runtime.pendingMarker = undefined;
      }
    })();
    runtime.launching = work.catch(() => undefined);
    return work;
  });

  const monitorTree = fromCallback<EventObject, MonitorInput>(({ input, sendBack }) => {
    const runtime = runtimeOf(input.id);
    const handle = runtime.handle;
    let stopped = false;
    const send = (event: MonitorEvent): void => {
      if (!stopped) sendBack(event);
    };
    if (handle === undefined) {
      send({ type: 'PROCESS_EXITED', code: null, signal: null, at: Date.now() });
      return () => undefined;
    }
    runtime.notifyRoles = (shellPid, pythonPid) =>
      send({ type: 'PIDS_DISCOVERED', ...(shellPid !== undefined && { shellPid }), ...(pythonPid !== undefined && { pythonPid }) });
    if (handle.shell !== undefined || handle.python !== undefined) runtime.notifyRoles(handle.shell?.pid, handle.python?.pid);
    void handle.exited.then((exit) => send({ type: 'PROCESS_EXITED', code: exit.code, signal: exit.signal, at: Date.now() }));

    const health = runtime.config.health;
    const { session } = runtime;
    const plan = session.plan;
    let timer: NodeJS.Timeout | undefined;
    if (health === null || plan?.healthUrl == null) {
      session.ready = true;
      if (input.phase === 'startup') queueMicrotask(() => send({ type: 'HEALTHY', at: Date.now() }));
    } else {
      let failures = 0;
      // The app restarting itself in place (A1111 tmp/restart): tolerated for startupTimeoutMs, then ready again.
      let relaunchedAt: number | null = null;
      let relaunches = session.relaunches;
      let readyPython = handle.python?.pid;
      // Readiness polls faster than liveness: a start should not wait a whole interval past the moment it is up.
      const every = input.phase === 'startup' ? Math.min(health.intervalMs, 250) : health.intervalMs;
      const probe = async (): Promise<void> => {
        if (input.phase === 'liveness' && plan.relaunchLine !== null && (session.relaunches !== relaunches || (readyPython !== undefined && handle.python !== undefined && handle.python.pid !== readyPython))) {
          relaunches = session.relaunches;
          readyPython = handle.python?.pid;
          relaunchedAt = Date.now();
          session.ready = false;
          runtime.logger.info({ pythonPid: handle.python?.pid }, 'the WebUI restarts itself in place; the same instance keeps tracking it');
        }
        let result = await probeHealth(plan.healthUrl as string, health.timeoutMs);
        if (result.ok && !session.ready) result = await probeReadiness(plan, session.lineSeen, health.timeoutMs);
        if (stopped) return;
        if (result.ok) {
          failures = 0;
          relaunchedAt = null;
          readyPython = handle.python?.pid;
          session.ready = true;
          if (input.phase === 'startup') return send({ type: 'HEALTHY', at: Date.now() });
        } else if (input.phase === 'liveness' && relaunchedAt !== null && Date.now() - relaunchedAt < runtime.config.startupTimeoutMs) {
          // Not a failure yet: the relaunched Python is still loading.
        } else if (input.phase === 'liveness') {
          session.ready = false;
          failures += 1;
          runtime.logger.warn({ failures, reason: result.reason }, 'health probe failed');
          if (failures >= health.failureThreshold) {
            return send({ type: 'HEALTH_FAILED', reason: `${failures} consecutive health probes failed: ${result.reason ?? 'unknown'}`, at: Date.now() });
          }
        }
        timer = setTimeout(() => void probe(), every);
      };
      timer = setTimeout(() => void probe(), input.phase === 'startup' ? 0 : every);
    }
    return () => {
      stopped = true;
      runtime.notifyRoles = undefined;
      if (timer !== undefined) clearTimeout(timer);
    };
  });

  const terminateTree = fromPromise<MachineReport, TerminateInput>(async ({ input }) => {
    const runtime = runtimeOf(input.id);
    await runtime.launching;
    const handle = runtime.handle;
    if (handle === undefined) {
      // Nothing was launched (the launch failed): the picked port is free again.
      runtime.session.claimedPort = null;
      return { survivors: [], killed: [], escalated: false, durationMs: 0 };
    }
    const graceful = runtime.config.gracefulStop;
    const polite = graceful !== null && input.attempt === 0 && !hurry && (input.reason === 'stop' || input.reason === 'restart' || input.reason === 'shutdown');
    // How the root ended by itself, read before any signal of ours (a SIGKILL then was not Warden's).
    const exitedAlone = handle.hasExited ? await handle.exited : undefined;
    const stopUrl = runtime.session.plan?.stopUrl ?? graceful?.url;
    const terminated = await terminate(handle, {
      graceMs: runtime.config.stopGraceMs,
      immediate: input.attempt > 0 || hurry,
      shouldHurry: () => hurry,
      ...(polite && stopUrl !== undefined && { beforeSignals: () => postQuietly(stopUrl, graceful.timeoutMs) }),
    });
    runtime.session.ready = false;
    runtime.session.restarting = input.reason !== 'stop' && input.reason !== 'shutdown';
    const hints = input.reason === 'crash' && input.attempt === 0 ? runtime.session.hints(handle, exitedAlone) : [];
    const report = hints.length > 0 ? { ...terminated, hints } : terminated;
    if (hints.length > 0) runtime.logger.warn({ causes: hints.map((hint) => hint.cause) }, `crash: ${hints.map((hint) => hint.message).join('; ')}`);
    publish({ type: 'termination', at: Date.now(), instance: input.id, reason: input.reason, report, ...(hints.length > 0 && { hints }) });
    runtime.logger.info({ reason: input.reason, killed: report.killed.length, survivors: report.survivors.length, ms: Math.round(report.durationMs) }, 'terminate finished');
    if (report.survivors.length === 0) {
      handle.dispose();
      runtime.session.output.endFile();
      runtime.session.claimedPort = null;
      runtime.handle = undefined;
      await registry?.remove(handle.marker);
      await sentinel?.untrack(handle.marker);
      await windowsGuard?.untrack(handle.root.pid);
    }
    return report;
  });

  const reapOrphans = fromPromise<unknown, EmergencyInput>(async () => {
    if (registry === undefined) return { entries: 0 };
    const report = await reapLeftovers({ registry, instanceIds: runtimes.keys(), liveMarkers: liveMarkers(), graceMs: 1000, stateDir: config.stateDir });
    publish({ type: 'reap', at: Date.now(), report });
    return { reaped: report.entries.filter((entry) => entry.action === 'reaped').length, survivors: report.survivors.length };
  });

  const writeBundle = fromPromise<unknown, EmergencyInput>(async ({ input }) => {
    const path = await writeDiagnosticBundle(config.stateDir, {
      reason: `${input.level}: ${input.reason}`,
      table: await snapshot({ cmdline: true }),
      machines: actor.getPersistedSnapshot(),
      events: [...history, ...recentSamples].sort((a, b) => a.at - b.at),
      config,
      logTail: logTail.lines(),
    });
    publish({ type: 'bundle', at: Date.now(), path });
    logger.error({ path }, 'diagnostic bundle written');
    return { path };
  });

  const machine = supervisorMachine.provide({
    actors: {
      instance: instanceMachine.provide({ actors: { launchTree, monitorTree, terminateTree } }),
      reapOrphans,
      writeDiagnosticBundle: writeBundle,
    },
  });
  const actor = createActor(machine, {
    input: {
      instances: config.instances.map((instance) => ({
        id: instance.id,
        startupTimeoutMs: instance.startupTimeoutMs,
        restart: instance.restart,
        maxStopAttempts: instance.maxStopAttempts,
      })),
      watchdog: {
        warning: config.watchdog.warning,
        critical: config.watchdog.critical,
        emergencyWindowMs: config.watchdog.emergencyWindowMs,
        calmSamples: config.watchdog.calmSamples,
      },
    },
    ...(options.inspect !== undefined && { inspect: options.inspect }),
  });

  actor.on('*', (emitted) => {
    const at = Date.now();
    const event = emitted as { type: string } & Record<string, unknown>;
    if (event.type === 'ALERT') {
      publish({ type: 'alert', at, source: 'watchdog', level: event.level as WatchdogLevel, message: String(event.reason) });
    } else if (event.type === 'RUNAWAY') {
      publish({ type: 'emergency', at, level: String(event.level), reason: String(event.reason) });
    } else if (event.type === 'INSTANCE_ALERT') {
      const alert = event.alert as { message: string };
      publish({ type: 'alert', at, source: 'instance', level: 'error', message: alert.message, instance: String(event.id) });
    } else if (event.type === 'COMMAND_REFUSED' || event.type === 'CHILD_FAILED') {
      publish({ type: 'alert', at, source: 'supervisor', level: 'error', message: String(event.reason ?? event.error) });
    }
  });

  const instanceActor = (id: string): AnyActorRef | undefined => actor.system.get(instanceKey(id)) as AnyActorRef | undefined;

  // ── Lifecycle ────────────────────────────────────────────────────────────────────────────────────────────

  let readyPromise: Promise<void> | undefined;
  const ready = (): Promise<void> => {
    if (shutdownPromise !== undefined) return Promise.reject(new ShutDownError());
    readyPromise ??= (async () => {
      // Containment is chosen once, before anything spawns; a backend asked for but unavailable throws here.
      for (const runtime of runtimes.values()) {
        runtime.containment ??= chooseContainment(runtime.config.containment, { instanceId: runtime.config.id, windowsJob: runtime.config.windowsJob });
        runtime.logger.info({ containment: runtime.containment }, `containment: ${runtime.containment.backend}`);
      }
      lock = await acquireLock(config.stateDir);
      if (lock.takenOverFrom !== undefined) logger.warn({ previous: lock.takenOverFrom }, 'took over a stale supervisor lock');
      try {
        registry = await Registry.open(config.stateDir);
        const reaped = await reapLeftovers({ registry, instanceIds: runtimes.keys(), stateDir: config.stateDir });
        const acted = reaped.entries.filter((entry) => entry.action === 'reaped');
        if (reaped.entries.length > 0) publish({ type: 'reap', at: Date.now(), report: reaped });
        if (acted.length > 0) logger.warn({ trees: acted.length, survivors: reaped.survivors.length }, 'reaped what an earlier run left');
        for (const entry of reaped.entries.filter((candidate) => candidate.action === 'unprovable')) {
          logger.warn({ marker: entry.marker, problem: entry.problem }, 'a registry record could not be proven; its tree, if any, was left alone');
        }
        if (options.sentinel !== false && process.platform === 'win32') {
          windowsGuard = await startWindowsGuard({ logPath: join(config.stateDir, 'windows-guard.log') });
        } else if (options.sentinel !== false) {
          // Restarted (and re-told every live tree) if it dies while we live.
          sentinel = await keepSentinel({ stateDir: config.stateDir, logger });
        }
        actor.start();
        watchTransitions();
        startSampling();
      } catch (error) {
        await lock.release();
        throw error;
      }
    })();
    // A failed start-up (lock held, registry unreadable) may be retried once its cause is gone.
    readyPromise.catch(() => {
      readyPromise = undefined;
    });
    return readyPromise;
  };

  const watchTransitions = (): void => {
    for (const id of runtimes.keys()) {
      const child = instanceActor(id);
      if (child === undefined) continue;
      let previous: string | null = null;
      let previousTop: InstanceStateName | null = null;
      child.subscribe((snapshot: { value: unknown }) => {
        const detail = statePath(snapshot.value);
        if (detail === previous) return;
        const to = topState(snapshot.value);
        publish({ type: 'transition', at: Date.now(), instance: id, from: previousTop, to, detail });
        previous = detail;
        previousTop = to;
      });
    }
  };

  // Whether the machines must see this sample. At level ok the watchdog decides from counts, per-instance counts
  // and the window minimum alone, so the same figures again change nothing: no event through the actor system
  // (most of a steady supervisor's per-sample cost). Above ok every sample counts (calm samples in a row).
  let lastSent = '';
  const sampleChangesAnything = (sample: Sample): boolean => {
    const level = (actor.getSnapshot().context as { watchdogLevel?: WatchdogLevel }).watchdogLevel ?? 'ok';
    const key = `${JSON.stringify(sample.counts)}|${JSON.stringify(sample.perInstance)}|${sample.windowMin.total}`;
    if (level === 'ok' && key === lastSent) return false;
    lastSent = key;
    return true;
  };

  const startSampling = (): void => {
    sampling = createSampler({
      intervalMs: config.watchdog.sampleIntervalMs,
      emergencyWindowMs: config.watchdog.emergencyWindowMs,
      instances: () =>
        [...runtimes.values()].map((runtime) => ({
          id: runtime.config.id,
          owner: runtime.handle,
          windows: runtime.handle?.windows,
          profile: { cwd: runtime.config.cwd, command: runtime.config.command },
        })),
      liveMarkers,
      stateDir: config.stateDir,
      onTable: (table, ownedById, sampled) => {
        for (const runtime of runtimes.values()) {
          const handle = runtime.handle;
          // Only a launch that existed when this table's read began: an older table may lack its root, and a
          // Windows tracker fed one would take the root for dead and every child for foreign.
          if (handle === undefined || !sampled.some((instance) => instance.owner === handle)) continue;
          const owned = ownedById.get(runtime.config.id);
          handle.identify(table, owned === undefined ? {} : { owned });
          persistWindowsTree(runtime, handle);
        }
      },
      onSampleError: (error) => logger.warn({ err: error }, 'a process-table sample failed; sampling goes on at the next tick'),
    }).subscribe({
      next: (sample) => {
        lastSample = sample;
        for (const [id, counts] of Object.entries(sample.perInstance)) {
          const runtime = runtimes.get(id);
          if (runtime !== undefined) runtime.counts = counts;
        }
        publish({ type: 'sample', at: sample.at, sample });
        for (const group of sample.stale) void reapStale(group);
        if (!sampleChangesAnything(sample)) return;
        actor.send({
          type: 'SAMPLE',
          at: sample.at,
          counts: sample.counts,
          perInstance: sample.perInstance,
          windowMin: sample.windowMin,
        });
      },
      error: (error: unknown) => logger.error({ err: error }, 'sampler failed'),
    });
  };

  // Stale = carries one of our instances' markers, belongs to no live launch: reaped as soon as it is seen.
  const reapStale = async (group: StaleGroup): Promise<void> => {
    if (reapingStale.has(group.marker)) return;
    reapingStale.add(group.marker);
    try {
      orphanedDetected += group.processes.length;
      const oldest = [...group.processes].sort((a, b) => (a.startTime ?? 0) - (b.startTime ?? 0))[0];
      if (oldest === undefined) return;
      // A stale tree still in its launch cgroup is stopped by the cgroup (its clean-environment members too).
      const cgroup = group.processes.map((entry) => launchCgroupOf(entry.pid, group.marker)).find((path) => path !== undefined);
      const report = await terminate(
        { instanceId: group.instanceId, marker: group.marker, root: { pid: oldest.pid, startTime: oldest.startTime, clock: 'proc' }, ...(cgroup !== undefined && { cgroup }) },
        { graceMs: 1000 },
      );
      publish({ type: 'stale-reaped', at: Date.now(), instance: group.instanceId, marker: group.marker, pids: group.processes.map((entry) => entry.pid), report });
      logger.warn({ marker: group.marker, killed: report.killed.length, survivors: report.survivors.length }, 'reaped stale processes');
    } catch (error) {
      // Called fire-and-forget from the sampler: a failure is logged, and the next sample tries again.
      logger.error({ err: error, marker: group.marker }, 'reaping stale processes failed; retried at the next sample');
    } finally {
      reapingStale.delete(group.marker);
    }
  };

  // Waits until the instance's snapshot satisfies `settle` (returns a value) or `fail` (returns an error).
  const waitForInstance = <T>(
    id: string,
    settle: (snapshot: { value: unknown; context: InstanceContext }, seen: Set<InstanceStateName>) => T | undefined,
    fail: (snapshot: { value: unknown; context: InstanceContext }, seen: Set<InstanceStateName>) => Error | undefined,
    timeoutMs?: number,
  ): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const child = instanceActor(id);
      if (child === undefined) return reject(new UnknownInstanceError(id, [...runtimes.keys()]));
      const seen = new Set<InstanceStateName>();
      let timer: NodeJS.Timeout | undefined;
      let subscription: { unsubscribe(): void } | undefined;
      let finished = false;
      const finish = (action: () => void): void => {
        if (finished) return;
        finished = true;
        subscription?.unsubscribe();
        if (timer !== undefined) clearTimeout(timer);
        action();
      };
      const check = (snapshot: { value: unknown; context: InstanceContext }): void => {
        seen.add(topState(snapshot.value));
        const value = settle(snapshot, seen);
        if (value !== undefined) return finish(() => resolve(value));
        const error = fail(snapshot, seen);
        if (error !== undefined) finish(() => reject(error));
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          const snapshot = child.getSnapshot() as { context: InstanceContext };
          const survivors = snapshot.context.lastReport?.survivors ?? [];
          finish(() => reject(new StopTimeoutError(id, survivors, timeoutMs)));
        }, timeoutMs);
      }
      subscription = child.subscribe({ next: check });
      // The commands were sent before subscribing, so the current snapshot counts as seen.
      check(child.getSnapshot() as { value: unknown; context: InstanceContext });
    });

  const statusOf = (id: string): InstanceStatus => {
    const runtime = runtimeOf(id);
    const snapshot = instanceActor(id)?.getSnapshot() as { value: unknown; context: InstanceContext } | undefined;
    const context = snapshot?.context;
    return {
      id,
      state: snapshot === undefined ? 'idle' : topState(snapshot.value),
      detail: snapshot === undefined ? 'idle' : statePath(snapshot.value),
      pid: context?.pid ?? null,
      shellPid: context?.shellPid ?? null,
      pythonPid: context?.pythonPid ?? null,
      restarts: context?.restarts ?? 0,
      desired: context?.desired ?? 'stopped',
      lastExit: context?.lastExit ?? null,
      lastError: context?.lastError ?? null,
      lastReport: context?.lastReport ?? null,
      stopReason: context?.stopReason ?? null,
      counts: runtime.counts,
      ...runtime.session.status(snapshot !== undefined && topState(snapshot.value) === 'running'),
      containment: runtime.containment === undefined ? null : { backend: runtime.containment.backend, reason: runtime.containment.reason, cgroup: runtime.handle?.cgroup ?? null },
    };
  };

  // Ports the other instances' current starts use: a range never hands one of them out again.
  const portsInUse = (self: InstanceRuntime): Set<number> => {
    const ports = new Set<number>();
    for (const other of runtimes.values()) {
      const port = other.session.claimedPort;
      if (other !== self && port !== null) ports.add(port);
    }
    return ports;
  };

  // Sends `command` and waits for running; rejects when the attempt ends crashed/failed/idle, or is refused.
  const driveToRunning = async (id: string, command: 'START' | 'RESTART', overrides?: StartOverrides): Promise<InstanceStatus> => {
    const runtime = runtimeOf(id);
    runtime.session.checkOverrides(overrides);
    await ready();
    const current = topState((instanceActor(id)?.getSnapshot() as { value: unknown } | undefined)?.value ?? 'idle');
    if (command === 'START' && (current === 'running' || current === 'spawning')) {
      if (overrides !== undefined) throw new CommandRefusedError(id, command, `it is already ${current}; restart it to change its arguments`);
    } else {
      runtime.session.overrides = overrides;
      if (command === 'START' && current === 'idle') runtime.session.restarting = false;
    }
    let refused: string | undefined;
    const offRefused = actor.on('COMMAND_REFUSED', (event) => {
      if (event.command === command && (event.id === id || event.id === null)) refused = event.reason;
    });
    // Where the instance stood before the command: a crashed instance in backoff is already on its way back.
    const initial = topState((instanceActor(id)?.getSnapshot() as { value: unknown } | undefined)?.value ?? 'idle');
    actor.send({ type: command, id });
    try {
      return await waitForInstance(
        id,
        (snapshot, seen) => {
          if (topState(snapshot.value) !== 'running') return undefined;
          // A restart of a running instance must have gone through stopping: the old tree confirmed dead.
          if (command === 'RESTART' && initial === 'running' && !seen.has('stopping')) return undefined;
          return statusOf(id);
        },
        (snapshot, seen) => {
          const state = topState(snapshot.value);
          if (refused !== undefined) return new CommandRefusedError(id, command, refused);
          const attempted = seen.has('spawning') || initial !== 'crashed';
          if ((state === 'crashed' && attempted) || state === 'failed') {
            if (runtime.refusal !== undefined) {
              // Refused before anything was spawned: retrying cannot help, so stand down and say why.
              actor.send({ type: 'STOP', id });
              return runtime.refusal;
            }
            return new StartError(id, state, withHints(snapshot.context.lastError ?? 'the tree exited', runtime.session.lastHints));
          }
          if (state === 'idle' && (seen.has('stopping') || seen.has('spawning'))) return new StartError(id, state, 'stopped before it became healthy');
          return undefined;
        },
      );
    } finally {
      offRefused.unsubscribe();
    }
  };

  const start = (id: string, overrides?: StartOverrides): Promise<InstanceStatus> => driveToRunning(id, 'START', overrides);

  // Resolves with the report once the tree is confirmed dead. Rejects with StopIncompleteError as soon as the
  // machine stops retrying (stopping.stuck: EPERM survivors or attempts spent), and with StopTimeoutError at the
  // deadline (default: the instance's stopGraceMs + 30 s); both name the survivors, and neither launches anything.
  const stop = async (id: string, stopOptions: { timeoutMs?: number } = {}): Promise<MachineReport> => {
    const runtime = runtimeOf(id);
    if (readyPromise === undefined) return { survivors: [], killed: [], escalated: false, durationMs: 0 };
    await ready();
    actor.send({ type: 'STOP', id });
    return waitForInstance(
      id,
      (snapshot) => {
        const state = topState(snapshot.value);
        if (state !== 'idle' && state !== 'failed') return undefined;
        return snapshot.context.lastReport ?? { survivors: [], killed: [], escalated: false, durationMs: 0 };
      },
      (snapshot) => {
        if (statePath(snapshot.value) !== 'stopping.stuck') return undefined;
        const survivors = snapshot.context.lastReport?.survivors ?? [];
        const denied = survivors.length > 0 && survivors.every((survivor) => survivor.denied === true);
        return new StopIncompleteError(
          id,
          survivors,
          denied
            ? 'They refuse our signals (EPERM: another user owns them); end them as that user, then stop again.'
            : `${snapshot.context.maxStopAttempts} terminate attempts made; see lastReport, then stop again.`,
        );
      },
      stopOptions.timeoutMs ?? runtime.config.stopGraceMs + 30_000,
    );
  };

  const restart = (id: string, overrides?: StartOverrides): Promise<InstanceStatus> => driveToRunning(id, 'RESTART', overrides);

  const logs = (id: string, logOptions: { tail?: number } = {}): InstanceLogs => {
    const { session } = runtimeOf(id);
    const tail = logOptions.tail ?? 100;
    if (!Number.isInteger(tail) || tail < 0 || tail > MAX_TAIL) throw new WardenError('BAD_TAIL', `tail must be an integer from 0 to ${MAX_TAIL} (got ${String(tail)})`);
    return { id, lines: session.output.tail(tail), file: session.output.file };
  };

  const shutdown = (): Promise<ShutdownReport> => {
    shutdownPromise ??= (async () => {
      const started = performance.now();
      sampling?.unsubscribe();
      let output: SupervisorOutput | undefined;
      const wasReady = readyPromise !== undefined && (await readyPromise.then(() => true, () => false));
      if (wasReady) {
        const timeoutMs =
          options.shutdownTimeoutMs ?? Math.max(0, ...config.instances.map((instance) => instance.stopGraceMs)) + 30_000;
        output = await new Promise<SupervisorOutput | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), timeoutMs);
          const done = (snapshot: { status: string; output?: SupervisorOutput }): void => {
            if (snapshot.status === 'done') {
              clearTimeout(timer);
              resolve(snapshot.output);
            }
          };
          actor.subscribe({ next: done, error: () => resolve(undefined) });
          actor.send({ type: 'SHUTDOWN' });
          done(actor.getSnapshot() as { status: string; output?: SupervisorOutput });
        });
      }
      const instances = output?.instances ?? config.instances.map((instance) => {
        const status = statusOf(instance.id);
        const survivors = status.lastReport?.survivors ?? [];
        return { id: instance.id, state: status.state, confirmedDead: false, stuck: false, survivors, lastReport: status.lastReport, lastError: status.lastError };
      });
      const survivors = instances.flatMap((entry) =>
        entry.confirmedDead ? [] : entry.survivors.map((survivor) => ({ instance: entry.id, pid: survivor.pid, name: survivor.name, role: survivor.role })),
      );
      const ok = !wasReady || (output?.ok ?? false);
      if (ok) {
        actor.stop();
        await sentinel?.goodbye();
        await windowsGuard?.goodbye();
      } else {
        // Not confirmed: keep the sentinel armed, so the trees die with this process at the latest.
        logger.error({ survivors }, 'shutdown could not confirm every tree dead; the sentinel stays armed');
      }
      await lock?.release();
      for (const runtime of runtimes.values()) runtime.session.output.close();
      logger.flush();
      events.complete();
      return { ok, instances, survivors, durationMs: performance.now() - started };
    })();
    return shutdownPromise;
  };

  if (options.handleSignals !== undefined && options.handleSignals !== false) {
    const signalOptions = options.handleSignals === true ? {} : options.handleSignals;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (shutdownPromise === undefined) {
        logger.warn({ signal }, 'shutting down (send the signal again to skip the grace period)');
        void shutdown()
          .then(async (report) => {
            await signalOptions.onShutdown?.(report);
            if (signalOptions.exit !== false) process.exit(report.ok ? 0 : 1);
          })
          .catch((error: unknown) => {
            logger.fatal({ err: error }, 'shutdown failed');
            if (signalOptions.exit !== false) process.exit(1);
          });
      } else {
        hurry = true;
        logger.warn({ signal }, 'second signal: SIGKILL fast path (still confirmed)');
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // The terminal closed (ssh dropped, window shut): Node's default would exit without the shutdown.
    process.on('SIGHUP', onSignal);
    installRejectionLogger(logger);
  }

  return {
    config,
    actor,
    events$: events.asObservable(),
    ready,
    start,
    stop,
    restart,
    logs,
    output$: (id) => runtimeOf(id).session.output.lines$,
    reset: (id) => {
      if (id !== undefined) runtimeOf(id);
      actor.send(id === undefined ? { type: 'RESET' } : { type: 'RESET', id });
    },
    status: () => ({
      instances: config.instances.map((instance) => statusOf(instance.id)),
      watchdog: {
        level: (actor.getSnapshot().context as { watchdogLevel?: WatchdogLevel }).watchdogLevel ?? 'ok',
        counts: lastSample?.counts ?? null,
      },
      holdRestarts: (actor.getSnapshot().context as { holdRestarts?: boolean }).holdRestarts ?? false,
      orphanedDetected,
    }),
    shutdown,
  };
}

let rejectionLoggerInstalled = false;

// A supervisor owns other processes' lives: one stray rejected promise (a library's, a callback's) must not end
// it and orphan every tree. Logged with its stack, once per process however many supervisors there are.
function installRejectionLogger(logger: Logger): void {
  if (rejectionLoggerInstalled) return;
  rejectionLoggerInstalled = true;
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled promise rejection (logged; the supervisor keeps running)'));
}
