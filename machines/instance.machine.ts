// One WebUI instance: idle → spawning → running → stopping → (idle | crashed → backoff → spawning | failed).
//
// The rule the incident broke is the shape of this machine: every way out of `stopping` carries the guard
// `treeConfirmedDead` (a terminateTree report with no survivors), and every failure while spawning or running goes
// through `stopping` before `crashed`, so nothing is ever launched while an old tree may still be alive.
//
// Time: the machine never reads a clock. Every duration is a named delay (`startupTimeout`, `backoff`, `retryStop`,
// `resetAfter`) or a delayed event, all run by the actor system's clock (real timers in production, SimulatedClock in
// tests). The restart budget is a count of restarts in the sliding window: each restart raises a delayed
// RESTART_WINDOW_EXPIRED that takes it off the count windowMs later; `restartEpoch` invalidates the pending ones when
// the count is reset (after resetAfterMs of stable running, or RESET). `budgetExceeded()` in backoff.ts is the same
// rule over timestamps, for status displays and tests.
//
// Parent: if the instance has a parent actor (the supervisor), it sends it INSTANCE_CHANGED on every top-level state
// entry (and on STOP while already idle/failed, as an acknowledgement) and INSTANCE_ALERT with every alert. Standalone
// it sends nothing. Alerts are also `emit`ted (`actor.on('ALERT', ...)`).
import { and, assign, enqueueActions, fromCallback, fromPromise, setup } from 'xstate';
import type { DoneActorEvent, ErrorActorEvent, EventObject } from 'xstate';
import { backoffDelay, restartBudgetSpent, restartPolicyProblems, seedFromId } from './backoff.js';
import type {
  InstanceAlert,
  InstanceCommand,
  InstanceInput,
  InstanceNotification,
  InstanceStateName,
  LaunchInput,
  LaunchOutput,
  MonitorEvent,
  MonitorInput,
  RestartPolicy,
  StopReason,
  TerminateInput,
  TerminationReport,
} from './types.js';

/** Default pause before an escalated terminate retry. */
export const DEFAULT_RETRY_STOP_DELAY_MS = 1000;
/** Default number of terminate attempts in one `stopping` before it stops retrying (`stopping.stuck`). */
export const DEFAULT_MAX_STOP_ATTEMPTS = 5;

/** Everything the status API shows about an instance. JSON only: it must serialize for the inspector. */
export interface InstanceContext {
  id: string;
  policy: RestartPolicy;
  startupTimeoutMs: number;
  retryStopDelayMs: number;
  maxStopAttempts: number;
  seed: number;
  /** What the user last asked for; decides where `stopping` goes once the tree is dead. */
  desired: 'running' | 'stopped';
  pid: number | null;
  pgid: number | null;
  shellPid: number | null;
  pythonPid: number | null;
  marker: string | null;
  startedAt: number | null;
  runningSince: number | null;
  /** Restarts in the current window (the budget count; also the backoff exponent). */
  restarts: number;
  /** Bumped when the count is reset, so window expiries scheduled before no longer apply. */
  restartEpoch: number;
  lastExit: { code: number | null; signal: string | null; at: number | null } | null;
  lastError: string | null;
  lastReport: TerminationReport | null;
  /** Why the current (or last) `stopping` began. */
  stopReason: StopReason | null;
  /** terminateTree attempt within the current `stopping`: 0 normal, 1+ escalated. */
  attempt: number;
}

/** Every event the instance machine handles (commands, monitor reports, its own window expiries). */
export type InstanceEvent = InstanceCommand | MonitorEvent | { type: 'RESTART_WINDOW_EXPIRED'; epoch: number };

const notProvided = (name: string): Error =>
  new Error(`${name} is not provided: give it with instanceMachine.provide({ actors: { ${name} } })`);

/** Placeholder: spawns the tree. The runtime provides the real one (it should honour `signal`: STOP cancels). */
export const launchTree = fromPromise<LaunchOutput, LaunchInput>(async () => {
  throw notProvided('launchTree');
});

/** Placeholder: watches exit and health, and sends MonitorEvents back. */
export const monitorTree = fromCallback<EventObject, MonitorInput>(() => {
  throw notProvided('monitorTree');
});

/** Placeholder: runs the stop protocol and resolves with what it observed. */
export const terminateTree = fromPromise<TerminationReport, TerminateInput>(async () => {
  throw notProvided('terminateTree');
});

const describeError = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === 'string' ? error : JSON.stringify(error) ?? String(error);

// The report carried by terminateTree's done event (undefined for any other event).
const reportOf = (event: EventObject): TerminationReport | undefined =>
  event.type === 'xstate.done.actor.terminate' ? (event as DoneActorEvent<TerminationReport>).output : undefined;

const errorOf = (event: EventObject): unknown => (event as ErrorActorEvent).error;

/** The initial context for an input; throws naming each invalid field. */
export function instanceContext(input: InstanceInput): InstanceContext {
  const problems = restartPolicyProblems(input.restart);
  if (typeof input.id !== 'string' || input.id === '') problems.unshift(`id must be a non-empty string, received ${JSON.stringify(input.id)}`);
  if (input.maxStopAttempts !== undefined && !(Number.isInteger(input.maxStopAttempts) && input.maxStopAttempts >= 1)) {
    problems.push(`maxStopAttempts must be an integer >= 1, received ${JSON.stringify(input.maxStopAttempts)}`);
  }
  if (!(input.startupTimeoutMs >= 0)) problems.push(`startupTimeoutMs must be a number >= 0, received ${JSON.stringify(input.startupTimeoutMs)}`);
  if (problems.length > 0) throw new Error(`Invalid instance "${String(input.id)}": ${problems.join('; ')}`);
  return {
    id: input.id,
    policy: { ...input.restart },
    startupTimeoutMs: input.startupTimeoutMs,
    retryStopDelayMs: input.retryStopDelayMs ?? DEFAULT_RETRY_STOP_DELAY_MS,
    maxStopAttempts: input.maxStopAttempts ?? DEFAULT_MAX_STOP_ATTEMPTS,
    seed: input.seed ?? seedFromId(input.id),
    desired: 'stopped',
    pid: null,
    pgid: null,
    shellPid: null,
    pythonPid: null,
    marker: null,
    startedAt: null,
    runningSince: null,
    restarts: 0,
    restartEpoch: 0,
    lastExit: null,
    lastError: null,
    lastReport: null,
    stopReason: null,
    attempt: 0,
  };
}

/** The instance machine. Provide launchTree, monitorTree and terminateTree with `.provide({ actors })`. */
export const instanceMachine = setup({
  types: {} as {
    context: InstanceContext;
    events: InstanceEvent;
    input: InstanceInput;
    emitted: InstanceAlert;
  },
  actors: { launchTree, monitorTree, terminateTree },
  guards: {
    // The only way out of `stopping`: terminateTree observed no survivor (a malformed report counts as survivors).
    treeConfirmedDead: ({ event }) => {
      const report = reportOf(event);
      return report !== undefined && Array.isArray(report.survivors) && report.survivors.length === 0;
    },
    // No retry can help: every survivor refuses our signals (EPERM), or this was the last attempt allowed.
    stopHopeless: ({ context, event }) => {
      if (context.attempt + 1 >= context.maxStopAttempts) return true;
      const survivors = reportOf(event)?.survivors;
      return Array.isArray(survivors) && survivors.length > 0 && survivors.every((survivor) => survivor.denied === true);
    },
    stopWanted: ({ context }) => context.desired === 'stopped',
    stoppedForCrash: ({ context }) => context.stopReason === 'crash',
    restartDisabled: ({ context }) => !context.policy.onCrash,
    restartBudgetSpent: ({ context }) => restartBudgetSpent(context.restarts, context.policy),
    hasRestarts: ({ context }) => context.restarts > 0,
    currentRestartEpoch: ({ context, event }) =>
      event.type === 'RESTART_WINDOW_EXPIRED' && event.epoch === context.restartEpoch,
  },
  delays: {
    startupTimeout: ({ context }) => context.startupTimeoutMs,
    backoff: ({ context }) => backoffDelay(context.restarts, context.policy, context.seed),
    retryStop: ({ context }) => context.retryStopDelayMs,
    resetAfter: ({ context }) => context.policy.resetAfterMs,
  },
  actions: {
    wantRunning: assign({ desired: 'running' as const }),
    wantStopped: assign({ desired: 'stopped' as const }),
    // A user STOP: stop for the reason it carries (stop, shutdown or emergency) and stay stopped.
    stopRequested: assign(({ event }) => ({
      desired: 'stopped' as const,
      stopReason: event.type === 'STOP' ? (event.reason ?? 'stop') : ('stop' as StopReason),
    })),
    restartRequested: assign({ desired: 'running' as const, stopReason: 'restart' as const }),
    stopForCrash: assign({ stopReason: 'crash' as const }),
    resetAttempt: assign({ attempt: 0 }),
    escalate: assign(({ context }) => ({ attempt: context.attempt + 1 })),
    recordLaunch: assign((_, out: LaunchOutput) => {
      return {
        pid: out.pid,
        pgid: out.pgid ?? null,
        shellPid: out.shellPid ?? null,
        pythonPid: out.pythonPid ?? null,
        marker: out.marker,
        startedAt: out.startedAt,
      };
    }),
    recordPids: assign(({ context, event }) =>
      event.type === 'PIDS_DISCOVERED'
        ? { shellPid: event.shellPid ?? context.shellPid, pythonPid: event.pythonPid ?? context.pythonPid }
        : {},
    ),
    recordHealthy: assign(({ event }) => ({ runningSince: event.type === 'HEALTHY' ? (event.at ?? null) : null })),
    recordExit: assign(({ event }) =>
      event.type === 'PROCESS_EXITED'
        ? {
            lastExit: { code: event.code, signal: event.signal, at: event.at ?? null },
            lastError: `process exited (code ${event.code ?? 'none'}, signal ${event.signal ?? 'none'})`,
          }
        : {},
    ),
    recordHealthFailure: assign(({ event }) =>
      event.type === 'HEALTH_FAILED' ? { lastError: `health check failed: ${event.reason}` } : {},
    ),
    recordStartupTimeout: assign(({ context }) => ({
      lastError: `not healthy within startupTimeoutMs (${context.startupTimeoutMs} ms)`,
    })),
    recordLaunchError: assign(({ event }) => ({ lastError: `launch failed: ${describeError(errorOf(event))}` })),
    recordMonitorError: assign(({ event }) => ({ lastError: `monitor failed: ${describeError(errorOf(event))}` })),
    recordReport: assign(({ event }) => ({ lastReport: reportOf(event) ?? null })),
    // The tree is confirmed dead: its pids mean nothing any more.
    forgetTree: assign({ pid: null, pgid: null, shellPid: null, pythonPid: null, runningSince: null }),
    // One more restart in the window; it leaves the count windowMs later (unless the count is reset first).
    countRestart: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ restarts: context.restarts + 1 });
      enqueue.raise({ type: 'RESTART_WINDOW_EXPIRED', epoch: context.restartEpoch }, { delay: context.policy.windowMs });
    }),
    expireRestart: assign(({ context }) => ({ restarts: Math.max(0, context.restarts - 1) })),
    forgetRestarts: assign(({ context }) => ({ restarts: 0, restartEpoch: context.restartEpoch + 1 })),
    clearError: assign({ lastError: null }),
    failRestartDisabled: assign(({ context }) => ({
      lastError: `crashed (restart disabled)${context.lastError ? `: ${context.lastError}` : ''}`,
    })),
    failBudgetSpent: assign(({ context }) => ({
      lastError:
        `restart budget spent: ${context.restarts} restarts within ${context.policy.windowMs} ms ` +
        `(maxRestarts ${context.policy.maxRestarts})${context.lastError ? `; last: ${context.lastError}` : ''}`,
    })),
    // Survivors after terminateTree: say so (emit + parent) and stay in stopping.
    alertSurvivors: enqueueActions(({ context, event, self, enqueue }) => {
      const report = reportOf(event);
      const survivors = Array.isArray(report?.survivors) ? report.survivors : [];
      const names = survivors.map((s) => `${s.pid} ${s.name} (${s.role})`).join(', ');
      const alert: InstanceAlert = {
        type: 'ALERT',
        id: context.id,
        kind: 'survivors',
        attempt: context.attempt,
        survivors,
        message:
          survivors.length > 0
            ? `"${context.id}" is not confirmed dead after terminate attempt ${context.attempt}: ${names} still alive; retrying escalated`
            : `"${context.id}": terminateTree resolved without a survivors list; treating the tree as alive and retrying`,
      };
      enqueue.emit(alert);
      if (self._parent) enqueue.sendParent({ type: 'INSTANCE_ALERT', id: context.id, alert } satisfies InstanceNotification);
    }),
    alertTerminateFailed: enqueueActions(({ context, event, self, enqueue }) => {
      const alert: InstanceAlert = {
        type: 'ALERT',
        id: context.id,
        kind: 'terminate-failed',
        attempt: context.attempt,
        survivors: [],
        message: `"${context.id}": terminate attempt ${context.attempt} failed (${describeError(errorOf(event))}); the tree is not confirmed dead; retrying escalated`,
      };
      enqueue.emit(alert);
      if (self._parent) enqueue.sendParent({ type: 'INSTANCE_ALERT', id: context.id, alert } satisfies InstanceNotification);
    }),
    // The stop gives up retrying: say who survived and why (emit + parent); the instance waits in stopping.stuck.
    alertStuck: enqueueActions(({ context, event, self, enqueue }) => {
      const report = reportOf(event);
      const survivors = Array.isArray(report?.survivors) ? report.survivors : [];
      const names = survivors.map((s) => `${s.pid} ${s.name} (${s.role}${s.reason ? `: ${s.reason}` : ''})`).join(', ');
      const denied = survivors.length > 0 && survivors.every((survivor) => survivor.denied === true);
      const why = denied
        ? 'every survivor refuses our signals (EPERM), so retrying cannot help'
        : `${context.attempt + 1} of ${context.maxStopAttempts} terminate attempts made`;
      const what = report === undefined ? `the last attempt failed (${describeError(errorOf(event))})` : `${names || 'no survivors list'} still alive`;
      const alert: InstanceAlert = {
        type: 'ALERT',
        id: context.id,
        kind: 'stop-stuck',
        attempt: context.attempt,
        survivors,
        message: `"${context.id}" is not confirmed dead and Warden stopped retrying: ${what}; ${why}. It stays in stopping (nothing is launched); end those processes, then STOP again.`,
      };
      enqueue.emit(alert);
      if (self._parent) enqueue.sendParent({ type: 'INSTANCE_ALERT', id: context.id, alert } satisfies InstanceNotification);
    }),
    // Tells the parent (if any) which top-level state the instance is in now.
    announce: enqueueActions(({ context, self, enqueue }, params: { state: InstanceStateName }) => {
      if (!self._parent) return;
      enqueue.sendParent({
        type: 'INSTANCE_CHANGED',
        id: context.id,
        state: params.state,
        lastReport: context.lastReport,
        lastError: context.lastError,
        restarts: context.restarts,
      } satisfies InstanceNotification);
    }),
  },
}).createMachine({
  id: 'instance',
  context: ({ input }) => instanceContext(input),
  initial: 'idle',
  on: {
    RESTART_WINDOW_EXPIRED: { guard: 'currentRestartEpoch', actions: 'expireRestart' },
  },
  states: {
    idle: {
      entry: ['forgetTree', { type: 'announce', params: { state: 'idle' } }],
      on: {
        START: { target: 'spawning', actions: 'wantRunning' },
        RESTART: { target: 'spawning', actions: 'wantRunning' },
        STOP: { actions: ['wantStopped', { type: 'announce', params: { state: 'idle' } }] },
      },
    },

    spawning: {
      entry: { type: 'announce', params: { state: 'spawning' } },
      initial: 'launching',
      after: {
        startupTimeout: { target: 'stopping', actions: ['recordStartupTimeout', 'stopForCrash'] },
      },
      on: {
        STOP: { target: 'stopping', actions: 'stopRequested' },
        RESTART: { target: 'stopping', actions: 'restartRequested' },
      },
      states: {
        launching: {
          invoke: {
            id: 'launch',
            src: 'launchTree',
            input: ({ context }) => ({ id: context.id, attempt: context.restarts }),
            onDone: {
              target: 'awaitingHealth',
              actions: { type: 'recordLaunch', params: ({ event }) => event.output },
            },
            // Something may have started before the launch failed: clean up like any crash.
            onError: { target: '#instance.stopping', actions: ['recordLaunchError', 'stopForCrash'] },
          },
        },
        awaitingHealth: {
          invoke: {
            id: 'monitor',
            src: 'monitorTree',
            input: ({ context }) => ({ id: context.id, phase: 'startup' as const }),
            onError: { target: '#instance.stopping', actions: ['recordMonitorError', 'stopForCrash'] },
          },
          on: {
            HEALTHY: { target: '#instance.running', actions: 'recordHealthy' },
            PROCESS_EXITED: { target: '#instance.stopping', actions: ['recordExit', 'stopForCrash'] },
            HEALTH_FAILED: { target: '#instance.stopping', actions: ['recordHealthFailure', 'stopForCrash'] },
            PIDS_DISCOVERED: { actions: 'recordPids' },
          },
        },
      },
    },

    running: {
      entry: { type: 'announce', params: { state: 'running' } },
      invoke: {
        id: 'monitor',
        src: 'monitorTree',
        input: ({ context }) => ({ id: context.id, phase: 'liveness' as const }),
        onError: { target: 'stopping', actions: ['recordMonitorError', 'stopForCrash'] },
      },
      after: {
        // Stable for resetAfterMs: the restart count (and the backoff) start over.
        resetAfter: { guard: 'hasRestarts', actions: 'forgetRestarts' },
      },
      on: {
        STOP: { target: 'stopping', actions: 'stopRequested' },
        RESTART: { target: 'stopping', actions: 'restartRequested' },
        PROCESS_EXITED: { target: 'stopping', actions: ['recordExit', 'stopForCrash'] },
        HEALTH_FAILED: { target: 'stopping', actions: ['recordHealthFailure', 'stopForCrash'] },
        PIDS_DISCOVERED: { actions: 'recordPids' },
      },
    },

    stopping: {
      entry: ['resetAttempt', { type: 'announce', params: { state: 'stopping' } }],
      initial: 'terminating',
      on: {
        // Intent is kept; it is acted on once the tree is confirmed dead.
        START: { actions: 'wantRunning' },
        RESTART: { actions: 'wantRunning' },
        STOP: { actions: 'wantStopped' },
      },
      states: {
        terminating: {
          invoke: {
            id: 'terminate',
            src: 'terminateTree',
            input: ({ context }) => ({
              id: context.id,
              reason: context.stopReason ?? 'stop',
              attempt: context.attempt,
            }),
            onDone: [
              {
                guard: and(['treeConfirmedDead', 'stopWanted']),
                target: '#instance.idle',
                actions: 'recordReport',
              },
              {
                guard: and(['treeConfirmedDead', 'stoppedForCrash']),
                target: '#instance.crashed',
                actions: 'recordReport',
              },
              {
                guard: 'treeConfirmedDead',
                target: '#instance.spawning',
                actions: ['recordReport', 'forgetTree'],
              },
              { guard: 'stopHopeless', target: 'stuck', actions: ['recordReport', 'alertStuck'] },
              { target: 'retrying', actions: ['recordReport', 'alertSurvivors'] },
            ],
            onError: [
              { guard: 'stopHopeless', target: 'stuck', actions: 'alertStuck' },
              { target: 'retrying', actions: 'alertTerminateFailed' },
            ],
          },
        },
        retrying: {
          after: {
            retryStop: { target: 'terminating', actions: 'escalate' },
          },
        },
        // Bounded retries: no timer here, so the machine does not loop forever on a tree it cannot kill. Still in
        // `stopping` (never leaves unconfirmed, never launches); a new command starts a fresh round of attempts.
        stuck: {
          on: {
            STOP: { target: 'terminating', actions: ['wantStopped', 'resetAttempt'] },
            START: { target: 'terminating', actions: ['wantRunning', 'resetAttempt'] },
            RESTART: { target: 'terminating', actions: ['wantRunning', 'resetAttempt'] },
          },
        },
      },
    },

    crashed: {
      entry: ['forgetTree', { type: 'announce', params: { state: 'crashed' } }],
      always: [
        { guard: 'restartDisabled', target: 'failed', actions: 'failRestartDisabled' },
        { guard: 'restartBudgetSpent', target: 'failed', actions: 'failBudgetSpent' },
      ],
      after: {
        backoff: { target: 'spawning', actions: 'countRestart' },
      },
      on: {
        STOP: { target: 'idle', actions: 'wantStopped' },
        RESTART: { target: 'spawning', actions: 'wantRunning' },
      },
    },

    failed: {
      entry: ['forgetTree', { type: 'announce', params: { state: 'failed' } }],
      on: {
        RESET: { target: 'idle', actions: ['forgetRestarts', 'clearError'] },
        STOP: { actions: ['wantStopped', { type: 'announce', params: { state: 'failed' } }] },
      },
    },
  },
});
