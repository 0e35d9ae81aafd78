// The instance machine's side effects as real actors: launch a tree, monitor it (exit, pids, health), stop it and persist its record.
import { fromCallback, fromPromise } from 'xstate';
import type { EventObject } from 'xstate';
import type {
  LaunchInput,
  LaunchOutput,
  MonitorEvent,
  MonitorInput,
  TerminateInput,
  TerminationReport as MachineReport } from '../../machines/index.js';
import { WardenError } from '../errors.js';
import { postQuietly, probeHealth } from '../health.js';
import { preflight } from '../preflight.js';
import { STATE_DIR_VARIABLE, launch, newMarker, terminate } from '../process/index.js';
import type { TreeHandle } from '../process/index.js';
import { launchRecord } from '../process/state/registry.js';
import { probeReadiness } from '../profiles.js';
import type { LaunchPlan } from '../profiles.js';
import type { InstanceRuntime, SupervisorCore } from './core.js';

// The launchTree, monitorTree and terminateTree actors of one supervisor, over its shared core.
export function createInstanceActors(core: SupervisorCore) {
  // Windows: rewrites the launch's tree record in the registry when its tracker adopted a process since the last
  // write (a force-closed supervisor's next start reaps from it); nothing is written while nothing changed.
  const persistWindowsTree = (runtime: InstanceRuntime, handle: TreeHandle): void => {
    const tracker = handle.windows;
    if (tracker === undefined || core.registry === undefined || tracker.adoptions === runtime.windowsPersisted) return;
    runtime.windowsPersisted = tracker.adoptions;
    // No record to update (removed after a confirmed stop) is fine; a failed write is retried at the next sample.
    core.registry.update(handle.marker, { windows: tracker.toJSON() }).catch((error: unknown) => {
      if (runtime.handle === handle) runtime.windowsPersisted = -1;
      runtime.logger.error({ err: error }, 'registry update failed (Windows tree record)');
    });
  };

  // Ports the other instances' current starts use: a range never hands one of them out again.
  const portsInUse = (self: InstanceRuntime): Set<number> => {
    const ports = new Set<number>();
    for (const other of core.runtimes.values()) {
      const port = other.session.claimedPort;
      if (other !== self && port !== null) ports.add(port);
    }
    return ports;
  };

  const launchTree = fromPromise<LaunchOutput, LaunchInput>(async ({ input }) => {
    const runtime = core.runtimeOf(input.id);
    const work = (async (): Promise<LaunchOutput> => {
      runtime.refusal = undefined;
      const { config: instance, session } = runtime;
      let plan: LaunchPlan;
      try {
        // One pick at a time: two instances sharing a range must not both bind-test the same free port.
        const picked = core.portPicks.then(() => session.prepare(portsInUse(runtime)));
        core.portPicks = picked.catch(() => undefined);
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
      await core.sentinel?.track({ instanceId: instance.id, marker, root: { pid: 0, startTime: undefined } });
      try {
        const handle = await launch({
          instanceId: instance.id,
          command: instance.command,
          args: plan.args,
          cwd: instance.cwd,
          env: { ...plan.env, [STATE_DIR_VARIABLE]: core.config.stateDir },
          marker,
          logger: runtime.logger,
          windowsJob: instance.windowsJob,
          onOutput: (stream, line) => session.noteOutput(stream, line),
          ...(runtime.containment !== undefined && { containment: runtime.containment }),
          onRolesChanged: (roles) => {
            for (const role of [roles.shell, roles.python]) if (role !== undefined) session.seenPids.add(role.pid);
            runtime.notifyRoles?.(roles.shell?.pid, roles.python?.pid);
            void core.registry?.update(marker, { ...(roles.shell && { shellPid: roles.shell.pid }), ...(roles.python && { pythonPid: roles.python.pid }) }).catch((error: unknown) => runtime.logger.error({ err: error }, 'registry update failed'));
          },
        });
        runtime.handle = handle;
        session.launched(handle);
        const record = { instanceId: handle.instanceId, marker: handle.marker, root: handle.root, pgid: handle.pgid, ...(handle.cgroup !== undefined && { cgroup: handle.cgroup }) };
        // Windows: the record carries the tree tracker's record; the sampler rewrites it whenever the tracker adopts.
        runtime.windowsPersisted = handle.windows?.adoptions ?? -1;
        await core.registry?.add(launchRecord(handle));
        await core.sentinel?.track(record);
        if (handle.windows !== undefined) await core.windowsGuard?.track(handle.windows);
        core.publish({ type: 'launch', at: Date.now(), instance: instance.id, pid: handle.root.pid, marker });
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
        if (runtime.handle?.marker !== marker) await core.sentinel?.untrack(marker);
        throw error;
      } finally {
        runtime.pendingMarker = undefined;
      }
    })();
    runtime.launching = work.catch(() => undefined);
    return work;
  });

  const monitorTree = fromCallback<EventObject, MonitorInput>(({ input, sendBack }) => {
    const runtime = core.runtimeOf(input.id);
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
    const runtime = core.runtimeOf(input.id);
    await runtime.launching;
    const handle = runtime.handle;
    if (handle === undefined) {
      // Nothing was launched (the launch failed): the picked port is free again.
      runtime.session.claimedPort = null;
      return { survivors: [], killed: [], escalated: false, durationMs: 0 };
    }
    const graceful = runtime.config.gracefulStop;
    const polite = graceful !== null && input.attempt === 0 && !core.hurry && (input.reason === 'stop' || input.reason === 'restart' || input.reason === 'shutdown');
    // How the root ended by itself, read before any signal of ours (a SIGKILL then was not Warden's).
    const exitedAlone = handle.hasExited ? await handle.exited : undefined;
    const stopUrl = runtime.session.plan?.stopUrl ?? graceful?.url;
    const terminated = await terminate(handle, {
      graceMs: runtime.config.stopGraceMs,
      immediate: input.attempt > 0 || core.hurry,
      shouldHurry: () => core.hurry,
      ...(polite && stopUrl !== undefined && { beforeSignals: () => postQuietly(stopUrl, graceful.timeoutMs) }),
    });
    runtime.session.ready = false;
    runtime.session.restarting = input.reason !== 'stop' && input.reason !== 'shutdown';
    const hints = input.reason === 'crash' && input.attempt === 0 ? runtime.session.hints(handle, exitedAlone) : [];
    const report = hints.length > 0 ? { ...terminated, hints } : terminated;
    if (hints.length > 0) runtime.logger.warn({ causes: hints.map((hint) => hint.cause) }, `crash: ${hints.map((hint) => hint.message).join('; ')}`);
    core.publish({ type: 'termination', at: Date.now(), instance: input.id, reason: input.reason, report, ...(hints.length > 0 && { hints }) });
    runtime.logger.info({ reason: input.reason, killed: report.killed.length, survivors: report.survivors.length, ms: Math.round(report.durationMs) }, 'terminate finished');
    if (report.survivors.length === 0) {
      handle.dispose();
      runtime.session.output.endFile();
      runtime.session.claimedPort = null;
      runtime.handle = undefined;
      await core.registry?.remove(handle.marker);
      await core.sentinel?.untrack(handle.marker);
      await core.windowsGuard?.untrack(handle.root.pid);
    }
    return report;
  });

  return { launchTree, monitorTree, terminateTree, persistWindowsTree };
}
