// The root actor: owns one instance actor per configured instance and the watchdog, routes commands, runs the
// emergency response and the shutdown sequence.
//
// Children: `instance:<id>` (id and systemId) for each instance, `watchdog` (id and systemId). Instances report to
// the supervisor with INSTANCE_CHANGED / INSTANCE_ALERT; the watchdog with ALERT / RUNAWAY.
//
// Emergency (RUNAWAY at critical or emergency): STOP (reason emergency) to every instance, then `reapOrphans` and
// `writeDiagnosticBundle` run side by side; `holdRestarts` stays true until RESET without an id. While held, START
// and RESTART are refused (emitted as COMMAND_REFUSED), and since every instance was told STOP its desired state is
// `stopped`, so no instance restarts by itself either.
//
// Shutdown: stop the watchdog, STOP (reason shutdown) every instance, then wait until every instance actor's own
// snapshot is `idle` or `failed` (both reached only with the tree confirmed dead), or until its stop gave up
// (`stopping.stuck`, told by a `stop-stuck` alert): no retry is coming, so waiting longer cannot help. Such an
// instance stays in `stopping.stuck` and is reported `stuck` with its survivors, never as stopped (`ok` is false).
// An instance still retrying keeps the supervisor in `shuttingDown`; a shutdown deadline is the runtime's business.
//
// A child's error (`xstate.error.actor.*`) is recorded and reported; it never takes the root down.
import { assign, enqueueActions, fromPromise, setup, stopChild } from 'xstate';
import { instanceMachine } from './instance.machine.js';
import { watchdogMachine } from './watchdog.machine.js';
import type {
  InstanceAlert,
  InstanceInput,
  InstanceNotification,
  InstanceStateName,
  ProcessCounts,
  RunawayEvent,
  SampleEvent,
  SupervisorInput,
  Survivor,
  TerminationReport,
  WatchdogAlert,
  WatchdogInput,
  WatchdogLevel,
} from './types.js';

/** The supervisor's view of one instance, from its notifications. */
export interface InstanceView {
  state: InstanceStateName;
  lastReport: TerminationReport | null;
  lastError: string | null;
  restarts: number;
}

/** What an emergency was and what its actors returned (their outputs must be JSON). */
export interface EmergencyRecord {
  level: RunawayEvent['level'];
  reason: string;
  counts: ProcessCounts;
  reaped: unknown;
  bundle: unknown;
  errors: string[];
}

/** Supervisor context. JSON only. */
export interface SupervisorContext {
  instanceInputs: InstanceInput[];
  watchdogInput: WatchdogInput;
  instanceIds: string[];
  instances: Record<string, InstanceView>;
  watchdogLevel: WatchdogLevel;
  lastAlert: WatchdogAlert | null;
  /** True from an emergency until RESET without an id: START and RESTART are refused. */
  holdRestarts: boolean;
  /** A RESET without an id arrived while the emergency's actors still ran: release the hold when they finish. */
  releaseRequested: boolean;
  emergency: EmergencyRecord | null;
  /** During shutdown: instances not yet confirmed stopped. */
  awaiting: string[];
  /** Instances whose last terminate attempt left survivors or failed (cleared when they leave `stopping`). */
  stuck: string[];
  /** During shutdown: instances whose stop gave up (`stopping.stuck`), with the survivors their alert named. */
  gaveUp: Record<string, Survivor[]>;
  /** Children that errored, by child id (`instance:<id>` or `watchdog`). */
  childErrors: Record<string, string>;
}

/** Commands and reports the supervisor handles. `id` absent means every instance. */
export type SupervisorEvent =
  | { type: 'START'; id?: string }
  | { type: 'STOP'; id?: string }
  | { type: 'RESTART'; id?: string }
  | { type: 'RESET'; id?: string }
  | { type: 'SHUTDOWN' }
  | SampleEvent
  | WatchdogAlert
  | RunawayEvent
  | InstanceNotification
  | { type: `xstate.error.actor.${string}`; error: unknown };

/** A command the supervisor would not carry out, and why. */
export interface CommandRefused {
  type: 'COMMAND_REFUSED';
  command: 'START' | 'STOP' | 'RESTART' | 'RESET';
  id: string | null;
  reason: string;
}

/** A child actor that errored (its tree's state is then unknown). */
export interface ChildFailed {
  type: 'CHILD_FAILED';
  child: string;
  error: string;
}

/** What the supervisor emits for observers of the root actor. */
export type SupervisorEmitted =
  | Extract<InstanceNotification, { type: 'INSTANCE_ALERT' }>
  | WatchdogAlert
  | RunawayEvent
  | CommandRefused
  | ChildFailed;

/**
 * The final output: each instance and what its last stop observed. `ok` only when every one is confirmed dead.
 * `stuck`: its stop gave up (`stopping.stuck`); `survivors`: what is known alive of an unconfirmed instance.
 */
export interface SupervisorOutput {
  ok: boolean;
  instances: Array<{
    id: string;
    state: InstanceStateName;
    confirmedDead: boolean;
    stuck: boolean;
    survivors: Survivor[];
    lastReport: TerminationReport | null;
    lastError: string | null;
  }>;
}

/** Input of both emergency actors. */
export interface EmergencyInput {
  level: RunawayEvent['level'];
  reason: string;
  counts: ProcessCounts;
  instanceIds: string[];
  instances: Record<string, InstanceView>;
}

/** Placeholder: kills what earlier runs left (registry and marker proof only). The runtime provides it. */
export const reapOrphans = fromPromise<unknown, EmergencyInput>(async () => {
  throw new Error('reapOrphans is not provided: give it with supervisorMachine.provide({ actors: { reapOrphans } })');
});

/** Placeholder: writes a diagnostic bundle and resolves with where. The runtime provides it. */
export const writeDiagnosticBundle = fromPromise<unknown, EmergencyInput>(async () => {
  throw new Error(
    'writeDiagnosticBundle is not provided: give it with supervisorMachine.provide({ actors: { writeDiagnosticBundle } })',
  );
});

/** The child id (and systemId) of an instance actor. */
export const instanceKey = (id: string): string => `instance:${id}`;

const ERROR_PREFIX = 'xstate.error.actor.';
const describeError = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error));
const settledStates: readonly unknown[] = ['idle', 'failed'];
const withoutKey = <T>(record: Record<string, T>, key: string): Record<string, T> =>
  Object.fromEntries(Object.entries(record).filter(([name]) => name !== key));
const isCommand = (
  event: SupervisorEvent,
): event is Extract<SupervisorEvent, { type: 'START' | 'STOP' | 'RESTART' | 'RESET' }> =>
  event.type === 'START' || event.type === 'STOP' || event.type === 'RESTART' || event.type === 'RESET';

/** The initial context; throws when an instance id is missing or configured twice. */
export function supervisorContext(input: SupervisorInput): SupervisorContext {
  const ids = input.instances.map((instance) => instance.id);
  const duplicate = ids.find((id, index) => ids.indexOf(id) !== index);
  if (duplicate !== undefined) throw new Error(`Invalid supervisor input: instance id "${duplicate}" is configured twice`);
  return {
    instanceInputs: input.instances,
    watchdogInput: input.watchdog ?? {},
    instanceIds: ids,
    instances: Object.fromEntries(
      ids.map((id) => [id, { state: 'idle', lastReport: null, lastError: null, restarts: 0 } satisfies InstanceView]),
    ),
    watchdogLevel: 'ok',
    lastAlert: null,
    holdRestarts: false,
    releaseRequested: false,
    emergency: null,
    awaiting: [],
    stuck: [],
    gaveUp: {},
    childErrors: {},
  };
}

/** The supervisor machine. Provide `instance` (instanceMachine with its actors), `reapOrphans`, `writeDiagnosticBundle`. */
export const supervisorMachine = setup({
  types: {} as {
    context: SupervisorContext;
    events: SupervisorEvent;
    input: SupervisorInput;
    output: SupervisorOutput;
    emitted: SupervisorEmitted;
  },
  actors: { instance: instanceMachine, watchdog: watchdogMachine, reapOrphans, writeDiagnosticBundle },
  guards: {
    restartsHeld: ({ context }) => context.holdRestarts,
    releaseRequested: ({ context }) => context.releaseRequested,
    forEveryInstance: ({ event }) => !('id' in event) || event.id === undefined,
    nothingAwaited: ({ context }) => context.awaiting.length === 0,
  },
  actions: {
    spawnChildren: enqueueActions(({ context, enqueue }) => {
      enqueue.spawnChild('watchdog', { id: 'watchdog', systemId: 'watchdog', input: context.watchdogInput });
      for (const input of context.instanceInputs) {
        enqueue.spawnChild('instance', { id: instanceKey(input.id), systemId: instanceKey(input.id), input });
      }
    }),
    // Sends START/STOP/RESTART/RESET to the instance named by `id`, or to every instance.
    forwardCommand: enqueueActions(({ context, event, enqueue }) => {
      if (!isCommand(event)) return;
      const ids = event.id === undefined ? context.instanceIds : [event.id];
      for (const id of ids) {
        if (!context.instanceIds.includes(id)) {
          enqueue.emit({ type: 'COMMAND_REFUSED', command: event.type, id, reason: `no instance "${id}" is configured` });
        } else if (context.childErrors[instanceKey(id)] !== undefined) {
          enqueue.emit({
            type: 'COMMAND_REFUSED',
            command: event.type,
            id,
            reason: `instance "${id}" errored: ${context.childErrors[instanceKey(id)]}`,
          });
        } else {
          enqueue.sendTo(instanceKey(id), { type: event.type });
        }
      }
    }),
    refuseWhileHeld: enqueueActions(({ event, enqueue }) => {
      if (!isCommand(event)) return;
      enqueue.emit({
        type: 'COMMAND_REFUSED',
        command: event.type,
        id: event.id ?? null,
        reason: 'restarts are held after an emergency; send RESET without an id to release',
      });
    }),
    refuseWhileShuttingDown: enqueueActions(({ event, enqueue }) => {
      if (!isCommand(event)) return;
      enqueue.emit({ type: 'COMMAND_REFUSED', command: event.type, id: event.id ?? null, reason: 'shutting down' });
    }),
    forwardSample: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'SAMPLE' && context.childErrors['watchdog'] === undefined) enqueue.sendTo('watchdog', event);
    }),
    recordInstance: assign(({ context, event }) => {
      if (event.type !== 'INSTANCE_CHANGED') return {};
      const view: InstanceView = {
        state: event.state,
        lastReport: event.lastReport,
        lastError: event.lastError,
        restarts: event.restarts,
      };
      return {
        instances: { ...context.instances, [event.id]: view },
        stuck: event.state === 'stopping' ? context.stuck : context.stuck.filter((id) => id !== event.id),
        gaveUp: event.state === 'stopping' ? context.gaveUp : withoutKey(context.gaveUp, event.id),
      };
    }),
    recordInstanceAlert: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'INSTANCE_ALERT') return;
      if (!context.stuck.includes(event.id)) enqueue.assign({ stuck: [...context.stuck, event.id] });
      enqueue.emit({ type: 'INSTANCE_ALERT', id: event.id, alert: event.alert satisfies InstanceAlert });
    }),
    recordWatchdogAlert: enqueueActions(({ event, enqueue }) => {
      if (event.type !== 'ALERT') return;
      enqueue.assign({ watchdogLevel: event.level, lastAlert: event });
      enqueue.emit(event);
    }),
    recordChildError: enqueueActions(({ context, event, enqueue }) => {
      if (!event.type.startsWith(ERROR_PREFIX)) return;
      const child = event.type.slice(ERROR_PREFIX.length);
      const error = describeError((event as { error?: unknown }).error);
      enqueue.assign({ childErrors: { ...context.childErrors, [child]: error } });
      enqueue.emit({ type: 'CHILD_FAILED', child, error });
    }),
    beginEmergency: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'RUNAWAY') return;
      enqueue.assign({
        holdRestarts: true,
        releaseRequested: false,
        emergency: { level: event.level, reason: event.reason, counts: event.counts, reaped: null, bundle: null, errors: [] },
      });
      enqueue.emit(event);
      for (const id of context.instanceIds) {
        if (context.childErrors[instanceKey(id)] === undefined) {
          enqueue.sendTo(instanceKey(id), { type: 'STOP', reason: 'emergency' });
        }
      }
    }),
    recordReaped: assign(({ context, event }) => ({
      emergency: context.emergency && { ...context.emergency, reaped: (event as { output?: unknown }).output ?? null },
    })),
    recordBundle: assign(({ context, event }) => ({
      emergency: context.emergency && { ...context.emergency, bundle: (event as { output?: unknown }).output ?? null },
    })),
    recordEmergencyError: assign(({ context, event }) => ({
      emergency: context.emergency && {
        ...context.emergency,
        errors: [...context.emergency.errors, `${event.type}: ${describeError((event as { error?: unknown }).error)}`],
      },
    })),
    releaseHold: assign({ holdRestarts: false, releaseRequested: false }),
    requestRelease: assign({ releaseRequested: true }),
    stopWatchdog: stopChild('watchdog'),
    stopEveryInstance: enqueueActions(({ context, enqueue }) => {
      for (const id of context.instanceIds) {
        if (context.childErrors[instanceKey(id)] === undefined) {
          enqueue.sendTo(instanceKey(id), { type: 'STOP', reason: 'shutdown' });
        }
      }
    }),
    // Every instance is awaited except those already errored (they cannot confirm anything). An earlier give-up is
    // forgotten: the shutdown STOP starts a fresh round of attempts.
    awaitEveryInstance: assign(({ context }) => ({
      awaiting: context.instanceIds.filter((id) => context.childErrors[instanceKey(id)] === undefined),
      gaveUp: {},
    })),
    // A stop that gave up during shutdown (stopping.stuck): no retry is coming, so shutdown stops waiting for it.
    recordGaveUp: assign(({ context, event }) => {
      if (event.type !== 'INSTANCE_ALERT' || event.alert.kind !== 'stop-stuck') return {};
      return { gaveUp: { ...context.gaveUp, [event.id]: event.alert.survivors } };
    }),
    // Re-reads each awaited instance actor's own snapshot: `idle` or `failed` is confirmed; an errored child, or one
    // whose stop gave up, is not confirmed but can no longer be waited for.
    checkShutdown: enqueueActions(({ context, system, enqueue }) => {
      const awaiting = context.awaiting.filter((id) => {
        const ref = system.get(instanceKey(id));
        if (!ref || context.childErrors[instanceKey(id)] !== undefined || context.gaveUp[id] !== undefined) return false;
        const snapshot = ref.getSnapshot();
        return snapshot.status === 'active' && !settledStates.includes(snapshot.value);
      });
      enqueue.assign({ awaiting });
    }),
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => supervisorContext(input),
  entry: 'spawnChildren',
  initial: 'supervising',
  on: {
    'xstate.error.actor.*': { actions: 'recordChildError' },
    INSTANCE_CHANGED: { actions: 'recordInstance' },
    INSTANCE_ALERT: { actions: 'recordInstanceAlert' },
    ALERT: { actions: 'recordWatchdogAlert' },
  },
  states: {
    supervising: {
      initial: 'normal',
      on: {
        START: [{ guard: 'restartsHeld', actions: 'refuseWhileHeld' }, { actions: 'forwardCommand' }],
        RESTART: [{ guard: 'restartsHeld', actions: 'refuseWhileHeld' }, { actions: 'forwardCommand' }],
        STOP: { actions: 'forwardCommand' },
        RESET: { actions: 'forwardCommand' },
        SAMPLE: { actions: 'forwardSample' },
        SHUTDOWN: { target: 'shuttingDown' },
      },
      states: {
        normal: {
          on: { RUNAWAY: { target: 'emergency' } },
        },
        emergency: {
          entry: 'beginEmergency',
          type: 'parallel',
          states: {
            reaping: {
              initial: 'running',
              states: {
                running: {
                  invoke: {
                    id: 'reapOrphans',
                    src: 'reapOrphans',
                    input: ({ context }) => emergencyInput(context),
                    onDone: { target: 'done', actions: 'recordReaped' },
                    onError: { target: 'done', actions: 'recordEmergencyError' },
                  },
                },
                done: { type: 'final' },
              },
            },
            diagnosing: {
              initial: 'running',
              states: {
                running: {
                  invoke: {
                    id: 'writeDiagnosticBundle',
                    src: 'writeDiagnosticBundle',
                    input: ({ context }) => emergencyInput(context),
                    onDone: { target: 'done', actions: 'recordBundle' },
                    onError: { target: 'done', actions: 'recordEmergencyError' },
                  },
                },
                done: { type: 'final' },
              },
            },
          },
          on: {
            // Reaping and the bundle still run: a RESET for everyone is kept and honoured when they finish.
            RESET: [
              { guard: 'forEveryInstance', actions: ['requestRelease', 'forwardCommand'] },
              { actions: 'forwardCommand' },
            ],
          },
          onDone: [{ guard: 'releaseRequested', target: 'normal', actions: 'releaseHold' }, { target: 'holding' }],
        },
        holding: {
          on: {
            RUNAWAY: { target: 'emergency' },
            RESET: [
              { guard: 'forEveryInstance', target: 'normal', actions: ['releaseHold', 'forwardCommand'] },
              { actions: 'forwardCommand' },
            ],
          },
        },
      },
    },

    shuttingDown: {
      entry: ['stopWatchdog', 'stopEveryInstance', 'awaitEveryInstance'],
      always: { guard: 'nothingAwaited', target: 'stopped' },
      on: {
        INSTANCE_CHANGED: { actions: ['recordInstance', 'checkShutdown'] },
        INSTANCE_ALERT: { actions: ['recordInstanceAlert', 'recordGaveUp', 'checkShutdown'] },
        'xstate.error.actor.*': { actions: ['recordChildError', 'checkShutdown'] },
        START: { actions: 'refuseWhileShuttingDown' },
        RESTART: { actions: 'refuseWhileShuttingDown' },
        STOP: {},
        RESET: { actions: 'refuseWhileShuttingDown' },
      },
    },

    stopped: {
      type: 'final',
    },
  },
  output: ({ context }) => shutdownOutput(context),
});

// The input both emergency actors receive.
function emergencyInput(context: SupervisorContext): EmergencyInput {
  const emergency = context.emergency;
  return {
    level: emergency?.level ?? 'critical',
    reason: emergency?.reason ?? 'unknown',
    counts: emergency?.counts ?? { python: 0, shell: 0, total: 0, stale: 0, foreign: 0 },
    instanceIds: context.instanceIds,
    instances: context.instances,
  };
}

/**
 * The shutdown result: an instance is confirmed dead only when it ended `idle` or `failed`, never errored and its
 * stop never gave up; one whose stop gave up is `stuck`, with the survivors its alert named.
 */
export function shutdownOutput(context: SupervisorContext): SupervisorOutput {
  const instances = context.instanceIds.map((id) => {
    const view = context.instances[id];
    const errored = context.childErrors[instanceKey(id)];
    const gaveUp = context.gaveUp[id];
    const state = view?.state ?? 'idle';
    const confirmedDead = errored === undefined && gaveUp === undefined && settledStates.includes(state);
    return {
      id,
      state,
      confirmedDead,
      stuck: gaveUp !== undefined,
      survivors: confirmedDead ? [] : (gaveUp ?? view?.lastReport?.survivors ?? []),
      lastReport: view?.lastReport ?? null,
      lastError: errored !== undefined ? `instance actor errored: ${errored}` : (view?.lastError ?? null),
    };
  });
  return { ok: instances.every((instance) => instance.confirmedDead), instances };
}
