// createSupervisor, the public facade: the machines in machines/ wired to real processes, the sampler, the registry, the lock and the sentinel.
import { join } from 'node:path';
import type { Subscription } from 'rxjs';
import { createActor } from 'xstate';
import type { AnyActorRef } from 'xstate';
import { instanceKey, instanceMachine, supervisorMachine } from '../../machines/index.js';
import type {
  InstanceContext,
  InstanceStateName,
  SupervisorOutput,
  TerminationReport as MachineReport,
  WatchdogLevel } from '../../machines/index.js';
import { parseConfig } from '../config/index.js';
import { CommandRefusedError, ShutDownError, StartError, StopIncompleteError, StopTimeoutError, UnknownInstanceError, WardenError } from '../errors.js';
import { createTailedLogger } from '../logging.js';
import type { LogTail, Logger } from '../logging.js';
import { acquireLock } from '../process/state/lock.js';
import { reapLeftovers } from '../process/state/reap.js';
import { Registry } from '../process/state/registry.js';
import { chooseContainment } from '../process/containment.js';
import { keepSentinel } from '../process/state/sentinel-keeper.js';
import { startWindowsGuard } from '../process/windows/index.js';
import type { StartOverrides } from '../profiles.js';
import { withHints } from '../webui-session.js';
import { createCore } from './core.js';
import { createInstanceActors } from './instance-actors.js';
import { createEmergencyActors } from './emergency.js';
import { createStaleReaper } from './stale-reaping.js';
import { startSampling } from './sampling.js';
import type { InstanceLogs, InstanceStatus, ShutdownReport, Supervisor, SupervisorOptions } from './types.js';
import { MAX_TAIL, statePath, topState } from './core.js';

export type * from './types.js';

// Validates the config (throwing ConfigError naming each bad field) and builds a supervisor; nothing runs until start().
export function createSupervisor(input: unknown, options: SupervisorOptions = {}): Supervisor {
  const config = parseConfig(input, options.baseDir === undefined ? {} : { baseDir: options.baseDir });
  const tailed = options.logger === undefined ? createTailedLogger() : undefined;
  const logger: Logger = options.logger ?? (tailed as { logger: Logger }).logger;
  const logTail: LogTail = tailed?.tail ?? { lines: () => [] };
  const core = createCore(config, logger, logTail);
  const { events, publish, runtimes, runtimeOf } = core;
  let sampling: Subscription | undefined;
  let shutdownPromise: Promise<ShutdownReport> | undefined;

  // The machines' side effects, as real actors (runtime/instance-actors.ts, runtime/emergency.ts).
  const { launchTree, monitorTree, terminateTree, persistWindowsTree } = createInstanceActors(core);
  const { reapOrphans, writeBundle } = createEmergencyActors(core, () => actor.getPersistedSnapshot());
  const reapStale = createStaleReaper(core);

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
      core.lock = await acquireLock(config.stateDir);
      if (core.lock.takenOverFrom !== undefined) logger.warn({ previous: core.lock.takenOverFrom }, 'took over a stale supervisor lock');
      try {
        core.registry = await Registry.open(config.stateDir);
        const reaped = await reapLeftovers({ registry: core.registry, instanceIds: runtimes.keys(), stateDir: config.stateDir });
        const acted = reaped.entries.filter((entry) => entry.action === 'reaped');
        if (reaped.entries.length > 0) publish({ type: 'reap', at: Date.now(), report: reaped });
        if (acted.length > 0) logger.warn({ trees: acted.length, survivors: reaped.survivors.length }, 'reaped what an earlier run left');
        for (const entry of reaped.entries.filter((candidate) => candidate.action === 'unprovable')) {
          logger.warn({ marker: entry.marker, problem: entry.problem }, 'a registry record could not be proven; its tree, if any, was left alone');
        }
        if (options.sentinel !== false && process.platform === 'win32') {
          core.windowsGuard = await startWindowsGuard({ logPath: join(config.stateDir, 'windows-guard.log') });
        } else if (options.sentinel !== false) {
          // Restarted (and re-told every live tree) if it dies while we live.
          core.sentinel = await keepSentinel({ stateDir: config.stateDir, logger });
        }
        actor.start();
        watchTransitions();
        sampling = startSampling(core, actor, persistWindowsTree, reapStale);
      } catch (error) {
        await core.lock.release();
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

  // Waits until the instance's snapshot satisfies `settle` (returns a value) or `fail` (returns an error).
  const waitForInstance = <T>(
    id: string,
    settle: (snapshot: { value: unknown; context: InstanceContext }, seen: Set<InstanceStateName>) => T | undefined,
    fail: (snapshot: { value: unknown; context: InstanceContext }, seen: Set<InstanceStateName>) => Error | undefined,
    timeoutMs?: number,
  ): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const child = instanceActor(id);
      if (child === undefined) return reject(new UnknownInstanceError(id, [...core.runtimes.keys()]));
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
        await core.sentinel?.goodbye();
        await core.windowsGuard?.goodbye();
      } else {
        // Not confirmed: keep the sentinel armed, so the trees die with this process at the latest.
        logger.error({ survivors }, 'shutdown could not confirm every tree dead; the sentinel stays armed');
      }
      await core.lock?.release();
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
        core.hurry = true;
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
        counts: core.lastSample?.counts ?? null,
      },
      holdRestarts: (actor.getSnapshot().context as { holdRestarts?: boolean }).holdRestarts ?? false,
      orphanedDetected: core.orphanedDetected,
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
